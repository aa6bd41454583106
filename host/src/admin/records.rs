//! The lines records are produced from and consumed to.
//!
//! **Text**: a record per line, its bytes as they are. With a key
//! separator, the key is what comes before the separator's first
//! occurrence and the value what follows it.
//!
//! **JSON**: an object per line, `{"key": .., "value": .., "headers": {..},
//! "partition": .., "timestamp": ..}`. A key, a value or a header's value
//! is a JSON string when its bytes are UTF-8, `{"base64": "..."}` when they
//! are not, and `null` when the record has none. A header name that occurs
//! more than once has an array of its values, in order. `consume` writes
//! `topic`, `partition`, `offset` and `timestamp` (milliseconds since the
//! Unix epoch) as well; `produce` requires `value`, reads `key`, `headers`,
//! `partition` and `timestamp` when present and ignores `topic` and
//! `offset`, so that what `consume` writes can be produced again.

use std::fmt;
use std::io::{self, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// How records are written as lines, and read from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFormat {
    Text { key_separator: Option<Vec<u8>> },
    Json,
}

/// A record read from a line, to be produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LineRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub partition: Option<i32>,
    pub timestamp: Option<i64>,
}

/// A record read from a topic, to be written as a line.
#[derive(Debug, Serialize)]
pub struct RecordView<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    #[serde(serialize_with = "serialize_bytes")]
    pub key: Option<&'a [u8]>,
    #[serde(serialize_with = "serialize_bytes")]
    pub value: Option<&'a [u8]>,
    #[serde(serialize_with = "serialize_headers")]
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl LineFormat {
    /// The record a line (without its line end) holds.
    pub fn parse(&self, line: &[u8]) -> Result<LineRecord, String> {
        match self {
            Self::Text {
                key_separator: None,
            } => Ok(LineRecord {
                value: Some(line.to_vec()),
                ..LineRecord::default()
            }),
            Self::Text {
                key_separator: Some(separator),
            } => {
                let at = find(line, separator).ok_or_else(|| {
                    format!(
                        "no key separator `{}` in the line",
                        String::from_utf8_lossy(separator)
                    )
                })?;
                Ok(LineRecord {
                    key: Some(line[..at].to_vec()),
                    value: Some(line[at + separator.len()..].to_vec()),
                    ..LineRecord::default()
                })
            }
            Self::Json => {
                let record: JsonRecord =
                    serde_json::from_slice(line).map_err(|error| error.to_string())?;
                Ok(LineRecord {
                    key: record.key.0,
                    value: record.value.0,
                    headers: record.headers.0,
                    partition: record.partition,
                    timestamp: record.timestamp,
                })
            }
        }
    }

    /// Writes `record` as one line.
    pub fn write(&self, record: &RecordView<'_>, out: &mut impl Write) -> io::Result<()> {
        match self {
            Self::Text { key_separator } => {
                if let Some(separator) = key_separator {
                    out.write_all(record.key.unwrap_or_default())?;
                    out.write_all(separator)?;
                }
                out.write_all(record.value.unwrap_or_default())?;
            }
            Self::Json => serde_json::to_writer(&mut *out, record)?,
        }
        out.write_all(b"\n")
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A JSON line to produce.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRecord {
    #[serde(default)]
    key: JsonBytes,
    value: JsonBytes,
    #[serde(default)]
    headers: JsonHeaders,
    partition: Option<i32>,
    timestamp: Option<i64>,
    /// What `consume` writes and producing ignores: the record goes to
    /// the topic named on the command line, at the topic's next offset.
    #[serde(default, rename = "topic")]
    _topic: Option<IgnoredAny>,
    #[serde(default, rename = "offset")]
    _offset: Option<IgnoredAny>,
}

/// A key, value or header value: `null`, a string, or `{"base64": ".."}`.
#[derive(Default)]
struct JsonBytes(Option<Vec<u8>>);

/// Headers in the order they were written, a name repeated for each value
/// of an array.
#[derive(Default)]
struct JsonHeaders(Vec<(String, Option<Vec<u8>>)>);

const BYTES_EXPECTED: &str = "a string, null, or {\"base64\": \"...\"}";

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Option<Vec<u8>>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(BYTES_EXPECTED)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Some(text.as_bytes().to_vec()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let encoded = match map.next_key::<String>()? {
            Some(name) if name == "base64" => map.next_value::<String>()?,
            _ => return Err(de::Error::custom(format!("expected {BYTES_EXPECTED}"))),
        };
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!("expected {BYTES_EXPECTED}")));
        }
        BASE64
            .decode(encoded)
            .map(Some)
            .map_err(|error| de::Error::custom(format!("not base64: {error}")))
    }
}

