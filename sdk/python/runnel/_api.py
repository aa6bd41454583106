"""What a handler works with: its configuration, one message, where its outputs go, failures."""

from __future__ import annotations

import enum
from typing import Iterable, Iterator, List, Optional, Tuple, Union

from ._encoding import NO_KEY, PERMANENT, TRANSIENT, BatchView

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


class Message:
    """One input message. Its fields are read from the batch when asked for, so a handler pays
    only for what it looks at; each read of `value` or `key` is a fresh `bytes` copy."""

    __slots__ = ("_batch", "_row")

    _batch: BatchView
    _row: tuple

    @property
    def value(self) -> bytes:
        """The payload."""
        row = self._row
        batch = self._batch
        start = batch.data_at + row[6]
        return batch.buffer[start : start + row[7]]

    @property
    def key(self) -> Optional[bytes]:
        """The key, or `None` when the message has no key (which Kafka distinguishes from an
        empty key)."""
        row = self._row
        if row[4] == NO_KEY:
            return None
        batch = self._batch
        start = batch.data_at + row[4]
        return batch.buffer[start : start + row[5]]

    @property
    def headers(self) -> List[Tuple[str, bytes]]:
        """Every `(name, value)` header in the order the producer wrote them; a name may
        repeat."""
        row = self._row
        first = row[8]
        return self._batch.headers[first : first + row[9]]

    def header(self, name: str) -> Optional[bytes]:
        """The value of the last header called `name` (names are case-sensitive), like Kafka's
        `lastHeader`."""
        for header_name, value in reversed(self.headers):
            if header_name == name:
                return value
        return None

    @property
    def topic(self) -> str:
        """The topic the message was read from."""
        return self._batch.topics[self._row[3]]

    @property
    def partition(self) -> int:
        """The Kafka partition, or -1 for inputs without partitions."""
        return self._row[2]

    @property
    def offset(self) -> int:
        """The Kafka offset, or -1 for inputs without offsets."""
        return self._row[0]

    @property
    def timestamp(self) -> Optional[int]:
        """Milliseconds since the Unix epoch, or `None` when the input does not know it."""
        timestamp = self._row[1]
        return None if timestamp == -1 else timestamp

    @property
    def source(self) -> str:
        """The name of the pipeline input (Kafka consumer or Dapr binding) the message came
        from."""
        return self._batch.source

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"timestamp={self.timestamp}, key={self.key!r}, value={self.value!r}, "
            f"headers={self.headers!r})"
        )


class Outputs:
    """Where a handler sends the outputs of the message it is handling, written straight into
    the encoded answer. Outputs go to the pipeline's default output topic unless `topic` says
    otherwise."""

    __slots__ = ("_data", "_topics", "_topic_numbers", "_outputs", "_headers")

    def __init__(self) -> None:
        # The answer's data area, and its tables as flat lists of u32 fields.
        self._data = bytearray()
        self._topics: List[int] = []
        # Output topic name -> its number in output records (entry k of the table is k + 1).
        self._topic_numbers: dict = {}
        self._outputs: List[int] = []
        self._headers: List[int] = []

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
        or to the pipeline's default output topic."""
        data = self._data
        if value.__class__ is str:
            value = value.encode()
        value_at = len(data)
        data += value
        # Lengths are measured in the data area: a memoryview's len() counts items, not bytes.
        value_len = len(data) - value_at
        if key is None:
            key_at = NO_KEY
            key_len = 0
        else:
            if key.__class__ is str:
                key = key.encode()
            key_at = len(data)
            data += key
            key_len = len(data) - key_at
        table = self._headers
        first_header = len(table) >> 2
        for name, header_value in headers:
            if header_value.__class__ is str:
                header_value = header_value.encode()
            name_at = len(data)
            data += name.encode()
            header_value_at = len(data)
            data += header_value
            table += (name_at, header_value_at - name_at, header_value_at, len(data) - header_value_at)
        self._outputs += (
            0 if topic is None else self._topic_number(topic),
            key_at,
            key_len,
            value_at,
            value_len,
            first_header,
            (len(table) >> 2) - first_header,
            0,
        )

    def _topic_number(self, topic: str) -> int:
        number = self._topic_numbers.get(topic)
        if number is None:
            if not topic:
                raise ValueError("an output topic must not be empty: leave it out to send to the default topic")
            name = topic.encode()
            self._topics += (len(self._data), len(name))
            self._data += name
            number = self._topic_numbers[topic] = len(self._topic_numbers) + 1
        return number


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
