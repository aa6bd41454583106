//! The pipeline's transactions: one transactional producer per consumer, as
//! in KIP-447, and one open transaction that every partition worker adds
//! its batches to. A committer task commits it, with the consumed offsets
//! of every partition in it, once the commit interval has passed since its
//! first batch or it holds enough messages; the next opens at once, and
//! plugin calls go on meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::{Notify, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, watch};
use tokio_util::sync::CancellationToken;

use super::open::OpenTransaction;
use crate::backoff::Backoff;
use crate::client_events::{ClientEvents, LogLimiter};
use crate::config::KafkaConfig;
use crate::sink::OutputProducer;
use crate::source::kafka::workers::{Rewind, WorkerShared};

/// How long one commit (offsets, then the commit itself) may take before
/// its producer is taken for stuck and replaced: after a broker hung for
/// seconds, a transactional producer was seen to never finish a commit.
const COMMIT_LIMIT: Duration = Duration::from_secs(30);

/// How long reading the group's committed offsets may take.
const OFFSET_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits between tries to start a producer or read committed offsets.
const RECOVERY_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));

/// When the open transaction is committed.
#[derive(Debug, Clone, Copy)]
pub struct TransactionBounds {
    /// After its first batch went in, at most this long.
    pub interval: Duration,
    /// Or once it holds this many messages.
    pub max_messages: usize,
}

/// How the pipeline's transactional producer is made.
pub struct ProducerRecipe {
    /// The cluster, with the options and secrets of every client.
    pub kafka: KafkaConfig,
    pub options: BTreeMap<String, String>,
    /// Stable for a host that sets `group.instance.id`, so its restart
    /// aborts what it left open at once; otherwise unique to the process,
    /// and a crashed host's open transaction ends when the broker times it
    /// out (`transaction.timeout.ms`).
    pub transactional_id: String,
    pub events: ClientEvents,
}

/// The producer the workers send with, `None` once the pipeline stopped.
/// Workers hold it shared while they add a batch; the committer holds it
/// alone while it commits and opens the next transaction.
type Gate = RwLock<Slot>;
type Slot = Option<OutputProducer>;

pub(in crate::source::kafka) struct PipelineTransactions {
    bounds: TransactionBounds,
    gate: Arc<Gate>,
    /// The gate's hold until the committer starts and takes it.
    first_hold: Mutex<Option<OwnedRwLockWriteGuard<Slot>>>,
    open: Mutex<OpenTransaction>,
    /// Woken when the open transaction is full or a worker waits for it.
    due: Notify,
    /// The number of the last transaction settled (committed or aborted).
    settled: watch::Sender<u64>,
    stopping: CancellationToken,
}

/// A worker's hold on the open transaction while it adds a batch.
pub(in crate::source::kafka) struct Entry {
    producer: OwnedRwLockReadGuard<Slot, OutputProducer>,
}

impl Entry {
    pub fn producer(&self) -> &OutputProducer {
        &self.producer
    }
}

impl PipelineTransactions {
    pub fn new(bounds: TransactionBounds) -> Self {
        let gate = Arc::new(Gate::new(None));
        // Held from the start: no batch goes in before a transaction opens.
        let first_hold = gate.clone().try_write_owned().expect("a new lock is free");
        Self {
            bounds,
            gate,
            first_hold: Mutex::new(Some(first_hold)),
            open: Mutex::new(OpenTransaction::new(1)),
            due: Notify::new(),
            settled: watch::Sender::new(0),
            stopping: CancellationToken::new(),
        }
    }

    /// Starts the committer, which opens the first transaction; `shared` is
    /// where it finds the consumer and the recorder, and asks for rewinds.
    /// Returns `None` if it was started before.
    pub fn start(
        self: &Arc<Self>,
        recipe: ProducerRecipe,
        shared: Arc<WorkerShared>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let first_hold = self
            .first_hold
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let committer = Committer {
            transactions: self.clone(),
            shared,
            recipe,
        };
        Some(tokio::spawn(committer.run(first_hold)))
    }

    /// Waits until a transaction is open and returns a hold on it, or
    /// `None` once the pipeline stopped.
    pub async fn enter(&self) -> Option<Entry> {
        let hold = self.gate.clone().read_owned().await;
        let producer = OwnedRwLockReadGuard::try_map(hold, Option::as_ref).ok()?;
        Some(Entry { producer })
    }

    /// The open transaction, to add to while holding an [`Entry`].
    pub(super) fn open(&self) -> MutexGuard<'_, OpenTransaction> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called after adding to the open transaction: wakes the committer
    /// when the first batch went in (the interval starts) or it is full.
    pub fn added(&self, first_batch: bool, messages_open: usize) {
        if first_batch || messages_open >= self.bounds.max_messages {
            self.due.notify_one();
        }
    }

    /// Commits transaction `number` soon, and waits until it is settled
    /// (committed, or aborted and its partitions rewound).
    pub async fn settle(&self, number: u64) {
        {
            let mut open = self.open();
            if open.number == number {
                open.wanted_now = true;
            }
        }
        self.due.notify_one();
        let mut settled = self.settled.subscribe();
        let _ = settled.wait_for(|&done| done >= number).await;
    }