impl<'de> Deserialize<'de> for JsonBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BytesVisitor).map(Self)
    }
}

/// One header's value, or an array of them.
struct HeaderValues(Vec<Option<Vec<u8>>>);

impl<'de> Deserialize<'de> for HeaderValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValuesVisitor;
        impl<'de> Visitor<'de> for ValuesVisitor {
            type Value = HeaderValues;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                write!(formatter, "{BYTES_EXPECTED}, or an array of them")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HeaderValues, A::Error> {
                let mut values = Vec::new();
                while let Some(JsonBytes(value)) = seq.next_element()? {
                    values.push(value);
                }
                Ok(HeaderValues(values))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HeaderValues, E> {
                BytesVisitor
                    .visit_str(text)
                    .map(|value| HeaderValues(vec![value]))
            }

            fn visit_unit<E: de::Error>(self) -> Result<HeaderValues, E> {
                Ok(HeaderValues(vec![None]))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HeaderValues, A::Error> {
                BytesVisitor
                    .visit_map(map)
                    .map(|value| HeaderValues(vec![value]))
            }
        }
        deserializer.deserialize_any(ValuesVisitor)
    }
}

impl<'de> Deserialize<'de> for JsonHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = JsonHeaders;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an object of header names and values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonHeaders, A::Error> {
                let mut headers = Vec::new();
                while let Some((name, HeaderValues(values))) =
                    map.next_entry::<String, HeaderValues>()?
                {
                    headers.extend(values.into_iter().map(|value| (name.clone(), value)));
                }
                Ok(JsonHeaders(headers))
            }
        }
        deserializer.deserialize_map(HeadersVisitor)
    }
}

/// A key, value or header value as [`JsonBytes`] reads it.
struct BytesOut<'a>(Option<&'a [u8]>);

impl Serialize for BytesOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.map(std::str::from_utf8) {
            None => serializer.serialize_none(),
            Some(Ok(text)) => serializer.serialize_str(text),
            Some(Err(_)) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("base64", &BASE64.encode(self.0.unwrap_or_default()))?;
                map.end()
            }
        }
    }
}

fn serialize_bytes<S: Serializer>(bytes: &Option<&[u8]>, serializer: S) -> Result<S::Ok, S::Error> {
    BytesOut(*bytes).serialize(serializer)
}

