//! Broker outages: a host rides through its broker going away and coming
//! back (a clean stop, a crash, an outage longer than the producer's
//! delivery timeout, a host started before its broker) without a restart,
//! loses nothing, commits nothing twice, and keeps its log short.
//!
//! Each test runs a broker of its own and stops and starts it on the same
//! port and data (the shared test broker serves the other tests). One host
//! runs two pipelines side by side, at least once and exactly once, so
//! every outage is met by both. The tests take turns: each one's broker
//! and host get the machine to themselves.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::config::{HostConfig, Pipeline};
use support::host::HostProcess;
use support::kafka::{self, OwnBroker, Record, TopicReader};
use support::{numbered_value, plugin_path, wait_until};
use tokio::sync::Mutex;

/// Held for a whole test. Each test has a runtime of its own; tokio's mutex
/// works across them.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const PARTITIONS: i32 = 4;

/// How long a restarted broker may take to have a host's lag back to zero.
/// A reconnect takes up to a second (`reconnect.backoff.max.ms`), the
/// consumer group may rebalance, and an exactly-once partition's producer
/// may have to be started again.
const RECOVERY_BOUND: Duration = Duration::from_secs(60);

/// Log lines a host may write while its broker is away for 10–20 s: the
/// first report of each kind of client error, the readiness watch and the
/// rebalance lines; repeats are held back for 30 s (`SUMMARY_INTERVAL`).
const OUTAGE_LOG_LINES: usize = 40;

/// One pipeline of the outage host: its topics and consumer group.
struct Lane {
    name: &'static str,
    input: String,
    output: String,
    dead_letters: String,
    exactly_once: bool,
}

impl Lane {
    fn isolation(&self) -> &'static str {
        if self.exactly_once {
            "read_committed"
        } else {
            "read_uncommitted"
        }
    }
}

struct OutageScenario {
    broker: OwnBroker,
    dir: tempfile::TempDir,
    lanes: [Lane; 2],
}

