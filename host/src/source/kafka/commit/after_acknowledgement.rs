//! At least once, the default: a batch's offset is stored once all its
//! outputs, and all before them in the partition, are acknowledged; the
//! consumer commits stored offsets in the background and at revocation and
//! shutdown. An output that is not acknowledged makes the partition be
//! processed again from its message.

use std::sync::Arc;

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::confirmations::{Acknowledgement, Confirmations, Settle};
use crate::runtime::EncodedBatch;
use crate::sink::SinkError;
use crate::source::kafka::partition::PartitionBatch;
use crate::source::kafka::workers::{Rewind, WorkerControl, WorkerShared};

pub(in crate::source::kafka) struct AfterAcknowledgement {
    shared: Arc<WorkerShared>,
    confirmations: Confirmations,
}

impl AfterAcknowledgement {
    pub fn new(shared: Arc<WorkerShared>, control: WorkerControl, rewinds_before: u32) -> Self {
        let abandoned = control.abandoned.clone();
        let settle = StoreOrRewind {
            shared: shared.clone(),
            control,
            rewinds_before,
            acknowledged_any: false,
        };
        Self {
            confirmations: Confirmations::spawn(shared.clone(), abandoned, settle),
            shared,
        }
    }

    pub async fn process(&mut self, batch: &PartitionBatch<'_>, encoded: &EncodedBatch) {
        let shared = &self.shared;
        self.confirmations.process(shared, batch, encoded).await;
    }

    pub async fn finish(self) {
        self.confirmations.finish().await;
    }
}

/// Stores the offset after each acknowledged batch; at the first batch not
/// acknowledged, abandons the worker and asks for a rewind to it.
struct StoreOrRewind {
    shared: Arc<WorkerShared>,
    control: WorkerControl,
    rewinds_before: u32,
    acknowledged_any: bool,
}

impl Settle for StoreOrRewind {
    fn acknowledged(&mut self, batch: &Acknowledgement) {
        self.acknowledged_any = true;
        store_offset(
            &self.shared,
            &batch.topic,
            batch.partition,
            batch.next_offset,
        );
    }

    fn unacknowledged(&mut self, batch: &Acknowledgement, error: SinkError) {
        let (topic, partition) = (&batch.topic, batch.partition);
        tracing::debug!(pipeline = %self.shared.pipeline.name, topic, partition, first_offset = batch.first_offset, %error, "outputs not acknowledged");
        self.control.abandoned.cancel();
        let attempt = if self.acknowledged_any {
            1
        } else {
            self.rewinds_before + 1
        };
        let _ = self.shared.rewinds.send(Rewind {
            key: (topic.clone(), partition),
            offset: batch.first_offset,
            worker: self.control.id,
            attempt,
        });
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
