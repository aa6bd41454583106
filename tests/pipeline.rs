//! The Kafka pipeline end to end, against a real Apache Kafka broker and the
//! real `runnel` binary: every input produces its output, in order per
//! partition, across crashes, graceful stops and rebalances.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use support::config::{HostConfig, Pipeline};
use support::host::HostProcess;
use support::kafka::{self, Record, TopicReader};
use support::{number_of, numbered_value, plugin_path, wait_until};

const PARTITIONS: i32 = 4;

fn inputs(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("key-{}", i % 1000), numbered_value(i)))
        .collect()
}

struct Scenario {
    dir: tempfile::TempDir,
    input: String,
    output: String,
}

impl Scenario {
    fn new(name: &str) -> Self {
        let input = kafka::unique_topic(&format!("{name}-in"));
        let output = kafka::unique_topic(&format!("{name}-out"));
        kafka::create_topic(&input, PARTITIONS);
        kafka::create_topic(&output, PARTITIONS);
        Self {
            dir: kafka::scratch_dir(),
            input,
            output,
        }
    }

    /// Writes a config for one uppercase pipeline; `settings` are added to
    /// the pipeline's table.
    fn config(&self, batch_size: i64, settings: &str) -> PathBuf {
        let pipeline = Pipeline::reading(&self.input)
            .output(&self.output)
            .plugin(plugin_path("uppercase"))
            .batch(batch_size, "20ms")
            .settings(settings)
            .quick_failover();
        HostConfig::new(&kafka::brokers())
            .drain_timeout("20s")
            .pipeline("upper", pipeline)
            .write_in(self.dir.path())
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn reader(&self) -> TopicReader {
        TopicReader::new(&self.output, PARTITIONS, "read_uncommitted")
    }

    fn output_size(&self) -> i64 {
        kafka::topic_size(&self.output, PARTITIONS)
    }
}

/// Checks that outputs hold every input exactly once, each upper-cased, and
/// in input order within each partition.
fn assert_complete_and_ordered(records: &[Record], count: usize) {
    assert_eq!(records.len(), count, "one output per input");
    let mut seen = vec![false; count];
    let mut last_in_partition: HashMap<i32, usize> = HashMap::new();
    for record in records {
        let index = number_of(&record.value);
        assert_eq!(record.value, numbered_value(index).to_uppercase());
        assert_eq!(
            record.key.as_deref(),
            Some(format!("key-{}", index % 1000).as_str())
        );
        assert!(!seen[index], "message {index} produced twice");
        seen[index] = true;
        if let Some(previous) = last_in_partition.insert(record.partition, index) {
            assert!(
                previous < index,
                "partition {}: message {index} after {previous}",
                record.partition
            );
        }
    }
}

async fn run_in_order(batch_size: i64, name: &str) {
    const COUNT: usize = 100_000;
    let scenario = Scenario::new(name);
    kafka::produce(&scenario.input, inputs(COUNT));
    let host = HostProcess::start(&scenario.config(batch_size, ""), &scenario.log("host.log"));
    let mut reader = scenario.reader();
    let complete = reader.read_until(Duration::from_secs(240), |records| records.len() >= COUNT);
    assert!(
        complete,
        "only {} of {COUNT} outputs arrived",
        reader.records.len()
    );
    // Anything extra would show up now.
    reader.poll_for(Duration::from_secs(2));
    assert_complete_and_ordered(&reader.records, COUNT);
    let (status, _) = host.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "host exit: {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn per_message_mode_produces_every_output_in_order() {
    run_in_order(1, "per-message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_mode_produces_every_output_in_order() {
    run_in_order(100, "batch").await;
}

/// Pseudo-random fractions for the kill points; the seed is printed so a
/// failing run can be repeated.
fn kill_points(seed: u64) -> [f64; 3] {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 1000) as f64 / 1000.0
    };
    [0.1 + 0.2 * next(), 0.35 + 0.2 * next(), 0.6 + 0.2 * next()]
}

