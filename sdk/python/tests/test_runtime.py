"""The handler loop as the host drives it: init, one outcome per message, failures, exceptions."""

import pytest

import runnel
from runnel import Config, Failure, FailureKind, InitError
from runnel import _runtime
from runnel._encoding import fail_every_message
from runnel.testing import Failed, Output, encode_batch, read_outcomes, run_handler


class Prefixer(runnel.Handler):
    """Prefixes every value with its configured `prefix`; fails values that say so."""

    def __init__(self, config: Config) -> None:
        self.prefix = config.require("prefix")

    def handle(self, message: runnel.Message, out: runnel.Outputs) -> None:
        out.send(self.prefix + message.value.decode(), key=message.key)
        if message.value == b"retry":
            raise Failure.transient("try later")
        if message.value == b"crash":
            out.send(b"second", headers=[("h", b"v")], topic="elsewhere")
            raise KeyError("missing")
        if message.value == b"silent":
            raise RuntimeError()


def test_failures_drop_only_their_own_outputs():
    outcomes = run_handler(
        Prefixer,
        [{"value": "a", "key": "k"}, {"value": "retry"}, {"value": "crash"}, {"value": "silent"}, {"value": "b"}],
        {"prefix": "> "},
    )
    assert outcomes == [
        [Output(b"> a", key=b"k")],
        Failed(FailureKind.TRANSIENT, "try later"),
        Failed(FailureKind.PERMANENT, "KeyError: 'missing'"),
        Failed(FailureKind.PERMANENT, "RuntimeError"),
        [Output(b"> b")],
    ]


def test_outputs_carry_key_headers_and_topic():
    def fan_out(message, out):
        out.send(message.value, key=message.key, headers=message.headers)
        out.send(b"copy", key=b"", headers=[("n", "text"), ("n", b"bytes")], topic="copies")
        out.send(memoryview(b"view"), topic="copies")

    outcomes = run_handler(fan_out, [{"value": b"v", "headers": [("h", b"1")]}, {"value": b"w", "key": b"k"}])
    assert outcomes[0] == [
        Output(b"v", headers=[("h", b"1")]),
        Output(b"copy", key=b"", headers=[("n", b"text"), ("n", b"bytes")], topic="copies"),
        Output(b"view", topic="copies"),
    ]
    assert outcomes[1][0] == Output(b"w", key=b"k")


def test_message_fields():
    seen = []
    run_handler(
        lambda message, out: seen.append(
            (message.topic, message.partition, message.offset, message.timestamp, message.source)
        ),
        [
            {"value": b"", "topic": "t", "partition": 3, "offset": 42, "timestamp": 1700000000000},
            {"value": b"", "partition": -1, "offset": -1},
        ],
    )
    assert seen == [("t", 3, 42, 1700000000000, "test"), ("in", -1, -1, None, "test")]


def test_an_empty_output_topic_fails_the_message():
    outcomes = run_handler(lambda message, out: out.send(b"x", topic=""), [{"value": b""}])
    assert outcomes[0].kind == FailureKind.PERMANENT
    assert "must be a non-empty string" in outcomes[0].message


def test_config_get_and_require():
    config = Config([("a", "1"), ("b", "2"), ("a", "3")])
    assert config.get("a") == "3"
    assert config.get("c") is None
    assert config.get("c", "default") == "default"
    assert list(config) == [("a", "1"), ("b", "2"), ("a", "3")]
    with pytest.raises(InitError, match="missing required setting `route_field`: add it to this plugin's config"):
        config.require("route_field")


@pytest.fixture
def exported():
    """Restores the module's one exported handler after a test replaces it."""
    saved = _runtime._exported, _runtime._handle
    yield
    _runtime._exported, _runtime._handle = saved


def test_init_builds_the_handler_every_batch_uses(exported):
    runnel.export_handler(Prefixer)
    _runtime.init([("prefix", "> ")])
    answer = _runtime.handle(encode_batch([{"value": "hi"}]))
    assert read_outcomes(answer, 1) == [[Output(b"> hi")]]


def test_failed_init_leaves_no_handler_behind(exported):
    runnel.export_handler(Prefixer)
    _runtime.init([("prefix", "old")])
    with pytest.raises(InitError) as refused:
        _runtime.init([])
    assert _runtime.init_error_text(refused.value) == (
        "missing required setting `prefix`: add it to this plugin's config"
    )
    answer = _runtime.handle(encode_batch([{"value": "hi"}, {"value": "ho"}]))
    outcomes = read_outcomes(answer, 2)
    assert all("before init succeeded" in outcome.message for outcome in outcomes)


def test_an_unexpected_init_exception_names_its_type():
    assert _runtime.init_error_text(ValueError("bad number")) == "ValueError: bad number"


def test_export_handler_takes_a_handler_class_or_a_function(exported):
    with pytest.raises(TypeError):
        runnel.export_handler(dict)

    @runnel.export_handler
    def echo(message, out):
        out.send(message.value)

    assert echo.__name__ == "echo"
    _runtime.init([])
    assert read_outcomes(_runtime.handle(encode_batch([{"value": "x"}])), 1) == [[Output(b"x")]]


def test_a_malformed_batch_fails_every_message_it_claims(exported):
    runnel.export_handler(lambda message, out: None)
    _runtime.init([])
    batch = bytearray(encode_batch([{"value": "a"}, {"value": "b"}]))
    batch[0:4] = b"XXXX"
    outcomes = read_outcomes(_runtime.handle(bytes(batch)), 2)
    assert [outcome.kind for outcome in outcomes] == [FailureKind.PERMANENT] * 2
    assert "malformed batch" in outcomes[0].message


def test_fail_every_message_of_an_empty_batch():
    assert read_outcomes(fail_every_message(0, 2, "x"), 0) == []


def test_logging_outside_a_host_goes_to_stderr(capsys):
    runnel.log.info("routed 3 records")
    runnel.log.error("broken")
    assert capsys.readouterr().err == "INFO routed 3 records\nERROR broken\n"


def test_failure_kinds():
    assert Failure.permanent("x").kind is FailureKind.PERMANENT
    assert Failure.transient("x").kind is FailureKind.TRANSIENT
    assert str(Failure.transient("db down")) == "transient failure: db down"
