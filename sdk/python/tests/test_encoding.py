"""The reader and the writer against wit/encoding-vectors.json, and malformed batches."""

import json
import re
import struct
from pathlib import Path

import pytest

from runnel import FailureKind
from runnel._api import Message, Outputs
from runnel._encoding import BATCH_HEADER, MESSAGE_RECORD, DecodeError, encode_answer, read_batch
from runnel.testing import Failed, Output, encode_batch, read_outcomes

REPOSITORY = Path(__file__).resolve().parents[3]
VECTORS = json.loads((REPOSITORY / "wit" / "encoding-vectors.json").read_text())


def as_bytes(text):
    return None if text is None else text.encode()


def read_messages(batch):
    return read_batch(batch, Message)[1]


@pytest.mark.parametrize("vector", VECTORS["batches"], ids=lambda vector: vector["name"])
def test_reader_decodes_every_batch_vector(vector):
    source, messages = read_batch(bytes.fromhex(vector["hex"]), Message)
    assert source == vector["source"]
    assert len(messages) == len(vector["messages"])
    for message, expected in zip(messages, vector["messages"]):
        assert message.topic == expected["topic"]
        assert message.partition == expected["partition"]
        assert message.offset == expected["offset"]
        assert message.timestamp == expected["timestamp"]
        assert message.key == as_bytes(expected["key"])
        assert message.value == as_bytes(expected["value"])
        assert message.headers == tuple((name, value.encode()) for name, value in expected["headers"])
        assert message.source == vector["source"]


def test_header_gives_the_last_of_a_repeated_name():
    messages = read_messages(bytes.fromhex(VECTORS["batches"][0]["hex"]))
    assert messages[2].header("x") == b"2"
    assert messages[2].header("X") is None
    assert messages[0].header("trace") == b"abc"


def expected_outcome(outcome):
    if "failure" in outcome:
        failure = outcome["failure"]
        return Failed(FailureKind[failure["kind"].upper()], failure["message"])
    return [
        Output(
            value=output["value"].encode(),
            key=as_bytes(output["key"]),
            headers=[(name, value.encode()) for name, value in output["headers"]],
            topic=output["topic"],
        )
        for output in outcome["outputs"]
    ]


@pytest.mark.parametrize("vector", VECTORS["answers"], ids=lambda vector: vector["name"])
def test_reader_of_answers_decodes_the_rust_writers_answers(vector):
    expected = [expected_outcome(outcome) for outcome in vector["outcomes"]]
    assert read_outcomes(bytes.fromhex(vector["hex"]), len(expected)) == expected


@pytest.mark.parametrize("vector", VECTORS["answers"], ids=lambda vector: vector["name"])
def test_writer_answers_decode_to_the_vectors_content(vector):
    out = Outputs()
    ends, failures = [], []
    for index, outcome in enumerate(vector["outcomes"]):
        if "failure" in outcome:
            failure = outcome["failure"]
            failures.append((index, FailureKind[failure["kind"].upper()], failure["message"]))
        else:
            for output in outcome["outputs"]:
                out.send(
                    output["value"],
                    key=output["key"],
                    headers=output["headers"],
                    topic=output["topic"],
                )
        ends.append(len(out._sent))
    answer = encode_answer(out._sent, ends, failures)
    expected = [expected_outcome(outcome) for outcome in vector["outcomes"]]
    assert read_outcomes(answer, len(expected)) == expected


@pytest.mark.parametrize("vector", VECTORS["batches"], ids=lambda vector: vector["name"])
def test_batch_writer_for_tests_round_trips_the_vectors(vector):
    messages = [
        {
            "topic": expected["topic"],
            "partition": expected["partition"],
            "offset": expected["offset"],
            "timestamp": expected["timestamp"],
            "key": expected["key"],
            "value": expected["value"],
            "headers": expected["headers"],
        }
        for expected in vector["messages"]
    ]
    again = [
        {
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "timestamp": message.timestamp,
            "key": None if message.key is None else message.key.decode(),
            "value": message.value.decode(),
            "headers": [[name, value.decode()] for name, value in message.headers],
        }
        for message in read_messages(encode_batch(messages, source=vector["source"]))
    ]
    assert again == messages


# Malformed batches: each is the first vector with one thing broken.
GOOD = bytes.fromhex(VECTORS["batches"][0]["hex"])
FIELDS = BATCH_HEADER.unpack_from(GOOD)
COUNT, TOPIC_COUNT, HEADER_COUNT, TOPICS_AT, MESSAGES_AT, HEADERS_AT, DATA_AT = range(1, 8)


def with_header_field(field, value):
    fields = list(FIELDS)
    fields[field] = value
    return BATCH_HEADER.pack(*fields) + GOOD[BATCH_HEADER.size :]


def with_message_field(index, field, value):
    at = FIELDS[MESSAGES_AT] + index * MESSAGE_RECORD.size
    record = list(MESSAGE_RECORD.unpack_from(GOOD, at))
    record[field] = value
    return GOOD[:at] + MESSAGE_RECORD.pack(*record) + GOOD[at + MESSAGE_RECORD.size :]


def with_bytes_at(at, replacement):
    return GOOD[:at] + replacement + GOOD[at + len(replacement) :]


