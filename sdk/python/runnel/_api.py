"""What a handler works with: its configuration, one message, where its outputs go, failures."""

from __future__ import annotations

import enum
from operator import itemgetter
from typing import Iterable, Iterator, List, Optional, Tuple, Union

from ._encoding import PERMANENT, TRANSIENT

Bytes = Union[bytes, bytearray, memoryview]
"""Anything a value, key or header value can be given as; `str` is sent as UTF-8."""


class InitError(Exception):
    """Raised while building a handler from its configuration: the host refuses the plugin with
    this text, which should say which setting is wrong and how to fix it."""


class Config:
    """String settings from the pipeline's configuration of this plugin."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[Tuple[str, str]] = ()) -> None:
        self._entries = list(entries)

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The value of setting `name`, or `default` when it is not set. When a name is repeated
        the last value wins, as a later line of a configuration file overrides an earlier one."""
        for key, value in reversed(self._entries):
            if key == name:
                return value
        return default

    def require(self, name: str) -> str:
        """The value of setting `name`; raises `InitError` telling the user to add it."""
        value = self.get(name)
        if value is None:
            raise InitError(f"missing required setting `{name}`: add it to this plugin's config")
        return value

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        """Every setting in the order the host passed them."""
        return iter(self._entries)

    def __repr__(self) -> str:
        return f"Config({self._entries!r})"


class FailureKind(enum.IntEnum):
    """What the host does with a failed message; the values are the encoding's."""

    TRANSIENT = TRANSIENT
    """Retry the message later."""
    PERMANENT = PERMANENT
    """Retrying cannot help: dead-letter or skip it."""


class Failure(Exception):
    """The failure of one message: raise it from `handle`. The outputs the message had already
    sent are discarded; the other messages of the batch are unaffected."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = FailureKind(kind)
        self.message = message

    @classmethod
    def permanent(cls, message: str) -> "Failure":
        """A failure that retrying the same message cannot fix."""
        return cls(FailureKind.PERMANENT, message)

    @classmethod
    def transient(cls, message: str) -> "Failure":
        """A failure that a later retry of the same message may not hit."""
        return cls(FailureKind.TRANSIENT, message)

    def __str__(self) -> str:
        return f"{self.kind.name.lower()} failure: {self.message}"


try:
    # The descriptor `collections.namedtuple` uses: a field read without a Python call, about
    # 800 WebAssembly instructions cheaper per read than `property(itemgetter(...))`.
    from collections import _tuplegetter as _field
except ImportError:  # another Python implementation

    def _field(index: int, doc: str) -> property:  # type: ignore[misc]
        return property(itemgetter(index), doc=doc)


class Message(tuple):
    """One input message, read-only. Its key, value and headers are decoded before the handler
    runs, so reading them is a plain attribute read; the other fields are read from the batch
    when asked for."""

    # The tuple is (key, value, headers, BatchFields, index): the order in which the decoder
    # reads them.
    __slots__ = ()

    key: Optional[bytes] = _field(  # type: ignore[assignment]
        0,
        "The key, or `None` when the message has no key (which Kafka distinguishes from "
        "an empty key).",
    )
    value: bytes = _field(1, "The payload.")  # type: ignore[assignment]
    headers: Tuple[Tuple[str, bytes], ...] = _field(  # type: ignore[assignment]
        2,
        "Every `(name, value)` header in the order the producer wrote them; a name may "
        "repeat.",
    )

    @property
    def topic(self) -> str:
        """The topic the message was read from."""
        fields = self[3]
        return fields.topics[fields.u32[12 * self[4] + 5]]

    @property
    def partition(self) -> int:
        """The Kafka partition, or -1 for inputs without partitions."""
        return self[3].i32[12 * self[4] + 4]

    @property
    def offset(self) -> int:
        """The Kafka offset, or -1 for inputs without offsets."""
        return self[3].i64[6 * self[4]]

    @property
    def timestamp(self) -> Optional[int]:
        """Milliseconds since the Unix epoch, or `None` when the input does not know it."""
        timestamp = self[3].i64[6 * self[4] + 1]
        return None if timestamp == -1 else timestamp

    @property
    def source(self) -> str:
        """The name of the pipeline input (Kafka consumer or Dapr binding) the message came
        from."""
        return self[3].source

    def header(self, name: str) -> Optional[bytes]:
        """The value of the last header called `name` (names are case-sensitive), like Kafka's
        `lastHeader`."""
        for header_name, value in reversed(self.headers):
            if header_name == name:
                return value
        return None

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"timestamp={self.timestamp}, key={self.key!r}, value={self.value!r}, "
            f"headers={self.headers!r})"
        )


class Outputs:
    """Where a handler sends the outputs of the message it is handling. Outputs go to the
    pipeline's default output topic unless `topic` says otherwise."""

    __slots__ = ("_sent",)

    def __init__(self) -> None:
        # (value, key, headers, topic) of every output of the batch, encoded when it is done.
        self._sent: List[tuple] = []

    def send(
        self,
        value: Union[Bytes, str],
        *,
        key: Union[Bytes, str, None] = None,
        headers: Iterable[Tuple[str, Union[Bytes, str]]] = (),
        topic: Optional[str] = None,
    ) -> None:
        """Sends `value` with `key` (`None`: no key, which Kafka distinguishes from an empty
        key) and `headers` (`(name, value)` pairs, such as a message's own `headers`) to `topic`,
        or to the pipeline's default output topic. Text is sent as UTF-8."""
        if value.__class__ is not bytes:
            value = _as_bytes(value, "value")
        if key.__class__ is not bytes and key is not None:
            key = _as_bytes(key, "key")
        if headers:
            headers = _header_pairs(headers)
        if topic is not None and (topic.__class__ is not str or not topic):
            raise ValueError(
                f"an output topic must be a non-empty string, not {topic!r}: leave it out to "
                "send to the default topic"
            )
        self._sent.append((value, key, headers, topic))


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, str):
        return data.encode()
    try:
        return memoryview(data).tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"an output {what} must be bytes, bytearray, memoryview or str, not "
            f"{type(data).__name__}"
        ) from None


def _header_pairs(headers: Iterable[Tuple[str, object]]) -> List[Tuple[bytes, bytes]]:
    pairs = []
    for name, value in headers:
        if not isinstance(name, str):
            raise TypeError(f"a header name must be a str, not {type(name).__name__}")
        pairs.append((name.encode(), value if value.__class__ is bytes else _as_bytes(value, "header value")))
    return pairs


class Handler:
    """A message handler: subclass it, override `handle`, and export the class with
    `@export_handler`.

    The class is built once per plugin instance, with the plugin's configuration; the same object
    then handles every message of every batch, so it can keep state. A handler that reads its
    configuration overrides `__init__(self, config)` and raises `InitError` (or
    `config.require`'s) to refuse a bad one.
    """

    def __init__(self, config: Config) -> None:
        pass

    def handle(self, message: Message, out: Outputs) -> None:
        """Sends the outputs of `message` to `out` (zero or more), or raises `Failure`."""
        raise NotImplementedError(f"{type(self).__name__} does not override handle")
