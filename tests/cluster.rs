//! Several hosts as one cluster, against a real Apache Kafka broker and the
//! real `runnel` binary: the consumer group spreads the partitions, a host
//! killed with `kill -9` loses nothing, and how fast its partitions move on
//! (or come back) with each kind of group membership.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::config::{HostConfig, Pipeline};
use support::host::HostProcess;
use support::kafka::{self, Cluster, TopicReader};
use support::{numbered_value, plugin_path, wait_until};

const PARTITIONS: i32 = 12;
const HOSTS: usize = 3;

/// How hosts join their consumer group.
#[derive(Clone, Copy, Debug)]
enum Membership {
    /// A new member each start; the classic protocol's eager rebalances.
    Dynamic,
    /// `kafka.instance_id`: the same member across restarts (KIP-345).
    Static,
    /// `group.protocol = "consumer"`: Kafka 4's protocol (KIP-848).
    ConsumerProtocol,
}

struct ClusterScenario {
    dir: tempfile::TempDir,
    input: String,
    output: String,
    group: String,
    membership: Membership,
}

impl ClusterScenario {
    fn new(name: &str, membership: Membership) -> Self {
        let input = kafka::unique_topic(&format!("{name}-in"));
        let output = kafka::unique_topic(&format!("{name}-out"));
        kafka::create_topic(&input, PARTITIONS);
        kafka::create_topic(&output, PARTITIONS);
        Self {
            dir: kafka::scratch_dir(),
            group: kafka::unique_topic(&format!("{name}-group")),
            input,
            output,
            membership,
        }
    }

    /// The configuration of host number `host`: the shipped consumer
    /// defaults (no test-only session timeout), so the failover measured is
    /// the one users get.
    fn config(&self, host: usize) -> PathBuf {
        let mut pipeline = Pipeline::reading(&self.input)
            .output(&self.output)
            .plugin(plugin_path("uppercase"))
            .batch(100, "20ms")
            .set("group", self.group.as_str());
        let mut config = HostConfig::new(&kafka::brokers()).drain_timeout("20s");
        match self.membership {
            Membership::Dynamic => {}
            Membership::Static => {
                config = config.settings(&format!("[kafka]\ninstance_id = \"host-{host}\"\n"));
            }
            Membership::ConsumerProtocol => {
                pipeline = pipeline.consumer("group.protocol", "consumer");
            }
        }
        let dir = self.dir.path().join(format!("host-{host}"));
        std::fs::create_dir_all(&dir).expect("host directory");
        config.pipeline("upper", pipeline).write_in(&dir)
    }

    fn start(&self, host: usize, run: &str) -> HostProcess {
        let log = self.dir.path().join(format!("host-{host}-{run}.log"));
        HostProcess::start(&self.config(host), &log)
    }

    /// Produces `count` numbered inputs at `per_second` on a thread of its
    /// own; the handle says when the last was acknowledged.
    fn produce_in_background(
        &self,
        count: usize,
        per_second: usize,
    ) -> std::thread::JoinHandle<Instant> {
        let input = self.input.clone();
        std::thread::spawn(move || {
            let messages: Vec<(String, String)> = (0..count)
                .map(|i| (format!("key-{}", i % 1000), numbered_value(i)))
                .collect();
            kafka::produce_at_rate(&input, &messages, per_second);
            Instant::now()
        })
    }

    /// Starts every host and waits until they share the partitions;
    /// returns them and how many partitions each owns.
    async fn start_all(&self) -> (Vec<HostProcess>, Vec<i64>) {
        let hosts: Vec<HostProcess> = (0..HOSTS).map(|host| self.start(host, "first")).collect();
        let spread = wait_for_spread(
            "three hosts to share the partitions",
            &hosts.iter().collect::<Vec<_>>(),
            Duration::from_secs(90),
        )
        .await;
        (hosts, spread)
    }

    async fn wait_for_outputs(&self, at_least: usize) {
        wait_until(
            &format!("{at_least} outputs"),
            Duration::from_secs(120),
            async || self.output_size(),
            |&size| size >= at_least as i64,
        )
        .await;
    }

    fn output_size(&self) -> i64 {
        kafka::topic_size(&self.output, PARTITIONS)
    }

