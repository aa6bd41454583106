//! Partition workers: one per assigned partition, so order is kept within a
//! partition while partitions are processed in parallel. The receive loop
//! feeds them; a worker that must process its partition again from an
//! earlier offset asks the loop to rewind it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::Message;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::back_pressure::{InFlight, Work};
use super::client::PipelineConsumer;
use super::commit::PipelineTransactions;
use super::partition::{Received, process_partition};
use crate::backoff::Backoff;
use crate::batch::BatchPolicy;
use crate::config::CommitStrategy;
use crate::pipeline::Pipeline;

pub(super) type PartitionKey = (String, i32);

/// Everything a partition worker needs, shared by all of a pipeline's.
pub(super) struct WorkerShared {
    pub pipeline: Arc<Pipeline>,
    pub consumer: Arc<PipelineConsumer>,
    pub policy: BatchPolicy,
    pub commit: CommitStrategy,
    pub in_flight: InFlight,
    /// Cancelled when a failure stops this pipeline (`on_failure = "stop"`).
    pub halt: CancellationToken,
    /// With exactly-once, the transactions every partition worker adds its
    /// batches to.
    pub transactions: Option<Arc<PipelineTransactions>>,
    /// Where workers ask the receive loop to process a partition again.
    pub rewinds: UnboundedSender<Rewind>,
    pub next_worker_id: AtomicU64,
}

impl WorkerShared {
    /// `work` is done (committed, or given up on).
    pub fn finished(&self, work: Work) {
        self.in_flight.remove(work);
    }
}

/// A partition's worker: the sender feeding it and the task that finishes
/// when its last offset is stored.
pub(super) struct PartitionWorker {
    pub input: UnboundedSender<Received>,
    pub finished: JoinHandle<()>,
    pub control: WorkerControl,
}

/// What the receive loop and a partition worker's tasks tell each other.
#[derive(Clone)]
pub(super) struct WorkerControl {
    /// Tells a rewind request from this worker apart from one of a worker
    /// that served the partition before.
    pub id: u64,
    /// The worker's input is closed: stop waiting (for a producer, for a
    /// rewind's backoff) and finish.
    pub closing: CancellationToken,
    /// Outputs of this worker went unacknowledged and the partition is
    /// processed again from there by a new worker: drop everything still
    /// here, store nothing more.
    pub abandoned: CancellationToken,
}

/// A partition worker's request to process its partition again from
/// `offset`, the first message whose outputs were not acknowledged.
pub(super) struct Rewind {
    pub key: PartitionKey,
    pub offset: i64,
    pub worker: u64,
    /// Rewinds in a row with nothing acknowledged in between, this one
    /// included: the new worker waits longer before each.
    pub attempt: u32,
}

/// How long a worker that replaces a rewound one waits before it starts:
/// an output that keeps failing (a binding that refuses it) is retried,
/// not spun on.
pub(super) const REWIND_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(200), Duration::from_secs(10));

/// How a new worker starts: at once, or after the worker it replaces has
/// finished and a backoff has passed.
pub(super) struct WorkerStart {
    pub after: Option<JoinHandle<()>>,
    pub delay: Duration,
    /// Rewinds in a row before this worker.
    pub rewinds: u32,
}

impl WorkerStart {
    pub fn now() -> Self {
        Self {
            after: None,
            delay: Duration::ZERO,
            rewinds: 0,
        }
    }
}

pub(super) fn spawn_partition_worker(
    shared: Arc<WorkerShared>,
    start: WorkerStart,
) -> PartitionWorker {
    let control = WorkerControl {
        id: shared.next_worker_id.fetch_add(1, Ordering::Relaxed),
        closing: CancellationToken::new(),
        abandoned: CancellationToken::new(),
    };
    let (input, messages) = unbounded_channel();
    let finished = tokio::spawn(process_partition(shared, control.clone(), start, messages));
    PartitionWorker {
        input,
        finished,
        control,
    }
}

/// Workers by topic and partition, shared between the receive loop and the
/// rebalance callback. Keyed by topic first so that finding a message's
/// worker, once per message, allocates nothing.
#[derive(Default)]
pub(super) struct Workers {
    by_topic: Mutex<HashMap<String, HashMap<i32, PartitionWorker>>>,
}

impl Workers {
    /// Hands `received` to its partition's worker, started with `start` if
    /// there is none. Returns whether the worker took it.
    pub fn dispatch(&self, received: Received, start: impl FnOnce() -> PartitionWorker) -> bool {
        let message = &received.message;
        let mut map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        let partitions = match map.get_mut(message.topic()) {
            Some(partitions) => partitions,
            None => map.entry(message.topic().to_owned()).or_default(),
        };
        let worker = partitions.entry(message.partition()).or_insert_with(start);
        worker.input.send(received).is_ok()
    }

    /// The worker of `key`, if it is worker `id`.
    pub fn take_worker(&self, key: &PartitionKey, id: u64) -> Option<PartitionWorker> {
        let mut map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        let partitions = map.get_mut(&key.0)?;
        if partitions.get(&key.1)?.control.id != id {
            return None;
        }
        partitions.remove(&key.1)
    }

    pub fn insert(&self, key: PartitionKey, worker: PartitionWorker) {
        let mut map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.0).or_default().insert(key.1, worker);
    }

    pub fn take(&self, keys: impl IntoIterator<Item = PartitionKey>) -> Vec<PartitionWorker> {
        let mut map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        keys.into_iter()
            .filter_map(|(topic, partition)| map.get_mut(&topic)?.remove(&partition))
            .collect()
    }

    pub fn take_all(&self) -> Vec<PartitionWorker> {
        let mut map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        map.drain()
            .flat_map(|(_, partitions)| partitions.into_values())
            .collect()
    }
}

/// Closes the workers' inputs and waits until each has flushed its partial
/// batch and stored its last offset, up to `timeout`. Returns whether all
/// finished in time.
pub(super) async fn drain(workers: Vec<PartitionWorker>, timeout: Duration) -> bool {
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
