//! The Kafka input of a pipeline: one consumer-group consumer, one worker per
//! assigned partition (order kept within a partition, partitions processed
//! in parallel), and an offset stored only once every output of the message
//! and of all messages before it in the partition has been acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

use crate::backoff::Backoff;
use crate::batch::BatchPolicy;
use crate::client_events::{ClientEvents, LogLimiter};
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
];

type PartitionKey = (String, i32);

/// A partition's worker: the sender feeding it and the task that finishes
/// when its last offset is stored.
struct PartitionWorker {
    input: UnboundedSender<Received>,
    finished: JoinHandle<()>,
    control: WorkerControl,
}

/// What the receive loop and a partition worker's two tasks tell each other.
#[derive(Clone)]
struct WorkerControl {
    /// Tells a rewind request from this worker apart from one of a worker
    /// that served the partition before.
    id: u64,
    /// The worker's input is closed: stop waiting (for a producer, for a
    /// rewind's backoff) and finish.
    closing: CancellationToken,
    /// Outputs of this worker went unacknowledged and the partition is
    /// processed again from there by a new worker: drop everything still
    /// here, store nothing more.
    abandoned: CancellationToken,
}

/// A partition worker's request to process its partition again from
/// `offset`, the first message whose outputs were not acknowledged.
struct Rewind {
    key: PartitionKey,
    offset: i64,
    worker: u64,
    /// Rewinds in a row with nothing acknowledged in between, this one
    /// included: the new worker waits longer before each.
    attempt: u32,
}

/// How long a worker that replaces a rewound one waits before it starts:
/// an output that keeps failing (a binding that refuses it) is retried,
/// not spun on.
const REWIND_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(200), Duration::from_secs(10));

/// How a new worker starts: at once, or after the worker it replaces has
/// finished and a backoff has passed.
struct WorkerStart {
    after: Option<JoinHandle<()>>,
    delay: Duration,
    /// Rewinds in a row before this worker.
    rewinds: u32,
}

impl WorkerStart {
    fn now() -> Self {
        Self {
            after: None,
            delay: Duration::ZERO,
            rewinds: 0,
        }
    }
}

/// Workers by topic and partition, shared between the receive loop and the
/// rebalance callback. Keyed by topic first so that finding a message's
/// worker, once per message, allocates nothing.
#[derive(Default)]
struct Workers {
    by_topic: Mutex<HashMap<String, HashMap<i32, PartitionWorker>>>,
}

impl Workers {
    /// The worker of `key`, if it is worker `id`.
    fn take_worker(&self, key: &PartitionKey, id: u64) -> Option<PartitionWorker> {
        let mut map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        let partitions = map.get_mut(&key.0)?;
        if partitions.get(&key.1)?.control.id != id {
            return None;
        }
        partitions.remove(&key.1)
    }

    fn insert(&self, key: PartitionKey, worker: PartitionWorker) {
        let mut map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.0).or_default().insert(key.1, worker);
    }

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
            worker.control.closing.cancel();
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
    events: ClientEvents,
    workers: Arc<Workers>,
    transactions: Option<Arc<TransactionSettings>>,
    drain_timeout: Duration,
    stats: Arc<PipelineStats>,
    metrics: Metrics,
}

impl ClientContext for ConsumerHooks {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, text: &str) {
        self.events.report_log(level, facility, text);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.events.report_error(error, reason);
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
                            let stopping = transactions.stopping.clone();
                            transactions
                                .producer(&pipeline, &topic, partition, &stopping)
                                .await;
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
    for attempt in 1..=COMMIT_ATTEMPTS {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => return true,
            Err(error) => {
                tracing::warn!(pipeline, %error, attempt, "offset commit failed");
                std::thread::sleep(COMMIT_BACKOFF.delay(attempt));
            }
        }
    }
    false
}

/// Synchronous commits tried before giving up (about ten seconds in all).
const COMMIT_ATTEMPTS: u32 = 8;
const COMMIT_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2));

