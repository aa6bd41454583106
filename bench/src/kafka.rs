//! The harness's own plain Kafka clients: fresh topics, preloading an input
//! topic, and counting what an output topic holds.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// Partitions of every input and output topic: enough for Runnel's default
/// four concurrent plugin calls to all have work.
pub const PARTITIONS: i32 = 4;

/// Bytes of every message value in the end-to-end runs.
pub const VALUE_BYTES: usize = 100;

/// The broker every measurement runs against.
#[derive(Debug, Clone)]
pub struct Cluster {
    brokers: String,
}

/// An input topic and the output topic its processor writes to, both new,
/// so no measurement sees another's messages or committed offsets.
#[derive(Debug, Clone)]
pub struct TopicPair {
    pub input: String,
    pub output: String,
}

impl Cluster {
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
        }
    }

    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// Creates a fresh input and output topic of [`PARTITIONS`] partitions.
    pub fn fresh_topics(&self, label: &str) -> anyhow::Result<TopicPair> {
        let pair = TopicPair {
            input: unique_name(&format!("{label}-in")),
            output: unique_name(&format!("{label}-out")),
        };
        self.create_topics(&[&pair.input, &pair.output], PARTITIONS)?;
        Ok(pair)
    }

    pub fn create_topics(&self, names: &[&str], partitions: i32) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .context("creating the admin client")?;
        let topics: Vec<NewTopic> = names
            .iter()
            .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = futures::executor::block_on(admin.create_topics(&topics, &options))
            .context("sending CreateTopics")?;
        for result in results {
            if let Err((topic, code)) = result {
                bail!("could not create topic {topic}: {code}");
            }
        }
        Ok(())
    }

    /// Produces `count` keyed messages with [`VALUE_BYTES`]-byte values and
    /// waits until the broker has acknowledged all of them.
    pub fn preload(&self, topic: &str, count: usize) -> anyhow::Result<()> {
        self.preload_values(topic, count, |i| message_value(i, VALUE_BYTES))
    }

    /// Produces `count` keyed messages, message `i` with `value(i)`, and
    /// waits until the broker has acknowledged all of them.
    pub fn preload_values(
        &self,
        topic: &str,
        count: usize,
        value: impl Fn(usize) -> Vec<u8>,
    ) -> anyhow::Result<()> {
        // Tuned for bulk loading only: this runs before the clock starts.
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .context("creating the preload producer")?;
        for i in 0..count {
            let key = message_key(i);
            let value = value(i);
            let mut record = BaseRecord::to(topic).key(&key).payload(&value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(5));
                    }
                    Err((error, _)) => bail!("preloading {topic} failed: {error}"),
                }
            }
        }
        producer
            .flush(Duration::from_secs(120))
            .with_context(|| format!("waiting for the preload of {topic} to be acknowledged"))
    }

    /// A client that counts the messages a topic holds.
    pub fn counter(&self, topic: &str) -> anyhow::Result<TopicCounter> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .context("creating the watermark client")?;
        Ok(TopicCounter {
            consumer,
            topic: topic.to_owned(),
        })
    }

    /// A client that counts the inputs `group` has committed on `topic`.
    pub fn committed_counter(&self, group: &str, topic: &str) -> anyhow::Result<CommittedCounter> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            // Only asks for the group's offsets; never joins it, never commits.
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            // Committed offsets only, without waiting out a transaction in
            // flight: read_committed would make the broker answer "unstable"
            // while one is open, and librdkafka retry until it closes.
            .set("isolation.level", "read_uncommitted")
            .create()
            .context("creating the committed-offsets client")?;
        let mut partitions = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            partitions.add_partition(topic, partition);
        }
        Ok(CommittedCounter {
            consumer,
            partitions,
        })
    }

    /// Client settings shared by the harness's consumers.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config
    }
}

/// Counts a topic's messages by its high watermarks: what a consumer can
/// read, i.e. acknowledged by the broker, without reading any of it.
pub struct TopicCounter {
    consumer: BaseConsumer,
    topic: String,
}

impl TopicCounter {
    pub fn count(&self) -> anyhow::Result<i64> {
        let mut total = 0;
        for partition in 0..PARTITIONS {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.topic, partition, Duration::from_secs(5))
                .with_context(|| format!("reading the watermarks of {}", self.topic))?;
            total += high;
        }
        Ok(total)
    }
}

/// Counts the inputs a consumer group has committed, by its committed
/// offsets (the topic starts at offset 0). For a subject whose outputs are
/// transactional this is exact where output watermarks are not: each
/// transaction leaves a commit marker in every output partition it wrote,
/// which takes an offset of its own, and the offsets are committed in the
/// same transaction as the outputs.
pub struct CommittedCounter {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl CommittedCounter {
    pub fn count(&self) -> anyhow::Result<i64> {
        let committed = self
            .consumer
            .committed_offsets(self.partitions.clone(), Duration::from_secs(5))
            .context("reading committed offsets")?;
        Ok(committed
            .elements()
            .iter()
            .map(|element| match element.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            })
            .sum())
    }
}

/// A name no other topic or group of this harness run uses.
pub fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "bench-{label}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Keys like `customer-0000042` (16 bytes), all different, so the default
/// partitioner spreads them evenly and every partition gets work.
pub fn message_key(i: usize) -> String {
    format!("customer-{i:07}")
}

/// A mostly lower-case line of text of exactly `len` bytes that differs
/// per message (the uppercase plugin has real work to do on every byte).
pub fn message_value(i: usize, len: usize) -> Vec<u8> {
    const FILLER: &[u8] = b" shipped from the north warehouse to customer desk seven, two parcels, signed on delivery, thank you";
    let mut value = format!("order {i:08}").into_bytes();
    while value.len() < len {
        let missing = len - value.len();
        value.extend_from_slice(&FILLER[..missing.min(FILLER.len())]);
    }
    value.truncate(len);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_asked_length_and_differ() {
        for len in [1, 100, 1024] {
            assert_eq!(message_value(7, len).len(), len);
        }
        assert_ne!(message_value(1, 100), message_value(2, 100));
        assert_eq!(message_key(42), "customer-0000042");
    }
}