    /// Reads the outputs until every input is there once at least; returns
    /// how many outputs repeat one.
    fn assert_every_input_processed(&self, count: usize) -> usize {
        let mut reader = TopicReader::new(&self.output, PARTITIONS, "read_uncommitted");
        let complete = reader.read_until(Duration::from_secs(180), |records| {
            records.len() >= count && kafka::distinct_values(records) >= count
        });
        let missing = reader.missing_uppercased(count);
        assert!(
            complete && missing.is_empty(),
            "{} inputs missing, first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        reader.records.len() - reader.value_counts().len()
    }
}

/// The partitions a host holds by its own log: every one assigned, less
/// every one revoked. Counts both the classic protocol's eager rebalances
/// (all revoked, all assigned) and incremental ones.
fn owned_partitions(host: &HostProcess) -> i64 {
    let mut owned = 0;
    for line in host.log_lines() {
        let count = line["fields"]["partitions"].as_i64().unwrap_or(0);
        match line["fields"]["message"].as_str() {
            Some("partitions assigned") => owned += count,
            Some(message) if message.starts_with("partitions revoked") => owned -= count,
            _ => {}
        }
    }
    owned
}

fn ownership(hosts: &[&HostProcess]) -> Vec<i64> {
    hosts.iter().map(|host| owned_partitions(host)).collect()
}

/// Waits until `hosts` between them own every partition, each at least one.
async fn wait_for_spread(what: &str, hosts: &[&HostProcess], timeout: Duration) -> Vec<i64> {
    wait_until(
        what,
        timeout,
        async || ownership(hosts),
        |owned| owned.iter().sum::<i64>() == PARTITIONS as i64 && owned.iter().all(|&n| n > 0),
    )
    .await
}

/// Three hosts share a 12-partition input while 300,000 messages arrive at
/// 10,000 a second; one is killed with `kill -9` a third of the way in and
/// started again later. Nothing is lost; the test prints how long the
/// group took to hand the dead host's partitions to the others and how
/// long until the group had committed the end of the input.
async fn kill_one_of_three_and_bring_it_back(membership: Membership) {
    const COUNT: usize = 300_000;
    const RATE: usize = 10_000;
    let name = format!("{membership:?}").to_lowercase();
    let scenario = ClusterScenario::new(&name, membership);
    let (mut hosts, spread) = scenario.start_all().await;
    eprintln!("{membership:?}: partitions per host {spread:?}");

    let production = scenario.produce_in_background(COUNT, RATE);
    scenario.wait_for_outputs(COUNT / 3).await;
    let victim = hosts.remove(1);
    victim.kill_hard();
    let killed = Instant::now();

    let survivors = wait_for_spread(
        "the two others to take over every partition",
        &hosts.iter().collect::<Vec<_>>(),
        Duration::from_secs(120),
    )
    .await;
    let moved = killed.elapsed();
    eprintln!("{membership:?}: dead host's partitions moved after {moved:.1?}: {survivors:?}");

    let restarted = scenario.start(1, "second");
    let restart = Instant::now();
    hosts.insert(1, restarted);
    let back = wait_for_spread(
        "the restarted host to get partitions again",
        &hosts.iter().collect::<Vec<_>>(),
        Duration::from_secs(120),
    )
    .await;
    eprintln!(
        "{membership:?}: restarted host owned partitions after {:.1?}: {back:?}",
        restart.elapsed()
    );

    let produced = production.join().expect("the producing thread");
    let cluster = Cluster::shared();
    wait_until(
        "the group to commit the end of the input",
        Duration::from_secs(180),
        async || cluster.caught_up(&scenario.group, &scenario.input, PARTITIONS),
        |&caught_up| caught_up,
    )
    .await;
    eprintln!(
        "{membership:?}: lag back to zero {:.1?} after the kill, {:.1?} after the last input",
        killed.elapsed(),
        produced.elapsed()
    );
    let repeated = scenario.assert_every_input_processed(COUNT);
    eprintln!("{membership:?}: {COUNT} inputs, {repeated} outputs repeated across the crash");
    // A partition that moved away is no longer reported by its old owner,
    // so the lag summed over hosts counts each partition once.
    wait_until(
        "each partition's lag to be exported by one host only",
        Duration::from_secs(60),
        async || {
            let mut series = 0;
            for host in &hosts {
                series += lag_series(host).await;
            }
            series
        },
        |&series| series == PARTITIONS as usize,
    )
    .await;
    drop(hosts);
}

/// How many partitions a host exports `runnel_consumer_lag` for.
async fn lag_series(host: &HostProcess) -> usize {
    let (_, metrics) = host.http_get("/metrics").await;
    metrics
        .lines()
        .filter(|line| line.starts_with("runnel_consumer_lag{"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_hosts_lose_nothing_when_one_is_killed_and_restarted() {
    kill_one_of_three_and_bring_it_back(Membership::Dynamic).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_group_protocol_loses_nothing_when_a_host_is_killed() {
    kill_one_of_three_and_bring_it_back(Membership::ConsumerProtocol).await;
}

/// With `kafka.instance_id`, a host killed and started again at once takes
/// back its own partitions: the others keep theirs, with no rebalance.
#[tokio::test(flavor = "multi_thread")]
async fn a_static_member_restarted_in_place_gets_its_partitions_back_without_a_rebalance() {
    const COUNT: usize = 60_000;
    let scenario = ClusterScenario::new("static", Membership::Static);
    let (mut hosts, before) = scenario.start_all().await;
    let production = scenario.produce_in_background(COUNT, 10_000);
    scenario.wait_for_outputs(COUNT / 3).await;
    let assignments_before: Vec<usize> = hosts.iter().map(assignment_count).collect();

    hosts.remove(1).kill_hard();
    let restart = Instant::now();
    hosts.insert(1, scenario.start(1, "second"));
    wait_until(
        "the restarted host to own its partitions again",
        Duration::from_secs(60),
        async || owned_partitions(&hosts[1]),
        |&owned| owned == before[1],
    )
    .await;
    eprintln!(
        "Static: restarted host owned its {} partitions again {:.1?} after its start",
        before[1],
        restart.elapsed()
    );
    production.join().expect("the producing thread");
    let repeated = scenario.assert_every_input_processed(COUNT);
    eprintln!("Static: {COUNT} inputs, {repeated} outputs repeated across the crash");
    let others: Vec<(usize, usize)> = [0, 2]
        .iter()
        .map(|&i| (assignments_before[i], assignment_count(&hosts[i])))
        .collect();
    assert!(
        others.iter().all(|(before, after)| before == after),
        "the other hosts were reassigned (assignments before and after): {others:?}"
    );
    drop(hosts);
}

/// How many times a host was assigned partitions.
fn assignment_count(host: &HostProcess) -> usize {
    host.log_lines()
        .iter()
        .filter(|line| line["fields"]["message"] == "partitions assigned")
        .count()
}