/// How long one transaction (begin, the plugin call, outputs, offsets,
/// commit) may take before its producer is taken for stuck and replaced:
/// after a broker hung for seconds, a transactional producer was seen to
/// never finish a transaction that its neighbours finished at once.
const TRANSACTION_ATTEMPT_LIMIT: Duration = Duration::from_secs(30);

/// Waits between tries to start or recover a transactional producer.
const TRANSACTION_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));

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
    /// Where workers ask the receive loop to process a partition again.
    rewinds: UnboundedSender<Rewind>,
    next_worker_id: AtomicU64,
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
    metrics: Metrics,
    /// One transactional producer per owned partition, started as soon as
    /// the partition is assigned: its start fences the previous owner and
    /// aborts that owner's open transaction, without which the consumer
    /// could not even read the partition's committed offset (it stays
    /// "unstable" until the transaction ends).
    producers: Mutex<HashMap<PartitionKey, Arc<OnceCell<OutputProducer>>>>,
    /// Cancelled when the pipeline stops: producers still starting give up.
    stopping: CancellationToken,
}

impl TransactionSettings {
    fn cell(&self, key: &PartitionKey) -> Arc<OnceCell<OutputProducer>> {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Whether `cell` is still the partition's: revocation forgets it.
    fn is_current(&self, key: &PartitionKey, cell: &Arc<OnceCell<OutputProducer>>) -> bool {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, cell))
    }

    /// The partition's producer, started on first use. A start that fails
    /// (the broker is away) is tried again with backoff until it succeeds,
    /// the partition is revoked, or `closing` is cancelled (then `None`).
    async fn producer(
        &self,
        pipeline: &str,
        topic: &str,
        partition: i32,
        closing: &CancellationToken,
    ) -> Option<OutputProducer> {
        let key = (topic.to_owned(), partition);
        let cell = self.cell(&key);
        let id = format!("runnel-{}-{topic}-{partition}", self.group);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = cell
                .get_or_try_init(|| {
                    let events =
                        ClientEvents::new("transactional_producer", pipeline, self.metrics.clone());
                    OutputProducer::transactional(
                        &self.brokers,
                        &self.producer_options,
                        &id,
                        events,
                    )
                })
                .await;
            let error = match started {
                Ok(producer) => return Some(producer.clone()),
                Err(error) => error,
            };
            if LogLimiter::global()
                .admit(&format!("transactions-start:{pipeline}"))
                .is_some()
            {
                tracing::warn!(pipeline, topic, partition, %error, attempt, "cannot start transactions yet; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(TRANSACTION_BACKOFF.delay(attempt)) => {}
                _ = closing.cancelled() => return None,
            }
            if !self.is_current(&key, &cell) {
                return None;
            }
        }
    }

    /// Throws the partition's producer away (it was fenced, or its
    /// transaction cannot be aborted); the next [`Self::producer`] starts a
    /// new one with the same transactional id, which fences the old one and
    /// aborts its open transaction.
    fn replace(&self, key: &PartitionKey) {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), Arc::default());
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
    rewinds: UnboundedReceiver<Rewind>,
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
                metrics: pipeline.metrics.clone(),
                producers: Mutex::new(HashMap::new()),
                stopping: CancellationToken::new(),
            })
        });
        let hooks = ConsumerHooks {
            pipeline: settings.name.clone(),
            events: ClientEvents::new("consumer", &settings.name, pipeline.metrics.clone()),
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
        let (rewind_requests, rewinds) = unbounded_channel();
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
            rewinds: rewind_requests,
            next_worker_id: AtomicU64::new(0),
        });
        Ok(Self {
            settings,
            shared,
            workers,
            rewinds,
            drain_timeout,
        })
    }

    /// Consumes until `shutdown`, then drains: partial batches are flushed
    /// through the plugin, outputs confirmed, offsets stored and committed.
    /// Returns whether the drain finished within the drain timeout.
    pub async fn run(mut self, shutdown: CancellationToken) -> bool {
        let consumer = self.shared.consumer.clone();
        let stats = self.shared.pipeline.stats.clone();
        let name = self.settings.name.clone();
        stats.set_running(true);
        let mut paused = false;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
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
                Some(rewind) = self.rewinds.recv() => self.rewind(rewind),
                received = messages.next() => match received.expect("Kafka message streams never end") {
                    Ok(message) => {
                        let at = quanta::Instant::now();
                        self.dispatch(Received { message: message.detach(), at });
                    }
                    // Errors reach the stream after the consumer's hooks
                    // have counted and logged them. librdkafka recovers
                    // from all but fatal ones by itself, and each error is
                    // one queued event, so reading on at once neither
                    // spins nor delays the messages queued behind it.
                    Err(KafkaError::MessageConsumptionFatal(code)) => {
                        tracing::error!(pipeline = %name, error = %code, "the consumer failed for good; stopping this pipeline");
                        break;
                    }
                    Err(_) => {}
                },
                _ = tick.tick() => {
                    if paused && !self.shared.in_flight.at(50) {
                        paused = !set_paused(&consumer, false, &name);
                    }
                }
            }
        }
        drop(messages);
        if let Some(transactions) = &self.shared.transactions {
            transactions.stopping.cancel();
        }
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
            .or_insert_with(|| spawn_partition_worker(self.shared.clone(), WorkerStart::now()));
        let partition = message.partition();
        if worker.input.send(received).is_err() {
            // The worker stopped (it cannot, short of a panic): drop the
            // message unstored so it is consumed again after a restart.
            tracing::error!(pipeline = %self.settings.name, partition, "partition worker is gone");
        }
    }

    /// Processes a partition again from `rewind.offset`: its worker is
    /// abandoned (it drops what it still holds and stores nothing more),
    /// the consumer seeks back, and a new worker takes the partition once
    /// the old one has finished and a backoff has passed. Runs in the
    /// receive loop, so every message it reads after the seek comes from
    /// the new position (librdkafka drops what it had fetched before).
    fn rewind(&self, rewind: Rewind) {
        let name = &self.settings.name;
        let Some(old) = self.workers.take_worker(&rewind.key, rewind.worker) else {
            // The partition was revoked, or rewound already.
            return;
        };
        old.control.abandoned.cancel();
        old.control.closing.cancel();
        drop(old.input);
        let (topic, partition) = &rewind.key;
        if let Err(error) = self.shared.consumer.seek(
            topic,
            *partition,
            Offset::Offset(rewind.offset),
            Duration::from_secs(5),
        ) {
            // Not assigned here any more: its next owner starts from the
            // committed offset, which is not past the rewound message.
            tracing::warn!(pipeline = %name, topic, partition, %error, "cannot seek back to process unacknowledged messages again; leaving the partition");
            return;
        }
        self.shared.pipeline.metrics.record_partition_rewind(name);
        let delay = REWIND_BACKOFF.delay(rewind.attempt);
        if LogLimiter::global()
            .admit(&format!("rewind:{name}"))
            .is_some()
        {
            tracing::warn!(pipeline = %name, topic, partition, offset = rewind.offset, attempt = rewind.attempt, delay = %humantime::format_duration(delay), "outputs not acknowledged; processing the partition again from the first of their messages");
        }
        let start = WorkerStart {
            after: Some(old.finished),
            delay,
            rewinds: rewind.attempt,
        };
        let worker = spawn_partition_worker(self.shared.clone(), start);
        self.workers.insert(rewind.key, worker);
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
    /// The run's first message: where the partition is processed again
    /// from if an output is not acknowledged.
    first_offset: i64,
    next_offset: i64,
    work: Work,
}

