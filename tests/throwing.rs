//! A handler that throws, in every language, through the real pipeline.
//!
//! Each SDK's `thrower` example (`plugins/thrower` in Rust) throws the
//! language's native way on the value `throw` and upper-cases every other
//! value. Whatever the language, a throw fails only its own message: that
//! message lands on the dead-letter topic, every other message of its batch
//! comes out, and the host carries on with the messages that follow.
//!
//! What happens on the way differs by language, as each SDK's README says:
//!
//! - JavaScript (`throw new Error(...)`), Python (`raise RuntimeError(...)`)
//!   and Go (`panic(...)`): the SDK catches the exception, or recovers the
//!   panic, and fails that message permanently with its text (`Error: ...`,
//!   `RuntimeError: ...`, `the handler panicked: ...`). The call goes on with
//!   the next message of the batch; the instance and its state survive.
//! - Rust (`panic!`) and C (`abort()`): nothing in the guest can catch it,
//!   so the instance traps and the whole call fails. The host runs the batch
//!   again in halves on fresh instances until the throwing message is alone,
//!   and dead-letters it with kind `trap` and the engine's trap text.
//!
//! `scripts/test.sh` builds the examples first (`scripts/sdks.sh`).

mod support;

use std::collections::BTreeMap;

use support::config::{HostConfig, Pipeline};
use support::host::HostProcess;
use support::kafka::{self, Record};
use support::sdk::{self, read_all};

/// The value on which every `thrower` throws.
const THROW: &str = "throw";

/// Batches of this many messages: each throw breaks a call of several.
const BATCH_SIZE: i64 = 8;

/// `count` messages keyed `<round>-<index>`, those at `throwing` valued
/// [`THROW`], the others `value <index>`.
fn round(name: &str, count: usize, throwing: &[usize]) -> Vec<(String, String)> {
    (0..count)
        .map(|index| {
            let value = if throwing.contains(&index) {
                THROW.to_owned()
            } else {
                format!("value {index}")
            };
            (format!("{name}-{index:02}"), value)
        })
        .collect()
}

/// What a language's dead letter says about its throw: the failure kind,
/// and text its `runnel-error` header must contain.
fn expected_failure(language: &str) -> (&'static str, &'static str) {
    match language {
        "js" => ("permanent", "Error: thrower: throw requested"),
        "python" => ("permanent", "RuntimeError: thrower: throw requested"),
        "go" => (
            "permanent",
            "the handler panicked: thrower: throw requested",
        ),
        // The engine's text, after a backtrace of the guest's frames.
        "rust" | "c" => ("trap", "wasm trap: wasm `unreachable` instruction executed"),
        other => panic!("no expected failure for {other}"),
    }
}

fn header<'a>(record: &'a Record, name: &str) -> &'a str {
    record
        .header_values(name)
        .first()
        .copied()
        .unwrap_or_else(|| {
            panic!("no {name} header: {record:?}");
        })
}

/// One language's pipeline: where its outputs and dead letters go.
struct Lane {
    output: String,
    dead_letters: String,
}

impl Lane {
    fn new(language: &str) -> Self {
        let lane = Self {
            output: kafka::unique_topic(&format!("throw-{language}-out")),
            dead_letters: kafka::unique_topic(&format!("throw-{language}-dlq")),
        };
        kafka::create_topic(&lane.output, 1);
        kafka::create_topic(&lane.dead_letters, 1);
        lane
    }

    /// Asserts that `sent` came through: every message but the throwing
    /// ones upper-cased on the output topic, once each and in order, and
    /// each throwing one on the dead-letter topic, failed as `language`
    /// fails a throw.
    fn assert_came_through(&self, language: &str, sent: &[(String, String)]) {
        let (passed, thrown): (Vec<_>, Vec<_>) = sent.iter().partition(|(_, value)| value != THROW);

        let outputs: Vec<(String, String)> = read_all(&self.output, passed.len())
            .into_iter()
            .map(|record| (record.key.unwrap_or_default(), record.value))
            .collect();
        let expected: Vec<(String, String)> = passed
            .iter()
            .map(|(key, value)| (key.clone(), value.to_uppercase()))
            .collect();
        assert_eq!(outputs, expected, "{language}: the outputs");

        let dead_letters = read_all(&self.dead_letters, thrown.len());
        let keys: Vec<&str> = dead_letters
            .iter()
            .map(|record| record.key.as_deref().unwrap_or_default())
            .collect();
        let thrown_keys: Vec<&str> = thrown.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, thrown_keys, "{language}: the dead letters");
        let (kind, text) = expected_failure(language);
        for record in &dead_letters {
            assert_eq!(record.value, THROW, "{language}: {record:?}");
            assert_eq!(
                header(record, "runnel-error-kind"),
                kind,
                "{language}: {record:?}"
            );
            let error = header(record, "runnel-error");
            assert!(
                error.contains(text),
                "{language}: runnel-error should name the throw ({text}), is: {error}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throw_fails_only_its_message_in_every_language_and_the_host_carries_on() {
    let dir = kafka::scratch_dir();
    let input = kafka::unique_topic("throw-in");
    kafka::create_topic(&input, 1);
    let lanes: BTreeMap<&str, Lane> = sdk::every_language()
        .map(|language| (language, Lane::new(language)))
        .collect();

    let mut config = HostConfig::new(&kafka::brokers());
    for (language, lane) in &lanes {
        let pipeline = Pipeline::reading(&input)
            .set("group", kafka::unique_topic("throw-group"))
            .output(&lane.output)
            .set("dead_letter_topic", lane.dead_letters.as_str())
            .plugin(sdk::example(language, "thrower"))
            .batch(BATCH_SIZE, "200ms");
        config = config.pipeline(&format!("{language}-thrower"), pipeline);
    }
    // Produced before the host starts, so that batches are full: the throws
    // fall in the first, second and third batch of eight.
    let first = round("first", 20, &[3, 9, 16]);
    kafka::produce(&input, first.clone());
    let host = HostProcess::start(&config.write_in(dir.path()), &dir.path().join("host.log"));
    sdk::wait_until_compiled(&host).await;
    for (language, lane) in &lanes {
        lane.assert_came_through(language, &first);
    }

    // After its throws, each pipeline still takes new messages, throws
    // included.
    let second = round("second", 6, &[2]);
    kafka::produce(&input, second.clone());
    let both: Vec<(String, String)> = first.into_iter().chain(second).collect();
    for (language, lane) in &lanes {
        lane.assert_came_through(language, &both);
    }
    host.assert_running_then_stop(std::time::Duration::from_secs(30))
        .await;
}
