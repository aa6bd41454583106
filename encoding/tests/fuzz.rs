//! The decoders of everything a plugin hands the host (its answer) and of every batch (which
//! the SDKs decode inside the plugin), fed bytes nobody meant to be valid: the test vectors
//! of `wit/encoding-vectors.json` with fields overwritten, bits flipped, ends cut off or
//! extended, and plain random bytes. Whatever the bytes, a decoder returns a clear error or
//! a view that reads without panicking, every string in it valid UTF-8; and a view that
//! parses says the same after it is written again by the writers.
//!
//! `RUNNEL_FUZZ_CASES` sets the cases per target (default 20 000, under a second in a release
//! build); a longer run is `RUNNEL_FUZZ_CASES=1000000 cargo test --release -p
//! runnel-encoding --test fuzz`. A failing case is printed shrunk; it becomes a regression
//! test in `tests::regressions` below.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use runnel_encoding::{BatchView, FailureKind, Outcome, OutcomesView, OutcomesWriter};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/encoding-vectors.json");

/// Bytes worth writing over a `u32` field: the edges of every bound check.
const EDGES: [u32; 9] = [
    0,
    1,
    2,
    39,
    40,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
];

fn cases() -> u32 {
    std::env::var("RUNNEL_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(20_000)
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex"))
        .collect()
}

/// The vectors of one kind (`batches` or `answers`): their bytes, and for answers the
/// number of messages they answer.
fn corpus(kind: &str) -> Vec<(Vec<u8>, usize)> {
    let text = std::fs::read_to_string(VECTORS).expect("reading the vectors");
    let vectors: Value = serde_json::from_str(&text).expect("the vectors are JSON");
    vectors[kind]
        .as_array()
        .expect("a list of vectors")
        .iter()
        .map(|vector| {
            let messages = vector["outcomes"].as_array().map_or(0, Vec::len);
            (from_hex(vector["hex"].as_str().expect("hex")), messages)
        })
        .collect()
}

/// One change to a buffer.
#[derive(Debug, Clone)]
enum Mutation {
    /// Writes an edge value, or any value, over the `u32` at this position.
    SetU32 {
        at: usize,
        value: u32,
    },
    FlipBit {
        at: usize,
        bit: u8,
    },
    Truncate {
        to: usize,
    },
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![proptest::sample::select(&EDGES[..]), any::<u32>()];
    prop_oneof![
        4 => (any::<usize>(), value).prop_map(|(at, value)| Mutation::SetU32 { at, value }),
        2 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        1 => any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        match mutation {
            Mutation::SetU32 { at, value } if bytes.len() >= 4 => {
                // Fields sit at multiples of four in the headers and records.
                let at = (at % (bytes.len() - 3)) & !3;
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            Mutation::FlipBit { at, bit } if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes[at] ^= 1 << bit;
            }
            Mutation::Truncate { to } => bytes.truncate(to % (bytes.len() + 1)),
            Mutation::Extend(tail) => bytes.extend_from_slice(tail),
            _ => {}
        }
    }
    bytes
}

/// A vector of the corpus with a few mutations, or random bytes.
fn input(corpus: Vec<(Vec<u8>, usize)>) -> impl Strategy<Value = (Vec<u8>, usize)> {
    let mutated = (
        proptest::sample::select(corpus),
        proptest::collection::vec(mutation(), 1..4),
    )
        .prop_map(|((bytes, messages), mutations)| (mutate(bytes, &mutations), messages));
    let random = (proptest::collection::vec(any::<u8>(), 0..256), 0usize..4);
    prop_oneof![9 => mutated, 1 => random]
}

fn run(kind: &str, check: impl Fn(&[u8], usize)) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&input(corpus(kind)), |(bytes, messages)| {
        check(&bytes, messages);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{kind}: {failure}");
    }
}

fn assert_text(text: &str) {
    assert!(std::str::from_utf8(text.as_bytes()).is_ok());
}

/// Reads every field of a parsed batch, then writes it again (as the host does when it
/// splits a batch) and checks the copy reads the same.
fn check_batch(bytes: &[u8], _: usize) {
    let Ok(batch) = BatchView::parse(bytes) else {
        return;
    };
    assert_text(batch.source());
    for message in batch.messages() {
        assert_text(message.topic());
        for (name, _) in message.headers() {
            assert_text(name);
        }
    }
    let all: Vec<usize> = (0..batch.len()).collect();
    let copy = batch.select(&all);
    let again = copy.view();
    assert_eq!(again.len(), batch.len());
    for (first, second) in batch.messages().zip(again.messages()) {
        assert_eq!(first.topic(), second.topic());
        assert_eq!(
            (first.partition(), first.offset(), first.timestamp()),
            (second.partition(), second.offset(), second.timestamp())
        );
        assert_eq!((first.key(), first.value()), (second.key(), second.value()));
        assert!(first.headers().eq(second.headers()));
    }
}

/// What an answer says, read out in full.
type Read<'a> = Vec<
    Result<
        Vec<(
            Option<&'a str>,
            Option<&'a [u8]>,
            &'a [u8],
            Vec<(&'a str, &'a [u8])>,
        )>,
        (FailureKind, &'a str),
    >,
>;

fn read_answer<'a>(view: &OutcomesView<'a>) -> Read<'a> {
    (0..view.len())
        .map(|index| match view.outcome(index) {
            Outcome::Outputs(outputs) => Ok(outputs
                .map(|output| {
                    output.topic.map(assert_text);
                    let headers: Vec<_> = output.headers.collect();
                    headers.iter().for_each(|(name, _)| assert_text(name));
                    (output.topic, output.key, output.value, headers)
                })
                .collect()),
            Outcome::Failed { kind, message } => {
                assert_text(message);
                Err((kind, message))
            }
        })
        .collect()
}

/// Reads every outcome of a parsed answer, for its own count and a wrong one, then writes it
/// again and checks the copy reads the same.
fn check_answer(bytes: &[u8], messages: usize) {
    for count in [messages, messages + 1] {
        let Ok(view) = OutcomesView::parse(bytes, count) else {
            continue;
        };
        let read = read_answer(&view);
        let mut writer = OutcomesWriter::with_capacity(read.len(), bytes.len());
        for outcome in &read {
            match outcome {
                Ok(outputs) => {
                    for (topic, key, value, headers) in outputs {
                        writer.send(value);
                        writer.set_key(*key);
                        if let Some(topic) = topic {
                            writer.set_topic(topic);
                        }
                        for (name, value) in headers {
                            writer.add_header(name, value);
                        }
                    }
                    writer.finish_message(None);
                }
                Err((kind, message)) => writer.finish_message(Some((*kind, message))),
            }
        }
        let copy = writer.finish();
        let again = OutcomesView::parse(&copy, read.len()).expect("a written answer parses");
        assert_eq!(read_answer(&again), read);
    }
}

#[test]
fn batches_decode_to_an_error_or_to_what_they_hold() {
    run("batches", check_batch);
}

#[test]
fn answers_decode_to_an_error_or_to_what_they_hold() {
    run("answers", check_answer);
}
