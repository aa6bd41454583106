//! A real Kafka broker for the tests, and plain clients to feed and read it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::repo_root;

/// The bootstrap address of the test broker: the one `scripts/test.sh`
/// started (RUNNEL_TEST_BROKERS), or one started for this test process,
/// which stops when the process exits.
pub fn brokers() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(brokers) = std::env::var("RUNNEL_TEST_BROKERS") {
                return brokers;
            }
            let dir =
                std::env::temp_dir().join(format!("runnel-test-broker-{}", std::process::id()));
            run_broker_script(
                &["start", "--watch-pid", &std::process::id().to_string()],
                &dir,
            )
        })
        .clone()
}

/// A Kafka cluster the tests talk to, by its bootstrap address: the shared
/// test broker, or one a test runs for itself (to stop and start it).
#[derive(Debug, Clone)]
pub struct Cluster {
    pub bootstrap: String,
    /// librdkafka options every test client gets (a secured broker's).
    pub options: Vec<(String, String)>,
}

impl Cluster {
    /// The broker every test shares.
    pub fn shared() -> Self {
        Self {
            bootstrap: brokers(),
            options: Vec::new(),
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (key, value) in &self.options {
            config.set(key, value);
        }
        config
    }
}

/// A topic name no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn create_topic(name: &str, partitions: i32) {
    Cluster::shared().create_topic(name, partitions);
}

/// Produces `values` with their keys, in order, and waits until all are
/// acknowledged.
pub fn produce(topic: &str, messages: impl IntoIterator<Item = (String, String)>) {
    Cluster::shared().produce(topic, messages);
}

/// Produces `messages` at `per_second`, paced in twentieths of a second,
/// through one producer, and waits until all are acknowledged. Returns how
/// long that took.
pub fn produce_at_rate(topic: &str, messages: &[(String, String)], per_second: usize) -> Duration {
    Cluster::shared().produce_at_rate(topic, messages, per_second)
}

/// The sum of the high watermarks of a topic's partitions: how many records
/// it holds (a partition that does not answer yet counts as empty).
pub fn topic_size(topic: &str, partitions: i32) -> i64 {
    Cluster::shared().topic_size(topic, partitions)
}

/// The offsets a consumer group has committed for each partition of a
/// topic; -1 where it has committed none.
pub fn committed_offsets(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    Cluster::shared().committed_offsets(group, topic, partitions)
}

/// The high watermark of each partition of a topic.
pub fn high_watermarks(topic: &str, partitions: i32) -> Vec<i64> {
    Cluster::shared().high_watermarks(topic, partitions)
}

impl Cluster {
    pub fn create_topic(&self, name: &str, partitions: i32) {
        for result in self.request_topic(name, partitions) {
            result.expect("topic created");
        }
    }

    /// Creates `name` unless the broker has it already (as `kafka-topics.sh
    /// --create --if-not-exists`).
    pub fn create_topic_if_missing(&self, name: &str, partitions: i32) {
        for result in self.request_topic(name, partitions) {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => panic!("creating topic {topic}: {code}"),
            }
        }
    }

    /// Asks the broker to create `name`, and returns its answer.
    fn request_topic(&self, name: &str, partitions: i32) -> Vec<rdkafka::admin::TopicResult> {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        futures::executor::block_on(admin.create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create_topics request")
    }

    /// How many partitions `topic` has; None while the broker has no such
    /// topic.
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        let consumer: BaseConsumer = self.client_config().create().expect("metadata client");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .ok()?;
        let topic = metadata.topics().first()?;
        let count = topic.partitions().len() as i32;
        (topic.error().is_none() && count > 0).then_some(count)
    }

    /// Produces `values` with their keys, in order, and waits until all are
    /// acknowledged.
    pub fn produce(&self, topic: &str, messages: impl IntoIterator<Item = (String, String)>) {
        let producer = self.test_producer();
        for (key, value) in messages {
            send_when_queue_has_room(&producer, topic, &key, &value);
        }
        producer
            .flush(Duration::from_secs(60))
            .expect("all test messages acknowledged");
    }

    /// Produces `messages` at `per_second`, paced in twentieths of a second,
    /// through one producer, and waits until all are acknowledged. Returns how
    /// long that took.
    pub fn produce_at_rate(
        &self,
        topic: &str,
        messages: &[(String, String)],
        per_second: usize,
    ) -> Duration {
        let producer = self.test_producer();
        let started = Instant::now();
        for (slice, chunk) in messages.chunks((per_second / 20).max(1)).enumerate() {
            for (key, value) in chunk {
                send_when_queue_has_room(&producer, topic, key, value);
            }
            let due = Duration::from_millis(50 * (slice as u64 + 1));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        producer
            .flush(Duration::from_secs(60))
            .expect("all test messages acknowledged");
        started.elapsed()
    }

    /// An idempotent producer, so test inputs arrive once and in order.
    fn test_producer(&self) -> ThreadedProducer<DefaultProducerContext> {
        self.client_config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("test producer")
    }
}

