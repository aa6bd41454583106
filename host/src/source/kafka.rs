//! The Kafka input of a pipeline: one consumer-group consumer, one worker per
//! assigned partition (order kept within a partition, partitions processed
//! in parallel), and an offset stored only once every output of the message
//! and of all messages before it in the partition has been acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use thiserror::Error;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{Notify, OnceCell};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::batch::BatchPolicy;
use crate::config::{CommitStrategy, ResolvedPipeline};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::runtime::{BatchWriter, NewMessage};
use crate::sink::OutputProducer;
use crate::stats::PipelineStats;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("failed to create the consumer for pipeline {pipeline}: {source}")]
    Create {
        pipeline: String,
        source: Box<KafkaError>,
    },
    #[error("failed to subscribe pipeline {pipeline} to {topics}: {source}")]
    Subscribe {
        pipeline: String,
        topics: String,
        source: Box<KafkaError>,
    },
}

/// Longest the receive loop stops polling to let in-flight work drain
/// before it pauses the partitions instead.
const MAX_UNPOLLED: Duration = Duration::from_secs(5);

/// Consumer settings Runnel's guarantees rest on, applied after the user's.
const CONSUMER_REQUIRED: &[(&str, &str)] = &[
    // Offsets are stored by the host once outputs are acknowledged.
    ("enable.auto.offset.store", "false"),
];

/// Defaults the user may override.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    // Stored offsets are committed in the background every second, and
    // synchronously on revocation and shutdown.
    ("enable.auto.commit", "true"),
    ("auto.commit.interval.ms", "1000"),
    ("auto.offset.reset", "earliest"),
    // Lag per partition for stats and metrics.
    ("statistics.interval.ms", "5000"),
];

type PartitionKey = (String, i32);

/// A partition's worker: the sender feeding it and the task that finishes
/// when its last offset is stored.
struct PartitionWorker {
    input: UnboundedSender<Received>,
    finished: JoinHandle<()>,
}

/// Workers by topic and partition, shared between the receive loop and the
/// rebalance callback. Keyed by topic first so that finding a message's
/// worker, once per message, allocates nothing.
#[derive(Default)]
struct Workers {
    by_topic: Mutex<HashMap<String, HashMap<i32, PartitionWorker>>>,
}

impl Workers {
    fn take(&self, keys: impl IntoIterator<Item = PartitionKey>) -> Vec<PartitionWorker> {
        let mut map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        keys.into_iter()
            .filter_map(|(topic, partition)| map.get_mut(&topic)?.remove(&partition))
            .collect()
    }

    fn take_all(&self) -> Vec<PartitionWorker> {
        let mut map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        map.drain()
            .flat_map(|(_, partitions)| partitions.into_values())
            .collect()
    }
}

/// Closes the workers' inputs and waits until each has flushed its partial
/// batch and stored its last offset, up to `timeout`. Returns whether all
/// finished in time.
async fn drain(workers: Vec<PartitionWorker>, timeout: Duration) -> bool {
    let finished: Vec<_> = workers
        .into_iter()
        .map(|worker| {
            drop(worker.input);
            worker.finished
        })
        .collect();
    tokio::time::timeout(timeout, futures::future::join_all(finished))
        .await
        .is_ok()
}

/// Hooks librdkafka calls on the consumer's polling thread.
struct ConsumerHooks {
    pipeline: String,
    workers: Arc<Workers>,
    transactions: Option<Arc<TransactionSettings>>,
    drain_timeout: Duration,
    stats: Arc<PipelineStats>,
    metrics: Metrics,
}

