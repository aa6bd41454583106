//! Exactly once: a batch's outputs, dead letters and consumed offset are
//! committed in one Kafka transaction, by a transactional producer per
//! partition.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::{Processed, run_pipeline};
use crate::backoff::Backoff;
use crate::client_events::{ClientEvents, LogLimiter};
use crate::failure::MessageResult;
use crate::metrics::Metrics;
use crate::runtime::EncodedBatch;
use crate::sink::OutputProducer;
use crate::source::kafka::client::owns;
use crate::source::kafka::partition::PartitionBatch;
use crate::source::kafka::workers::{PartitionKey, WorkerShared};

/// How long one transaction (begin, the plugin call, outputs, offsets,
/// commit) may take before its producer is taken for stuck and replaced:
/// after a broker hung for seconds, a transactional producer was seen to
/// never finish a transaction that its neighbours finished at once.
const TRANSACTION_ATTEMPT_LIMIT: Duration = Duration::from_secs(30);

/// How long reading the group's committed offset may take.
const OFFSET_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits between tries to start or recover a transactional producer.
const TRANSACTION_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));

/// The transactional producers of a pipeline, one per owned partition,
/// each started as soon as its partition is assigned: its start fences the
/// previous owner and aborts that owner's open transaction, without which
/// the consumer could not even read the partition's committed offset (it
/// stays "unstable" until the transaction ends).
pub(in crate::source::kafka) struct TransactionalProducers {
    brokers: String,
    producer_options: BTreeMap<String, String>,
    group: String,
    metrics: Metrics,
    producers: Mutex<HashMap<PartitionKey, Arc<OnceCell<OutputProducer>>>>,
    /// Cancelled when the pipeline stops: producers still starting give up.
    stopping: CancellationToken,
}

impl TransactionalProducers {
    pub fn new(
        brokers: &str,
        producer_options: &BTreeMap<String, String>,
        group: &str,
        metrics: Metrics,
    ) -> Self {
        Self {
            brokers: brokers.to_owned(),
            producer_options: producer_options.clone(),
            group: group.to_owned(),
            metrics,
            producers: Mutex::new(HashMap::new()),
            stopping: CancellationToken::new(),
        }
    }

    /// Starts the producers of newly assigned partitions in the background.
    pub fn start_for<'a>(
        self: &Arc<Self>,
        pipeline: &str,
        partitions: impl Iterator<Item = (&'a str, i32)>,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for (topic, partition) in partitions {
            let producers = self.clone();
            let (pipeline, topic) = (pipeline.to_owned(), topic.to_owned());
            runtime.spawn(async move {
                let stopping = producers.stopping.clone();
                producers
                    .producer(&pipeline, &topic, partition, &stopping)
                    .await;
            });
        }
    }

    /// The pipeline stops: producers still starting give up, and
    /// transaction steps still retrying stop at their next attempt.
    pub fn stop(&self) {
        self.stopping.cancel();
        let producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        for producer in producers.values().filter_map(|cell| cell.get()) {
            producer.retire();
        }
    }

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

    /// Forgets the producers of revoked partitions.
    pub fn forget(&self, keys: &[PartitionKey]) {
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            producers.remove(key);
        }
    }
}

/// The exactly-once stage of one partition worker.
pub(in crate::source::kafka) struct Transactional {
    shared: Arc<WorkerShared>,
    producers: Arc<TransactionalProducers>,
    /// The partition's producer, once started.
    producer: Option<OutputProducer>,
    /// The worker's input is closed: stop waiting and leave.
    closing: CancellationToken,
    /// The producer was replaced in the middle of a transaction that may
    /// still have committed: one given up on after the time limit can
    /// commit before the new producer fences the old one.
    in_doubt: bool,
}

/// Why a transaction did not commit, and whether its producer can go on.
struct TransactionFailure {
    error: String,
    fatal: bool,
}

impl Transactional {
    pub fn new(
        shared: Arc<WorkerShared>,
        producers: Arc<TransactionalProducers>,
        closing: CancellationToken,
    ) -> Self {
        Self {
            shared,
            producers,
            producer: None,
            closing,
            in_doubt: false,
        }
    }

    pub async fn process(&mut self, batch: &PartitionBatch<'_>, encoded: &EncodedBatch) {
        self.commit_once(batch, encoded).await;
        self.shared.finished(batch.work);
    }