/// Enqueues one message, waiting while librdkafka's queue is full.
fn send_when_queue_has_room(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    value: &str,
) {
    let mut record = BaseRecord::to(topic).key(key).payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, returned)) => {
                record = returned;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// Produces one message with headers.
pub fn produce_with_headers(topic: &str, key: &str, value: &str, headers: &[(&str, &str)]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("test producer");
    let mut owned = OwnedHeaders::new();
    for (name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(value.as_bytes()),
        });
    }
    producer
        .send(BaseRecord::to(topic).key(key).payload(value).headers(owned))
        .map_err(|(error, _)| error)
        .expect("enqueued");
    producer
        .flush(Duration::from_secs(30))
        .expect("acknowledged");
}

/// One record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    pub headers: Vec<(String, String)>,
    /// Milliseconds since the Unix epoch: when the producer created it.
    pub timestamp: Option<i64>,
}

impl Record {
    /// The values of every header called `name`.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// Reads a topic from the beginning, keeping everything read so far.
pub struct TopicReader {
    consumer: BaseConsumer,
    pub records: Vec<Record>,
}

impl TopicReader {
    /// `isolation` is `read_committed` or `read_uncommitted`.
    pub fn new(topic: &str, partitions: i32, isolation: &str) -> Self {
        Self::on(&Cluster::shared(), topic, partitions, isolation)
    }

    pub fn on(cluster: &Cluster, topic: &str, partitions: i32, isolation: &str) -> Self {
        let consumer: BaseConsumer = cluster
            .client_config()
            .set("group.id", unique_topic("reader"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .create()
            .expect("test consumer");
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).expect("assign");
        Self {
            consumer,
            records: Vec::new(),
        }
    }

    /// Reads whatever arrives within `window`.
    pub fn poll_for(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        while Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => self.records.push(Record {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: String::from_utf8_lossy(message.payload().unwrap_or_default())
                        .into_owned(),
                    headers: message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    timestamp: message.timestamp().to_millis(),
                }),
                Some(Err(error)) => panic!("reading the topic failed: {error}"),
                None => {}
            }
        }
    }

