//! The Kafka producer every pipeline writes its outputs through.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::TopicPartitionList;
use thiserror::Error;

use super::deliveries::{DeliveryGroup, OutputEvents};
use crate::backoff::Backoff;
use crate::client_events::{ClientEvents, LogLimiter};
use crate::config::{HOST_OWNED_PRODUCER_OPTIONS, HostOwnedOption, KafkaConfig};

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("failed to create the Kafka producer: {0}")]
    Create(KafkaError),
    #[error("failed to produce to topic {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("an output to topic {topic} was not acknowledged: {source}")]
    Undelivered { topic: String, source: KafkaError },
    #[error(transparent)]
    Binding(#[from] super::dapr::DaprOutputError),
}

impl SinkError {
    /// Whether the producer refused the record for what it is (larger than
    /// `message.max.bytes`, a topic or partition that does not exist, a
    /// malformed record), so that sending it again cannot succeed. Any
    /// other refusal (a producer failed or in a state that takes no
    /// records) says nothing of the record.
    pub fn refuses_the_record(&self) -> bool {
        let Self::Produce { source, .. } = self else {
            return false;
        };
        matches!(
            source.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::MessageSizeTooLarge
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::InvalidArgument
                    | RDKafkaErrorCode::InvalidMessage
                    | RDKafkaErrorCode::InvalidRecord
                    | RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::InvalidMessageSize
            )
        )
    }
}

/// Defaults users may override. What the delivery guarantees rest on
/// (idempotence, `acks`) is not here: the host sets it after the user's
/// options, from [`HOST_OWNED_PRODUCER_OPTIONS`].
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    // A few milliseconds of batching costs little latency and buys a lot of
    // throughput.
    ("linger.ms", "5"),
    // Keep trying for as long as a broker outage plausibly lasts. An output
    // still unacknowledged then is not dropped: its input is processed
    // again (see `confirm`).
    ("message.timeout.ms", "300000"),
    // Reconnect to a returning broker within a second, as the Java client
    // does by default, rather than librdkafka's 10 s.
    ("reconnect.backoff.max.ms", "1000"),
];

/// How long to wait for room when the producer's local queue is full: it
/// drains as the broker acknowledges, typically within a millisecond.
const QUEUE_FULL_BACKOFF: Backoff = Backoff::fixed(Duration::from_millis(1));

/// How long one transaction step may take before it counts as failed.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls a blocking transaction step again for as long as it fails with an
/// error librdkafka calls retriable, unless the producer was retired
/// meanwhile: a producer given up on must not hold a thread (and the
/// process's exit) retrying against a broker that never answers it.
fn retry_while_retriable(
    retired: &AtomicBool,
    mut step: impl FnMut() -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    loop {
        match step() {
            Err(KafkaError::Transaction(error))
                if error.is_retriable() && !retired.load(Ordering::Relaxed) =>
            {
                if LogLimiter::global()
                    .admit("transaction-step-retried")
                    .is_some()
                {
                    tracing::warn!(%error, "transaction step failed with a retriable error; calling it again");
                }
            }
            result => return result,
        }
    }
}

/// librdkafka's transaction calls block; keep them off the async workers.
async fn run_blocking(
    call: impl FnOnce() -> Result<(), KafkaError> + Send + 'static,
) -> Result<(), KafkaError> {
    tokio::task::spawn_blocking(call)
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}

#[derive(Clone)]
pub struct OutputProducer {
    producer: ThreadedProducer<OutputEvents>,
    /// Set when the producer is given up on; shared by its clones.
    retired: Arc<AtomicBool>,
}

/// An output on its way: handed to the Kafka producer and waiting, with the
/// rest of its group, for the broker's acknowledgement, or already answered
/// (a Dapr output binding answers synchronously, and may have refused it; a
/// producer that takes no records now refuses it at once).
pub enum PendingDelivery {
    Kafka(Arc<DeliveryGroup>),
    Acknowledged,
    Refused(SinkError),
}

/// Outputs sent through one producer as a group: their acknowledgements
/// are awaited together (see [`DeliveryGroup`]).
pub struct OutputBatch<'p> {
    producer: &'p OutputProducer,
    group: Arc<DeliveryGroup>,
}

