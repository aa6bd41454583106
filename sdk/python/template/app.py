"""{{name}}: a Runnel message handler. It upper-cases every value (ASCII only), keeping key and
headers, to the pipeline's default output topic; change `handle` to do your own work."""

import runnel


@runnel.export_handler
class Handler(runnel.Handler):
    def __init__(self, config: runnel.Config) -> None:
        # Read settings here, e.g. `self.field = config.require("field")`; an InitError refuses
        # the plugin with its text.
        pass

    def handle(self, message: runnel.Message, out: runnel.Outputs) -> None:
        out.send(message.value.upper(), key=message.key, headers=message.headers)