    /// Runs the batch in transactions until one commits. An aborted
    /// transaction is run again from the same batch, so the outputs that
    /// become visible are those of exactly one run. Gives up only when the
    /// partition is no longer this worker's (revoked, or stopping): its
    /// next owner runs the batch.
    async fn commit_once(&mut self, batch: &PartitionBatch<'_>, encoded: &EncodedBatch) {
        let shared = self.shared.clone();
        let (name, topic, partition) = (&shared.pipeline.name, batch.topic, batch.partition);
        let mut failures = 0;
        loop {
            if self.producer.is_none() {
                let closing = &self.closing;
                self.producer = (self.producers)
                    .producer(name, topic, partition, closing)
                    .await;
            }
            let Some(producer) = self.producer.clone() else {
                return;
            };
            if self.in_doubt {
                // The new producer's start has finished the old one's
                // transaction, committed or aborted: the group's offset
                // says which.
                match self.committed_by_replaced(batch).await {
                    Ok(true) => {
                        tracing::info!(pipeline = %name, topic, partition, "the replaced producer's transaction committed the batch; not running it again");
                        return;
                    }
                    Ok(false) => self.in_doubt = false,
                    Err(error) => {
                        failures += 1;
                        if LogLimiter::global()
                            .admit(&format!("transaction-in-doubt:{name}"))
                            .is_some()
                        {
                            tracing::warn!(pipeline = %name, topic, partition, %error, "cannot read the committed offset after replacing a transactional producer; retrying");
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(TRANSACTION_BACKOFF.delay(failures)) => continue,
                            _ = self.closing.cancelled() => return,
                        }
                    }
                }
            }
            let attempt = self.attempt(&producer, batch, encoded);
            let failure = match tokio::time::timeout(TRANSACTION_ATTEMPT_LIMIT, attempt).await {
                Ok(Ok(processed)) => return self.committed(batch, processed).await,
                Ok(Err(error)) => TransactionFailure {
                    fatal: matches!(&error, KafkaError::Transaction(e) if e.is_fatal()),
                    error: error.to_string(),
                },
                // Stuck: a producer that cannot go on.
                Err(_elapsed) => TransactionFailure {
                    error: format!(
                        "the transaction did not finish within {}",
                        humantime::format_duration(TRANSACTION_ATTEMPT_LIMIT)
                    ),
                    fatal: true,
                },
            };
            failures += 1;
            if !self.recover(&producer, batch, failure).await {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(TRANSACTION_BACKOFF.delay(failures)) => {}
                _ = self.closing.cancelled() => return,
            }
        }
    }

    /// One transaction: begin, the plugin call with its outputs and dead
    /// letters, the consumed offset, commit.
    async fn attempt(
        &self,
        producer: &OutputProducer,
        batch: &PartitionBatch<'_>,
        encoded: &EncodedBatch,
    ) -> Result<Processed, KafkaError> {
        producer.begin_transaction().await?;
        let processed = run_pipeline(&self.shared, batch, encoded, producer).await;
        let mut offsets = TopicPartitionList::new();
        let offset = Offset::Offset(processed.next_offset);
        offsets.add_partition_offset(batch.topic, batch.partition, offset)?;
        let group = (self.shared.consumer)
            .group_metadata()
            // Present for a group consumer once it has joined.
            .ok_or(KafkaError::Global(RDKafkaErrorCode::State))?;
        producer.commit_transaction(offsets, group).await?;
        Ok(processed)
    }

    /// Whether the group's committed offset is past the batch's first
    /// message: the transaction of a replaced producer committed it.
    async fn committed_by_replaced(&self, batch: &PartitionBatch<'_>) -> Result<bool, KafkaError> {
        let consumer = self.shared.consumer.clone();
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(batch.topic, batch.partition);
        let committed = tokio::task::spawn_blocking(move || {
            consumer.committed_offsets(partitions, OFFSET_FETCH_TIMEOUT)
        })
        .await
        .map_err(|_| KafkaError::Canceled)??;
        let offset = committed
            .find_partition(batch.topic, batch.partition)
            .map(|element| element.offset());
        Ok(matches!(offset, Some(Offset::Offset(next)) if next > batch.first_offset()))
    }

    /// The transaction committed: every output in it is acknowledged.
    async fn committed(&self, batch: &PartitionBatch<'_>, processed: Processed) {
        let recorder = &self.shared.pipeline.recorder;
        recorder.handled(batch.received_at(processed.results.len()));
        let outputs = processed.results.iter().map(MessageResult::outputs).sum();
        let deliveries = processed.results.into_iter().flat_map(|r| r.deliveries);
        if let Ok(()) = self.shared.pipeline.producer.confirm_all(deliveries).await {
            recorder.outputs_delivered(outputs);
        }
    }

    /// Gets ready to run the batch again: aborts the transaction, or
    /// replaces a producer that was fenced or cannot even abort (the broker
    /// was away too long) with a new one of the same transactional id,
    /// whose start aborts whatever the old one left open. Returns false
    /// when the partition is no longer this host's: a new owner's producer
    /// is not fenced back.
    async fn recover(
        &mut self,
        producer: &OutputProducer,
        batch: &PartitionBatch<'_>,
        failure: TransactionFailure,
    ) -> bool {
        let shared = self.shared.clone();
        let (name, topic, partition) = (&shared.pipeline.name, batch.topic, batch.partition);
        let TransactionFailure { error, fatal } = failure;
        let logged = LogLimiter::global()
            .admit(&format!("transaction-failed:{name}"))
            .is_some();
        if !fatal && producer.abort_transaction().await.is_ok() {
            if logged {
                tracing::warn!(pipeline = %name, topic, partition, %error, "transaction failed; aborted, running the batch again");
            }
            return true;
        }
        if !owns(&shared.consumer, topic, partition) {
            tracing::warn!(pipeline = %name, topic, partition, %error, "transactional producer fenced; leaving the partition to its new owner");
            return false;
        }
        if logged {
            tracing::warn!(pipeline = %name, topic, partition, %error, "transactional producer cannot go on; starting a new one and running the batch again");
        }
        producer.retire();
        self.producers.replace(&(topic.to_owned(), partition));
        self.producer = None;
        self.in_doubt = true;
        true
    }
}
