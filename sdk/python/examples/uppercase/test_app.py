from runnel.testing import Output, run_handler

from app import uppercase


def test_upper_cases_ascii_and_keeps_key_and_headers():
    outcomes = run_handler(
        uppercase,
        [{"value": "hello, wörld", "key": b"k", "headers": [("trace", b"abc")]}, {"value": b""}],
    )
    assert outcomes == [
        [Output("HELLO, WöRLD".encode(), key=b"k", headers=[("trace", b"abc")])],
        [Output(b"")],
    ]
