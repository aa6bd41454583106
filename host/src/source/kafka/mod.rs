//! The Kafka input of a pipeline: one consumer-group consumer whose receive
//! loop hands each message to its partition's worker (order kept within a
//! partition, partitions processed in parallel). A worker takes each batch
//! down the same path (see [`partition`]), ending in the commit stage of
//! the pipeline's strategy (see [`commit`]).

mod back_pressure;
mod client;
mod commit;
mod partition;
mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use futures::StreamExt;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::Offset;
use thiserror::Error;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio_util::sync::CancellationToken;

use self::back_pressure::{InFlight, message_bytes};
use self::client::{ConsumerHooks, PipelineConsumer, consumer_config, set_paused};
use self::commit::{
    PipelineTransactions, ProducerRecipe, StoredCommit, TransactionBounds, commit_stored,
};
use self::partition::Received;
use self::workers::{
    REWIND_BACKOFF, Rewind, WorkerShared, WorkerStart, Workers, drain, spawn_partition_worker,
};
use crate::batch::BatchPolicy;
use crate::client_events::{ClientEvents, LogLimiter};
use crate::config::{KafkaConfig, ResolvedPipeline};
use crate::pipeline::Pipeline;

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

/// A pipeline fed by Kafka.
pub struct KafkaInput {
    settings: ResolvedPipeline,
    shared: Arc<WorkerShared>,
    workers: Arc<Workers>,
    rewinds: UnboundedReceiver<Rewind>,
    drain_timeout: Duration,
    /// With exactly-once, the task committing the pipeline's transactions.
    committer: Option<tokio::task::JoinHandle<()>>,
}

/// How long a stopping pipeline waits for its committer to commit what is
/// left open (nothing, unless the drain timed out).
const COMMITTER_GRACE: Duration = Duration::from_secs(5);

/// The transactional id of an exactly-once pipeline's producer: one per
/// consumer (KIP-447), since the group's generation, sent with every
/// offset commit, is what fences an owner that lost its partitions. With
/// `group.instance.id` set it is stable, so a restarted host aborts what
/// it left open at once; otherwise it names this process, and what a
/// crashed one left open ends at the broker's `transaction.timeout.ms`.
fn transactional_id(settings: &ResolvedPipeline) -> String {
    let group = &settings.group;
    if let Some(instance) = settings.consumer.get("group.instance.id") {
        return format!("runnel-{group}-{instance}");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis())
        .unwrap_or_default();
    format!("runnel-{group}-{host}-{}-{started}", std::process::id())
}

/// Says how a pipeline stopped, as it was: an operator reads this line to
/// know whether the next owner of its partitions repeats any work.
fn log_stop(pipeline: &str, drained: bool, last_commit: StoredCommit, transactional: bool) {
    if !drained {
        tracing::warn!(
            pipeline = %pipeline,
            "drain timed out; unfinished messages will be processed again"
        );
        return;
    }
    match last_commit {
        // Exactly-once offsets go with each transaction, never stored.
        StoredCommit::NothingToCommit if transactional => {
            tracing::info!(
                pipeline = %pipeline,
                "stopped; each finished batch committed its offsets in its transaction"
            );
        }
        StoredCommit::NothingToCommit => {
            tracing::info!(
                pipeline = %pipeline,
                "stopped; no message finished since the last commit, nothing new to commit"
            );
        }
        StoredCommit::Committed => {
            tracing::info!(pipeline = %pipeline, "stopped; offsets committed")
        }
        StoredCommit::Failed => tracing::warn!(
            pipeline = %pipeline,
            "stopped, but the last offset commit failed; messages finished since the previous commit will be processed again"
        ),
    }
}

