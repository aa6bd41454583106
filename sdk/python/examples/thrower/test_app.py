import runnel
from runnel.testing import Failed, Output, run_handler

from app import thrower


def test_a_raise_fails_only_its_message_permanently_with_the_exception_text():
    outcomes = run_handler(
        thrower, [{"value": "before", "key": b"k"}, {"value": "throw"}, {"value": "after"}]
    )
    assert outcomes == [
        [Output(b"BEFORE", key=b"k")],
        Failed(runnel.FailureKind.PERMANENT, "RuntimeError: thrower: throw requested"),
        [Output(b"AFTER")],
    ]
