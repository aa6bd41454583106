"""The encoded batch and answer of `runnel:plugin` (wit/ENCODING.md in the Runnel repository).

The handler loop runs inside CPython compiled to WebAssembly, where every bytecode counts: the
tables are read with one `struct` call each, a message's fields are sliced out of the batch only
when the handler asks for them, and the answer's tables are built as flat lists of integers
packed in one call when the batch is done.
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import Iterator, List, Optional, Sequence, Tuple

NO_KEY = 0xFFFF_FFFF

BATCH_MAGIC = b"RNB1"
OUTCOMES_MAGIC = b"RNO1"
HEADER_LEN = 40

# magic, count, topic_count, header_count, topics_at, messages_at, headers_at, data_at, source span
BATCH_HEADER = struct.Struct("<4s9I")
# offset, timestamp, partition, topic, key span, value span, first header, header count
MESSAGE_RECORD = struct.Struct("<qqiIIIIIII")
SPAN = struct.Struct("<II")
# name span, value span
HEADER_RECORD = struct.Struct("<IIII")
# magic, count, topic_count, output_count, header_count, topics_at, outcomes_at, outputs_at,
# headers_at, data_at
OUTCOMES_HEADER = struct.Struct("<4s9I")
OUTCOME_RECORD = struct.Struct("<IIII")
OUTPUT_RECORD = struct.Struct("<IIIIIIII")

SUCCEEDED = 0
TRANSIENT = 1
PERMANENT = 2

Header = Tuple[str, bytes]


class DecodeError(ValueError):
    """A buffer that breaks the encoding; the text says where."""


def _check_table(buffer_len: int, at: int, count: int, size: int, name: str) -> None:
    if at + count * size > buffer_len:
        raise DecodeError(
            f"the {name} table ({count} records at byte {at}) runs past the end of the "
            f"{buffer_len}-byte buffer"
        )


def _check_span(data_len: int, offset: int, length: int, what: str) -> None:
    if offset + length > data_len:
        raise DecodeError(
            f"{what} ({length} bytes at {offset}) runs past the {data_len}-byte data area"
        )


def _text(buffer: bytes, data_at: int, offset: int, length: int, what: str) -> str:
    _check_span(len(buffer) - data_at, offset, length, what)
    start = data_at + offset
    try:
        return buffer[start : start + length].decode("utf-8")
    except UnicodeDecodeError as error:
        raise DecodeError(f"{what} is not UTF-8: {error}") from None


def _read_header(buffer: bytes, layout: struct.Struct, magic: bytes, what: str) -> tuple:
    if len(buffer) < HEADER_LEN:
        raise DecodeError(
            f"{what} is {len(buffer)} bytes, shorter than its {HEADER_LEN}-byte header"
        )
    fields = layout.unpack_from(buffer, 0)
    if fields[0] != magic:
        raise DecodeError(
            f"{what} does not start with {magic.decode()!r}: it is not encoding version 1"
        )
    return fields


def _read_topics(buffer: bytes, data_at: int, at: int, count: int) -> List[str]:
    return [
        _text(buffer, data_at, offset, length, f"topic {index}")
        for index, (offset, length) in enumerate(SPAN.iter_unpack(buffer[at : at + 8 * count]))
    ]


def _read_headers(buffer: bytes, data_at: int, at: int, count: int) -> List[Header]:
    data_len = len(buffer) - data_at
    headers = []
    for index, (name_at, name_len, value_at, value_len) in enumerate(
        HEADER_RECORD.iter_unpack(buffer[at : at + 16 * count])
    ):
        name = _text(buffer, data_at, name_at, name_len, f"the name of header {index}")
        _check_span(data_len, value_at, value_len, f"the value of header {index}")
        start = data_at + value_at
        headers.append((name, buffer[start : start + value_len]))
    return headers


def _check_header_range(first: int, count: int, header_count: int, owner: str) -> None:
    if first + count > header_count:
        raise DecodeError(
            f"{owner} has headers {first}..{first + count} but the header table has "
            f"{header_count}"
        )


class BatchView:
    """A batch checked against the encoding: every table, span and string, once.

    `rows` holds each message's record as a tuple (see `MESSAGE_RECORD`); keys and values stay
    in `buffer` until a handler asks for them. Header and topic strings are decoded here, since
    checking their UTF-8 costs as much as decoding it.
    """

    __slots__ = ("buffer", "data_at", "source", "topics", "headers", "rows")

    def __init__(self, buffer: bytes) -> None:
        (
            _magic,
            count,
            topic_count,
            header_count,
            topics_at,
            messages_at,
            headers_at,
            data_at,
            source_at,
            source_len,
        ) = _read_header(buffer, BATCH_HEADER, BATCH_MAGIC, "the batch")
        size = len(buffer)
        _check_table(size, topics_at, topic_count, 8, "topics")
        _check_table(size, messages_at, count, MESSAGE_RECORD.size, "messages")
        _check_table(size, headers_at, header_count, HEADER_RECORD.size, "headers")
        if data_at > size:
            raise DecodeError(f"data_at {data_at} is past the end")
        self.buffer = buffer
        self.data_at = data_at
        self.source = _text(buffer, data_at, source_at, source_len, "the source")
        self.topics = _read_topics(buffer, data_at, topics_at, topic_count)
        self.headers = _read_headers(buffer, data_at, headers_at, header_count)
        self.rows = list(
            MESSAGE_RECORD.iter_unpack(buffer[messages_at : messages_at + 48 * count])
        )
        self._check_messages(size - data_at)

    def _check_messages(self, data_len: int) -> None:
        topic_count = len(self.topics)
        header_count = len(self.headers)
        # One cheap test per message; the slow path below names the first bad one.
        for _, _, _, topic, key_at, key_len, value_at, value_len, first, count in self.rows:
            if (
                topic >= topic_count
                or value_at + value_len > data_len
                or first + count > header_count
                or (key_at + key_len > data_len and key_at != NO_KEY)
                or (key_at == NO_KEY and key_len)
            ):
                break
        else:
            return
        for index, row in enumerate(self.rows):
            _, _, _, topic, key_at, key_len, value_at, value_len, first, count = row
            if topic >= topic_count:
                raise DecodeError(f"message {index} names topic {topic} of {topic_count}")
            if key_at == NO_KEY:
                if key_len:
                    raise DecodeError(f"the key of message {index} marks no key but has a length")
            else:
                _check_span(data_len, key_at, key_len, f"the key of message {index}")
            _check_span(data_len, value_at, value_len, f"the value of message {index}")
            _check_header_range(first, count, header_count, f"message {index}")

    def __len__(self) -> int:
        return len(self.rows)


def claimed_count(buffer: bytes) -> int:
    """The message count a batch's header claims, so that even a malformed batch gets one
    failure per message; 0 if not even that can be read."""
    if len(buffer) < 8:
        return 0
    # A corrupt count must not make the plugin allocate without bound.
    return min(struct.unpack_from("<I", buffer, 4)[0], len(buffer))


def _pack_u32s(values: Sequence[int]) -> bytes:
    table = array("I", values)
    if sys.byteorder == "big":  # WebAssembly is little-endian; only a native test can be big.
        table.byteswap()
    return table.tobytes()


def encode_answer(
    data: bytearray,
    topics: List[int],
    outputs: List[int],
    headers: List[int],
    ends: List[int],
    failures: List[Tuple[int, int, str]],
) -> bytes:
    """The encoded answer to a batch of `len(ends)` messages.

    `data` is the data area; `topics`, `outputs` and `headers` are the fields of those tables'
    records, flat; `ends[i]` is the number of outputs up to and including message `i`; each
    failure is `(message index, kind, text)`. Failure texts are appended to `data`.
    """
    count = len(ends)
    outcomes = [0] * (4 * count)
    outcomes[0::4] = ends
    for index, kind, text in failures:
        encoded = text.encode("utf-8", "replace")
        outcomes[4 * index + 1 : 4 * index + 4] = (kind, len(data), len(encoded))
        data += encoded
    topics_at = HEADER_LEN + len(data)
    outcomes_at = topics_at + 4 * len(topics)
    outputs_at = outcomes_at + 4 * len(outcomes)
    headers_at = outputs_at + 4 * len(outputs)
    header = OUTCOMES_HEADER.pack(
        OUTCOMES_MAGIC,
        count,
        len(topics) >> 1,
        len(outputs) >> 3,
        len(headers) >> 2,
        topics_at,
        outcomes_at,
        outputs_at,
        headers_at,
        HEADER_LEN,
    )
    return b"".join(
        (
            header,
            data,
            _pack_u32s(topics),
            _pack_u32s(outcomes),
            _pack_u32s(outputs),
            _pack_u32s(headers),
        )
    )


def fail_every_message(count: int, kind: int, text: str) -> bytes:
    failures = [(index, kind, text) for index in range(count)]
    return encode_answer(bytearray(), [], [], [], [0] * count, failures)