impl OutageScenario {
    fn new(name: &str) -> Self {
        let broker = OwnBroker::start();
        let lane = |lane: &'static str, exactly_once| Lane {
            name: lane,
            input: kafka::unique_topic(&format!("{name}-{lane}-in")),
            output: kafka::unique_topic(&format!("{name}-{lane}-out")),
            dead_letters: kafka::unique_topic(&format!("{name}-{lane}-dlq")),
            exactly_once,
        };
        let lanes = [lane("at_least_once", false), lane("exactly_once", true)];
        for lane in &lanes {
            broker.cluster.create_topic(&lane.input, PARTITIONS);
            broker.cluster.create_topic(&lane.output, PARTITIONS);
            broker.cluster.create_topic(&lane.dead_letters, 1);
        }
        Self {
            broker,
            dir: kafka::scratch_dir(),
            lanes,
        }
    }

    /// Both pipelines run `misbehave` (which echoes a message, or fails
    /// it as the message asks) at batch 100 with a dead-letter topic;
    /// `producer` holds raw options of the host's producer.
    fn config(&self, producer: &[(&str, &str)]) -> PathBuf {
        let mut config = HostConfig::new(&self.broker.cluster.bootstrap).drain_timeout("30s");
        for (option, value) in producer {
            config = config.producer(option, value);
        }
        for lane in &self.lanes {
            let pipeline = Pipeline::reading(&lane.input)
                .output(&lane.output)
                .set("dead_letter_topic", lane.dead_letters.as_str())
                .plugin(plugin_path("misbehave"))
                .batch(100, "5ms")
                .set("exactly_once", lane.exactly_once);
            config = config.pipeline(lane.name, pipeline);
        }
        config.write_in(self.dir.path())
    }

    fn start_host(&self, producer: &[(&str, &str)]) -> HostProcess {
        HostProcess::start(&self.config(producer), &self.dir.path().join("host.log"))
    }

    /// Messages `range` of every lane, keyed over 1,000 keys; one in a
    /// hundred asks to fail, and is keyed by its number instead.
    fn messages(range: std::ops::Range<usize>) -> Vec<(String, String)> {
        range
            .map(|i| match is_poison(i) {
                true => (poison_key(i), "permanent".to_owned()),
                false => (format!("key-{}", i % 1000), numbered_value(i)),
            })
            .collect()
    }

    /// Produces messages `range` to every lane's input, at `per_second` in
    /// all (None: as fast as the broker takes them).
    fn produce(&self, range: std::ops::Range<usize>, per_second: Option<usize>) {
        let messages = Self::messages(range);
        std::thread::scope(|scope| {
            for lane in &self.lanes {
                let (cluster, messages) = (&self.broker.cluster, &messages);
                scope.spawn(move || match per_second {
                    Some(rate) => {
                        cluster.produce_at_rate(&lane.input, messages, rate / 2);
                    }
                    None => cluster.produce(&lane.input, messages.iter().cloned()),
                });
            }
        });
    }

    /// Waits until every lane's group has committed the end of its input
    /// (panics past `timeout`, saying it awaited `what`); returns how long
    /// that took, lane by lane.
    async fn wait_for_zero_lag(
        &self,
        what: &str,
        timeout: Duration,
    ) -> Vec<(&'static str, Duration)> {
        let started = Instant::now();
        let mut caught_up: Vec<(&'static str, Duration)> = Vec::new();
        wait_until(
            &format!("every lane's lag back to zero: {what}"),
            timeout,
            async || {
                for lane in &self.lanes {
                    let done = caught_up.iter().any(|(name, _)| *name == lane.name);
                    let cluster = &self.broker.cluster;
                    if !done && cluster.caught_up(&lane.input, &lane.input, PARTITIONS) {
                        caught_up.push((lane.name, started.elapsed()));
                    }
                }
                caught_up.clone()
            },
            |caught_up| caught_up.len() == self.lanes.len(),
        )
        .await
    }

    /// Asserts that every lane's output holds each good message of
    /// `0..count`, and its dead-letter topic each failed one: at least
    /// once, or exactly once as `read_committed` consumers see it.
    fn assert_every_output(&self, count: usize) {
        let good = (0..count).filter(|&i| !is_poison(i));
        let outputs: Vec<String> = good.map(numbered_value).collect();
        let poison = (0..count).filter(|&i| is_poison(i));
        let dead_letters: Vec<String> = poison.map(poison_key).collect();
        for lane in &self.lanes {
            let value = |record: &Record| record.value.clone();
            self.assert_topic_holds(lane, &lane.output, PARTITIONS, &outputs, value);
            let key = |record: &Record| record.key.clone().unwrap_or_default();
            self.assert_topic_holds(lane, &lane.dead_letters, 1, &dead_letters, key);
        }
    }

    /// Asserts that `topic` holds a record for each of `wanted`, as `seen`
    /// names a record: at least once, or exactly once for an exactly-once
    /// lane.
    fn assert_topic_holds(
        &self,
        lane: &Lane,
        topic: &str,
        partitions: i32,
        wanted: &[String],
        seen: impl Fn(&Record) -> String,
    ) {
        let mut reader = TopicReader::on(&self.broker.cluster, topic, partitions, lane.isolation());
        reader.read_until(Duration::from_secs(60), |records| {
            let distinct: HashSet<String> = records.iter().map(&seen).collect();
            distinct.len() >= wanted.len()
        });
        reader.poll_for(Duration::from_secs(2));
        let mut counts: HashMap<String, usize> = HashMap::new();
        for record in &reader.records {
            *counts.entry(seen(record)).or_default() += 1;
        }
        let missing: Vec<&String> = wanted.iter().filter(|w| !counts.contains_key(*w)).collect();
        assert!(
            missing.is_empty(),
            "{} {topic}: {} of {} missing (first: {:?})",
            lane.name,
            missing.len(),
            wanted.len(),
            &missing[..missing.len().min(5)]
        );
        let repeated = counts.values().filter(|&&n| n > 1).count();
        if lane.exactly_once {
            assert_eq!(repeated, 0, "{} {topic}: records seen twice", lane.name);
            assert_eq!(reader.records.len(), wanted.len(), "{} {topic}", lane.name);
        }
        eprintln!(
            "{} {topic}: {} present, {repeated} repeated",
            lane.name,
            wanted.len()
        );
    }
}

