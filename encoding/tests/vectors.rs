//! The test vectors of `wit/encoding-vectors.json`, which SDKs in other languages can check
//! themselves against: every hex string decodes to the content beside it, and the Rust
//! writers produce exactly those bytes.

use runnel_encoding::{
    BatchView, BatchWriter, FailureKind, NewMessage, Outcome, OutcomesView, OutcomesWriter,
};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/encoding-vectors.json");

fn vectors() -> Value {
    let text = std::fs::read_to_string(VECTORS).expect("reading the vectors");
    serde_json::from_str(&text).expect("the vectors are JSON")
}

fn bytes(value: &Value) -> Option<&[u8]> {
    value.as_str().map(str::as_bytes)
}

fn headers(value: &Value) -> Vec<(&str, &[u8])> {
    value
        .as_array()
        .expect("headers are a list")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap().as_bytes(),
            )
        })
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex"))
        .collect()
}

fn encode_batch(vector: &Value) -> Vec<u8> {
    let mut writer = BatchWriter::new(vector["source"].as_str().unwrap());
    for message in vector["messages"].as_array().unwrap() {
        let new = NewMessage {
            topic: message["topic"].as_str().unwrap(),
            partition: message["partition"].as_i64().unwrap() as i32,
            offset: message["offset"].as_i64().unwrap(),
            timestamp: message["timestamp"].as_i64(),
            key: bytes(&message["key"]),
            value: bytes(&message["value"]).unwrap(),
        };
        writer.push(&new, headers(&message["headers"]));
    }
    writer.finish().bytes().to_vec()
}

fn kind(name: &str) -> FailureKind {
    match name {
        "transient" => FailureKind::Transient,
        "permanent" => FailureKind::Permanent,
        other => panic!("unknown failure kind {other}"),
    }
}

fn encode_answer(vector: &Value) -> Vec<u8> {
    let outcomes = vector["outcomes"].as_array().unwrap();
    let mut writer = OutcomesWriter::with_capacity(outcomes.len(), 0);
    for outcome in outcomes {
        if let Some(failure) = outcome.get("failure") {
            let message = failure["message"].as_str().unwrap();
            writer.finish_message(Some((kind(failure["kind"].as_str().unwrap()), message)));
            continue;
        }
        for output in outcome["outputs"].as_array().unwrap() {
            writer.send(bytes(&output["value"]).unwrap());
            writer.set_key(bytes(&output["key"]));
            if let Some(topic) = output["topic"].as_str() {
                writer.set_topic(topic);
            }
            for (name, value) in headers(&output["headers"]) {
                writer.add_header(name, value);
            }
        }
        writer.finish_message(None);
    }
    writer.finish()
}

/// Writes fresh hex into the vectors file when blessing, or checks it.
fn check_or_bless(group: &str, encode: fn(&Value) -> Vec<u8>) {
    let mut all = vectors();
    let bless = std::env::var_os("RUNNEL_BLESS_VECTORS").is_some();
    for vector in all[group].as_array_mut().unwrap() {
        let encoded = to_hex(&encode(vector));
        if bless {
            vector["hex"] = Value::String(encoded);
        } else {
            assert_eq!(vector["hex"], encoded.as_str(), "{}", vector["name"]);
        }
    }
    if bless {
        let text = serde_json::to_string_pretty(&all).unwrap() + "\n";
        std::fs::write(VECTORS, text).expect("writing the vectors");
    }
}

#[test]
fn the_writers_produce_the_vectors_bytes() {
    check_or_bless("batches", encode_batch);
    check_or_bless("answers", encode_answer);
}

#[test]
fn every_batch_vector_decodes_to_its_messages() {
    for vector in vectors()["batches"].as_array().unwrap() {
        let encoded = from_hex(vector["hex"].as_str().unwrap());
        let view = BatchView::parse(&encoded).expect("a vector decodes");
        assert_eq!(view.source(), vector["source"]);
        let expected = vector["messages"].as_array().unwrap();
        assert_eq!(view.len(), expected.len());
        for (message, want) in view.messages().zip(expected) {
            assert_eq!(message.topic(), want["topic"]);
            assert_eq!(
                i64::from(message.partition()),
                want["partition"].as_i64().unwrap()
            );
            assert_eq!(message.offset(), want["offset"].as_i64().unwrap());
            assert_eq!(message.timestamp(), want["timestamp"].as_i64());
            assert_eq!(message.key(), bytes(&want["key"]));
            assert_eq!(Some(message.value()), bytes(&want["value"]));
            assert_eq!(
                message.headers().collect::<Vec<_>>(),
                headers(&want["headers"])
            );
        }
    }
}

#[test]
fn every_answer_vector_decodes_to_its_outcomes() {
    for vector in vectors()["answers"].as_array().unwrap() {
        let encoded = from_hex(vector["hex"].as_str().unwrap());
        let expected = vector["outcomes"].as_array().unwrap();
        let view = OutcomesView::parse(&encoded, expected.len()).expect("a vector decodes");
        for (index, want) in expected.iter().enumerate() {
            match view.outcome(index) {
                Outcome::Failed { kind: got, message } => {
                    let failure = &want["failure"];
                    assert_eq!(got, kind(failure["kind"].as_str().unwrap()));
                    assert_eq!(message, failure["message"]);
                }
                Outcome::Outputs(outputs) => {
                    let want = want["outputs"].as_array().expect("outputs expected");
                    assert_eq!(outputs.len(), want.len());
                    for (output, want) in outputs.zip(want) {
                        assert_eq!(output.topic, want["topic"].as_str());
                        assert_eq!(output.key, bytes(&want["key"]));
                        assert_eq!(Some(output.value), bytes(&want["value"]));
                        assert_eq!(
                            output.headers.collect::<Vec<_>>(),
                            headers(&want["headers"])
                        );
                    }
                }
            }
        }
    }
}
