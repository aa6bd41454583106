"""Upper-cases every value (ASCII only), keeping key and headers, to the default topic."""

import runnel


@runnel.export_handler
def uppercase(message: runnel.Message, out: runnel.Outputs) -> None:
    out.send(message.value.upper(), key=message.key, headers=message.headers)