impl ClientContext for ConsumerHooks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(pipeline = %self.pipeline, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(pipeline = %self.pipeline, facility = fac, "{log_message}")
            }
            _ => tracing::debug!(pipeline = %self.pipeline, facility = fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(pipeline = %self.pipeline, %error, "kafka client error: {reason}");
    }

    fn stats(&self, statistics: Statistics) {
        let mut owned = Vec::new();
        for (topic, topic_stats) in &statistics.topics {
            for (partition, partition_stats) in &topic_stats.partitions {
                // Partition -1 is librdkafka's internal placeholder; a lag of
                // -1 means the partition is not assigned here.
                if *partition < 0 || partition_stats.consumer_lag < 0 {
                    continue;
                }
                let lag = partition_stats.consumer_lag;
                self.stats.set_lag(topic, *partition, lag);
                self.metrics
                    .set_consumer_lag(&self.pipeline, topic, *partition, lag);
                owned.push((topic.clone(), *partition));
            }
        }
        self.stats.retain_lag(|topic, partition| {
            owned.iter().any(|(t, p)| t == topic && *p == partition)
        });
    }
}

impl ConsumerContext for ConsumerHooks {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                let keys = partitions
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect::<Vec<_>>();
                let workers = self.workers.take(keys.clone());
                tracing::info!(pipeline = %self.pipeline, partitions = partitions.count(), "partitions revoked; draining their work");
                if !workers.is_empty() {
                    // This runs inside the receive loop's poll; the workers
                    // run on other tasks, so hand this thread over while
                    // waiting for them.
                    if let Ok(handle) = tokio::runtime::Handle::try_current() {
                        let drained = tokio::task::block_in_place(|| {
                            handle.block_on(drain(workers, self.drain_timeout))
                        });
                        if !drained {
                            tracing::warn!(pipeline = %self.pipeline, "revoked partitions did not drain in time; their unfinished messages will be processed again by the next owner");
                        }
                    }
                }
                if let Some(transactions) = &self.transactions {
                    transactions.forget(&keys);
                } else if !commit_stored(consumer, &self.pipeline) {
                    tracing::error!(pipeline = %self.pipeline, "offsets of revoked partitions not committed; their next owner repeats that work");
                }
            }
            Rebalance::Assign(partitions) => {
                tracing::info!(pipeline = %self.pipeline, partitions = partitions.count(), "partitions assigned");
                if let (Some(transactions), Ok(handle)) =
                    (&self.transactions, tokio::runtime::Handle::try_current())
                {
                    for element in partitions.elements() {
                        let transactions = transactions.clone();
                        let (pipeline, topic, partition) = (
                            self.pipeline.clone(),
                            element.topic().to_owned(),
                            element.partition(),
                        );
                        handle.spawn(async move {
                            transactions.producer(&pipeline, &topic, partition).await;
                        });
                    }
                }
            }
            Rebalance::Error(error) => {
                tracing::warn!(pipeline = %self.pipeline, %error, "rebalance failed");
            }
        }
    }
}

