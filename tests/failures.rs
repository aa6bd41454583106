//! When handlers fail: retries with backoff, dead letters with their
//! reasons, poison messages isolated from their neighbours, stopping on
//! failure, and exactly-once across crashes. Real broker, real binary, the
//! `misbehave` plugin.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::config::{HostConfig, Pipeline};
use support::host::HostProcess;
use support::kafka::{self, Record, TopicReader};
use support::{plugin_path, wait_until};

struct Scenario {
    dir: tempfile::TempDir,
    input: String,
    output: String,
    dead_letters: String,
    partitions: i32,
}

impl Scenario {
    fn new(name: &str, partitions: i32) -> Self {
        let scenario = Self {
            dir: kafka::scratch_dir(),
            input: kafka::unique_topic(&format!("{name}-in")),
            output: kafka::unique_topic(&format!("{name}-out")),
            dead_letters: kafka::unique_topic(&format!("{name}-dlq")),
            partitions,
        };
        kafka::create_topic(&scenario.input, partitions);
        kafka::create_topic(&scenario.output, partitions);
        kafka::create_topic(&scenario.dead_letters, 1);
        scenario
    }

    /// A misbehave pipeline; `settings` are extra lines of its table.
    fn config(&self, settings: &str) -> PathBuf {
        let pipeline = Pipeline::reading(&self.input)
            .output(&self.output)
            .plugin(plugin_path("misbehave"))
            .set("max_concurrent", 4)
            .settings(settings)
            .quick_failover();
        HostConfig::new(&kafka::brokers())
            .drain_timeout("20s")
            .pipeline("chaos", pipeline)
            .write_in(self.dir.path())
    }

    fn start(&self, settings: &str, log: &str) -> HostProcess {
        HostProcess::start(&self.config(settings), &self.dir.path().join(log))
    }

    fn outputs(&self, isolation: &str) -> TopicReader {
        TopicReader::new(&self.output, self.partitions, isolation)
    }

    fn dead_letters(&self) -> TopicReader {
        TopicReader::new(&self.dead_letters, 1, "read_uncommitted")
    }
}

fn header<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