fn spawn_partition_worker(shared: Arc<WorkerShared>, start: WorkerStart) -> PartitionWorker {
    let control = WorkerControl {
        id: shared.next_worker_id.fetch_add(1, Ordering::Relaxed),
        closing: CancellationToken::new(),
        abandoned: CancellationToken::new(),
    };
    let (input, messages) = unbounded_channel();
    let (acks, pending) = unbounded_channel();
    let acker = tokio::spawn(confirm_and_store(
        shared.clone(),
        control.clone(),
        start.rewinds,
        pending,
    ));
    let worker = tokio::spawn(process_partition(
        shared,
        control.clone(),
        start,
        messages,
        acks,
    ));
    let finished = tokio::spawn(async move {
        let _ = worker.await;
        let _ = acker.await;
    });
    PartitionWorker {
        input,
        finished,
        control,
    }
}

/// Batches a partition's messages and runs them through the pipeline, one
/// batch at a time so order is kept.
async fn process_partition(
    shared: Arc<WorkerShared>,
    control: WorkerControl,
    start: WorkerStart,
    mut messages: UnboundedReceiver<Received>,
    acks: UnboundedSender<Acknowledgement>,
) {
    if let Some(previous) = start.after {
        // Outputs of the worker before this one must not come after ours.
        let _ = previous.await;
        tokio::select! {
            _ = tokio::time::sleep(start.delay) => {}
            // Stopped or revoked meanwhile: the messages here are past
            // the stored offset, so the next reader gets them again.
            _ = control.closing.cancelled() => control.abandoned.cancel(),
        }
    }
    let mut transactional = None;
    let mut batch = Vec::with_capacity(shared.policy.batch_size);
    while shared.policy.next_batch(&mut messages, &mut batch).await {
        let Some(Received { message: last, .. }) = batch.last() else {
            continue;
        };
        let (topic, partition, next_offset) =
            (last.topic().to_owned(), last.partition(), last.offset() + 1);
        let work = Work::of(&batch);
        if shared.halt.is_cancelled() || control.abandoned.is_cancelled() {
            // The pipeline stopped at a failure, or the partition is being
            // processed again from an earlier message: leave these
            // uncommitted.
            shared.finished(work);
            batch.clear();
            continue;
        }
        let encoded = encode(&shared.pipeline.name, &batch, work.bytes);
        if let Some(transactions) = &shared.transactions {
            process_in_transaction(
                &shared,
                transactions,
                &mut transactional,
                &control.closing,
                &encoded,
                &batch,
            )
            .await;
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
        let first_offset = batch[0].message.offset();
        batch.clear();
        let acknowledgement = Acknowledgement {
            results,
            topic,
            partition,
            first_offset,
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
/// one run. A producer that was fenced, or whose transaction cannot even be
/// aborted (the broker was away too long), is replaced by a new one with
/// the same transactional id, whose start aborts whatever the old one left
/// open; then the batch runs again. Only while this host still owns the
/// partition: a new owner's producer is not fenced back.
async fn process_in_transaction(
    shared: &WorkerShared,
    transactions: &TransactionSettings,
    producer: &mut Option<OutputProducer>,
    closing: &CancellationToken,
    encoded: &crate::runtime::EncodedBatch,
    batch: &[Received],
) {
    let name = &shared.pipeline.name;
    let first = &batch[0].message;
    let (topic, partition) = (first.topic(), first.partition());
    let mut failures = 0;
    loop {
        if producer.is_none() {
            *producer = transactions.producer(name, topic, partition, closing).await;
        }
        let Some(current) = producer.as_ref() else {
            // Revoked or stopping: the next owner runs this batch.
            return;
        };
        let attempt = async {
            current.begin_transaction().await?;
            let results = shared.pipeline.process(encoded, current).await;
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
            current.commit_transaction(offsets, group).await?;
            Ok::<_, KafkaError>(handled)
        };
        let (error, fatal) = match tokio::time::timeout(TRANSACTION_ATTEMPT_LIMIT, attempt).await {
            Ok(Ok(handled)) => {
                let received = batch[..handled].iter().map(|received| received.at);
                shared.pipeline.series.record_processing(received);
                return;
            }
            Ok(Err(error)) => {
                let fatal = matches!(&error, KafkaError::Transaction(e) if e.is_fatal());
                (error.to_string(), fatal)
            }
            // Stuck: a producer that cannot go on.
            Err(_elapsed) => {
                let limit = humantime::format_duration(TRANSACTION_ATTEMPT_LIMIT);
                (
                    format!("the transaction did not finish within {limit}"),
                    true,
                )
            }
        };
        failures += 1;
        let logged = LogLimiter::global()
            .admit(&format!("transaction-failed:{name}"))
            .is_some();
        if !fatal && current.abort_transaction().await.is_ok() {
            if logged {
                tracing::warn!(pipeline = %name, topic, partition, %error, "transaction failed; aborted, running the batch again");
            }
        } else {
            if !owns(&shared.consumer, topic, partition) {
                tracing::warn!(pipeline = %name, topic, partition, %error, "transactional producer fenced; leaving the partition to its new owner");
                return;
            }
            if logged {
                tracing::warn!(pipeline = %name, topic, partition, %error, "transactional producer cannot go on; starting a new one and running the batch again");
            }
            transactions.replace(&(topic.to_owned(), partition));
            *producer = None;
        }
        tokio::select! {
            _ = tokio::time::sleep(TRANSACTION_BACKOFF.delay(failures)) => {}
            _ = closing.cancelled() => return,
        }
    }
}

/// Whether `partition` of `topic` is assigned to this consumer.
fn owns(consumer: &PipelineConsumer, topic: &str, partition: i32) -> bool {
    consumer
        .assignment()
        .is_ok_and(|assignment| assignment.find_partition(topic, partition).is_some())
}

/// At-most-once: the batch's offsets are committed before the plugin sees
/// it, so a crash can lose the batch but never repeat it.
async fn commit_before_processing(
    shared: &Arc<WorkerShared>,
    topic: &str,
    partition: i32,
    next_offset: i64,
) -> bool {
    for attempt in 1..=COMMIT_ATTEMPTS {
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
        tokio::time::sleep(COMMIT_BACKOFF.delay(attempt)).await;
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
/// An output that is not acknowledged makes the partition be processed
/// again from its message: nothing later is stored by this worker.
async fn confirm_and_store(
    shared: Arc<WorkerShared>,
    control: WorkerControl,
    rewinds_before: u32,
    mut pending: UnboundedReceiver<Acknowledgement>,
) {
    let pipeline = &shared.pipeline;
    let mut acknowledged_any = false;
    while let Some(acknowledgement) = pending.recv().await {
        if control.abandoned.is_cancelled() {
            shared.finished(acknowledgement.work);
            continue;
        }
        let Acknowledgement {
            results,
            topic,
            partition,
            first_offset,
            next_offset,
            work,
        } = acknowledgement;
        let deliveries = results.into_iter().flat_map(|result| result.deliveries);
        match pipeline.producer.confirm_all(deliveries).await {
            Ok(outputs) => {
                acknowledged_any = true;
                pipeline.series.record_outputs(outputs);
                if shared.commit == CommitStrategy::AfterProcessing {
                    store_offset(&shared, &topic, partition, next_offset);
                }
            }
            Err(error) if shared.commit == CommitStrategy::BeforeProcessing => {
                // At most once: these messages are committed already, and
                // processing them again would repeat them.
                if LogLimiter::global()
                    .admit(&format!("outputs-lost:{}", pipeline.name))
                    .is_some()
                {
                    tracing::warn!(pipeline = %pipeline.name, topic, partition, first_offset, %error, "outputs not acknowledged and not sent again (at most once)");
                }
            }
            Err(error) => {
                tracing::debug!(pipeline = %pipeline.name, topic, partition, first_offset, %error, "outputs not acknowledged");
                control.abandoned.cancel();
                let attempt = if acknowledged_any {
                    1
                } else {
                    rewinds_before + 1
                };
                let _ = shared.rewinds.send(Rewind {
                    key: (topic, partition),
                    offset: first_offset,
                    worker: control.id,
                    attempt,
                });
            }
        }
        shared.finished(work);
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
