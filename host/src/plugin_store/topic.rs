//! The store's Kafka topic: created when missing, read from its beginning,
//! written to. One partition, so that every reader sees the records in the
//! order they were written: a component's chunks before the plugin record
//! that names it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::StoreError;
use super::records::{RecordKey, StoreState};
use crate::config::KafkaConfig;

/// The store's only partition.
pub const PARTITION: i32 = 0;

/// How a reader or writer reaches the store's topic.
#[derive(Debug, Clone)]
pub struct StoreTopic {
    pub name: String,
    /// The cluster, with the options and secrets of every client.
    kafka: KafkaConfig,
    consumer_options: BTreeMap<String, String>,
    producer_options: BTreeMap<String, String>,
    /// How long the brokers have to answer a request.
    pub timeout: Duration,
}

impl StoreTopic {
    /// The topic `name` of the cluster `kafka` describes, reached with its
    /// raw client options (security settings, for one).
    pub fn new(kafka: &KafkaConfig, name: &str, timeout: Duration) -> Self {
        Self {
            name: name.to_owned(),
            kafka: kafka.clone(),
            consumer_options: kafka.consumer.clone(),
            producer_options: kafka.producer.clone(),
            timeout,
        }
    }

    /// A consumer that is assigned the partition, joining no consumer group
    /// and committing nothing, and says when it has read to the end.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = self.base_config(&self.consumer_options);
        config
            // librdkafka assigns partitions only to a consumer with a group
            // id; it is never joined (nothing subscribes) nor committed to.
            .set("group.id", format!("{}-reader", self.name))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true");
        config
    }

    /// An idempotent producer that waits for every in-sync replica, and
    /// gives up on a record after the topic's timeout.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.base_config(&self.producer_options);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", self.timeout.as_millis().to_string());
        config
    }

    fn base_config(&self, options: &BTreeMap<String, String>) -> ClientConfig {
        let mut config = self
            .kafka
            .client_config([("reconnect.backoff.max.ms", "1000")]);
        for (key, value) in options {
            config.set(key, value);
        }
        config
    }

    /// Creates the topic unless it exists: compacted, so that the latest
    /// record of each key stays; one partition; the broker's replication
    /// factor.
    pub async fn ensure(&self) -> Result<(), StoreError> {
        let unreachable = |source| StoreError::CreateTopic {
            topic: self.name.clone(),
            source,
        };
        let admin: AdminClient<Quiet> = (self.base_config(&self.producer_options))
            .create_with_context(Quiet)
            .map_err(StoreError::Client)?;
        let topic = NewTopic::new(&self.name, 1, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact");
        let options = AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout));
        let created = tokio::time::timeout(self.timeout, admin.create_topics([&topic], &options))
            .await
            .map_err(|_| StoreError::Timeout {
                topic: self.name.clone(),
                what: "create the topic",
                timeout: self.timeout,
            })?
            .map_err(unreachable)?;
        for result in created {
            match result {
                Ok(_) => tracing::info!(topic = %self.name, "plugin store topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(unreachable(KafkaError::AdminOp(code))),
            }
        }
        Ok(())
    }

    /// Assigns `consumer` the store's partition from its first record.
    pub fn assign_from_beginning<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
    ) -> Result<(), StoreError> {
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.name, PARTITION, Offset::Beginning)
            .and_then(|()| consumer.assign(&assignment))
            .map_err(|source| self.read_error(source))
    }

    /// Reads the whole topic, up to the end it had when the read began.
    /// None when the topic does not exist. Chunks are counted, not kept.
    pub async fn read(&self) -> Result<Option<StoreState>, StoreError> {
        self.read_keeping(false).await
    }

    /// Reads the whole topic as [`Self::read`] does, keeping the chunks'
    /// bytes so that components can be put together.
    pub async fn read_with_components(&self) -> Result<Option<StoreState>, StoreError> {
        self.read_keeping(true).await
    }

    async fn read_keeping(&self, chunk_bytes: bool) -> Result<Option<StoreState>, StoreError> {
        let topic = self.clone();
        tokio::task::spawn_blocking(move || topic.read_blocking(chunk_bytes))
            .await
            .map_err(|error| StoreError::Task(error.to_string()))?
    }

    fn read_blocking(&self, chunk_bytes: bool) -> Result<Option<StoreState>, StoreError> {
        let consumer: BaseConsumer<Quiet> = (self.consumer_config())
            .create_with_context(Quiet)
            .map_err(StoreError::Client)?;
        let deadline = Instant::now() + self.timeout;
        let (low, high) = match consumer.fetch_watermarks(&self.name, PARTITION, self.timeout) {
            Ok(watermarks) => watermarks,
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition,
            )) => return Ok(None),
            Err(source) => return Err(self.read_error(source)),
        };
        let mut state = StoreState::new(chunk_bytes);
        if high <= low {
            return Ok(Some(state));
        }
        self.assign_from_beginning(&consumer)?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Timeout {
                    topic: self.name.clone(),
                    what: "read the topic to its end",
                    timeout: self.timeout,
                });
            }
            match consumer.poll(left.min(Duration::from_millis(200))) {
                Some(Ok(message)) => {
                    let key = message.key().unwrap_or_default();
                    if let Err(error) = state.apply(key, message.payload()) {
                        tracing::warn!(topic = %self.name, offset = message.offset(), %error, "plugin store record skipped");
                    }
                    if message.offset() >= high - 1 {
                        return Ok(Some(state));
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => return Ok(Some(state)),
                Some(Err(source)) => return Err(self.read_error(source)),
                None => {}
            }
        }
    }

    pub fn read_error(&self, source: KafkaError) -> StoreError {
        StoreError::Read {
            topic: self.name.clone(),
            source,
        }
    }
}

