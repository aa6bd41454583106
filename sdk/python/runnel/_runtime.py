"""The plugin instance's one handler and the two WIT exports, `init` and `handle`, in plain
Python: `runnel.component` connects them to the component, tests call them directly."""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from ._api import Config, Failure, Handler, InitError, Message, Outputs
from ._encoding import (
    PERMANENT,
    DecodeError,
    claimed_count,
    encode_answer,
    fail_every_message,
    read_batch,
)

HandleFunction = Callable[[Message, Outputs], None]

# What `export_handler` registered: a Handler subclass or a handle function.
_exported = None
# The handle function `init` built; `None` until `init` succeeds.
_handle: Optional[HandleFunction] = None


def export_handler(target):
    """Exports a handler: a `Handler` subclass, built once per instance with the configuration,
    or a function `(message, out) -> None` that needs no configuration. Use it once per plugin,
    as a decorator or a call; it returns `target` unchanged."""
    global _exported
    if isinstance(target, type) and not issubclass(target, Handler):
        raise TypeError(f"export_handler takes a subclass of runnel.Handler, not {target.__name__}")
    if not callable(target):
        raise TypeError("export_handler takes a runnel.Handler subclass or a function")
    _exported = target
    return target


def init(config: List[Tuple[str, str]]) -> None:
    """The `init` export: builds the handler that every later batch uses. Raises `InitError`
    (or any exception) to refuse the plugin; `init_error_text` words it."""
    global _handle
    # A failed init leaves no handler behind, so batches fail with a clear message instead of
    # running on an older configuration.
    _handle = None
    if _exported is None:
        raise RuntimeError(
            "the plugin exports no handler: decorate a runnel.Handler subclass or a function "
            "with @runnel.export_handler"
        )
    _handle = build_handler(_exported, Config(config))


def init_error_text(error: BaseException) -> str:
    # An InitError's text is written for the user; anything else also says what it was.
    return str(error) if isinstance(error, InitError) else exception_text(error)


def exception_text(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def handle(batch: bytes) -> bytes:
    """The `handle` export: an encoded batch in, the encoded answer out."""
    return handle_batch(_handle, batch)


def build_handler(target, config: Config) -> HandleFunction:
    """The handle function of an exported `target` under `config`."""
    if isinstance(target, type):
        return target(config).handle
    return target


def handle_batch(handle_message: Optional[HandleFunction], batch: bytes) -> bytes:
    """Runs `handle_message` over every message of `batch` and returns the encoded answer:
    exactly one outcome per message, in order. `handle_message` is `None` before `init`."""
    try:
        _source, messages = read_batch(batch, Message)
    except DecodeError as malformed:
        # Retrying the same batch against the same host cannot help, hence permanent.
        return fail_every_message(
            claimed_count(batch),
            PERMANENT,
            f"the plugin received a malformed batch ({malformed}); this is a bug in the Runnel "
            "host or the runnel Python SDK",
        )
    if handle_message is None:
        return fail_every_message(
            len(messages),
            PERMANENT,
            "the plugin was not initialized: the host called handle before init succeeded",
        )

    out = Outputs()
    sent = out._sent
    # Per message, the number of outputs sent up to and including it.
    ends: List[int] = []
    end_message = ends.append
    failures: List[Tuple[int, int, str]] = []
    for message in messages:
        try:
            handle_message(message, out)
        except Exception as error:
            # A failed message has no outputs: drop the ones it sent.
            del sent[ends[-1] if ends else 0 :]
            if isinstance(error, Failure):
                failures.append((len(ends), error.kind, error.message))
            else:
                failures.append((len(ends), PERMANENT, exception_text(error)))
        end_message(len(sent))
    return encode_answer(sent, ends, failures)