/// Commits the stored offsets synchronously, retrying for a few seconds: a
/// commit lost here (a busy coordinator, a timeout) would make the next
/// owner repeat work that is already done. Having nothing to commit is not
/// an error. Returns whether the offsets are committed.
fn commit_stored<C: Consumer<X>, X: ConsumerContext>(consumer: &C, pipeline: &str) -> bool {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=COMMIT_ATTEMPTS {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => return true,
            Err(error) => {
                tracing::warn!(pipeline, %error, attempt, "offset commit failed");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    false
}

/// Synchronous commits tried before giving up (about ten seconds in all).
const COMMIT_ATTEMPTS: u32 = 8;

type PipelineConsumer = StreamConsumer<ConsumerHooks>;

/// Everything a partition worker needs, shared by all of a pipeline's.
struct WorkerShared {
    pipeline: Arc<Pipeline>,
    consumer: Arc<PipelineConsumer>,
    policy: BatchPolicy,
    commit: CommitStrategy,
    in_flight: InFlight,
    /// Cancelled when a failure stops this pipeline (`on_failure = "stop"`).
    halt: CancellationToken,
    /// With exactly-once, each partition worker gets a transactional
    /// producer built from these.
    transactions: Option<Arc<TransactionSettings>>,
}

impl WorkerShared {
    /// `work` is done (committed, or given up on).
    fn finished(&self, work: Work) {
        self.in_flight.remove(work);
    }
}

/// A message and the instant the receive loop took it from librdkafka,
/// from which the time it spent in the host is measured.
struct Received {
    message: OwnedMessage,
    at: quanta::Instant,
}

/// Messages received but not yet done, counted and weighed.
#[derive(Debug, Clone, Copy, Default)]
struct Work {
    messages: usize,
    /// Key and value bytes.
    bytes: usize,
}

impl Work {
    fn of(batch: &[Received]) -> Self {
        Self {
            messages: batch.len(),
            bytes: batch
                .iter()
                .map(|received| message_bytes(&received.message))
                .sum(),
        }
    }
}

fn message_bytes(message: &OwnedMessage) -> usize {
    message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len)
}

/// The pipeline's back-pressure gauge: what is in flight, against the
/// configured bounds.
struct InFlight {
    messages: AtomicUsize,
    bytes: AtomicUsize,
    max: Work,
    /// Signalled whenever in-flight work finishes.
    room: Notify,
}

impl InFlight {
    fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            messages: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max: Work {
                messages: max_messages,
                bytes: max_bytes,
            },
            room: Notify::new(),
        }
    }

    fn add(&self, bytes: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn remove(&self, work: Work) {
        self.messages.fetch_sub(work.messages, Ordering::Relaxed);
        self.bytes.fetch_sub(work.bytes, Ordering::Relaxed);
        self.room.notify_waiters();
    }

    /// Whether either count has reached `percent` of its bound.
    fn at(&self, percent: usize) -> bool {
        let messages = self.messages.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        messages * 100 >= self.max.messages * percent || bytes * 100 >= self.max.bytes * percent
    }
}

struct TransactionSettings {
    brokers: String,
    producer_options: BTreeMap<String, String>,
    group: String,
    /// One transactional producer per owned partition, started as soon as
    /// the partition is assigned: its start fences the previous owner and
    /// aborts that owner's open transaction, without which the consumer
    /// could not even read the partition's committed offset (it stays
    /// "unstable" until the transaction ends).
    producers: Mutex<HashMap<PartitionKey, Arc<OnceCell<Option<OutputProducer>>>>>,
}