def first_header_name_at():
    name_offset = struct.unpack_from("<I", GOOD, FIELDS[HEADERS_AT])[0]
    return FIELDS[DATA_AT] + name_offset


MALFORMED = {
    "bad magic": (b"RNB2" + GOOD[4:], "does not start with 'RNB1'"),
    "shorter than the header": (GOOD[:30], "shorter than its 40-byte header"),
    "truncated": (GOOD[: FIELDS[HEADERS_AT] + 4], "runs past the end"),
    "messages table outside the buffer": (
        with_header_field(COUNT, 1000),
        "the messages table (1000 records",
    ),
    "topics table outside the buffer": (
        with_header_field(TOPICS_AT, len(GOOD) - 4),
        "the topics table",
    ),
    "data area past the end": (with_header_field(DATA_AT, len(GOOD) + 1), "data_at"),
    "value span outside the data area": (
        with_message_field(0, 6, 10_000),
        "the value of message 0",
    ),
    "key span outside the data area": (
        with_message_field(0, 4, 10_000),
        "the key of message 0 (2 bytes at 10000) runs past",
    ),
    "no key with a length": (
        with_message_field(1, 5, 3),
        "the key of message 1 marks no key but has a length",
    ),
    "topic index out of range": (with_message_field(2, 3, 9), "message 2 names topic 9 of 2"),
    "header range out of range": (with_message_field(2, 9, 5), "message 2 has headers"),
    "header name not UTF-8": (
        with_bytes_at(first_header_name_at(), b"\xff"),
        "the name of header 0 is not UTF-8",
    ),
    "source span outside the data area": (
        BATCH_HEADER.pack(*FIELDS[:-1], 100_000) + GOOD[BATCH_HEADER.size :],
        "the source",
    ),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_batches_are_rejected_with_a_clear_error(name):
    batch, expected = MALFORMED[name]
    with pytest.raises(DecodeError, match=re.escape(expected)):
        read_batch(batch, Message)


@pytest.mark.parametrize("field, value", [(8, 3), (9, 1)], ids=["first header", "header count"])
def test_headers_named_in_a_batch_without_a_header_table_are_rejected(field, value):
    batch = encode_batch([{"value": "a", "key": "k"}])
    at = BATCH_HEADER.unpack_from(batch)[MESSAGES_AT]
    record = list(MESSAGE_RECORD.unpack_from(batch, at))
    record[field] = value
    batch = batch[:at] + MESSAGE_RECORD.pack(*record) + batch[at + MESSAGE_RECORD.size :]
    with pytest.raises(DecodeError, match="message 0 has headers"):
        read_batch(batch, Message)


def fields_of(message):
    return (message.topic, message.partition, message.offset, message.timestamp, message.key,
            message.value, message.headers, message.source)


def test_packed_and_scattered_batches_read_alike():
    # Keys and values back to back (how the host writes a batch without headers) take the packed
    # path; a second topic's name between two messages makes the same messages scattered.
    packed = [{"value": f"value {i}", "key": f"key {i}", "offset": 7 + i, "timestamp": i} for i in range(4)]
    scattered = [dict(message, topic="in" if i < 2 else "other") for i, message in enumerate(packed)]
    packed_messages = read_messages(encode_batch(packed))
    scattered_messages = read_messages(encode_batch(scattered))
    assert [fields_of(m)[1:] for m in packed_messages] == [fields_of(m)[1:] for m in scattered_messages]
    assert [m.value for m in packed_messages] == [f"value {i}".encode() for i in range(4)]
    assert [m.topic for m in scattered_messages] == ["in", "in", "other", "other"]


def test_a_packed_batch_with_a_bad_field_is_still_rejected():
    batch = encode_batch([{"value": "a", "key": "k"}, {"value": "b", "key": "l"}])
    at = BATCH_HEADER.unpack_from(batch)[MESSAGES_AT] + MESSAGE_RECORD.size
    record = list(MESSAGE_RECORD.unpack_from(batch, at))
    record[3] = 5  # topic 5 of 1
    batch = batch[:at] + MESSAGE_RECORD.pack(*record) + batch[at + MESSAGE_RECORD.size :]
    with pytest.raises(DecodeError, match="message 1 names topic 5 of 1"):
        read_batch(batch, Message)


@pytest.mark.parametrize("extra", [{}, {"topic": "elsewhere"}, {"headers": [("h", b"1")]}], ids=["packed", "topic", "headers"])
def test_answers_with_and_without_a_rare_field_read_back_alike(extra):
    # Outputs that all have a key and nothing else are written column by column; one with a
    # topic or headers of its own takes the writer's loops.
    out = Outputs()
    out.send(b"first", key=b"k1")
    out.send(b"", key=b"")
    out.send(b"third", key=b"k3", **extra)
    answer = encode_answer(out._sent, [1, 1, 3], [(1, FailureKind.TRANSIENT, "later")])
    assert read_outcomes(answer, 3) == [
        [Output(b"first", key=b"k1")],
        Failed(FailureKind.TRANSIENT, "later"),
        [Output(b"", key=b""), Output(b"third", key=b"k3", **extra)],
    ]
