//! End-to-end latency at fixed rates: a producer stamps each message with
//! the wall-clock time just before handing it to its client, and a consumer
//! on the output topic subtracts that stamp from the time it receives the
//! output. Both run in this process, so they read one clock.
//!
//! A warm-up phase runs first, until outputs flow (the subject has joined
//! its group) and a second longer, and for a JVM a few seconds more at the
//! highest rate; its numbers are dropped. Then each rate
//! is one phase, and the phase number travels in the message so late
//! outputs are counted where they belong.
//!
//! A machine shared with the broker stalls now and then for tens of
//! milliseconds, and a stall sets the p99 of whichever subject happened to
//! be running. So subjects are measured in several rounds, taken in turn,
//! and each subject's samples are pooled: stalls then fall on every subject
//! alike instead of on one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::histogram::Buckets;
use crate::kafka::{Cluster, PARTITIONS, VALUE_BYTES, message_key, message_value, unique_name};
use crate::machine::OtherLoad;
use crate::processor::{Harness, Processor, Subject};

/// The warm-up's rate: enough to see outputs quickly, little enough to
/// leave no backlog behind.
const WARM_UP_RATE: f64 = 100.0;
const WARM_UP_AFTER_FIRST_OUTPUT: Duration = Duration::from_secs(1);
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a JVM subject (Kafka Streams) runs at the highest rate after
/// the warm-up, untimed, so that its JIT compiler has compiled the path
/// each message takes before the first timed phase, as in a service that
/// has been running for a while.
pub const JVM_WARM_UP: Duration = Duration::from_secs(5);
/// How long a phase's last outputs may take to show up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Digits of the phase number and of the send time, at the start of every
/// value. Digits survive the uppercase plugin unchanged.
const PHASE_DIGITS: usize = 2;
const STAMP_DIGITS: usize = 20;

/// Latency at one rate for one subject, over every round.
#[derive(Debug, Clone)]
pub struct LatencyRun {
    pub rate: u32,
    pub sent: usize,
    pub received: usize,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// The p99 of each round alone: how much the machine moved it.
    pub p99_by_round_us: Vec<u64>,
    /// Cores other processes kept busy, the most of any round.
    pub other_load_cores: Option<f64>,
    /// Cores the whole machine kept busy, the most of any round.
    pub machine_busy_cores: Option<f64>,
    /// The time each message spent inside the subject, every round's.
    pub in_host: Buckets,
}

/// A median latency above this means outputs queued up behind the rate: a
/// backlog grew, and latency measures the backlog instead of the subject.
const MAX_KEPT_UP_P50_US: u64 = 100_000;

impl LatencyRun {
    /// Whether every message came out and the median stayed low enough to
    /// show that the subject (and the broker) kept up with the rate.
    pub fn kept_up(&self) -> bool {
        self.received == self.sent && self.p50_us <= MAX_KEPT_UP_P50_US
    }

    /// Pools the rounds at one rate.
    pub fn pooled(rate: u32, rounds: &[&RateSamples]) -> Self {
        let mut latencies: Vec<u64> = rounds
            .iter()
            .flat_map(|round| round.latencies_us.iter().copied())
            .collect();
        latencies.sort_unstable();
        let p99_by_round_us = rounds.iter().map(|round| round.p99_us()).collect();
        Self {
            rate,
            sent: rounds.iter().map(|round| round.sent).sum(),
            received: latencies.len(),
            p50_us: percentile(&latencies, 0.50),
            p90_us: percentile(&latencies, 0.90),
            p99_us: percentile(&latencies, 0.99),
            max_us: latencies.last().copied().unwrap_or(0),
            p99_by_round_us,
            other_load_cores: rounds
                .iter()
                .filter_map(|round| round.other_load_cores)
                .reduce(f64::max),
            machine_busy_cores: rounds
                .iter()
                .filter_map(|round| round.machine_busy_cores)
                .reduce(f64::max),
            in_host: rounds.iter().fold(Buckets::default(), |mut pooled, round| {
                pooled.add(&round.in_host);
                pooled
            }),
        }
    }
}

