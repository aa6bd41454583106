import pytest

import runnel
from runnel.testing import Output, run_handler

from app import Counter


def counter(**settings):
    return Counter(runnel.Config(settings.items()))


def test_counts_each_key_apart_and_no_key_apart_from_empty():
    counts = counter()
    assert counts.header == "count"
    assert [counts.count(key) for key in (b"a", b"b", b"a", None, b"", None)] == [1, 1, 2, 1, 1, 2]


def test_refuses_an_empty_or_host_header_name():
    with pytest.raises(runnel.InitError, match="empty"):
        counter(header="")
    with pytest.raises(runnel.InitError, match="set by the host"):
        counter(header="runnel-count")
    assert counter(header="seen").header == "seen"


def test_adds_the_count_after_the_message_headers():
    outcomes = run_handler(
        Counter,
        [{"value": b"1", "key": b"k", "headers": [("h", b"x")]}, {"value": b"2", "key": b"k"}],
        {"header": "seen"},
    )
    assert outcomes == [
        [Output(b"1", key=b"k", headers=[("h", b"x"), ("seen", b"1")])],
        [Output(b"2", key=b"k", headers=[("seen", b"2")])],
    ]