async fn wait_for_output_size(scenario: &Scenario, at_least: i64, timeout: Duration) {
    wait_until(
        &format!("{at_least} outputs"),
        timeout,
        async || scenario.output_size(),
        |&size| size >= at_least,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_three_points_loses_nothing() {
    const COUNT: usize = 200_000;
    let scenario = Scenario::new("kill");
    kafka::produce(&scenario.input, inputs(COUNT));
    let config = scenario.config(100, "");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let points = kill_points(seed);
    eprintln!("kill points (seed {seed}): {points:?}");
    for (round, fraction) in points.iter().enumerate() {
        let host = HostProcess::start(&config, &scenario.log(&format!("host-{round}.log")));
        wait_for_output_size(
            &scenario,
            (COUNT as f64 * fraction) as i64,
            Duration::from_secs(180),
        )
        .await;
        host.kill_hard();
    }
    let host = HostProcess::start(&config, &scenario.log("host-final.log"));
    let mut reader = scenario.reader();
    let complete = reader.read_until(Duration::from_secs(300), |records| {
        records.len() >= COUNT && kafka::distinct_values(records) >= COUNT
    });
    let missing = reader.missing_uppercased(COUNT);
    let duplicates = reader.records.len() - reader.value_counts().len();
    eprintln!(
        "kill -9 x3: {} outputs for {COUNT} inputs, {duplicates} duplicates, {} missing",
        reader.records.len(),
        missing.len()
    );
    assert!(
        complete && missing.is_empty(),
        "missing inputs: {:?}",
        &missing[..missing.len().min(20)]
    );
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_a_restart_processes_nothing_twice() {
    // Enough that the stop lands mid-stream even when other tests slow
    // this one's waits down: 50,000 were all done before one stop landed.
    const COUNT: usize = 200_000;
    let scenario = Scenario::new("sigterm");
    kafka::produce(&scenario.input, inputs(COUNT));
    // An in-flight bound well below the backlog, so that the stop lands
    // mid-stream: the drain finishes what is in flight and leaves the rest.
    let config = scenario.config(1, "max_in_flight = 2000");
    let host = HostProcess::start(&config, &scenario.log("host-1.log"));
    wait_for_output_size(&scenario, 5_000, Duration::from_secs(120)).await;
    let (status, took) = host.terminate(Duration::from_secs(40)).await;
    assert!(status.success(), "exit status {status}");
    // The drain timeout is 20 s; the process must not need more.
    assert!(took < Duration::from_secs(25), "shutdown took {took:?}");
    let stopped_at = scenario.output_size();
    assert!(stopped_at < COUNT as i64, "the stop came mid-stream");

    let restarted = HostProcess::start(&config, &scenario.log("host-2.log"));
    let mut reader = scenario.reader();
    let complete = reader.read_until(Duration::from_secs(180), |records| records.len() >= COUNT);
    assert!(complete, "only {} of {COUNT} outputs", reader.records.len());
    reader.poll_for(Duration::from_secs(3));
    let duplicates = reader.records.len() - reader.value_counts().len();
    assert_eq!(
        duplicates, 0,
        "messages processed twice after a graceful stop"
    );
    assert_eq!(reader.records.len(), COUNT);
    drop(restarted);
}

fn assigned_partitions(log: &[serde_json::Value]) -> Vec<u64> {
    log.iter()
        .filter(|line| line["fields"]["message"] == "partitions assigned")
        .filter_map(|line| line["fields"]["partitions"].as_u64())
        .collect()
}

/// How many partitions each host was given last.
fn last_assignments(hosts: &[&HostProcess]) -> Vec<Option<u64>> {
    hosts
        .iter()
        .map(|host| assigned_partitions(&host.log_lines()).last().copied())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_split_the_partitions_and_one_takes_over_when_the_other_stops() {
    const COUNT: usize = 100_000;
    let scenario = Scenario::new("group");
    let config = scenario.config(50, "");
    let first = HostProcess::start(&config, &scenario.log("first.log"));
    first
        .wait_for_log("partitions assigned", Duration::from_secs(60))
        .await;
    let second = HostProcess::start(&config, &scenario.log("second.log"));
    wait_until(
        "the two hosts to split four partitions two and two",
        Duration::from_secs(60),
        async || last_assignments(&[&first, &second]),
        |assigned| assigned == &[Some(2), Some(2)],
    )
    .await;

    kafka::produce(&scenario.input, inputs(COUNT));
    wait_for_output_size(&scenario, COUNT as i64 / 4, Duration::from_secs(120)).await;
    let (status, _) = first.terminate(Duration::from_secs(40)).await;
    assert!(status.success());
    wait_until(
        "the second host to take all partitions",
        Duration::from_secs(60),
        async || last_assignments(&[&second]),
        |assigned| assigned == &[Some(4)],
    )
    .await;

    let mut reader = scenario.reader();
    let complete = reader.read_until(Duration::from_secs(180), |records| {
        kafka::distinct_values(records) >= COUNT
    });
    let duplicates = reader.records.len() - reader.value_counts().len();
    eprintln!(
        "handover: {} outputs, {duplicates} duplicates",
        reader.records.len()
    );
    assert!(
        complete,
        "only {} distinct of {COUNT} outputs",
        kafka::distinct_values(&reader.records)
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn before_processing_may_lose_the_batch_in_flight_but_never_duplicates() {
    const COUNT: usize = 50_000;
    let scenario = Scenario::new("at-most-once");
    kafka::produce(&scenario.input, inputs(COUNT));
    let config = scenario.config(100, "commit = \"before_processing\"");
    let host = HostProcess::start(&config, &scenario.log("host-1.log"));
    wait_for_output_size(&scenario, COUNT as i64 / 3, Duration::from_secs(120)).await;
    host.kill_hard();
    let restarted = HostProcess::start(&config, &scenario.log("host-2.log"));
    // Done when the output stops growing: the same size 3 s apart.
    let mut size = -1;
    let (_, last) = wait_until(
        "the output to stop growing",
        Duration::from_secs(180),
        async || {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let before = std::mem::replace(&mut size, scenario.output_size());
            (before, size)
        },
        |&(before, now)| now == before && now > 0,
    )
    .await;
    let mut reader = scenario.reader();
    reader.read_until(Duration::from_secs(60), |records| {
        records.len() as i64 >= last
    });
    let counts = reader.value_counts();
    let duplicates = reader.records.len() - counts.len();
    let lost = COUNT - counts.len();
    eprintln!("before_processing with kill -9: {lost} lost, {duplicates} duplicates");
    assert_eq!(duplicates, 0, "at-most-once must never repeat a message");
    assert!(
        lost < COUNT / 10,
        "lost {lost}: more than the batches in flight"
    );
    drop(restarted);
}