/// What one round at one rate saw.
#[derive(Debug, Clone)]
pub struct RateSamples {
    pub rate: u32,
    pub sent: usize,
    pub latencies_us: Vec<u64>,
    /// Cores other processes kept busy meanwhile.
    pub other_load_cores: Option<f64>,
    /// Cores the whole machine kept busy meanwhile.
    pub machine_busy_cores: Option<f64>,
    /// The time each message spent inside the subject.
    pub in_host: Buckets,
}

impl RateSamples {
    pub fn p99_us(&self) -> u64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        percentile(&sorted, 0.99)
    }
}

/// Measures `subject` at each of `rates` (messages per second) for
/// `seconds` each: one round.
pub fn measure(
    harness: &Harness,
    subject: &Subject,
    rates: &[u32],
    seconds: u64,
) -> anyhow::Result<Vec<RateSamples>> {
    let topics = harness.cluster.fresh_topics("latency")?;
    let arrivals = Arc::new(Arrivals::new(rates.len() + 1));
    let watcher = OutputWatcher::start(&harness.cluster, &topics.output, arrivals.clone())?;
    let sender = StampedSender::new(&harness.cluster, &topics.input)?;
    let mut processor = subject.start(harness, &topics, &unique_name("group"))?;

    warm_up(subject, &mut processor, &sender, &arrivals, rates)?;

    let mut runs = Vec::new();
    for (index, &rate) in rates.iter().enumerate() {
        let phase = index + 1;
        let count = rate as usize * seconds as usize;
        let measured: Vec<u32> = [Some(processor.pid()), harness.broker_pid]
            .into_iter()
            .flatten()
            .collect();
        let in_host_before = processor.processing_buckets()?;
        let other_load = OtherLoad::start(&measured);
        sender.send_at_rate(phase, rate as f64, count)?;
        arrivals.wait_for(phase, count, DRAIN_TIMEOUT);
        processor.ensure_running()?;
        let in_host = match (processor.processing_buckets()?, in_host_before) {
            (Some(after), Some(before)) => after.since(&before),
            _ => Buckets::default(),
        };
        runs.push(RateSamples {
            rate,
            sent: count,
            latencies_us: arrivals.take(phase),
            other_load_cores: other_load.as_ref().and_then(OtherLoad::cores),
            machine_busy_cores: other_load.as_ref().and_then(OtherLoad::machine_busy_cores),
            in_host,
        });
    }
    processor.stop();
    watcher.stop();
    Ok(runs)
}

/// Phase 0, whose numbers are dropped: until outputs flow and a second
/// longer, then for a JVM [`JVM_WARM_UP`] at the highest rate; and until
/// every warm-up message has come out, so that no backlog of it is left
/// for the first timed phase.
fn warm_up(
    subject: &Subject,
    processor: &mut Processor,
    sender: &StampedSender,
    arrivals: &Arrivals,
    rates: &[u32],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + WARM_UP_TIMEOUT;
    let mut sent = 0;
    while arrivals.count(0) == 0 {
        processor.ensure_running()?;
        if Instant::now() > deadline {
            bail!("no output within {WARM_UP_TIMEOUT:?} of starting the subject");
        }
        sent += sender.send_at_rate(0, WARM_UP_RATE, 10)?;
    }
    let settle = (WARM_UP_RATE * WARM_UP_AFTER_FIRST_OUTPUT.as_secs_f64()) as usize;
    sent += sender.send_at_rate(0, WARM_UP_RATE, settle)?;
    if subject.compiles_while_running() {
        let top_rate = rates.iter().copied().max().unwrap_or(0) as f64;
        let count = (top_rate * JVM_WARM_UP.as_secs_f64()) as usize;
        sent += sender.send_at_rate(0, top_rate, count)?;
    }
    arrivals.wait_for(0, sent, DRAIN_TIMEOUT);
    processor.ensure_running()
}

/// Latencies in microseconds, by phase.
struct Arrivals {
    by_phase: Mutex<Vec<Vec<u64>>>,
}

impl Arrivals {
    fn new(phases: usize) -> Self {
        Self {
            by_phase: Mutex::new(vec![Vec::new(); phases]),
        }
    }

    fn record(&self, phase: usize, latency_us: u64) {
        let mut by_phase = self.by_phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(latencies) = by_phase.get_mut(phase) {
            latencies.push(latency_us);
        }
    }

    fn count(&self, phase: usize) -> usize {
        let by_phase = self.by_phase.lock().unwrap_or_else(|e| e.into_inner());
        by_phase.get(phase).map_or(0, Vec::len)
    }

