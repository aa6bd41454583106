"""Write Runnel message handlers in Python.

A handler sees one message at a time and sends zero or more outputs for it; the SDK turns that
into the batch-at-a-time WIT contract of `runnel:plugin` and its encoding. A complete plugin,
in a file `app.py`:

    import runnel

    @runnel.export_handler
    def uppercase(message: runnel.Message, out: runnel.Outputs) -> None:
        out.send(message.value.upper(), key=message.key, headers=message.headers)

A handler that reads its configuration or keeps state is a class:

    @runnel.export_handler
    class Router(runnel.Handler):
        def __init__(self, config: runnel.Config) -> None:
            self.route_field = config.require("route_field")

        def handle(self, message: runnel.Message, out: runnel.Outputs) -> None:
            ...

Raise `runnel.Failure.transient(text)` to have the host retry a message, or
`runnel.Failure.permanent(text)` to have it dead-lettered or skipped; any other exception fails
the message permanently with the exception's text. Either way the message's outputs are
discarded and the rest of the batch goes on.
"""

from . import log
from ._api import Config, Failure, FailureKind, Handler, InitError, Message, Outputs
from ._runtime import export_handler

__all__ = [
    "Config",
    "Failure",
    "FailureKind",
    "Handler",
    "InitError",
    "Message",
    "Outputs",
    "export_handler",
    "log",
]