// One scenario, read top to bottom: the 80-line bound is for the host.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread")]
async fn poison_messages_are_isolated_and_dead_lettered_while_the_rest_flow() {
    const COUNT: usize = 4000;
    let scenario = Scenario::new("poison", 4);
    // One message in a hundred is poison, of four kinds.
    let poison = ["trap", "loop", "oom", "{not json"];
    let expected_kind = ["trap", "timeout", "out_of_memory", "permanent"];
    let mut messages = Vec::new();
    let mut poisoned: HashMap<String, &str> = HashMap::new();
    for i in 0..COUNT {
        if i % 100 == 50 {
            let which = (i / 100) % poison.len();
            let key = format!("poison-{i}");
            poisoned.insert(key.clone(), expected_kind[which]);
            messages.push((key, poison[which].to_owned()));
        } else {
            messages.push((format!("good-{i}"), format!("value-{i}")));
        }
    }
    kafka::produce(&scenario.input, messages);
    let started = Instant::now();
    let host = scenario.start(
        &format!(
            "batch_size = 100\nbatch_timeout = \"50ms\"\ndead_letter_topic = \"{}\"\nlimits = {{ call_timeout = \"300ms\", max_memory_mib = 32 }}",
            scenario.dead_letters
        ),
        "host.log",
    );
    let good = COUNT - poisoned.len();
    let mut outputs = scenario.outputs("read_uncommitted");
    assert!(
        outputs.read_until(Duration::from_secs(240), |records| records.len() >= good),
        "only {} of {good} good messages came out",
        outputs.records.len()
    );
    let elapsed = started.elapsed();
    let mut dead = scenario.dead_letters();
    assert!(
        dead.read_until(Duration::from_secs(60), |records| records.len()
            >= poisoned.len())
    );
    outputs.poll_for(Duration::from_secs(2));
    eprintln!(
        "poison: {good} good messages and {} dead letters in {elapsed:?} ({:.0} good msg/s, host start included)",
        poisoned.len(),
        good as f64 / elapsed.as_secs_f64()
    );

    let values: HashSet<&str> = outputs.records.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(
        outputs.records.len(),
        good,
        "every good message exactly once"
    );
    for i in (0..COUNT).filter(|i| i % 100 != 50) {
        assert!(
            values.contains(format!("value-{i}").as_str()),
            "good message {i} missing"
        );
    }
    assert_eq!(
        dead.records.len(),
        poisoned.len(),
        "every poison message dead-lettered once"
    );
    for record in &dead.records {
        let key = record.key.as_deref().unwrap();
        let kind = poisoned[key];
        assert_eq!(header(record, "runnel-error-kind"), Some(kind), "{key}");
        assert!(header(record, "runnel-error").is_some_and(|e| !e.is_empty()));
        assert_eq!(header(record, "runnel-plugin"), Some("misbehave"));
        assert_eq!(
            header(record, "runnel-source-topic"),
            Some(scenario.input.as_str())
        );
        let partition: i32 = header(record, "runnel-source-partition")
            .unwrap()
            .parse()
            .unwrap();
        assert!((0..4).contains(&partition));
        let offset: i64 = header(record, "runnel-source-offset")
            .unwrap()
            .parse()
            .unwrap();
        assert!(offset >= 0);
        assert_eq!(header(record, "runnel-attempts"), Some("1"));
    }
    // The host contained every one of them and is still running.
    let mut host = host;
    assert!(host.is_running(), "the host must not die");
    let (status, _) = host.terminate(Duration::from_secs(30)).await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transient_failure_is_retried_with_backoff_and_processed_once() {
    let scenario = Scenario::new("retry", 1);
    kafka::produce(
        &scenario.input,
        [
            ("k1".to_owned(), "flaky:3:first".to_owned()),
            ("k2".to_owned(), "after".to_owned()),
            ("k3".to_owned(), "flaky:9:never".to_owned()),
        ],
    );
    let host = scenario.start(
        &format!(
            "dead_letter_topic = \"{}\"\n[retry]\nbackoff = \"exponential\"\ninitial_delay = \"400ms\"\nmax_attempts = 3",
            scenario.dead_letters
        ),
        "host.log",
    );
    let mut outputs = scenario.outputs("read_uncommitted");
    assert!(outputs.read_until(Duration::from_secs(60), |records| records.len() >= 2));
    let mut dead = scenario.dead_letters();
    assert!(dead.read_until(Duration::from_secs(60), |records| !records.is_empty()));
    outputs.poll_for(Duration::from_secs(2));

    let values: Vec<&str> = outputs.records.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(
        values,
        vec!["ok:first:attempt=3", "after"],
        "once each, in order"
    );
    // Two waits: 400 ms, then 800 ms.
    let input_time = TopicReader::new(&scenario.input, 1, "read_uncommitted");
    let mut input_time = input_time;
    input_time.read_until(Duration::from_secs(10), |records| records.len() >= 3);
    let waited = outputs.records[0].timestamp.unwrap() - input_time.records[0].timestamp.unwrap();
    assert!(
        waited >= 1200,
        "processed after {waited} ms, before the backoff of 1200 ms"
    );

    let letter = &dead.records[0];
    assert_eq!(letter.value, "flaky:9:never");
    assert_eq!(header(letter, "runnel-error-kind"), Some("transient"));
    assert_eq!(
        header(letter, "runnel-attempts"),
        Some("3"),
        "retries exhausted"
    );
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_failure_stop_halts_the_pipeline_before_the_failed_message() {
    let scenario = Scenario::new("stop", 1);
    kafka::produce(
        &scenario.input,
        (0..10).map(|i| {
            let value = if i == 4 {
                "permanent".to_owned()
            } else {
                format!("v{i}")
            };
            (format!("k{i}"), value)
        }),
    );
    let host = scenario.start("on_failure = \"stop\"", "host.log");
    // The pipeline says it stopped.
    host.wait_for_log(
        "pipeline halted at a failure; nothing after it is committed",
        Duration::from_secs(60),
    )
    .await;
    host.wait_for_clean_stop("chaos", Duration::from_secs(30))
        .await;
    let mut outputs = scenario.outputs("read_uncommitted");
    outputs.poll_for(Duration::from_secs(3));
    let values: Vec<&str> = outputs.records.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(
        values,
        vec!["v0", "v1", "v2", "v3"],
        "nothing after the failure"
    );
    assert_eq!(
        kafka::committed_offsets(&scenario.input, &scenario.input, 1),
        vec![4],
        "the failed message is the first one not committed"
    );
    let mut host = host;
    assert!(host.is_running(), "the host itself keeps running");
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_failure_skip_logs_and_moves_on() {
    let scenario = Scenario::new("skip", 1);
    kafka::produce(
        &scenario.input,
        (0..5).map(|i| {
            let value = if i == 2 {
                "permanent".to_owned()
            } else {
                format!("v{i}")
            };
            (format!("k{i}"), value)
        }),
    );
    let host = scenario.start("", "host.log");
    let mut outputs = scenario.outputs("read_uncommitted");
    assert!(outputs.read_until(Duration::from_secs(60), |records| records.len() >= 4));
    let values: Vec<&str> = outputs.records.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(values, vec!["v0", "v1", "v3", "v4"]);
    host.wait_for_log("message failed", Duration::from_secs(10))
        .await;
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_survives_three_kill_9() {
    const COUNT: usize = 30_000;
    let scenario = Scenario::new("exactly-once", 4);
    kafka::produce(
        &scenario.input,
        (0..COUNT).map(|i| (format!("key-{}", i % 97), format!("value-{i:06}"))),
    );
    let settings = "batch_size = 100\nbatch_timeout = \"20ms\"\nexactly_once = true";
    let output_size = || kafka::topic_size(&scenario.output, scenario.partitions);
    for (round, fraction) in [0.2, 0.45, 0.7].iter().enumerate() {
        let host = scenario.start(settings, &format!("host-{round}.log"));
        let target = (COUNT as f64 * fraction) as i64;
        // Aborted transactions and markers also count in the log size,
        // which only makes the kill come a little earlier.
        wait_until(
            &format!("{target} outputs"),
            Duration::from_secs(180),
            async || output_size(),
            |&size| size >= target,
        )
        .await;
        host.kill_hard();
    }
    let host = scenario.start(settings, "host-final.log");
    let mut outputs = scenario.outputs("read_committed");
    let complete = outputs.read_until(Duration::from_secs(300), |records| records.len() >= COUNT);
    outputs.poll_for(Duration::from_secs(3));
    let counts = outputs.value_counts();
    let duplicates = outputs.records.len() - counts.len();
    let missing = (0..COUNT)
        .filter(|i| !counts.contains_key(&format!("value-{i:06}")))
        .count();
    eprintln!(
        "exactly-once with kill -9 x3: {} committed outputs, {duplicates} duplicates, {missing} missing",
        outputs.records.len()
    );
    assert!(complete, "only {} of {COUNT}", outputs.records.len());
    assert_eq!(
        (duplicates, missing),
        (0, 0),
        "read_committed sees every input exactly once"
    );
    drop(host);
}
