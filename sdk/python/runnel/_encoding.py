"""The encoded batch and answer of `runnel:plugin` (wit/ENCODING.md in the Runnel repository).

The handler loop runs inside CPython compiled to WebAssembly, where each bytecode and each
object costs about ten times its native price: tables are read and written a column at a time
(`memoryview.cast` and strided slices, `map`, `accumulate`, `bytes.join`), never in a Python
loop over the messages, except on the rare paths (a missing key, headers, own topics, an error).
"""

from __future__ import annotations

import struct
import sys
from array import array
from io import BytesIO
from itertools import accumulate, chain, repeat
from operator import add
from typing import Iterable, Iterator, List, Optional, Tuple

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


def _read_headers(buffer: bytes, data_at: int, at: int, count: int) -> Tuple[Header, ...]:
    """Every header of a batch or answer as a `(name, value)` pair; a tuple, so that the slice
    of it a message gets cannot be changed by the handler."""
    data_len = len(buffer) - data_at
    headers = []
    for index, (name_at, name_len, value_at, value_len) in enumerate(
        HEADER_RECORD.iter_unpack(buffer[at : at + 16 * count])
    ):
        name = _text(buffer, data_at, name_at, name_len, f"the name of header {index}")
        _check_span(data_len, value_at, value_len, f"the value of header {index}")
        start = data_at + value_at
        headers.append((name, buffer[start : start + value_len]))
    return tuple(headers)


def _check_header_range(first: int, count: int, header_count: int, owner: str) -> None:
    if first + count > header_count:
        raise DecodeError(
            f"{owner} has headers {first}..{first + count} but the header table has "
            f"{header_count}"
        )


class BatchFields:
    """What the messages of one batch share: the source, the topic names, and the message table
    as arrays of its fields, from which a message reads its less used fields when asked."""

    __slots__ = ("source", "topics", "table", "u32", "_i32", "_i64")

    def __init__(self, source: str, topics: List[str], table: memoryview) -> None:
        self.source = source
        self.topics = topics
        self.table = table
        # A message record is 12 u32, 12 i32 or 6 i64 (see MESSAGE_RECORD); WebAssembly is
        # little-endian, as the encoding is. Only the u32 view is needed to read a batch; the
        # others are made when a handler first asks for a partition, offset or timestamp.
        self.u32 = table.cast("I")
        self._i32: Optional[memoryview] = None
        self._i64: Optional[memoryview] = None

    @property
    def i32(self) -> memoryview:
        if self._i32 is None:
            self._i32 = self.table.cast("i")
        return self._i32

    @property
    def i64(self) -> memoryview:
        if self._i64 is None:
            self._i64 = self.table.cast("q")
        return self._i64


def read_batch(buffer: bytes, message_type: type) -> Tuple[str, list]:
    """Checks `buffer` as a batch (every table, span and string, once) and returns its source
    and its messages as `message_type` tuples of (key, value, headers, BatchFields, index).

    Inside WebAssembly every Python object costs about a thousand instructions to make and free,
    more than the handler's own work, so this makes as few as it can: the message table's fields
    are read as whole columns from a memoryview, and per message only its key, its value and
    the tuple itself are made (and, unless the batch is laid out as `_read_packed` expects, the
    ends of the spans and the slices to cut them with).
    """
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
    source = _text(buffer, data_at, source_at, source_len, "the source")
    topics = _read_topics(buffer, data_at, topics_at, topic_count)
    headers = _read_headers(buffer, data_at, headers_at, header_count) if header_count else ()
    if count == 0:
        return source, []
    table = memoryview(buffer)[messages_at : messages_at + MESSAGE_RECORD.size * count]
    fields = BatchFields(source, topics, table)
    if not header_count:
        messages = _read_packed(buffer, data_at, fields, count, message_type)
        if messages is not None:
            return source, messages
    u32 = fields.u32
    topic_indexes = u32[5::12]
    key_ats = u32[6::12].tolist()
    key_lens = u32[7::12].tolist()
    value_ats = u32[8::12].tolist()
    value_ends = list(map(add, value_ats, u32[9::12].tolist()))
    if header_count:
        first_headers = u32[10::12].tolist()
        header_ends = list(map(add, first_headers, u32[11::12].tolist()))
        headers_are_bad = max(header_ends) > header_count
    else:
        # Without a header table, each message's first header and count must be 0; comparing
        # the columns themselves makes no object per message.
        headers_are_bad = max(u32[10::12]) > 0 or max(u32[11::12]) > 0
    data = buffer[data_at:]
    data_len = len(data)
    every_message_has_a_key = NO_KEY not in key_ats
    if every_message_has_a_key:
        key_ends = list(map(add, key_ats, key_lens))
        keys_are_bad = max(key_ends) > data_len
    else:
        keys_are_bad = max(
            (key_at + key_len for key_at, key_len in zip(key_ats, key_lens) if key_at != NO_KEY),
            default=0,
        ) > data_len or any(key_len for key_at, key_len in zip(key_ats, key_lens) if key_at == NO_KEY)
    if (
        keys_are_bad
        or max(topic_indexes) >= topic_count
        or max(value_ends) > data_len
        or headers_are_bad
    ):
        # The slow path names the first bad message.
        _check_messages(
            zip(topic_indexes, key_ats, key_lens, value_ats, u32[9::12], u32[10::12], u32[11::12]),
            data_len,
            topic_count,
            header_count,
        )

    values = map(data.__getitem__, map(slice, value_ats, value_ends))
    if every_message_has_a_key:
        keys = map(data.__getitem__, map(slice, key_ats, key_ends))
    else:
        keys = [
            None if key_at == NO_KEY else data[key_at : key_at + key_len]
            for key_at, key_len in zip(key_ats, key_lens)
        ]
    if header_count:
        headers_of = map(headers.__getitem__, map(slice, first_headers, header_ends))
    else:
        headers_of = repeat((), count)
    return source, list(
        map(message_type, zip(keys, values, headers_of, repeat(fields, count), range(count)))
    )


