"""Counts the messages seen per key and sends each message on with its running count in a
header: an example of a handler configured by `init` that keeps state across messages.

Settings:
- `header` (optional, default `count`): the name of the header that carries the count.

The value is sent unchanged, with its key and headers, to the default topic. A message without
a key is counted apart from one with an empty key, as Kafka tells them apart. Counts live in the
plugin instance: each instance counts the messages it handled, from zero when it starts.
"""

from typing import Dict, Optional

import runnel


@runnel.export_handler
class Counter(runnel.Handler):
    def __init__(self, config: runnel.Config) -> None:
        header = config.get("header", "count")
        if not header:
            raise runnel.InitError("setting `header` must not be empty")
        if header.startswith("runnel-"):
            raise runnel.InitError(
                f"setting `header` is `{header}`, but header names starting with `runnel-` are "
                "set by the host"
            )
        self.header = header
        # `None` (no key) and b"" (an empty key) are different keys.
        self.counts: Dict[Optional[bytes], int] = {}

    def handle(self, message: runnel.Message, out: runnel.Outputs) -> None:
        count = self.count(message.key)
        out.send(
            message.value,
            key=message.key,
            headers=message.headers + ((self.header, str(count)),),
        )

    def count(self, key: Optional[bytes]) -> int:
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        return count
