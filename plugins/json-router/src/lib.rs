//! Routes JSON records to the topic named by one of their top-level fields.
//!
//! Settings:
//! - `route_field` (required): a top-level string field naming the target topic; records
//!   without it go to the pipeline's default output topic.
//! - `drop_field` and `drop_value` (optional, together): records whose `drop_field` equals
//!   `drop_value` are dropped. A string field matches its content (`drop_value = "test"` matches
//!   `"test"`); any field also matches its JSON text (`true`, `42`, `null`, `"test"`,
//!   `{"a": 1}`), compared as JSON so spacing does not matter.
//!
//! The value is sent unchanged, with its key and headers. A value that is not a JSON object
//! fails permanently.

use runnel_plugin_sdk::{Config, Failure, Handler, Init, Message, Outputs, export_handler};
use serde_json::Value;

struct JsonRouter {
    route_field: String,
    drop_rule: Option<DropRule>,
}

struct DropRule {
    field: String,
    /// `drop_value` as written, matched against string fields.
    text: String,
    /// `drop_value` parsed as JSON when it is JSON, matched against any field; parsed once
    /// here rather than serializing every record's field.
    json: Option<Value>,
}

impl DropRule {
    fn matches(&self, field: &Value) -> bool {
        field.as_str() == Some(self.text.as_str()) || self.json.as_ref() == Some(field)
    }
}

/// What to do with one record.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Drop,
    DefaultTopic,
    Topic(&'a str),
}

impl Init for JsonRouter {
    fn init(config: &Config) -> Result<Self, String> {
        let route_field = config.require("route_field")?.to_owned();
        let drop_rule = match (config.get("drop_field"), config.get("drop_value")) {
            (Some(field), Some(value)) => Some(DropRule {
                field: field.to_owned(),
                text: value.to_owned(),
                json: serde_json::from_str(value).ok(),
            }),
            (None, None) => None,
            _ => {
                return Err(
                    "`drop_field` and `drop_value` work together: set both or neither".to_owned(),
                );
            }
        };
        Ok(Self {
            route_field,
            drop_rule,
        })
    }
}

impl Handler for JsonRouter {
    fn handle(&mut self, message: &Message, out: &mut Outputs) -> Result<(), Failure> {
        let record: Value = serde_json::from_slice(message.value())
            .map_err(|error| Failure::permanent(format!("value is not valid JSON: {error}")))?;
        let output = match self.route(&record)? {
            Route::Drop => return Ok(()),
            Route::DefaultTopic => out.send(message.value()),
            Route::Topic(topic) => out.send(message.value()).topic(topic),
        };
        output.key(message.key()).headers(message.headers());
        Ok(())
    }
}

impl JsonRouter {
    fn route<'a>(&self, record: &'a Value) -> Result<Route<'a>, Failure> {
        let Value::Object(fields) = record else {
            return Err(Failure::permanent(format!(
                "value is a JSON {}, expected an object",
                json_type(record)
            )));
        };
        if let Some(rule) = &self.drop_rule
            && fields
                .get(&rule.field)
                .is_some_and(|field| rule.matches(field))
        {
            return Ok(Route::Drop);
        }
        match fields.get(&self.route_field) {
            None => Ok(Route::DefaultTopic),
            Some(Value::String(topic)) if !topic.is_empty() => Ok(Route::Topic(topic)),
            Some(other) => Err(Failure::permanent(format!(
                "field `{}` must be a non-empty string naming the target topic, found {}",
                self.route_field, other
            ))),
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

export_handler!(JsonRouter);

#[cfg(test)]
mod tests {
    //! Run natively: `cargo test --target x86_64-unknown-linux-gnu`.
    use super::*;

    fn router(settings: &[(&str, &str)]) -> Result<JsonRouter, String> {
        JsonRouter::init(&settings.iter().copied().collect())
    }

    fn route(router: &JsonRouter, json: &str) -> Result<String, String> {
        let record: Value = serde_json::from_str(json).unwrap();
        match router.route(&record) {
            Ok(route) => Ok(format!("{route:?}")),
            Err(failure) => Err(failure.message().to_owned()),
        }
    }

    #[test]
    fn init_requires_route_field() {
        let error = router(&[]).err().unwrap();
        assert!(error.contains("`route_field`"), "{error}");
    }

    #[test]
    fn init_requires_drop_settings_together() {
        let error = router(&[("route_field", "type"), ("drop_field", "test")])
            .err()
            .unwrap();
        assert!(error.contains("set both or neither"), "{error}");
    }

    #[test]
    fn routes_by_field_or_to_default_topic() {
        let router = router(&[("route_field", "type")]).unwrap();
        assert_eq!(
            route(&router, r#"{"type":"orders"}"#),
            Ok(r#"Topic("orders")"#.into())
        );
        assert_eq!(route(&router, r#"{"other":1}"#), Ok("DefaultTopic".into()));
        assert!(
            route(&router, r#"{"type":3}"#)
                .unwrap_err()
                .contains("found 3")
        );
        assert!(route(&router, r#"{"type":""}"#).is_err());
        assert_eq!(
            route(&router, "[1]"),
            Err("value is a JSON array, expected an object".into())
        );
    }

    #[test]
    fn drops_by_string_or_json_text() {
        let router = |value| {
            router(&[
                ("route_field", "type"),
                ("drop_field", "test"),
                ("drop_value", value),
            ])
            .unwrap()
        };
        let drop_yes = router("yes");
        assert_eq!(route(&drop_yes, r#"{"test":"yes"}"#), Ok("Drop".into()));
        assert_eq!(
            route(&drop_yes, r#"{"test":"no"}"#),
            Ok("DefaultTopic".into())
        );
        assert_eq!(
            route(&router(r#""yes""#), r#"{"test":"yes"}"#),
            Ok("Drop".into())
        );
        assert_eq!(
            route(&router("true"), r#"{"test":true}"#),
            Ok("Drop".into())
        );
        assert_eq!(
            route(&router("42"), r#"{"test":42,"type":"t"}"#),
            Ok("Drop".into())
        );
        assert_eq!(
            route(&router("null"), r#"{"test":null}"#),
            Ok("Drop".into())
        );
        assert_eq!(route(&router("null"), r#"{}"#), Ok("DefaultTopic".into()));
        assert_eq!(
            route(&router(r#"{"a": [1]}"#), r#"{"test":{"a":[1]}}"#),
            Ok("Drop".into())
        );
    }
}
