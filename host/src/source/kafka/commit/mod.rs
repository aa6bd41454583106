//! The commit stage: how a partition's processed batches become durable.
//! One type per commit strategy, behind one interface the partition worker
//! calls for every batch:
//! - [`AfterAcknowledgement`] (at least once, the default): offsets are
//!   stored once every output before them is acknowledged;
//! - [`BeforeProcessing`] (at most once): offsets are committed before the
//!   plugin sees the batch;
//! - [`Transactional`] (exactly once): outputs, dead letters and offsets are
//!   committed together in Kafka transactions that span many batches.

mod after_acknowledgement;
mod before_processing;
mod confirmations;
mod transactional;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use self::after_acknowledgement::AfterAcknowledgement;
use self::before_processing::BeforeProcessing;
use self::transactional::Transactional;
pub(super) use self::transactional::{PipelineTransactions, ProducerRecipe, TransactionBounds};
use super::partition::PartitionBatch;
use super::workers::{WorkerControl, WorkerShared};
use crate::backoff::Backoff;
use crate::config::CommitStrategy;
use crate::failure::MessageResult;
use crate::runtime::EncodedBatch;
use crate::sink::OutputProducer;

pub(super) enum CommitStage {
    AfterAcknowledgement(AfterAcknowledgement),
    BeforeProcessing(BeforeProcessing),
    Transactional(Transactional),
}

impl CommitStage {
    /// The stage of the pipeline's strategy for one partition worker;
    /// `rewinds_before` counts the rewinds in a row before this worker.
    pub fn new(shared: &Arc<WorkerShared>, control: &WorkerControl, rewinds_before: u32) -> Self {
        match (&shared.transactions, shared.commit) {
            (Some(transactions), _) => Self::Transactional(Transactional::new(
                shared.clone(),
                transactions.clone(),
                control.clone(),
            )),
            (None, CommitStrategy::AfterProcessing) => Self::AfterAcknowledgement(
                AfterAcknowledgement::new(shared.clone(), control.clone(), rewinds_before),
            ),
            (None, CommitStrategy::BeforeProcessing) => {
                Self::BeforeProcessing(BeforeProcessing::new(shared.clone(), control.clone()))
            }
        }
    }

    /// Runs `batch` through the pipeline and commits it as the strategy
    /// says; the batch's work counts as done once its offsets are committed
    /// or given up on.
    pub async fn process(&mut self, batch: &PartitionBatch<'_>, encoded: &EncodedBatch) {
        match self {
            Self::AfterAcknowledgement(stage) => stage.process(batch, encoded).await,
            Self::BeforeProcessing(stage) => stage.process(batch, encoded).await,
            Self::Transactional(stage) => stage.process(batch, encoded).await,
        }
    }

    /// No more batches: waits until what was processed is committed.
    pub async fn finish(self) {
        match self {
            Self::AfterAcknowledgement(stage) => stage.finish().await,
            Self::BeforeProcessing(stage) => stage.finish().await,
            Self::Transactional(stage) => stage.finish().await,
        }
    }
}

/// What the pipeline made of a batch, up to the message that stops the
/// pipeline if one does.
struct Processed {
    results: Vec<MessageResult>,
    /// The offset to commit: after the batch, or at the stopping message,
    /// the first one not committed.
    next_offset: i64,
}

impl Processed {
    /// A message that stops the pipeline (`on_failure = "stop"`) halts it:
    /// nothing from that message on is committed.
    fn new(
        shared: &WorkerShared,
        batch: &PartitionBatch<'_>,
        mut results: Vec<MessageResult>,
    ) -> Self {
        if let Some(stop) = results.iter().position(|result| result.stop) {
            results.truncate(stop);
            shared.halt.cancel();
        }
        Self {
            next_offset: batch.offset_at(results.len()),
            results,
        }
    }
}

/// Runs `batch` through the plugin, handing its outputs and dead letters to
/// `producer`.
async fn run_pipeline(
    shared: &WorkerShared,
    batch: &PartitionBatch<'_>,
    encoded: &EncodedBatch,
    producer: &OutputProducer,
) -> Processed {
    let results = shared.pipeline.process(encoded, producer).await;
    Processed::new(shared, batch, results)
}

/// Offset commits tried before giving up (about ten seconds in all).
const COMMIT_ATTEMPTS: u32 = 8;
const COMMIT_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2));

/// What the last commit of stored offsets did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoredCommit {
    Committed,
    /// No offset was stored since the last commit: no message was
    /// finished, or none was received at all.
    NothingToCommit,
    Failed,
}

/// Commits the stored offsets synchronously, retrying for a few seconds: a
/// commit lost here (a busy coordinator, a timeout) would make the next
/// owner repeat work that is already done.
pub(super) fn commit_stored<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    pipeline: &str,
) -> StoredCommit {
    for attempt in 1..=COMMIT_ATTEMPTS {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => return StoredCommit::Committed,
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
                return StoredCommit::NothingToCommit;
            }
            Err(error) => {
                tracing::warn!(pipeline, %error, attempt, "offset commit failed");
                std::thread::sleep(COMMIT_BACKOFF.delay(attempt));
            }
        }
    }
    StoredCommit::Failed
}