impl OutputBatch<'_> {
    /// Hands one output to the producer. Waits only while the producer's
    /// local queue is full, so outputs keep their order.
    pub async fn send<'h>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<PendingDelivery, SinkError> {
        self.producer
            .send(&self.group, topic, key, value, headers)
            .await
    }
}

/// The producer's options: defaults, then the user's, then those the
/// delivery guarantees rest on.
pub(crate) fn producer_config(
    kafka: &KafkaConfig,
    options: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut config = kafka.client_config(PRODUCER_DEFAULTS.iter().copied());
    for (key, value) in options {
        config.set(key, value);
    }
    for (key, value) in HostOwnedOption::values(HOST_OWNED_PRODUCER_OPTIONS, false) {
        config.set(key, value);
    }
    config
}

impl OutputProducer {
    pub fn new(
        kafka: &KafkaConfig,
        options: &BTreeMap<String, String>,
        events: ClientEvents,
    ) -> Result<Self, SinkError> {
        let producer = producer_config(kafka, options)
            .create_with_context(OutputEvents(events))
            .map_err(SinkError::Create)?;
        Ok(Self {
            producer,
            retired: Arc::default(),
        })
    }

    /// Whether librdkafka accepts the producer's options, without creating
    /// a producer (which would start connecting to the brokers).
    pub fn check_options(
        kafka: &KafkaConfig,
        options: &BTreeMap<String, String>,
    ) -> Result<(), SinkError> {
        producer_config(kafka, options)
            .create_native_config()
            .map(drop)
            .map_err(SinkError::Create)
    }

    /// A producer whose outputs and consumed offsets are committed together
    /// in Kafka transactions. A new producer with the same
    /// `transactional_id` fences the old one and aborts its open
    /// transaction; one that never comes back has its transaction aborted
    /// by the broker after `transaction.timeout.ms`.
    pub async fn transactional(
        kafka: &KafkaConfig,
        options: &BTreeMap<String, String>,
        transactional_id: &str,
        events: ClientEvents,
    ) -> Result<Self, SinkError> {
        let mut options = options.clone();
        options.insert("transactional.id".into(), transactional_id.into());
        // A crashed host's open transaction holds its partitions' next
        // owner (and every read_committed reader of its outputs) until the
        // broker aborts it: 10 s, as Kafka Streams sets it. A transaction
        // lives about one commit interval, far below it. librdkafka
        // requires message.timeout.ms <= transaction.timeout.ms.
        options
            .entry("transaction.timeout.ms".into())
            .or_insert_with(|| "10000".into());
        let transaction_timeout = options["transaction.timeout.ms"].clone();
        options
            .entry("message.timeout.ms".into())
            .or_insert(transaction_timeout);
        let producer = Self::new(kafka, &options, events)?;
        let init = producer.clone();
        run_blocking(move || init.producer.init_transactions(TRANSACTION_TIMEOUT))
            .await
            .map_err(SinkError::Create)?;
        Ok(producer)
    }

    pub async fn begin_transaction(&self) -> Result<(), KafkaError> {
        let producer = self.clone();
        run_blocking(move || producer.producer.begin_transaction()).await
    }

    /// Adds the consumer's offsets to the open transaction and commits it:
    /// outputs and offsets become visible together or not at all. A step
    /// that fails with a retriable error (a broker away, a timeout) is
    /// called again, as librdkafka intends: it resumes where it stopped,
    /// whereas aborting a commit that may already have landed could run
    /// the batch twice. Other errors are returned: abortable ones need
    /// `abort_transaction`, fatal ones a new producer.
    pub async fn commit_transaction(
        &self,
        offsets: TopicPartitionList,
        group: ConsumerGroupMetadata,
    ) -> Result<(), KafkaError> {
        // The offsets' round trips to the coordinators and the outputs'
        // answers are awaited side by side: sending is held meanwhile.
        // rust-rdkafka's `commit_transaction` flushes first too, its own
        // way, which costs 100 ms with anything outstanding (see
        // `kafka_client::flush`); after this flush there is nothing.
        let flushing = self.clone();
        let answered = run_blocking(move || {
            // One that times out leaves the rest to the commit.
            let _ = flushing.flush(TRANSACTION_TIMEOUT);
            Ok(())
        });
        let producer = self.clone();
        let offsets_sent = run_blocking(move || {
            retry_while_retriable(&producer.retired, || {
                producer
                    .producer
                    .send_offsets_to_transaction(&offsets, &group, TRANSACTION_TIMEOUT)
            })
        });
        let (_, offsets_sent) = tokio::join!(answered, offsets_sent);
        offsets_sent?;
        let producer = self.clone();
        run_blocking(move || {
            retry_while_retriable(&producer.retired, || {
                producer.producer.commit_transaction(TRANSACTION_TIMEOUT)
            })
        })
        .await
    }

