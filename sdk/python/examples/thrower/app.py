"""Raises RuntimeError on the value `throw` and upper-cases (ASCII) every other value, keeping
key and headers: the throwing handler that tests/throwing.rs runs in every language. The SDK
catches the exception and fails only that message, permanently, with its type and text."""

import runnel


@runnel.export_handler
def thrower(message: runnel.Message, out: runnel.Outputs) -> None:
    if message.value == b"throw":
        raise RuntimeError("thrower: throw requested")
    out.send(message.value.upper(), key=message.key, headers=message.headers)