    /// Reads until `done` holds for the records read so far, or `timeout`.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[Record]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(&self.records) {
                return true;
            }
            self.poll_for(Duration::from_millis(500));
        }
        done(&self.records)
    }

    /// Distinct values read so far, with how often each was seen.
    pub fn value_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for record in &self.records {
            *counts.entry(record.value.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// The inputs of `0..count` (numbered values) whose upper-cased value
    /// has not been read.
    pub fn missing_uppercased(&self, count: usize) -> Vec<usize> {
        let counts = self.value_counts();
        (0..count)
            .filter(|&i| !counts.contains_key(&super::numbered_value(i).to_uppercase()))
            .collect()
    }
}

/// How many distinct values `records` hold.
pub fn distinct_values(records: &[Record]) -> usize {
    let mut values: Vec<&str> = records.iter().map(|r| r.value.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    values.len()
}

impl Cluster {
    /// The high watermark of each partition of a topic, as the broker answers.
    fn fetch_high_watermarks(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Vec<rdkafka::error::KafkaResult<i64>> {
        let consumer: BaseConsumer = self.client_config().create().expect("watermark client");
        (0..partitions)
            .map(|partition| {
                consumer
                    .fetch_watermarks(topic, partition, Duration::from_secs(10))
                    .map(|(_, high)| high)
            })
            .collect()
    }

    pub fn topic_size(&self, topic: &str, partitions: i32) -> i64 {
        self.fetch_high_watermarks(topic, partitions)
            .into_iter()
            .map(|high| high.unwrap_or(0))
            .sum()
    }

    pub fn committed_offsets(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        self.try_committed_offsets(group, topic, partitions)
            .expect("committed offsets")
    }

    /// [`Self::committed_offsets`], or the error of a broker that cannot
    /// answer yet (just restarted, its coordinator still loading).
    pub fn try_committed_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: i32,
    ) -> rdkafka::error::KafkaResult<Vec<i64>> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .create()
            .expect("offsets client");
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(topic, partition);
        }
        let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
        Ok((0..partitions)
            .map(
                |partition| match committed.find_partition(topic, partition) {
                    Some(element) => match element.offset() {
                        Offset::Offset(offset) => offset,
                        _ => -1,
                    },
                    None => -1,
                },
            )
            .collect())
    }

    /// Whether `group` has committed the end of every partition of `topic`;
    /// false while the broker cannot say.
    pub fn caught_up(&self, group: &str, topic: &str, partitions: i32) -> bool {
        let committed = self.try_committed_offsets(group, topic, partitions);
        let ends: Result<Vec<i64>, _> = self
            .fetch_high_watermarks(topic, partitions)
            .into_iter()
            .collect();
        matches!((committed, ends), (Ok(committed), Ok(ends)) if committed == ends)
    }

    pub fn high_watermarks(&self, topic: &str, partitions: i32) -> Vec<i64> {
        self.fetch_high_watermarks(topic, partitions)
            .into_iter()
            .map(|high| high.expect("watermarks"))
            .collect()
    }
}

/// A directory for one test's files, removed at drop.
/// Set RUNNEL_TEST_KEEP=1 to keep it (and the host logs in it) for a look.
pub fn scratch_dir() -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("runnel-test-")
        .tempdir()
        .expect("temp dir");
    if std::env::var_os("RUNNEL_TEST_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping test files in {}", dir.path().display());
    }
    dir
}

pub fn path_string(path: PathBuf) -> String {
    path.to_string_lossy().into_owned()
}

/// A broker a test runs for itself, to stop and start again on the same
/// port and data while a host uses it. Stopped when dropped.
pub struct OwnBroker {
    dir: tempfile::TempDir,
    pub cluster: Cluster,
}

impl OwnBroker {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A broker started with `broker.sh start` and `options` (as
    /// `["--security", "sasl_ssl"]`).
    pub fn start_with(options: &[&str]) -> Self {
        let dir = scratch_dir();
        let pid = std::process::id().to_string();
        let mut args = vec!["start", "--watch-pid", &pid];
        args.extend_from_slice(options);
        let bootstrap = run_broker_script(&args, dir.path());
        Self {
            dir,
            cluster: Cluster {
                bootstrap,
                options: Vec::new(),
            },
        }
    }

    /// The broker's directory (`broker.sh --dir`).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// SIGTERM: the broker shuts down cleanly, as in a rolling restart.
    pub fn stop(&self) {
        run_broker_script(&["stop"], self.dir.path());
    }

    /// SIGKILL: the broker crashes.
    pub fn kill(&self) {
        run_broker_script(&["kill"], self.dir.path());
    }

    /// Sends the broker process `signal` (`STOP` hangs it, `CONT` wakes it).
    pub fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("broker.pid"))
            .expect("the broker is running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.trim())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Starts the stopped broker again and waits until it answers.
    pub fn resume(&self) {
        run_broker_script(
            &["resume", "--watch-pid", &std::process::id().to_string()],
            self.dir.path(),
        );
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("tests/kafka/broker.sh"))
            .args(["stop", "--dir"])
            .arg(self.dir.path())
            .output();
    }
}

/// Runs `tests/kafka/broker.sh COMMAND --dir DIR ARGS...`; returns what it
/// printed on stdout.
fn run_broker_script(command_and_args: &[&str], dir: &std::path::Path) -> String {
    let (command, args) = command_and_args.split_first().expect("a command");
    let output = Command::new(repo_root().join("tests/kafka/broker.sh"))
        .arg(command)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("running tests/kafka/broker.sh");
    assert!(
        output.status.success(),
        "broker.sh {command} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("broker.sh prints text")
        .trim()
        .to_owned()
}