impl TransactionSettings {
    fn cell(&self, key: &PartitionKey) -> Arc<OnceCell<Option<OutputProducer>>> {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// The partition's producer, started on first use.
    async fn producer(
        &self,
        pipeline: &str,
        topic: &str,
        partition: i32,
    ) -> Option<OutputProducer> {
        let key = (topic.to_owned(), partition);
        self.cell(&key)
            .get_or_init(|| async {
                let id = format!("runnel-{}-{topic}-{partition}", self.group);
                match OutputProducer::transactional(&self.brokers, &self.producer_options, &id).await {
                    Ok(producer) => Some(producer),
                    Err(error) => {
                        tracing::error!(pipeline, topic, partition, %error, "cannot start transactions");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    fn forget(&self, keys: &[PartitionKey]) {
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            producers.remove(key);
        }
    }
}

/// A pipeline fed by Kafka.
pub struct KafkaInput {
    settings: ResolvedPipeline,
    shared: Arc<WorkerShared>,
    workers: Arc<Workers>,
    drain_timeout: Duration,
}

impl KafkaInput {
    pub fn new(
        brokers: &str,
        producer_options: &BTreeMap<String, String>,
        settings: ResolvedPipeline,
        pipeline: Arc<Pipeline>,
        drain_timeout: Duration,
    ) -> Result<Self, SourceError> {
        let workers = Arc::new(Workers::default());
        let transactions = settings.exactly_once.then(|| {
            Arc::new(TransactionSettings {
                brokers: brokers.to_owned(),
                producer_options: producer_options.clone(),
                group: settings.group.clone(),
                producers: Mutex::new(HashMap::new()),
            })
        });
        let hooks = ConsumerHooks {
            pipeline: settings.name.clone(),
            workers: workers.clone(),
            transactions: transactions.clone(),
            drain_timeout,
            stats: pipeline.stats.clone(),
            metrics: pipeline.metrics.clone(),
        };
        let consumer: PipelineConsumer = consumer_config(brokers, &settings)
            .create_with_context(hooks)
            .map_err(|source| SourceError::Create {
                pipeline: settings.name.clone(),
                source: Box::new(source),
            })?;
        let topics: Vec<&str> = settings.inputs.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| SourceError::Subscribe {
                pipeline: settings.name.clone(),
                topics: settings.inputs.join(", "),
                source: Box::new(source),
            })?;
        let shared = Arc::new(WorkerShared {
            pipeline,
            consumer: Arc::new(consumer),
            policy: BatchPolicy {
                batch_size: settings.batch_size,
                batch_timeout: settings.batch_timeout,
            },
            commit: settings.commit,
            in_flight: InFlight::new(settings.max_in_flight, settings.max_in_flight_bytes),
            halt: CancellationToken::new(),
            transactions,
        });
        Ok(Self {
            settings,
            shared,
            workers,
            drain_timeout,
        })
    }

    /// Consumes until `shutdown`, then drains: partial batches are flushed
    /// through the plugin, outputs confirmed, offsets stored and committed.
    /// Returns whether the drain finished within the drain timeout.
    pub async fn run(self, shutdown: CancellationToken) -> bool {
        let consumer = self.shared.consumer.clone();
        let stats = self.shared.pipeline.stats.clone();
        let name = self.settings.name.clone();
        stats.set_running(true);
        let mut paused = false;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut receive_errors = 0u32;
        // One stream for the whole run: `recv()` would build one per message,
        // registering and dropping a waker slot under a lock each time.
        let mut messages = consumer.stream();
        loop {
            // Back-pressure. Over the bound, stop taking messages and let
            // librdkafka's own bounded queue absorb the fetches: that costs
            // nothing once work drains. Only if it does not drain soon (a
            // slow plugin) are the partitions paused, which keeps the
            // consumer polling (the group would evict a silent one) but
            // throws away prefetched data and refetches it on resume.
            if !paused && self.shared.in_flight.at(100) {
                let drained = self.wait_for_room(75, &shutdown).await;
                if !drained && !shutdown.is_cancelled() {
                    paused = set_paused(&consumer, true, &name);
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = self.shared.halt.cancelled() => {
                    tracing::error!(pipeline = %name, "pipeline halted at a failure; nothing after it is committed");
                    break;
                }
                received = messages.next() => match received.expect("Kafka message streams never end") {
                    Ok(message) => {
                        let at = quanta::Instant::now();
                        receive_errors = 0;
                        self.dispatch(Received { message: message.detach(), at });
                    }
                    Err(error) => {
                        // librdkafka reconnects by itself; back off so a
                        // broker outage does not spin or flood the log.
                        receive_errors = receive_errors.saturating_add(1);
                        let backoff = Duration::from_millis(100 << receive_errors.min(6));
                        tracing::warn!(pipeline = %name, %error, ?backoff, "receive failed");
                        tokio::time::sleep(backoff).await;
                    }
                },
                _ = tick.tick() => {
                    if paused && !self.shared.in_flight.at(50) {
                        paused = !set_paused(&consumer, false, &name);
                    }
                }
            }
        }
        drop(messages);
        tracing::info!(pipeline = %name, "stopping: draining in-flight work");
        let drained = drain(self.workers.take_all(), self.drain_timeout).await;
        let committer = consumer.clone();
        let pipeline = name.clone();
        let committed = tokio::task::spawn_blocking(move || commit_stored(&*committer, &pipeline))
            .await
            .unwrap_or(false);
        let drained = drained && committed;
        stats.set_running(false);
        if drained {
            tracing::info!(pipeline = %name, "stopped; offsets committed");
        } else {
            tracing::warn!(pipeline = %name, "drain timed out; unfinished messages will be processed again");
        }
        drained
    }

    /// Waits until in-flight work falls below `percent` of its bounds, for
    /// at most `MAX_UNPOLLED` (well inside `max.poll.interval.ms`). Returns
    /// whether it did.
    async fn wait_for_room(&self, percent: usize, shutdown: &CancellationToken) -> bool {
        let deadline = tokio::time::Instant::now() + MAX_UNPOLLED;
        let in_flight = &self.shared.in_flight;
        while in_flight.at(percent) {
            let notified = in_flight.room.notified();
            // Checked again after registering, so no wake-up is missed.
            if !in_flight.at(percent) {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
        true
    }

    fn dispatch(&self, received: Received) {
        let message = &received.message;
        self.shared.in_flight.add(message_bytes(message));
        let mut map = self
            .workers
            .by_topic
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let partitions = match map.get_mut(message.topic()) {
            Some(partitions) => partitions,
            None => map.entry(message.topic().to_owned()).or_default(),
        };
        let worker = partitions
            .entry(message.partition())
            .or_insert_with(|| spawn_partition_worker(self.shared.clone()));
        let partition = message.partition();
        if worker.input.send(received).is_err() {
            // The worker stopped (it cannot, short of a panic): drop the
            // message unstored so it is consumed again after a restart.
            tracing::error!(pipeline = %self.settings.name, partition, "partition worker is gone");
        }
    }
}

fn set_paused(consumer: &PipelineConsumer, pause: bool, pipeline: &str) -> bool {
    let result = consumer.assignment().and_then(|assignment| {
        if pause {
            consumer.pause(&assignment)
        } else {
            consumer.resume(&assignment)
        }
    });
    match result {
        Ok(()) => {
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

fn consumer_config(brokers: &str, settings: &ResolvedPipeline) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", &settings.group);
    for (key, value) in CONSUMER_DEFAULTS {
        config.set(*key, *value);
    }
    let options: &BTreeMap<String, String> = &settings.consumer;
    for (key, value) in options {
        config.set(key, value);
    }
    for (key, value) in CONSUMER_REQUIRED {
        config.set(*key, *value);
    }
    if settings.exactly_once {
        // Offsets are committed inside the output transactions, never on
        // their own; and inputs written transactionally are read only once
        // committed.
        config
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
    }
    config
}

/// The outputs of a run of consecutive messages of one partition, and the
/// offset to store once they are all acknowledged.
struct Acknowledgement {
    results: Vec<crate::pipeline::MessageResult>,
    topic: String,
    partition: i32,
    next_offset: i64,
    work: Work,
}

fn spawn_partition_worker(shared: Arc<WorkerShared>) -> PartitionWorker {
    let (input, messages) = unbounded_channel();
    let (acks, pending) = unbounded_channel();
    let acker = tokio::spawn(confirm_and_store(shared.clone(), pending));
    let worker = tokio::spawn(process_partition(shared, messages, acks));
    let finished = tokio::spawn(async move {
        let _ = worker.await;
        let _ = acker.await;
    });
    PartitionWorker { input, finished }
}

/// Batches a partition's messages and runs them through the pipeline, one
/// batch at a time so order is kept.
async fn process_partition(
    shared: Arc<WorkerShared>,
    mut messages: UnboundedReceiver<Received>,
    acks: UnboundedSender<Acknowledgement>,
) {
    let mut transactional = None;
    let mut batch = Vec::with_capacity(shared.policy.batch_size);
    while shared.policy.next_batch(&mut messages, &mut batch).await {
        let Some(Received { message: last, .. }) = batch.last() else {
            continue;
        };
        let (topic, partition, next_offset) =
            (last.topic().to_owned(), last.partition(), last.offset() + 1);
        let work = Work::of(&batch);
        if shared.halt.is_cancelled() {
            // The pipeline stopped at a failure: leave the rest uncommitted.
            shared.finished(work);
            batch.clear();
            continue;
        }
        let encoded = encode(&shared.pipeline.name, &batch, work.bytes);
        if let Some(transactions) = &shared.transactions {
            if transactional.is_none() {
                transactional = transactions
                    .producer(&shared.pipeline.name, &topic, partition)
                    .await;
            }
            match &transactional {
                Some(producer) => {
                    process_in_transaction(&shared, producer, &encoded, &batch, &topic, partition)
                        .await;
                }
                None => shared.halt.cancel(),
            }
            shared.finished(work);
            batch.clear();
            continue;
        }
        if shared.commit == CommitStrategy::BeforeProcessing && messages.is_closed() {
            // The partition was revoked or the host is stopping: these
            // messages are not committed, so their next reader gets them;
            // processing them now could repeat them.
            shared.finished(work);
            batch.clear();
            continue;
        }
        if shared.commit == CommitStrategy::BeforeProcessing
            && !commit_before_processing(&shared, &topic, partition, next_offset).await
        {
            // At most once: a batch whose commit cannot be made durable is
            // not processed (the partition was most likely taken away).
            tracing::error!(pipeline = %shared.pipeline.name, topic, partition, messages = work.messages, "batch skipped: its offsets could not be committed before processing");
            shared.finished(work);
            batch.clear();
            continue;
        }
        let mut results = shared
            .pipeline
            .process(&encoded, &shared.pipeline.producer)
            .await;
        // With `on_failure = "stop"`, the failed message is the first one
        // not committed.
        let next_offset = match results.iter().position(|result| result.stop) {
            Some(stop) => {
                results.truncate(stop);
                shared.halt.cancel();
                batch[stop].message.offset()
            }
            None => next_offset,
        };
        let handled = batch[..results.len()].iter().map(|received| received.at);
        shared.pipeline.series.record_processing(handled);
        batch.clear();
        let acknowledgement = Acknowledgement {
            results,
            topic,
            partition,
            next_offset,
            work,
        };
        if acks.send(acknowledgement).is_err() {
            return;
        }
    }
}

/// Exactly-once: the batch's outputs, dead letters and consumed offset are
/// committed in one transaction. An aborted transaction is run again from
/// the same batch, so the outputs that become visible are those of exactly
/// one run.
async fn process_in_transaction(
    shared: &WorkerShared,
    producer: &OutputProducer,
    encoded: &crate::runtime::EncodedBatch,
    batch: &[Received],
    topic: &str,
    partition: i32,
) {
    let name = &shared.pipeline.name;
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            producer.begin_transaction().await?;
            let results = shared.pipeline.process(encoded, producer).await;
            let (handled, next_offset) = match results.iter().position(|result| result.stop) {
                Some(stop) => {
                    shared.halt.cancel();
                    (stop, batch[stop].message.offset())
                }
                None => (batch.len(), batch[batch.len() - 1].message.offset() + 1),
            };
            let mut offsets = TopicPartitionList::new();
            offsets.add_partition_offset(topic, partition, Offset::Offset(next_offset))?;
            let group = shared
                .consumer
                .group_metadata()
                // Present for a group consumer once it has joined.
                .ok_or(KafkaError::Global(RDKafkaErrorCode::State))?;
            producer.commit_transaction(offsets, group).await?;
            Ok::<_, KafkaError>(handled)
        };
        match attempt.await {
            Ok(handled) => {
                let received = batch[..handled].iter().map(|received| received.at);
                shared.pipeline.series.record_processing(received);
                return;
            }
            Err(error) => {
                let fatal = matches!(&error, KafkaError::Transaction(e) if e.is_fatal());
                if fatal {
                    // Fenced: another host owns this partition now.
                    tracing::warn!(pipeline = %name, topic, partition, %error, "transactional producer fenced; leaving the partition to its new owner");
                    return;
                }
                tracing::warn!(pipeline = %name, topic, partition, %error, "transaction failed; aborting and running the batch again");
                let _ = producer.abort_transaction().await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// At-most-once: the batch's offsets are committed before the plugin sees
/// it, so a crash can lose the batch but never repeat it.
async fn commit_before_processing(
    shared: &Arc<WorkerShared>,
    topic: &str,
    partition: i32,
    next_offset: i64,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    for _ in 0..COMMIT_ATTEMPTS {
        let consumer = shared.consumer.clone();
        let owned_topic = topic.to_owned();
        let committed = tokio::task::spawn_blocking(move || -> KafkaResult<()> {
            let mut offsets = TopicPartitionList::new();
            offsets.add_partition_offset(&owned_topic, partition, Offset::Offset(next_offset))?;
            consumer.commit(&offsets, CommitMode::Sync)
        })
        .await;
        let error = match committed {
            Ok(Ok(())) => return true,
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        };
        // Processing before the commit is durable would break the promise
        // of at-most-once; wait instead.
        tracing::warn!(pipeline = %shared.pipeline.name, topic, partition, %error, "commit before processing failed; retrying before the batch is processed");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    false
}

/// Encodes a partition's batch for the plugin; `key_value_bytes` sizes the
/// buffer.
fn encode(
    source: &str,
    batch: &[Received],
    key_value_bytes: usize,
) -> crate::runtime::EncodedBatch {
    let mut builder = BatchWriter::with_capacity(source, batch.len(), key_value_bytes);
    for Received { message, .. } in batch {
        let input = NewMessage {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key(),
            value: message.payload().unwrap_or_default(),
        };
        let headers = message.headers().into_iter().flat_map(|headers| {
            headers
                .iter()
                .map(|header| (header.key, header.value.unwrap_or_default()))
        });
        builder.push(&input, headers);
    }
    builder.finish()
}

/// Waits for each batch's outputs, in order, then stores the offset after
/// the batch: an offset is never stored ahead of an unacknowledged output.
async fn confirm_and_store(
    shared: Arc<WorkerShared>,
    mut pending: UnboundedReceiver<Acknowledgement>,
) {
    let pipeline = &shared.pipeline;
    while let Some(acknowledgement) = pending.recv().await {
        let mut outputs = 0u64;
        for result in acknowledgement.results {
            for delivery in result.deliveries {
                if pipeline.producer.confirm(delivery).await.is_err() {
                    return;
                }
                outputs += 1;
            }
        }
        pipeline.series.record_outputs(outputs);
        if shared.commit == CommitStrategy::AfterProcessing {
            store_offset(
                &shared,
                &acknowledgement.topic,
                acknowledgement.partition,
                acknowledgement.next_offset,
            );
        }
        shared.finished(acknowledgement.work);
    }
}

/// Marks everything before `next_offset` as done; the background committer
/// (or the commit at revocation and shutdown) sends it to Kafka.
fn store_offset(shared: &WorkerShared, topic: &str, partition: i32, next_offset: i64) {
    let mut offsets = TopicPartitionList::new();
    let stored = offsets
        .add_partition_offset(topic, partition, Offset::Offset(next_offset))
        .and_then(|()| shared.consumer.store_offsets(&offsets));
    if let Err(error) = stored {
        // The partition was taken away before its work finished; the next
        // owner processes these messages again.
        tracing::warn!(pipeline = %shared.pipeline.name, topic, partition, %error, "could not store offset");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_bounded_by_messages_or_bytes_whichever_comes_first() {
        let in_flight = InFlight::new(4, 1000);
        for _ in 0..3 {
            in_flight.add(10);
        }
        assert!(in_flight.at(75), "3 of 4 messages");
        assert!(!in_flight.at(100));
        in_flight.add(10);
        assert!(in_flight.at(100), "4 of 4 messages");

        in_flight.remove(Work {
            messages: 3,
            bytes: 30,
        });
        assert!(!in_flight.at(50), "1 message, 10 bytes");
        in_flight.add(990);
        assert!(in_flight.at(100), "2 messages, but 1000 bytes");
    }
}