def _read_packed(
    buffer: bytes, data_at: int, fields: BatchFields, count: int, message_type: type
) -> Optional[list]:
    """The messages of a batch without headers whose keys and values lie in message order with
    nothing between them (key 0, value 0, key 1, ...: how the host writes them), or `None` for
    any other batch, which `read_batch` then reads span by span.

    Such a batch is checked by comparing the key and value columns, in C, with the running sum
    of their lengths, and read by one `BytesIO.read` per key and value: no end, slice or
    lasting integer is made per message, about a third of what reading a message costs.
    """
    u32 = fields.u32
    first = u32[6]
    try:
        starts = array("I", accumulate(chain.from_iterable(zip(u32[7::12], u32[9::12])), initial=first))
    except OverflowError:  # a span past 4 GiB: not a batch the host wrote
        return None
    spans = memoryview(starts)
    if (
        starts[-1] > len(buffer) - data_at
        or spans[0:-1:2] != u32[6::12]
        or spans[1::2] != u32[8::12]
        or max(u32[5::12]) >= len(fields.topics)
        or max(u32[10::12])
        or max(u32[11::12])
    ):
        return None
    data = BytesIO(buffer)
    data.seek(data_at + first)
    keys_and_values = map(data.read, chain.from_iterable(zip(u32[7::12], u32[9::12])))
    return list(
        map(
            message_type,
            zip(keys_and_values, keys_and_values, repeat((), count), repeat(fields, count), range(count)),
        )
    )


def _check_messages(rows: Iterator[tuple], data_len: int, topic_count: int, header_count: int) -> None:
    for index, (topic, key_at, key_len, value_at, value_len, first, count) in enumerate(rows):
        if topic >= topic_count:
            raise DecodeError(f"message {index} names topic {topic} of {topic_count}")
        if key_at == NO_KEY:
            if key_len:
                raise DecodeError(f"the key of message {index} marks no key but has a length")
        else:
            _check_span(data_len, key_at, key_len, f"the key of message {index}")
        _check_span(data_len, value_at, value_len, f"the value of message {index}")
        _check_header_range(first, count, header_count, f"message {index}")


def claimed_count(buffer: bytes) -> int:
    """The message count a batch's header claims, so that even a malformed batch gets one
    failure per message; 0 if not even that can be read."""
    if len(buffer) < 8:
        return 0
    # A corrupt count must not make the plugin allocate without bound.
    return min(struct.unpack_from("<I", buffer, 4)[0], len(buffer))


def _pack_u32s(values: Iterable[int]) -> bytes:
    return _u32_array(values).tobytes()


