from runnel.testing import Output, run_handler

from app import Handler


def test_upper_cases_the_value_and_keeps_key_and_headers():
    outcomes = run_handler(Handler, [{"value": b"hello", "key": b"k", "headers": [("h", b"1")]}])
    assert outcomes == [[Output(b"HELLO", key=b"k", headers=[("h", b"1")])]]
