"""The module componentize-py builds into the component: it exports `runnel:plugin/handler` by
handing both calls to the SDK. It imports the plugin's own module, `app`, whose
`@runnel.export_handler` registers the handler; componentize-py runs this import while it builds
the component, so instances start with the plugin already loaded."""

from wit_world import exports

try:
    from componentize_py_types import Err
except ImportError:  # componentize-py before 0.19
    from wit_world.types import Err

from runnel import _runtime

import app  # noqa: F401  (registers the handler)


class Handler(exports.Handler):
    def init(self, config):
        try:
            _runtime.init(config)
        except Exception as error:
            raise Err(_runtime.init_error_text(error))

    def handle(self, batch):
        return _runtime.handle(batch)