impl KafkaInput {
    pub fn new(
        kafka: &KafkaConfig,
        settings: ResolvedPipeline,
        pipeline: Arc<Pipeline>,
        drain_timeout: Duration,
    ) -> Result<Self, SourceError> {
        let workers = Arc::new(Workers::default());
        let transactions = settings.exactly_once.then(|| {
            Arc::new(PipelineTransactions::new(TransactionBounds {
                interval: settings.transaction_interval,
                max_messages: settings.transaction_max_messages,
            }))
        });
        let hooks = ConsumerHooks {
            pipeline: pipeline.clone(),
            events: ClientEvents::new(
                "consumer",
                &settings.name,
                pipeline.recorder.metrics().clone(),
            ),
            workers: workers.clone(),
            exactly_once: settings.exactly_once,
            drain_timeout,
            fetch_paused: AtomicBool::new(false),
        };
        let consumer: PipelineConsumer = consumer_config(kafka, &settings)
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
        let committer = shared.transactions.as_ref().and_then(|transactions| {
            let metrics = shared.pipeline.recorder.metrics().clone();
            let recipe = ProducerRecipe {
                kafka: kafka.clone(),
                options: settings.producer.clone(),
                transactional_id: transactional_id(&settings),
                events: ClientEvents::new("transactional_producer", &settings.name, metrics),
            };
            transactions.start(recipe, shared.clone())
        });
        Ok(Self {
            settings,
            shared,
            workers,
            rewinds,
            drain_timeout,
            committer,
        })
    }

    /// Consumes until `shutdown`, then drains: partial batches are flushed
    /// through the plugin, outputs confirmed, offsets stored and committed.
    /// Returns whether the drain finished within the drain timeout.
    pub async fn run(mut self, shutdown: CancellationToken) -> bool {
        let pipeline = self.shared.pipeline.clone();
        let recorder = &pipeline.recorder;
        recorder.set_running(true);
        self.receive(&shutdown).await;
        let name = &self.settings.name;
        tracing::info!(pipeline = %name, "stopping: draining in-flight work");
        let drained = drain(self.workers.take_all(), self.drain_timeout).await;
        if let Some(transactions) = &self.shared.transactions {
            // The workers' last transactions are settled, or the drain
            // gave up on them: either way nothing more is committed.
            transactions.stop();
        }
        if let Some(committer) = self.committer.take() {
            let _ = tokio::time::timeout(COMMITTER_GRACE, committer).await;
        }
        let consumer = self.shared.consumer.clone();
        let owned_name = name.clone();
        let last_commit =
            tokio::task::spawn_blocking(move || commit_stored(&*consumer, &owned_name))
                .await
                .unwrap_or(StoredCommit::Failed);
        recorder.set_running(false);
        let transactional = self.shared.transactions.is_some();
        log_stop(name, drained, last_commit, transactional);
        drained && last_commit != StoredCommit::Failed
    }

    /// The receive loop: hands each message to its partition's worker,
    /// holds back while too much is in flight, and rewinds partitions whose
    /// workers ask for it, until `shutdown`, a halt, or a fatal error.
    async fn receive(&mut self, shutdown: &CancellationToken) {
        let consumer = self.shared.consumer.clone();
        let name = self.settings.name.clone();
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
            let in_flight = &self.shared.in_flight;
            if !paused && in_flight.at(100) {
                let drained = in_flight.wait_below(75, shutdown).await;
                if !drained && !shutdown.is_cancelled() {
                    paused = set_paused(&consumer, true, &name);
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = self.shared.halt.cancelled() => {
                    tracing::error!(pipeline = %name, "pipeline halted at a failure; nothing after it is committed");
                    return;
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
                        return;
                    }
                    Err(_) => {}
                },
                _ = tick.tick() => {
                    if paused && !in_flight.at(50) {
                        paused = !set_paused(&consumer, false, &name);
                    }
                }
            }
        }
    }

    fn dispatch(&self, received: Received) {
        self.shared.in_flight.add(message_bytes(&received.message));
        let partition = received.message.partition();
        let start = || spawn_partition_worker(self.shared.clone(), WorkerStart::now());
        if !self.workers.dispatch(received, start) {
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
        self.shared.pipeline.recorder.partition_rewound();
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
