//! What an open transaction holds: the span of offsets it covers in each
//! partition, the outputs sent in it, and the work it will settle.

use std::collections::HashMap;
use std::time::Instant;

use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::failure::MessageResult;
use crate::sink::PendingDelivery;
use crate::source::kafka::back_pressure::Work;
use crate::source::kafka::partition::PartitionBatch;
use crate::source::kafka::workers::{PartitionKey, WorkerControl};

/// The offsets one partition has in the transaction.
pub(super) struct Span {
    /// The first message in the transaction: where the partition is
    /// processed again from if the transaction aborts.
    pub first_offset: i64,
    /// The offset the transaction commits: after its last message.
    pub next_offset: i64,
    /// The partition's worker, abandoned if the transaction aborts.
    pub worker: WorkerControl,
}

/// The transaction being filled, numbered so a worker can wait for the one
/// its last batch went into.
pub(super) struct OpenTransaction {
    pub number: u64,
    /// When its first batch went in: the commit interval counts from here.
    pub first_batch_at: Option<Instant>,
    /// A worker waits for it (to drain): commit without waiting for the
    /// interval.
    pub wanted_now: bool,
    pub spans: HashMap<PartitionKey, Span>,
    pub messages: usize,
    /// Outputs sent in it, dead letters apart.
    pub outputs: u64,
    pub works: Vec<Work>,
    pub deliveries: Vec<PendingDelivery>,
    /// When each message in it was received, for the processing-time
    /// histogram once it commits.
    pub received_at: Vec<quanta::Instant>,
}

impl OpenTransaction {
    pub fn new(number: u64) -> Self {
        Self {
            number,
            first_batch_at: None,
            wanted_now: false,
            spans: HashMap::new(),
            messages: 0,
            outputs: 0,
            works: Vec::new(),
            deliveries: Vec::new(),
            received_at: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.works.is_empty()
    }

    /// Adds a processed batch: its outputs were sent in this transaction,
    /// and its partition's offset moves to `next_offset`.
    pub fn add(
        &mut self,
        batch: &PartitionBatch<'_>,
        results: Vec<MessageResult>,
        next_offset: i64,
        worker: &WorkerControl,
    ) {
        self.first_batch_at.get_or_insert_with(Instant::now);
        let key = (batch.topic.to_owned(), batch.partition);
        let span = self.spans.entry(key).or_insert_with(|| Span {
            first_offset: batch.first_offset(),
            next_offset,
            worker: worker.clone(),
        });
        span.next_offset = next_offset;
        span.worker = worker.clone();
        self.messages += results.len();
        self.outputs += results.iter().map(MessageResult::outputs).sum::<u64>();
        self.received_at.extend(batch.received_at(results.len()));
        self.deliveries
            .extend(results.into_iter().flat_map(|result| result.deliveries));
        self.works.push(batch.work);
    }

    /// The offsets the transaction commits, one per partition.
    pub fn offsets(&self) -> Result<TopicPartitionList, KafkaError> {
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), span) in &self.spans {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(span.next_offset))?;
        }
        Ok(offsets)
    }
}
