"""Helpers for a handler's own tests, run by pytest outside WebAssembly: encode a batch, run
an exported handler over it as the host would, and read the answer back.

    from runnel.testing import Output, run_handler

    def test_uppercase():
        assert run_handler(uppercase, [{"value": b"hi", "key": b"k"}]) == [
            [Output(b"HI", key=b"k")]
        ]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._api import Config, FailureKind
from ._encoding import (
    BATCH_HEADER,
    BATCH_MAGIC,
    HEADER_LEN,
    HEADER_RECORD,
    MESSAGE_RECORD,
    NO_KEY,
    OUTCOME_RECORD,
    OUTCOMES_HEADER,
    OUTCOMES_MAGIC,
    OUTPUT_RECORD,
    PERMANENT,
    SUCCEEDED,
    TRANSIENT,
    DecodeError,
    _check_header_range,
    _check_span,
    _check_table,
    _read_header,
    _read_headers,
    _read_topics,
    _text,
)
from ._runtime import build_handler, handle_batch


@dataclass
class Output:
    """One output, as the host reads it from the answer."""

    value: bytes
    key: Optional[bytes] = None
    headers: List[Tuple[str, bytes]] = field(default_factory=list)
    topic: Optional[str] = None

    def __post_init__(self) -> None:
        self.headers = list(self.headers)


@dataclass
class Failed:
    """The failure of one message, as the host reads it from the answer."""

    kind: FailureKind
    message: str


Outcome = Union[List[Output], Failed]


def _as_bytes(value: Union[bytes, str]) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def encode_batch(messages: Iterable[Mapping], source: str = "test") -> bytes:
    """Encodes `messages` as the host does. Each message is a mapping with `value` and, when
    they matter, `key` (absent or `None`: no key), `headers` (`(name, value)` pairs), `topic`
    (default `"in"`), `partition` (default 0), `offset` (default: its index) and `timestamp`
    (default `None`). Values, keys and header values may be `str` (sent as UTF-8)."""
    data = bytearray()

    def push(value: bytes) -> Tuple[int, int]:
        offset = len(data)
        data.extend(value)
        return offset, len(value)

    source_span = push(source.encode())
    topic_numbers: Dict[str, int] = {}
    topic_spans: List[int] = []
    records = bytearray()
    header_records = bytearray()
    header_count = 0
    count = 0
    for index, message in enumerate(messages):
        topic = message.get("topic", "in")
        if topic not in topic_numbers:
            topic_numbers[topic] = len(topic_numbers)
            topic_spans.extend(push(topic.encode()))
        key = message.get("key")
        key_span = (NO_KEY, 0) if key is None else push(_as_bytes(key))
        value_span = push(_as_bytes(message["value"]))
        first_header = header_count
        for name, value in message.get("headers", ()):
            header_records += HEADER_RECORD.pack(*push(name.encode()), *push(_as_bytes(value)))
            header_count += 1
        timestamp = message.get("timestamp")
        records += MESSAGE_RECORD.pack(
            message.get("offset", index),
            -1 if timestamp is None else timestamp,
            message.get("partition", 0),
            topic_numbers[topic],
            *key_span,
            *value_span,
            first_header,
            header_count - first_header,
        )
        count += 1
    topics = b"".join(offset.to_bytes(4, "little") for offset in topic_spans)
    topics_at = HEADER_LEN + len(data)
    messages_at = topics_at + len(topics)
    headers_at = messages_at + len(records)
    header = BATCH_HEADER.pack(
        BATCH_MAGIC,
        count,
        len(topic_numbers),
        header_count,
        topics_at,
        messages_at,
        headers_at,
        HEADER_LEN,
        *source_span,
    )
    return b"".join((header, data, topics, records, header_records))


def run_handler(
    target, messages: Sequence[Mapping], config: Union[Mapping[str, str], None] = None
) -> List[Outcome]:
    """Builds `target` (a `runnel.Handler` subclass or a handle function) with `config`, runs it
    over one batch of `messages` (see `encode_batch`) and returns each message's outcome: its
    outputs, or its `Failed`. Each call builds a new handler, as a new plugin instance would."""
    handle_message = build_handler(target, Config((config or {}).items()))
    answer = handle_batch(handle_message, encode_batch(messages))
    return read_outcomes(answer, len(messages))


def read_outcomes(buffer: bytes, expected_count: int) -> List[Outcome]:
    """Decodes and checks an answer, as the host does: a list with, per message, either its
    outputs (a list of `Output`) or its `Failed`."""
    (
        _magic,
        count,
        topic_count,
        output_count,
        header_count,
        topics_at,
        outcomes_at,
        outputs_at,
        headers_at,
        data_at,
    ) = _read_header(buffer, OUTCOMES_HEADER, OUTCOMES_MAGIC, "the answer")
    if count != expected_count:
        raise DecodeError(f"the answer has {count} outcomes for {expected_count} messages")
    size = len(buffer)
    _check_table(size, topics_at, topic_count, 8, "topics")
    _check_table(size, outcomes_at, count, OUTCOME_RECORD.size, "outcomes")
    _check_table(size, outputs_at, output_count, OUTPUT_RECORD.size, "outputs")
    _check_table(size, headers_at, header_count, HEADER_RECORD.size, "headers")
    if data_at > size:
        raise DecodeError(f"data_at {data_at} is past the end")
    data_len = size - data_at
    topics = _read_topics(buffer, data_at, topics_at, topic_count)
    headers = _read_headers(buffer, data_at, headers_at, header_count)

    def data(offset: int, length: int, what: str) -> bytes:
        _check_span(data_len, offset, length, what)
        return buffer[data_at + offset : data_at + offset + length]

    outputs = []
    for index, record in enumerate(
        OUTPUT_RECORD.iter_unpack(buffer[outputs_at : outputs_at + 32 * output_count])
    ):
        topic, key_at, key_len, value_at, value_len, first, header_count_of, _ = record
        if topic > topic_count:
            raise DecodeError(f"output {index} names topic {topic} of {topic_count}")
        if key_at == NO_KEY:
            if key_len:
                raise DecodeError(f"the key of output {index} marks no key but has a length")
            key = None
        else:
            key = data(key_at, key_len, f"the key of output {index}")
        _check_header_range(first, header_count_of, len(headers), f"output {index}")
        outputs.append(
            Output(
                data(value_at, value_len, f"the value of output {index}"),
                key,
                headers[first : first + header_count_of],
                topics[topic - 1] if topic else None,
            )
        )

    outcomes: List[Outcome] = []
    start = 0
    for index, (end, kind, message_at, message_len) in enumerate(
        OUTCOME_RECORD.iter_unpack(buffer[outcomes_at : outcomes_at + 16 * count])
    ):
        if end < start or end > output_count:
            raise DecodeError(f"outcome {index} ends its outputs at {end}, after {start}")
        if kind == SUCCEEDED:
            outcomes.append(outputs[start:end])
        elif kind in (TRANSIENT, PERMANENT):
            if end != start:
                raise DecodeError(f"message {index} failed but has outputs")
            message = _text(buffer, data_at, message_at, message_len, f"the failure message of message {index}")
            outcomes.append(Failed(FailureKind(kind), message))
        else:
            raise DecodeError(f"outcome {index} has unknown kind {kind}")
        start = end
    if start != output_count:
        raise DecodeError(f"the outcomes name {start} of {output_count} outputs")
    return outcomes