def _interleave(count: int, columns: tuple, width: int) -> bytearray:
    """A table of `count` records of `width` u32 fields whose first fields are `columns` (each
    a sequence of `count` ints, or a `repeat` of 0) and the rest 0: written a column at a time
    through a strided memoryview, without an object per field."""
    table = bytearray(4 * width * count)
    if count:
        fields = memoryview(table).cast("I")
        for index, column in enumerate(columns):
            if not isinstance(column, repeat):
                fields[index::width] = _u32_array(column)
    return table


def _u32_array(values: Iterable[int]) -> array:
    column = array("I", values)
    if sys.byteorder == "big":  # WebAssembly is little-endian; only a native test can be big.
        column.byteswap()
    return column


def encode_answer(sent: List[tuple], ends: List[int], failures: List[Tuple[int, int, str]]) -> bytes:
    """The encoded answer to a batch of `len(ends)` messages.

    `sent` holds every output as `(value, key, headers, topic)`, with `value` and `key` bytes
    (or key `None`), `headers` a sequence of `(name, value)` bytes pairs and `topic` `None` for
    the default topic; `ends[i]` is the number of outputs up to and including message `i`'s; each
    failure is `(message index, kind, text)`. Like `read_batch`, it works column by column in C
    for the common outputs: every one with a key, none with headers or a topic of its own.
    """
    count = len(ends)
    output_count = len(sent)
    values, keys, headers_of, topics_of = zip(*sent) if sent else ((), (), (), ())
    # The data area: values, then keys, then the rest.
    parts = [b"".join(values)]
    value_lens = list(map(len, values))
    value_ats = list(accumulate(value_lens, initial=0))[:-1]
    data_len = len(parts[0])
    if None not in keys:
        key_lens = list(map(len, keys))
        key_ats = list(accumulate(key_lens, initial=data_len))[:-1]
        parts.append(b"".join(keys))
        data_len += len(parts[-1])
    else:
        key_ats, key_lens = [], []
        for key in keys:
            if key is None:
                key_ats.append(NO_KEY)
                key_lens.append(0)
            else:
                key_ats.append(data_len)
                key_lens.append(len(key))
                parts.append(key)
                data_len += len(key)
    header_fields: List[int] = []
    if any(headers_of):
        first_headers, header_counts = [], []
        for headers in headers_of:
            first_headers.append(len(header_fields) >> 2)
            header_counts.append(len(headers))
            for name, value in headers:
                header_fields += (data_len, len(name), data_len + len(name), len(value))
                parts += (name, value)
                data_len += len(name) + len(value)
    else:
        first_headers = repeat(0, output_count)
        header_counts = repeat(0, output_count)
    topic_fields: List[int] = []
    if topics_of.count(None) != output_count:
        numbers: dict = {}
        topic_numbers = []
        for topic in topics_of:
            if topic is None:
                topic_numbers.append(0)
                continue
            number = numbers.get(topic)
            if number is None:
                name = topic.encode()
                topic_fields += (data_len, len(name))
                parts.append(name)
                data_len += len(name)
                number = numbers[topic] = len(numbers) + 1
            topic_numbers.append(number)
    else:
        topic_numbers = repeat(0, output_count)
    outputs = _interleave(
        output_count,
        (topic_numbers, key_ats, key_lens, value_ats, value_lens, first_headers, header_counts),
        8,
    )

    outcomes = _interleave(count, (ends,), 4)
    if failures:
        fields = memoryview(outcomes).cast("I")
        for index, kind, text in failures:
            encoded = text.encode("utf-8", "replace")
            fields[4 * index + 1 : 4 * index + 4] = _u32_array((kind, data_len, len(encoded)))
            parts.append(encoded)
            data_len += len(encoded)

    topics_at = HEADER_LEN + data_len
    outcomes_at = topics_at + 4 * len(topic_fields)
    outputs_at = outcomes_at + 16 * count
    headers_at = outputs_at + 32 * output_count
    header = OUTCOMES_HEADER.pack(
        OUTCOMES_MAGIC,
        count,
        len(topic_fields) >> 1,
        output_count,
        len(header_fields) >> 2,
        topics_at,
        outcomes_at,
        outputs_at,
        headers_at,
        HEADER_LEN,
    )
    parts.insert(0, header)
    parts += (_pack_u32s(topic_fields), outcomes, outputs, _pack_u32s(header_fields))
    return b"".join(parts)


def fail_every_message(count: int, kind: int, text: str) -> bytes:
    failures = [(index, kind, text) for index in range(count)]
    return encode_answer([], [0] * count, failures)