fn is_poison(index: usize) -> bool {
    index % 100 == 7
}

fn poison_key(index: usize) -> String {
    format!("poison-{index}")
}

/// How the broker goes away.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// SIGTERM: a clean shutdown, as in a rolling restart.
    Stop,
    /// SIGKILL: a crash.
    Kill,
    /// SIGSTOP, then SIGCONT: a broker that hangs, connections open and
    /// nothing answered.
    Freeze,
}

impl OutageScenario {
    /// Takes the broker away for `length` and brings it back, while `host`
    /// runs; checks that readiness said 503 meanwhile, the log stayed
    /// short, and every lane's lag returned to zero (`bound` at most).
    async fn outage(&self, host: &HostProcess, outage: Outage, length: Duration, bound: Duration) {
        let lines_before = host.log_lines().len();
        match outage {
            Outage::Stop => self.broker.stop(),
            Outage::Kill => self.broker.kill(),
            Outage::Freeze => self.broker.signal("STOP"),
        }
        let away = Instant::now();
        let mut not_ready = None;
        // Readiness is sampled all through the outage, which lasts `length`.
        while away.elapsed() < length {
            let (status, body) = host.http_get("/readyz").await;
            if status == 503 {
                not_ready.get_or_insert(body);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match outage {
            Outage::Stop | Outage::Kill => self.broker.resume(),
            Outage::Freeze => self.broker.signal("CONT"),
        }
        let lines = host.log_lines().split_off(lines_before);
        eprintln!(
            "{outage:?} for {length:?}: {} log lines; readiness said {not_ready:?}",
            lines.len()
        );
        assert!(
            lines.len() <= OUTAGE_LOG_LINES,
            "{outage:?}: {} log lines, more than {OUTAGE_LOG_LINES}: {lines:#?}",
            lines.len()
        );
        let reason = not_ready.expect("readiness is 503 while the broker is away");
        assert!(reason.contains("no Kafka broker answers"), "{reason}");
        let recovered = self
            .wait_for_zero_lag(&format!("after {outage:?}"), bound)
            .await;
        eprintln!("{outage:?}: lag back to zero {recovered:?} after the broker answered again");
        let (status, body) = host.http_get("/readyz").await;
        assert_eq!(status, 200, "ready again after {outage:?}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelines_resume_after_a_clean_broker_stop_a_crash_and_a_hang() {
    let _turn = ONE_AT_A_TIME.lock().await;
    const PHASE: usize = 20_000;
    let scenario = OutageScenario::new("restart");
    let host = scenario.start_host(&[]);

    // 2,000 msg/s for 20,000 messages, then the broker stops cleanly
    // (SIGTERM) with the last outputs still in flight, and returns 10 s
    // later; the same with a crash (SIGKILL), and with a broker that hangs.
    let outages = [Outage::Stop, Outage::Kill, Outage::Freeze];
    for (phase, outage) in outages.into_iter().enumerate() {
        scenario.produce(phase * PHASE..(phase + 1) * PHASE, Some(2000));
        let length = Duration::from_secs(10);
        scenario.outage(&host, outage, length, RECOVERY_BOUND).await;
    }

    // And 20,000 more flow as before.
    let count = (outages.len() + 1) * PHASE;
    scenario.produce(outages.len() * PHASE..count, Some(2000));
    scenario
        .wait_for_zero_lag("the last 20,000 processed", RECOVERY_BOUND)
        .await;
    scenario.assert_every_output(count);
    host.assert_running_then_stop(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_longer_than_the_delivery_timeout_loses_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // Enough that the host is still working through them when the broker
    // goes, even at full speed.
    const COUNT: usize = 200_000;
    let scenario = OutageScenario::new("timeout");
    scenario.produce(0..COUNT, None);
    // Outputs not acknowledged within 5 s are given up on by the producer.
    let host = scenario.start_host(&[("message.timeout.ms", "5000")]);

    // Kill the broker while the host works through the backlog, so outputs
    // are in flight and prefetched messages still being processed (a clean
    // stop takes long enough for the host to finish them); it returns
    // after three delivery timeouts.
    let first = &scenario.lanes[0];
    let mut outputs = TopicReader::on(
        &scenario.broker.cluster,
        &first.output,
        PARTITIONS,
        "read_uncommitted",
    );
    assert!(
        outputs.read_until(Duration::from_secs(60), |records| records.len() >= 5_000),
        "the host started processing"
    );
    drop(outputs);
    scenario
        .outage(
            &host,
            Outage::Kill,
            Duration::from_secs(15),
            // The exactly-once lane holds its partitions paused through the
            // outage (its workers wait for the commit the broker cannot
            // take) and loses them when its session ends: they must come
            // back fetching.
            RECOVERY_BOUND,
        )
        .await;
    scenario.assert_every_output(COUNT);

    let rewinds = host
        .metric(
            "runnel_partition_rewinds_total",
            &[("pipeline", "at_least_once")],
        )
        .await;
    eprintln!("at_least_once: {rewinds} partition rewinds");
    assert!(
        rewinds > 0.0,
        "outputs timed out and their messages were processed again"
    );
    host.assert_running_then_stop(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_started_without_a_broker_waits_for_it_and_says_why_it_is_not_ready() {
    let _turn = ONE_AT_A_TIME.lock().await;
    const COUNT: usize = 5_000;
    let scenario = OutageScenario::new("late");
    scenario.produce(0..COUNT, None);
    scenario.broker.stop();

    let host = scenario.start_host(&[]);
    let (_, reason) = wait_until(
        "/readyz to say 503 and why",
        Duration::from_secs(30),
        async || host.http_get("/readyz").await,
        |(status, body)| *status == 503 && body.contains("no Kafka broker answers"),
    )
    .await;
    eprintln!("not ready: {reason}");

    // The host waits 10 s for its broker: what it logs meanwhile counts.
    let lines_before = host.log_lines().len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    scenario.broker.resume();
    let lines = host.log_lines().len() - lines_before;
    eprintln!("a host started before its broker: {lines} log lines in 10 s");
    assert!(lines <= OUTAGE_LOG_LINES);
    let recovered = scenario
        .wait_for_zero_lag("the host processes once the broker appears", RECOVERY_BOUND)
        .await;
    eprintln!("late broker: lag back to zero {recovered:?} after the broker answered");
    scenario.assert_every_output(COUNT);
    let (status, body) = host.http_get("/readyz").await;
    assert_eq!(status, 200, "ready once the broker answers: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_stopped_while_no_broker_answers_does_not_claim_a_commit() {
    let dir = kafka::scratch_dir();
    // Nothing listens on port 1: the broker is away for the host's whole life.
    let pipeline = Pipeline::reading("never-read")
        .output("never-written")
        .plugin(plugin_path("misbehave"));
    let config = HostConfig::new("127.0.0.1:1")
        .pipeline("orders", pipeline)
        .write_in(dir.path());
    let log = dir.path().join("host.log");
    let host = HostProcess::start(&config, &log);
    host.wait_for_log(
        "kafka unreachable; retrying with backoff",
        Duration::from_secs(30),
    )
    .await;
    let (status, _) = host.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "exit status {status}");

    let stops: Vec<String> = support::host::read_log(&log)
        .iter()
        .filter(|line| line["fields"]["pipeline"] == "orders")
        .filter_map(|line| line["fields"]["message"].as_str())
        .filter(|message| message.starts_with("stopped"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        stops,
        ["stopped; no message finished since the last commit, nothing new to commit"]
    );
}