    fn wait_for(&self, phase: usize, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(phase) < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn take(&self, phase: usize) -> Vec<u64> {
        let mut by_phase = self.by_phase.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut by_phase[phase])
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sends stamped messages on a fixed schedule.
struct StampedSender {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
}

impl StampedSender {
    fn new(cluster: &Cluster, topic: &str) -> anyhow::Result<Self> {
        // linger.ms=0: the load generator sends each message at once, so
        // its own batching adds nothing to what is measured.
        let producer = cluster
            .client_config()
            .set("linger.ms", "0")
            .create()
            .context("creating the latency producer")?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// Sends `count` messages, the i-th at `i / rate` seconds from now, and
    /// returns `count`. A send that falls behind its slot goes at once
    /// rather than being skipped, so the rate holds on average.
    fn send_at_rate(&self, phase: usize, rate: f64, count: usize) -> anyhow::Result<usize> {
        let interval = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        for i in 0..count {
            let due = start + interval.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            self.send(phase, i)?;
        }
        Ok(count)
    }

    fn send(&self, phase: usize, i: usize) -> anyhow::Result<()> {
        let key = message_key(i);
        let value = stamped_value(phase, now_us(), i);
        let mut record = BaseRecord::to(&self.topic).key(&key).payload(&value);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => bail!("sending a stamped message failed: {error}"),
            }
        }
    }
}

impl Drop for StampedSender {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}

/// `phase` and the send time in front of an ordinary [`VALUE_BYTES`] value.
fn stamped_value(phase: usize, sent_us: u64, i: usize) -> Vec<u8> {
    let mut value = format!("{phase:0PHASE_DIGITS$}{sent_us:0STAMP_DIGITS$}").into_bytes();
    let rest = message_value(i, VALUE_BYTES - value.len());
    value.extend_from_slice(&rest);
    value
}

fn read_stamp(value: &[u8]) -> Option<(usize, u64)> {
    let digits = std::str::from_utf8(value.get(..PHASE_DIGITS + STAMP_DIGITS)?).ok()?;
    let (phase, stamp) = digits.split_at(PHASE_DIGITS);
    Some((phase.parse().ok()?, stamp.parse().ok()?))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// Reads the output topic from its start on a thread of its own and
/// records each output's latency as soon as it arrives.
struct OutputWatcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl OutputWatcher {
    fn start(cluster: &Cluster, topic: &str, arrivals: Arc<Arrivals>) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = cluster
            .client_config()
            // Assigned, not subscribed: no group join to wait for. The
            // group id is only there because librdkafka wants one.
            .set("group.id", crate::kafka::unique_name("watcher"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .context("creating the latency watcher")?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let received_us = now_us();
                if let Some((phase, sent_us)) = message.payload().and_then(read_stamp) {
                    arrivals.record(phase, received_us.saturating_sub(sent_us));
                }
            }
        });
        Ok(Self { stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_survives_upper_casing() {
        let value = stamped_value(3, 1_700_000_000_123_456, 42);
        assert_eq!(value.len(), VALUE_BYTES);
        let upper = value.to_ascii_uppercase();
        assert_eq!(read_stamp(&upper), Some((3, 1_700_000_000_123_456)));
    }

    #[test]
    fn rounds_are_pooled_and_kept_apart() {
        let round = |latencies_us: Vec<u64>, load| RateSamples {
            rate: 100,
            sent: 100,
            latencies_us,
            other_load_cores: load,
            machine_busy_cores: load.map(|other| other + 1.0),
            in_host: Buckets::default(),
        };
        let quiet = round((1..=100).collect(), Some(0.1));
        let stalled = round((1..=99).chain([5000]).collect(), None);
        let run = LatencyRun::pooled(100, &[&quiet, &stalled]);
        assert_eq!((run.sent, run.received), (200, 200));
        assert_eq!(run.p99_by_round_us, vec![99, 99]);
        assert_eq!(run.p50_us, 50);
        assert_eq!(run.p99_us, 99);
        assert_eq!(run.max_us, 5000);
        assert_eq!(run.other_load_cores, Some(0.1));
        assert_eq!(run.machine_busy_cores, Some(1.1));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.50), 50);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