    /// The pipeline stops: the committer commits what is open, and stops.
    pub fn stop(&self) {
        self.stopping.cancel();
    }
}

/// The committer task's state.
struct Committer {
    transactions: Arc<PipelineTransactions>,
    shared: Arc<WorkerShared>,
    recipe: ProducerRecipe,
}

/// How a commit ended.
enum CommitOutcome {
    Committed,
    /// Aborted: nothing in it is visible.
    Aborted,
    /// The producer cannot go on (fenced, stuck, or unable to abort): the
    /// transaction's fate is known only once a new producer has started.
    ProducerLost(String),
}

impl Committer {
    async fn run(self, first_hold: OwnedRwLockWriteGuard<Slot>) {
        let mut hold = first_hold;
        if let Some(producer) = self.start_producer().await {
            *hold = Some(producer);
        }
        loop {
            if hold.is_none() {
                // No producer, and the pipeline is stopping.
                break;
            }
            drop(hold);
            let stopping = !self.wait_until_due().await;
            hold = self.transactions.gate.clone().write_owned().await;
            self.commit_open(&mut hold).await;
            if stopping {
                break;
            }
        }
        // Whatever still waits for a transaction gives up: nothing more
        // commits in this pipeline.
        if let Some(producer) = hold.take() {
            producer.retire();
        }
        self.transactions.settled.send_replace(u64::MAX);
    }

