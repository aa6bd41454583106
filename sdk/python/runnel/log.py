"""Logging into the host's log, where each line is tagged with the plugin's name.

Every call crosses into the host, so log per batch or per problem, not per message at `info`.
Outside a Runnel host (a handler's own tests) the lines go to standard error instead.
"""

import sys

try:
    # The bindings componentize-py generates exist only while the component is built.
    from wit_world.imports.log import Level as _Level, log as _host_log
except ImportError:
    _Level = None


def _log(level_name: str, message: str) -> None:
    if _Level is None:
        print(f"{level_name} {message}", file=sys.stderr)
    else:
        _host_log(_Level[level_name], message)


def trace(message: str) -> None:
    """Logs `message` at trace level."""
    _log("TRACE", message)


def debug(message: str) -> None:
    """Logs `message` at debug level."""
    _log("DEBUG", message)


def info(message: str) -> None:
    """Logs `message` at info level."""
    _log("INFO", message)


def warn(message: str) -> None:
    """Logs `message` at warn level."""
    _log("WARN", message)


def error(message: str) -> None:
    """Logs `message` at error level."""
    _log("ERROR", message)
