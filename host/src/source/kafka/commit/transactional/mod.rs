//! Exactly once: outputs, dead letters and consumed offsets are committed
//! together in Kafka transactions. A transaction spans many batches of
//! every partition the pipeline owns and commits on an interval, so the
//! cost of a commit is shared by thousands of messages; see
//! [`committer`] for how it commits and recovers.

mod committer;
mod open;

use std::sync::Arc;

pub(in crate::source::kafka) use self::committer::{
    PipelineTransactions, ProducerRecipe, TransactionBounds,
};
use super::Processed;
use crate::runtime::EncodedBatch;
use crate::source::kafka::partition::PartitionBatch;
use crate::source::kafka::workers::{WorkerControl, WorkerShared};

/// The exactly-once stage of one partition worker.
pub(in crate::source::kafka) struct Transactional {
    shared: Arc<WorkerShared>,
    transactions: Arc<PipelineTransactions>,
    control: WorkerControl,
    /// The transaction this worker's last batch went into.
    last: Option<u64>,
}

impl Transactional {
    pub fn new(
        shared: Arc<WorkerShared>,
        transactions: Arc<PipelineTransactions>,
        control: WorkerControl,
    ) -> Self {
        Self {
            shared,
            transactions,
            control,
            last: None,
        }
    }

    /// Calls the plugin on `batch`, then sends its outputs and dead letters
    /// in the open transaction and adds its offset to it; the batch counts
    /// as done once that transaction is settled.
    pub async fn process(&mut self, batch: &PartitionBatch<'_>, encoded: &EncodedBatch) {
        let shared = &self.shared;
        let pipeline = &shared.pipeline;
        // The plugin runs while an earlier transaction may be committing.
        let decided = pipeline.decide(encoded).await;
        let Some(entry) = self.transactions.enter().await else {
            // Stopped: nothing of the batch is committed; the partition's
            // next reader processes it.
            shared.finished(batch.work);
            return;
        };
        if self.control.abandoned.is_cancelled() {
            // An aborted transaction had this partition's earlier batches:
            // it is processed again from there by a new worker.
            shared.finished(batch.work);
            return;
        }
        let results = pipeline.send(encoded, decided, entry.producer()).await;
        let Processed {
            results,
            next_offset,
        } = Processed::new(shared, batch, results);
        let mut open = self.transactions.open();
        let first_batch = open.is_empty();
        open.add(batch, results, next_offset, &self.control);
        self.last = Some(open.number);
        let messages_open = open.messages;
        drop(open);
        drop(entry);
        self.transactions.added(first_batch, messages_open);
    }

    /// Waits until the transaction of this worker's last batch is settled.
    pub async fn finish(self) {
        if let Some(last) = self.last {
            self.transactions.settle(last).await;
        }
    }
}