    /// Waits until the open transaction is due for commit. Returns false
    /// when the pipeline is stopping instead.
    async fn wait_until_due(&self) -> bool {
        let transactions = &self.transactions;
        let bounds = transactions.bounds;
        loop {
            let wait = {
                let open = transactions.open();
                let since_first = open.first_batch_at.map(|at| at.elapsed());
                let full = open.messages >= bounds.max_messages;
                if !open.is_empty()
                    && (open.wanted_now || full || since_first >= Some(bounds.interval))
                {
                    return true;
                }
                since_first.map(|elapsed| bounds.interval.saturating_sub(elapsed))
            };
            let timer = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = transactions.due.notified() => {}
                () = timer => {}
                () = transactions.stopping.cancelled() => return false,
            }
        }
    }

    /// Commits the open transaction (if anything is in it) and opens the
    /// next, holding the gate alone.
    async fn commit_open(&self, hold: &mut OwnedRwLockWriteGuard<Slot>) {
        let Some(producer) = hold.clone() else {
            return;
        };
        let transaction = {
            let mut open = self.transactions.open();
            if open.is_empty() {
                return;
            }
            let next = OpenTransaction::new(open.number + 1);
            std::mem::replace(&mut *open, next)
        };
        let commit_started = Instant::now();
        let mut outcome = self.commit(&producer, &transaction).await;
        let commit_seconds = commit_started.elapsed().as_secs_f64();
        if let CommitOutcome::ProducerLost(error) = &outcome {
            self.log_warning(
                "transactional producer cannot go on; starting a new one",
                error,
            );
            producer.retire();
            **hold = self.start_producer().await;
            outcome = self.fate_after_replacement(&transaction).await;
        } else if let Some(error) = self.begin(&producer).await {
            self.log_warning(
                "cannot open the next transaction; starting a new producer",
                &error,
            );
            producer.retire();
            **hold = self.start_producer().await;
        }
        let committed = matches!(outcome, CommitOutcome::Committed);
        let pipeline = &self.shared.pipeline;
        pipeline.recorder.metrics().record_transaction(
            &pipeline.name,
            committed,
            commit_seconds,
            transaction.messages,
        );
        if committed {
            self.committed(transaction);
        } else {
            self.aborted(transaction);
        }
    }

    /// Sends the offsets and commits, within [`COMMIT_LIMIT`]; aborts when
    /// the commit failed with an abortable error.
    async fn commit(
        &self,
        producer: &OutputProducer,
        transaction: &OpenTransaction,
    ) -> CommitOutcome {
        let group = self.shared.consumer.group_metadata();
        let attempt = async {
            let offsets = transaction.offsets()?;
            // Present for a group consumer once it has joined, which it has
            // if it received what is in the transaction.
            let group = group.ok_or(KafkaError::Global(RDKafkaErrorCode::State))?;
            producer.commit_transaction(offsets, group).await
        };
        let error = match tokio::time::timeout(COMMIT_LIMIT, attempt).await {
            Ok(Ok(())) => return CommitOutcome::Committed,
            Ok(Err(error)) => error,
            Err(_elapsed) => {
                let limit = humantime::format_duration(COMMIT_LIMIT);
                return CommitOutcome::ProducerLost(format!(
                    "the commit did not finish within {limit}"
                ));
            }
        };
        let fatal = matches!(&error, KafkaError::Transaction(e) if e.is_fatal());
        if !fatal && producer.abort_transaction().await.is_ok() {
            self.log_warning(
                "transaction failed; aborted, processing its messages again",
                &error.to_string(),
            );
            return CommitOutcome::Aborted;
        }
        CommitOutcome::ProducerLost(error.to_string())
    }

    /// Opens the next transaction; `Some(error)` when the producer cannot.
    async fn begin(&self, producer: &OutputProducer) -> Option<String> {
        producer
            .begin_transaction()
            .await
            .err()
            .map(|e| e.to_string())
    }

    /// Starts a transactional producer and opens a transaction, trying
    /// again with backoff (the broker may be away) until it works or the
    /// pipeline stops (then `None`). Its start fences any producer with the
    /// same id and ends that one's open transaction.
    async fn start_producer(&self) -> Option<OutputProducer> {
        let recipe = &self.recipe;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = OutputProducer::transactional(
                &recipe.kafka,
                &recipe.options,
                &recipe.transactional_id,
                recipe.events.clone(),
            )
            .await;
            let error = match started {
                Ok(producer) => match self.begin(&producer).await {
                    None => return Some(producer),
                    Some(error) => error,
                },
                Err(error) => error.to_string(),
            };
            self.log_warning("cannot start transactions yet; retrying", &error);
            tokio::select! {
                () = tokio::time::sleep(RECOVERY_BACKOFF.delay(attempt)) => {}
                () = self.transactions.stopping.cancelled() => return None,
            }
        }
    }

    /// After a lost producer was replaced, whether its last transaction
    /// committed: the new producer's start ended it one way or the other,
    /// and the group's committed offsets say which.
    async fn fate_after_replacement(&self, transaction: &OpenTransaction) -> CommitOutcome {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.committed_offsets(transaction).await {
                Ok(true) => {
                    tracing::info!(pipeline = %self.shared.pipeline.name, "the replaced producer's transaction committed; not processing it again");
                    return CommitOutcome::Committed;
                }
                Ok(false) => return CommitOutcome::Aborted,
                Err(error) => {
                    self.log_warning("cannot read the committed offsets after replacing a transactional producer; retrying", &error.to_string());
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RECOVERY_BACKOFF.delay(attempt)) => {}
                // Nothing is stored past the transaction: the partitions'
                // next reader starts from what did commit.
                () = self.transactions.stopping.cancelled() => return CommitOutcome::Aborted,
            }
        }
    }

    /// Whether the group's committed offsets have reached the
    /// transaction's: it commits all its partitions or none, so one tells.
    async fn committed_offsets(&self, transaction: &OpenTransaction) -> Result<bool, KafkaError> {
        let Some(((topic, partition), span)) = transaction.spans.iter().next() else {
            return Ok(true);
        };
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(topic, *partition);
        let consumer = self.shared.consumer.clone();
        let committed = tokio::task::spawn_blocking(move || {
            consumer.committed_offsets(partitions, OFFSET_FETCH_TIMEOUT)
        })
        .await
        .map_err(|_| KafkaError::Canceled)??;
        let offset = committed
            .find_partition(topic, *partition)
            .map(|element| element.offset());
        Ok(matches!(offset, Some(Offset::Offset(next)) if next >= span.next_offset))
    }

    /// Everything in the transaction is durable: its outputs are counted
    /// and its messages done.
    fn committed(&self, transaction: OpenTransaction) {
        let shared = self.shared.clone();
        let settled = self.transactions.settled.clone();
        // The outputs are all acknowledged by now (a commit flushes them);
        // counting them must not hold the next transaction up.
        tokio::spawn(async move {
            let recorder = &shared.pipeline.recorder;
            recorder.handled(transaction.received_at.iter().copied());
            let producer = &shared.pipeline.producer;
            if producer.confirm_all(transaction.deliveries).await.is_ok() {
                recorder.outputs_delivered(transaction.outputs);
            }
            for work in transaction.works {
                shared.finished(work);
            }
            settled.send_if_modified(|done| {
                let newer = transaction.number > *done;
                *done = (*done).max(transaction.number);
                newer
            });
        });
    }

    /// Nothing in the transaction is visible: every partition in it is
    /// processed again from its first message there. Runs holding the gate
    /// alone, so no batch of an abandoned worker goes into the next one.
    fn aborted(&self, transaction: OpenTransaction) {
        let shared = &self.shared;
        for (key, span) in transaction.spans {
            span.worker.abandoned.cancel();
            let _ = shared.rewinds.send(Rewind {
                key,
                offset: span.first_offset,
                worker: span.worker.id,
                attempt: 1,
            });
        }
        for work in transaction.works {
            shared.finished(work);
        }
        let number = transaction.number;
        self.transactions
            .settled
            .send_if_modified(|done| std::mem::replace(done, (*done).max(number)) < number);
    }

    /// Logs a recovery step, at most one line per pipeline every so often.
    fn log_warning(&self, what: &str, error: &str) {
        let name = &self.shared.pipeline.name;
        if LogLimiter::global()
            .admit(&format!("transactions:{name}:{what}"))
            .is_some()
        {
            tracing::warn!(pipeline = %name, %error, "{what}");
        }
    }
}
