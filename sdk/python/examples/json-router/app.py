"""Routes JSON records to the topic named by one of their top-level fields.

Settings:
- `route_field` (required): a top-level string field naming the target topic; records without
  it go to the pipeline's default output topic.
- `drop_field` and `drop_value` (optional, together): records whose `drop_field` equals
  `drop_value` are dropped. A string field matches its content (`drop_value = "test"` matches
  `"test"`); any field also matches its JSON text (`true`, `42`, `null`, `"test"`,
  `{"a": 1}`), compared as JSON so spacing does not matter.

The value is sent unchanged, with its key and headers. A value that is not a JSON object fails
permanently.
"""

import json
from typing import Any, Optional

import runnel

# `drop_value` that is not JSON; `None` would mean JSON's `null`.
NOT_JSON = object()


def parse_json(text: str) -> Any:
    """Parses strict JSON, as the Rust example's serde_json does: no `NaN` or `Infinity`."""
    return json.loads(text, parse_constant=reject_constant)


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: Python's `==` would also take `true` for `1` and `1` for `1.0`."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[key], b[key]) for key in a)
    return a == b


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class DropRule:
    def __init__(self, field: str, value: str) -> None:
        self.field = field
        # `drop_value` as written, matched against string fields.
        self.text = value
        # `drop_value` parsed as JSON when it is JSON, matched against any field; parsed once
        # here rather than serializing every record's field.
        try:
            self.json = parse_json(value)
        except ValueError:
            self.json = NOT_JSON

    def matches(self, field: Any) -> bool:
        if isinstance(field, str) and field == self.text:
            return True
        return self.json is not NOT_JSON and same_json(self.json, field)


# What to do with one record: drop it, send it to the default topic, or to a named topic.
DROP = object()
DEFAULT_TOPIC = None


@runnel.export_handler
class JsonRouter(runnel.Handler):
    def __init__(self, config: runnel.Config) -> None:
        self.route_field = config.require("route_field")
        drop_field = config.get("drop_field")
        drop_value = config.get("drop_value")
        if (drop_field is None) != (drop_value is None):
            raise runnel.InitError("`drop_field` and `drop_value` work together: set both or neither")
        self.drop_rule: Optional[DropRule] = (
            None if drop_field is None else DropRule(drop_field, drop_value)
        )

    def handle(self, message: runnel.Message, out: runnel.Outputs) -> None:
        value = message.value
        try:
            record = parse_json(value.decode("utf-8"))
        except ValueError as error:  # also UnicodeDecodeError
            raise runnel.Failure.permanent(f"value is not valid JSON: {error}")
        route = self.route(record)
        if route is DROP:
            return
        out.send(value, key=message.key, headers=message.headers, topic=route)

    def route(self, record: Any) -> Any:
        """`DROP`, `DEFAULT_TOPIC` or the name of the topic to send `record` to."""
        if not isinstance(record, dict):
            raise runnel.Failure.permanent(
                f"value is a JSON {json_type(record)}, expected an object"
            )
        rule = self.drop_rule
        if rule is not None and rule.field in record and rule.matches(record[rule.field]):
            return DROP
        if self.route_field not in record:
            return DEFAULT_TOPIC
        topic = record[self.route_field]
        if isinstance(topic, str) and topic:
            return topic
        found = json.dumps(topic, ensure_ascii=False, separators=(",", ":"))
        raise runnel.Failure.permanent(
            f"field `{self.route_field}` must be a non-empty string naming the target topic, "
            f"found {found}"
        )