    /// Gives the producer up: a transaction step still retrying stops at
    /// its next attempt.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    pub async fn abort_transaction(&self) -> Result<(), KafkaError> {
        let producer = self.clone();
        run_blocking(move || producer.producer.abort_transaction(TRANSACTION_TIMEOUT)).await
    }

    pub fn client(&self) -> &ThreadedProducer<OutputEvents> {
        &self.producer
    }

    /// A group of outputs to send and have acknowledged together.
    pub fn batch(&self) -> OutputBatch<'_> {
        OutputBatch {
            producer: self,
            group: DeliveryGroup::new(),
        }
    }

    /// Hands one output of `group` to the producer. Waits only while the
    /// producer's local queue is full, so outputs keep their order.
    async fn send<'h>(
        &self,
        group: &Arc<DeliveryGroup>,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<PendingDelivery, SinkError> {
        let mut owned = OwnedHeaders::new();
        for (name, header_value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(header_value),
            });
        }
        let mut record = BaseRecord::<[u8], [u8], _>::with_opaque_to(topic, group.clone())
            .payload(value)
            .headers(owned);
        if let Some(key) = key {
            record = record.key(key);
        }
        group.expect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.producer.send(record) {
                Ok(()) => return Ok(PendingDelivery::Kafka(group.clone())),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    tokio::time::sleep(QUEUE_FULL_BACKOFF.delay(attempt)).await;
                }
                Err((source, _)) => {
                    // Never sent: it awaits no answer.
                    group.answer(None);
                    return Err(SinkError::Produce {
                        topic: topic.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    /// Waits until the output is acknowledged. One the producer gave up on
    /// (its delivery timeout passed, or the broker refused it) is an error:
    /// the caller processes its input again rather than storing its
    /// offset, so nothing is lost and outputs keep their order.
    /// A producer that is dropped answers every output it still holds as
    /// purged, so no wait outlives it.
    pub async fn confirm(&self, pending: PendingDelivery) -> Result<(), SinkError> {
        match pending {
            PendingDelivery::Kafka(group) => group.settled().await,
            PendingDelivery::Acknowledged => Ok(()),
            PendingDelivery::Refused(error) => Err(error),
        }
    }

    /// Waits for `deliveries`; returns an error if any was not
    /// acknowledged. A group's outputs are awaited once, together.
    pub async fn confirm_all(
        &self,
        deliveries: impl IntoIterator<Item = PendingDelivery>,
    ) -> Result<(), SinkError> {
        let mut awaited: Option<Arc<DeliveryGroup>> = None;
        for delivery in deliveries {
            if let PendingDelivery::Kafka(group) = &delivery {
                if awaited
                    .as_ref()
                    .is_some_and(|last| Arc::ptr_eq(group, last))
                {
                    continue;
                }
                awaited = Some(group.clone());
            }
            self.confirm(delivery).await?;
        }
        Ok(())
    }

    /// Waits for every queued output to be answered, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        crate::kafka_client::flush(self.producer.client(), timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: RDKafkaErrorCode) -> SinkError {
        SinkError::Produce {
            topic: "out".into(),
            source: KafkaError::MessageProduction(code),
        }
    }

    #[test]
    fn only_a_refusal_of_the_record_itself_fails_its_message() {
        assert!(refused(RDKafkaErrorCode::MessageSizeTooLarge).refuses_the_record());
        assert!(refused(RDKafkaErrorCode::UnknownTopic).refuses_the_record());
        assert!(refused(RDKafkaErrorCode::UnknownPartition).refuses_the_record());
        // A failed idempotent or transactional producer, one being closed:
        // the record is not at fault.
        assert!(!refused(RDKafkaErrorCode::Fatal).refuses_the_record());
        assert!(!refused(RDKafkaErrorCode::State).refuses_the_record());
    }
}