/// The context of a client whose errors come back from its calls: what
/// librdkafka reports on the side (a broker refusing connections, a
/// coordinator still loading) is left out, so that a command's failure is
/// one line saying what it could not do.
#[derive(Clone, Copy, Default)]
pub struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, _: RDKafkaLogLevel, _: &str, _: &str) {}

    fn error(&self, _: KafkaError, _: &str) {}
}

impl ConsumerContext for Quiet {}

/// Writes records to the store's partition.
pub struct StoreWriter<C: ClientContext + 'static = Quiet> {
    producer: FutureProducer<C>,
    topic: String,
}

impl StoreWriter {
    /// A writer for a command: its errors come back from the writes.
    pub fn new(topic: &StoreTopic) -> Result<Self, StoreError> {
        let producer = (topic.producer_config())
            .create_with_context(Quiet)
            .map_err(StoreError::Client)?;
        Ok(Self {
            producer,
            topic: topic.name.clone(),
        })
    }
}

impl<C: ClientContext + 'static> StoreWriter<C> {
    /// A writer whose client reports to `context`.
    pub fn with_context(topic: &StoreTopic, context: C) -> Result<Self, StoreError> {
        let producer = topic
            .producer_config()
            .create_with_context(context)
            .map_err(StoreError::Client)?;
        Ok(Self {
            producer,
            topic: topic.name.clone(),
        })
    }

    /// Writes `records` in order (a `None` value deletes its key) and
    /// returns once the brokers have acknowledged every one.
    pub async fn write(&self, records: Vec<(RecordKey, Option<&[u8]>)>) -> Result<(), StoreError> {
        let mut deliveries = Vec::new();
        for (key, value) in records {
            deliveries.push(self.send(&key.to_string(), value).await?);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => return Err(self.write_error(source)),
                Err(_) => return Err(self.write_error(KafkaError::Canceled)),
            }
        }
        Ok(())
    }

    /// Hands one record to the producer, waiting while its queue is full.
    async fn send(&self, key: &str, value: Option<&[u8]>) -> Result<DeliveryFuture, StoreError> {
        loop {
            let mut record = FutureRecord::<str, [u8]>::to(&self.topic)
                .partition(PARTITION)
                .key(key);
            if let Some(value) = value {
                record = record.payload(value);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((source, _)) => return Err(self.write_error(source)),
            }
        }
    }

    fn write_error(&self, source: KafkaError) -> StoreError {
        StoreError::Write {
            topic: self.topic.clone(),
            source,
        }
    }
}
