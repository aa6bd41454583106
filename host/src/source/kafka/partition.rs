//! One partition's worker: the path every message of the partition takes,
//! in order. Receive → batch → encode → plugin → outputs and dead letters →
//! commit; the last three are the commit stage's, which decides how the
//! batch's offsets become durable.

use std::sync::Arc;

use rdkafka::message::{Headers, Message, OwnedMessage};
use tokio::sync::mpsc::UnboundedReceiver;

use super::back_pressure::Work;
use super::commit::CommitStage;
use super::workers::{WorkerControl, WorkerShared, WorkerStart};
use crate::runtime::{BatchWriter, EncodedBatch, NewMessage};

/// A message and the instant the receive loop took it from librdkafka,
/// from which the time it spent in the host is measured.
pub(super) struct Received {
    pub message: OwnedMessage,
    pub at: quanta::Instant,
}

/// Consecutive messages of one partition, in offset order; never empty.
pub(super) struct PartitionBatch<'a> {
    pub messages: &'a [Received],
    pub topic: &'a str,
    pub partition: i32,
    pub work: Work,
}

impl<'a> PartitionBatch<'a> {
    fn new(messages: &'a [Received]) -> Option<Self> {
        let first = &messages.first()?.message;
        Some(Self {
            messages,
            topic: first.topic(),
            partition: first.partition(),
            work: Work::of(messages.iter().map(|received| &received.message)),
        })
    }

    pub fn first_offset(&self) -> i64 {
        self.messages[0].message.offset()
    }

    /// The offset of the `index`th message; `len()` gives the offset after
    /// the last, which is what committing the whole batch stores.
    pub fn offset_at(&self, index: usize) -> i64 {
        match self.messages.get(index) {
            Some(received) => received.message.offset(),
            None => self.messages[self.messages.len() - 1].message.offset() + 1,
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// When each of the first `count` messages was received.
    pub fn received_at(&self, count: usize) -> impl Iterator<Item = quanta::Instant> + '_ {
        self.messages[..count].iter().map(|received| received.at)
    }

    /// The batch in the encoding the plugin reads.
    fn encode(&self, source: &str) -> EncodedBatch {
        let mut writer = BatchWriter::with_capacity(source, self.len(), self.work.bytes);
        for Received { message, .. } in self.messages {
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
            writer.push(&input, headers);
        }
        writer.finish()
    }
}

/// Batches a partition's messages and takes each batch down the path, one
/// batch at a time so order is kept.
pub(super) async fn process_partition(
    shared: Arc<WorkerShared>,
    control: WorkerControl,
    start: WorkerStart,
    mut messages: UnboundedReceiver<Received>,
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
    let mut commit = CommitStage::new(&shared, &control, start.rewinds);
    let mut received = Vec::with_capacity(shared.policy.batch_size);
    while shared.policy.next_batch(&mut messages, &mut received).await {
        if let Some(batch) = PartitionBatch::new(&received) {
            if shared.halt.is_cancelled() || control.abandoned.is_cancelled() {
                // The pipeline stopped at a failure, or the partition is
                // being processed again from an earlier message: leave
                // these uncommitted.
                shared.finished(batch.work);
            } else {
                let encoded = batch.encode(&shared.pipeline.name);
                commit.process(&batch, &encoded).await;
            }
        }
        received.clear();
    }
    commit.finish().await;
}
