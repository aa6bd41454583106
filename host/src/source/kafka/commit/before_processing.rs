//! At most once: a batch's offset is committed before the plugin sees it,
//! so a crash can lose the batch but never repeat it. Outputs that are not
//! acknowledged are logged, not sent again.

use std::sync::Arc;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::confirmations::{Acknowledgement, Confirmations, Settle};
use super::{COMMIT_ATTEMPTS, COMMIT_BACKOFF};
use crate::client_events::LogLimiter;
use crate::runtime::EncodedBatch;
use crate::sink::SinkError;
use crate::source::kafka::partition::PartitionBatch;
use crate::source::kafka::workers::{WorkerControl, WorkerShared};

pub(in crate::source::kafka) struct BeforeProcessing {
    shared: Arc<WorkerShared>,
    control: WorkerControl,
    confirmations: Confirmations,
}

impl BeforeProcessing {
    pub fn new(shared: Arc<WorkerShared>, control: WorkerControl) -> Self {
        let settle = LogLostOutputs {
            shared: shared.clone(),
        };
        let confirmations = Confirmations::spawn(shared.clone(), control.abandoned.clone(), settle);
        Self {
            shared,
            control,
            confirmations,
        }
    }

    pub async fn process(&mut self, batch: &PartitionBatch<'_>, encoded: &EncodedBatch) {
        let shared = &self.shared;
        if self.control.closing.is_cancelled() {
            // The partition was revoked or the host is stopping: these
            // messages are not committed, so their next reader gets them;
            // processing them now could repeat them.
            shared.finished(batch.work);
            return;
        }
        if !self.commit(batch).await {
            // A batch whose commit cannot be made durable is not processed
            // (the partition was most likely taken away).
            tracing::error!(pipeline = %shared.pipeline.name, topic = batch.topic, partition = batch.partition, messages = batch.len(), "batch skipped: its offsets could not be committed before processing");
            shared.finished(batch.work);
            return;
        }
        self.confirmations.process(shared, batch, encoded).await;
    }

    pub async fn finish(self) {
        self.confirmations.finish().await;
    }

    /// Commits the offset after `batch`, retrying for a few seconds;
    /// returns whether it is committed.
    async fn commit(&self, batch: &PartitionBatch<'_>) -> bool {
        let (topic, partition) = (batch.topic, batch.partition);
        let next_offset = batch.offset_at(batch.len());
        for attempt in 1..=COMMIT_ATTEMPTS {
            let consumer = self.shared.consumer.clone();
            let owned_topic = topic.to_owned();
            let committed = tokio::task::spawn_blocking(move || -> KafkaResult<()> {
                let mut offsets = TopicPartitionList::new();
                let offset = Offset::Offset(next_offset);
                offsets.add_partition_offset(&owned_topic, partition, offset)?;
                consumer.commit(&offsets, CommitMode::Sync)
            })
            .await;
            let error = match committed {
                Ok(Ok(())) => return true,
                Ok(Err(error)) => error.to_string(),
                Err(error) => error.to_string(),
            };
            // Processing before the commit is durable would break the
            // promise of at-most-once; wait instead.
            tracing::warn!(pipeline = %self.shared.pipeline.name, topic, partition, %error, "commit before processing failed; retrying before the batch is processed");
            tokio::time::sleep(COMMIT_BACKOFF.delay(attempt)).await;
        }
        false
    }
}

/// The batch is committed already, and processing it again would repeat
/// it: an output not acknowledged is lost, and said so.
struct LogLostOutputs {
    shared: Arc<WorkerShared>,
}

impl Settle for LogLostOutputs {
    fn acknowledged(&mut self, _batch: &Acknowledgement) {}

    fn unacknowledged(&mut self, batch: &Acknowledgement, error: SinkError) {
        let pipeline = &self.shared.pipeline.name;
        if LogLimiter::global()
            .admit(&format!("outputs-lost:{pipeline}"))
            .is_some()
        {
            tracing::warn!(pipeline = %pipeline, topic = batch.topic, partition = batch.partition, first_offset = batch.first_offset, %error, "outputs not acknowledged and not sent again (at most once)");
        }
    }
}