/// Headers as an object in the order of their names' first occurrence; a
/// name that occurs more than once gets an array of its values.
fn serialize_headers<S: Serializer>(
    headers: &[(&str, Option<&[u8]>)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in headers {
        if !names.contains(name) {
            names.push(name);
        }
    }
    let mut map = serializer.serialize_map(Some(names.len()))?;
    for name in names {
        let values: Vec<BytesOut<'_>> = headers
            .iter()
            .filter(|(other, _)| *other == name)
            .map(|(_, value)| BytesOut(*value))
            .collect();
        match <[BytesOut<'_>; 1]>::try_from(values) {
            Ok([value]) => map.serialize_entry(name, &value)?,
            Err(values) => map.serialize_entry(name, &values)?,
        }
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(separator: Option<&str>) -> LineFormat {
        LineFormat::Text {
            key_separator: separator.map(|s| s.as_bytes().to_vec()),
        }
    }

    fn written(format: &LineFormat, record: &RecordView<'_>) -> String {
        let mut out = Vec::new();
        format.write(record, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_text_line_is_a_value_or_a_key_and_a_value_split_at_the_first_separator() {
        let plain = text(None).parse(b"a:b:c").unwrap();
        assert_eq!(plain.key, None);
        assert_eq!(plain.value.as_deref(), Some(&b"a:b:c"[..]));
        let keyed = text(Some("::")).parse(b"k::v::w").unwrap();
        assert_eq!(keyed.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(keyed.value.as_deref(), Some(&b"v::w"[..]));
        let error = text(Some("::")).parse(b"no separator").unwrap_err();
        assert_eq!(error, "no key separator `::` in the line");
    }

    #[test]
    fn a_json_line_reads_every_field_and_keeps_header_order_and_repeats() {
        let line =
            br#"{"value":"v","key":{"base64":"/wA="},"partition":2,"timestamp":1700000000000,
            "headers":{"z":"1","a":["2",null,{"base64":"gA=="}]},"topic":"t","offset":9}"#;
        let record = LineFormat::Json.parse(line).unwrap();
        assert_eq!(
            record,
            LineRecord {
                key: Some(vec![0xff, 0]),
                value: Some(b"v".to_vec()),
                headers: vec![
                    ("z".into(), Some(b"1".to_vec())),
                    ("a".into(), Some(b"2".to_vec())),
                    ("a".into(), None),
                    ("a".into(), Some(vec![0x80])),
                ],
                partition: Some(2),
                timestamp: Some(1_700_000_000_000),
            }
        );
        let tombstone = LineFormat::Json
            .parse(br#"{"key":"k","value":null}"#)
            .unwrap();
        assert_eq!(tombstone.value, None);
    }

    #[test]
    fn a_json_line_that_is_no_record_says_what_is_wrong() {
        let cases: [(&[u8], &str); 5] = [
            (br#"{"key":"k"}"#, "missing field `value`"),
            (br#"{"vaule":"v"}"#, "unknown field `vaule`"),
            (br#"{"value":5}"#, BYTES_EXPECTED),
            (br#"{"value":{"base64":"***"}}"#, "not base64"),
            (b"plain text", "expected value"),
        ];
        for (line, expected) in cases {
            let error = LineFormat::Json.parse(line).unwrap_err();
            assert!(error.contains(expected), "{error} should say {expected}");
        }
    }

    #[test]
    fn consumed_records_are_written_as_lines_that_produce_reads_back() {
        let record = RecordView {
            topic: "orders",
            partition: 1,
            offset: 42,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"k1"),
            value: Some(&[0xff, 0xfe, b'x']),
            headers: vec![
                ("trace", Some(b"abc")),
                ("tag", None),
                ("trace", Some(b"def")),
            ],
        };
        let line = written(&LineFormat::Json, &record);
        assert_eq!(
            line,
            "{\"topic\":\"orders\",\"partition\":1,\"offset\":42,\"timestamp\":1700000000000,\
             \"key\":\"k1\",\"value\":{\"base64\":\"//54\"},\
             \"headers\":{\"trace\":[\"abc\",\"def\"],\"tag\":null}}\n"
        );
        let read = LineFormat::Json.parse(line.trim_end().as_bytes()).unwrap();
        assert_eq!(read.key.as_deref(), record.key);
        assert_eq!(read.value.as_deref(), record.value);
        assert_eq!(read.partition, Some(1));
        assert_eq!(read.timestamp, record.timestamp);
        let headers: Vec<(&str, Option<&[u8]>)> = read
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
            .collect();
        assert_eq!(
            headers,
            [
                ("trace", Some(&b"abc"[..])),
                ("trace", Some(&b"def"[..])),
                ("tag", None)
            ]
        );

        let mut raw = Vec::new();
        text(Some("\t")).write(&record, &mut raw).unwrap();
        assert_eq!(raw, b"k1\t\xff\xfex\n", "text keeps the bytes as they are");
    }
}
