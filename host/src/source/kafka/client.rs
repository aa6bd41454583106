//! The pipeline's consumer: its configuration, and the hooks librdkafka
//! calls on it (client events, statistics, rebalances).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;

use super::commit::{StoredCommit, commit_stored};
use super::workers::{Workers, drain};
use crate::client_events::ClientEvents;
use crate::config::{
    BROKER_SIDE_TIMING, HOST_OWNED_CONSUMER_OPTIONS, HostOwnedOption, KafkaConfig, ResolvedPipeline,
};
use crate::pipeline::Pipeline;

pub(super) type PipelineConsumer = StreamConsumer<ConsumerHooks>;

/// Defaults the user may override.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    // Reconnect to a returning broker within a second, as the Java client
    // does by default, rather than librdkafka's 10 s.
    ("reconnect.backoff.max.ms", "1000"),
    // Stored offsets are committed in the background every second, and
    // synchronously on revocation and shutdown.
    ("enable.auto.commit", "true"),
    ("auto.commit.interval.ms", "1000"),
    ("auto.offset.reset", "earliest"),
    // Lag per partition for stats and metrics.
    ("statistics.interval.ms", "5000"),
    // A host killed without leaving its group holds its partitions until
    // its session times out: 10 s rather than librdkafka's 45 s. The
    // heartbeat runs on librdkafka's own thread, so a long batch does not
    // delay it (`max.poll.interval.ms` bounds those).
    ("session.timeout.ms", "10000"),
    ("heartbeat.interval.ms", "3000"),
    // Once a partition's prefetched messages pass librdkafka's queue
    // thresholds, its next fetch waits this long: 1 s by default, which a
    // fast pipeline spends idle with its queue drained. At batch 100 on
    // one broker a pipeline moved 460 k msg/s with 10 ms against 163-179 k
    // with the default (`bench/run.sh --sections throughput`), at the
    // same CPU per message.
    ("fetch.queue.backoff.ms", "10"),
];

pub(super) fn consumer_config(kafka: &KafkaConfig, settings: &ResolvedPipeline) -> ClientConfig {
    let options: &BTreeMap<String, String> = &settings.consumer;
    // The consumer group protocol (KIP-848) times sessions on the broker.
    let consumer_protocol = options
        .get("group.protocol")
        .is_some_and(|p| p == "consumer");
    let defaults = CONSUMER_DEFAULTS
        .iter()
        .filter(|(key, _)| !(consumer_protocol && BROKER_SIDE_TIMING.contains(key)))
        .copied();
    let mut config = kafka.client_config(defaults);
    config.set("group.id", &settings.group);
    for (key, value) in options {
        config.set(key, value);
    }
    // What the delivery guarantees rest on, after the user's options
    // (which configuration refuses to name these anyway).
    for (key, value) in HostOwnedOption::values(HOST_OWNED_CONSUMER_OPTIONS, settings.exactly_once)
    {
        config.set(key, value);
    }
    config
}

/// Hooks librdkafka calls on the consumer's polling thread.
pub(super) struct ConsumerHooks {
    pub pipeline: Arc<Pipeline>,
    pub events: ClientEvents,
    pub workers: Arc<Workers>,
    /// Offsets go with transactions: none is stored, none to commit here.
    pub exactly_once: bool,
    pub drain_timeout: Duration,
    /// The receive loop holds fetching back (see [`set_paused`]).
    pub fetch_paused: AtomicBool,
}

impl ClientContext for ConsumerHooks {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, text: &str) {
        self.events.report_log(level, facility, text);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.events.report_error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let recorder = &self.pipeline.recorder;
        let mut owned = Vec::new();
        for (topic, topic_stats) in &statistics.topics {
            for (partition, partition_stats) in &topic_stats.partitions {
                // Partition -1 is librdkafka's internal placeholder. A
                // partition given up stays in the statistics, its last lag
                // frozen, but no longer desired; a lag of -1 is not known.
                if *partition < 0 || !partition_stats.desired || partition_stats.consumer_lag < 0 {
                    continue;
                }
                recorder.lag(topic, *partition, partition_stats.consumer_lag);
                owned.push((topic.clone(), *partition));
            }
        }
        recorder.retain_lag(|topic, partition| {
            owned.iter().any(|(t, p)| t == topic && *p == partition)
        });
    }
}

impl ConsumerContext for ConsumerHooks {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let name = &self.pipeline.name;
        match rebalance {
            Rebalance::Revoke(partitions) => {
                tracing::info!(pipeline = %name, partitions = partitions.count(), "partitions revoked; draining their work");
                let keys = partitions
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect::<Vec<_>>();
                // Exactly once: a draining worker waits until its last
                // transaction is settled, committed with its offsets.
                self.drain_revoked(&keys);
                if !self.exactly_once && commit_stored(consumer, name) == StoredCommit::Failed {
                    tracing::error!(pipeline = %name, "offsets of revoked partitions not committed; their next owner repeats that work");
                }
            }
            Rebalance::Assign(partitions) => {
                tracing::info!(pipeline = %name, partitions = partitions.count(), "partitions assigned");
            }
            Rebalance::Error(error) => {
                tracing::warn!(pipeline = %name, %error, "rebalance failed");
            }
        }
    }

    /// librdkafka keeps a partition's pause across a revoke and a new
    /// assignment, whatever the receive loop did meanwhile: a partition
    /// paused before a rebalance came back paused while the loop, which had
    /// resumed an empty assignment, took fetching to be on, and the
    /// partition was never read again. Each assigned partition gets the
    /// loop's state instead.
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(partitions) = rebalance else {
            return;
        };
        let pause = self.fetch_paused.load(Ordering::Relaxed);
        let applied = if pause {
            consumer.pause(partitions)
        } else {
            consumer.resume(partitions)
        };
        if let Err(error) = applied {
            tracing::warn!(pipeline = %self.pipeline.name, %error, pause, "could not pause or resume the assigned partitions");
        }
    }
}

impl ConsumerHooks {
    /// Lets the workers of revoked partitions finish what they hold, up to
    /// the drain timeout.
    fn drain_revoked(&self, keys: &[(String, i32)]) {
        let workers = self.workers.take(keys.iter().cloned());
        if workers.is_empty() {
            return;
        }
        // This runs inside the receive loop's poll; the workers run on
        // other tasks, so hand this thread over while waiting for them.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let drained =
            tokio::task::block_in_place(|| handle.block_on(drain(workers, self.drain_timeout)));
        if !drained {
            tracing::warn!(pipeline = %self.pipeline.name, "revoked partitions did not drain in time; their unfinished messages will be processed again by the next owner");
        }
    }
}

/// Pauses or resumes fetching for every assigned partition; returns
/// whether that worked.
pub(super) fn set_paused(consumer: &PipelineConsumer, pause: bool, pipeline: &str) -> bool {
    let result = consumer.assignment().and_then(|assignment| {
        if pause {
            consumer.pause(&assignment)
        } else {
            consumer.resume(&assignment)
        }
    });
    match result {
        Ok(()) => {
            consumer
                .context()
                .fetch_paused
                .store(pause, Ordering::Relaxed);
            tracing::debug!(
                pipeline,
                pause,
                "fetching paused or resumed on in-flight bound"
            );
            true
        }
        Err(error) => {
            tracing::warn!(pipeline, %error, pause, "could not pause or resume fetching");
            false
        }
    }
}
