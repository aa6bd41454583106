//! Waiting for a batch's outputs to be acknowledged, in a task of its own
//! so the partition's next batch is processed meanwhile.

use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::run_pipeline;
use crate::failure::MessageResult;
use crate::runtime::EncodedBatch;
use crate::sink::SinkError;
use crate::source::kafka::back_pressure::Work;
use crate::source::kafka::partition::PartitionBatch;
use crate::source::kafka::workers::WorkerShared;

/// A processed batch whose outputs and dead letters await acknowledgement.
pub(super) struct Acknowledgement {
    pub results: Vec<MessageResult>,
    pub topic: String,
    pub partition: i32,
    /// The batch's first message: where the partition is processed again
    /// from if an output is not acknowledged.
    pub first_offset: i64,
    pub next_offset: i64,
    pub work: Work,
}

impl Acknowledgement {
    fn new(batch: &PartitionBatch<'_>, results: Vec<MessageResult>, next_offset: i64) -> Self {
        Self {
            results,
            topic: batch.topic.to_owned(),
            partition: batch.partition,
            first_offset: batch.first_offset(),
            next_offset,
            work: batch.work,
        }
    }
}

/// What a commit stage does once a batch's outputs are all acknowledged,
/// or once one of them is not.
pub(super) trait Settle: Send + 'static {
    fn acknowledged(&mut self, batch: &Acknowledgement);
    fn unacknowledged(&mut self, batch: &Acknowledgement, error: SinkError);
}

/// The task confirming a partition worker's batches, in order.
pub(super) struct Confirmations {
    pending: UnboundedSender<Acknowledgement>,
    task: JoinHandle<()>,
}

impl Confirmations {
    /// Confirms each batch sent here, then tells `settle`. Once `abandoned`
    /// is cancelled, batches are only counted done.
    pub fn spawn(
        shared: Arc<WorkerShared>,
        abandoned: CancellationToken,
        settle: impl Settle,
    ) -> Self {
        let (pending, batches) = unbounded_channel();
        let task = tokio::spawn(confirm(shared, abandoned, settle, batches));
        Self { pending, task }
    }

    /// Runs `batch` through the pipeline on the shared producer and queues
    /// its outputs for confirmation, so the next batch can start.
    pub async fn process(
        &self,
        shared: &WorkerShared,
        batch: &PartitionBatch<'_>,
        encoded: &EncodedBatch,
    ) {
        let processed = run_pipeline(shared, batch, encoded, &shared.pipeline.producer).await;
        let handled = batch.received_at(processed.results.len());
        shared.pipeline.recorder.handled(handled);
        let acknowledgement = Acknowledgement::new(batch, processed.results, processed.next_offset);
        self.send(shared, acknowledgement);
    }

    fn send(&self, shared: &WorkerShared, batch: Acknowledgement) {
        if let Err(unsent) = self.pending.send(batch) {
            // The task is gone (it cannot be, short of a panic): the
            // offset stays unstored, so the batch is read again later.
            shared.finished(unsent.0.work);
        }
    }

    /// Waits until every batch sent here is settled.
    pub async fn finish(self) {
        drop(self.pending);
        let _ = self.task.await;
    }
}

async fn confirm(
    shared: Arc<WorkerShared>,
    abandoned: CancellationToken,
    mut settle: impl Settle,
    mut batches: UnboundedReceiver<Acknowledgement>,
) {
    let pipeline = &shared.pipeline;
    while let Some(mut batch) = batches.recv().await {
        if !abandoned.is_cancelled() {
            let results = std::mem::take(&mut batch.results);
            let outputs = results.iter().map(MessageResult::outputs).sum();
            let deliveries = results.into_iter().flat_map(|result| result.deliveries);
            match pipeline.producer.confirm_all(deliveries).await {
                Ok(()) => {
                    pipeline.recorder.outputs_delivered(outputs);
                    settle.acknowledged(&batch);
                }
                Err(error) => settle.unacknowledged(&batch, error),
            }
        }
        shared.finished(batch.work);
    }
}
