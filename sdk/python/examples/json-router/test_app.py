import pytest

import runnel
from runnel import FailureKind
from runnel.testing import Failed, Output, run_handler

from app import DEFAULT_TOPIC, DROP, JsonRouter


def router(**settings):
    return JsonRouter(runnel.Config(settings.items()))


def test_init_requires_route_field():
    with pytest.raises(runnel.InitError, match="`route_field`"):
        router()


def test_init_requires_drop_settings_together():
    with pytest.raises(runnel.InitError, match="set both or neither"):
        router(route_field="type", drop_field="test")


def route(router, text):
    try:
        return router.route(__import__("json").loads(text))
    except runnel.Failure as failure:
        return failure.message


def test_routes_by_field_or_to_default_topic():
    by_type = router(route_field="type")
    assert route(by_type, '{"type":"orders"}') == "orders"
    assert route(by_type, '{"other":1}') is DEFAULT_TOPIC
    assert route(by_type, '{"type":3}').endswith("found 3")
    assert route(by_type, '{"type":""}').endswith('found ""')
    assert route(by_type, "[1]") == "value is a JSON array, expected an object"


def test_drops_by_string_or_json_text():
    def drop(value):
        return router(route_field="type", drop_field="test", drop_value=value)

    assert route(drop("yes"), '{"test":"yes"}') is DROP
    assert route(drop("yes"), '{"test":"no"}') is DEFAULT_TOPIC
    assert route(drop('"yes"'), '{"test":"yes"}') is DROP
    assert route(drop("true"), '{"test":true}') is DROP
    assert route(drop("42"), '{"test":42,"type":"t"}') is DROP
    assert route(drop("null"), '{"test":null}') is DROP
    assert route(drop("null"), "{}") is DEFAULT_TOPIC
    assert route(drop('{"a": [1]}'), '{"test":{"a":[1]}}') is DROP
    # Compared as JSON, not as Python values: true is not 1, 1 is not 1.0.
    assert route(drop("1"), '{"test":true}') is DEFAULT_TOPIC
    assert route(drop("1"), '{"test":1.0}') is DEFAULT_TOPIC


def test_sends_the_original_bytes_with_key_and_headers():
    value = b'{ "type" : "orders",  "n": 1.50 }'
    outcomes = run_handler(
        JsonRouter,
        [
            {"value": value, "key": b"k", "headers": [("h", b"1")]},
            {"value": b'{"n": 2}'},
            {"value": b"not json"},
            {"value": b"NaN"},
            {"value": b'{"type": "x", "test": "yes"}'},
        ],
        {"route_field": "type", "drop_field": "test", "drop_value": "yes"},
    )
    assert outcomes[0] == [Output(value, key=b"k", headers=[("h", b"1")], topic="orders")]
    assert outcomes[1] == [Output(b'{"n": 2}')]
    assert isinstance(outcomes[2], Failed) and outcomes[2].kind == FailureKind.PERMANENT
    assert outcomes[2].message.startswith("value is not valid JSON: ")
    assert outcomes[3].message.startswith("value is not valid JSON: ")
    assert outcomes[4] == []
