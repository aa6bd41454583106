//! The admin commands' Kafka clients. Each is configured from the `[kafka]`
//! table as the host's own clients are, and is quiet: librdkafka's log lines
//! and errors go to the debug log, because a command reports the one error
//! that ends it; the first of them is kept to say why the brokers could not
//! be reached.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::{Metadata, MetadataTopic};
use rdkafka::producer::{
    BaseProducer, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;

use super::AdminError;
use crate::config::KafkaConfig;
use crate::sink::kafka::producer_config;

/// Options of the consumer that reads a topic for `runnel consume`, before
/// the user's `[kafka.consumer]`.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    // librdkafka assigns partitions only to a consumer with a group id.
    // Nothing is committed under it and it never joins the group (see
    // `CONSUMER_OWNED`), so the name leaves no trace on the brokers.
    ("group.id", "runnel-consume"),
    // Reconnect to a returning broker within a second, as the host's
    // consumers do.
    ("reconnect.backoff.max.ms", "1000"),
    // Start offsets are worked out from the watermarks and always lie
    // between them; only a partition truncated in between falls back, to
    // its first record.
    ("auto.offset.reset", "earliest"),
];

/// Set after the user's options: reading a topic this way must leave no
/// trace in any consumer group, and must tell when a partition's end is
/// reached.
const CONSUMER_OWNED: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "true"),
];

/// The context of every admin command client.
#[derive(Default)]
pub(super) struct CommandContext {
    first_error: Mutex<Option<String>>,
    pub delivered: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl CommandContext {
    /// The first error librdkafka reported for the client (a connection
    /// refused, a name that does not resolve).
    fn first_error(&self) -> Option<String> {
        lock(&self.first_error).clone()
    }

    /// Why the first record that was not delivered was not.
    pub fn first_failure(&self) -> Option<String> {
        lock(&self.first_failure).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClientContext for CommandContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, text: &str) {
        tracing::debug!(facility, "{text}");
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 {
            lock(&self.first_error).get_or_insert_with(|| without_thread(text).to_owned());
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, "{reason}");
        lock(&self.first_error).get_or_insert_with(|| reason.to_owned());
    }
}

/// A log line without the librdkafka thread that wrote it (`[thrd:...]: `).
fn without_thread(text: &str) -> &str {
    text.strip_prefix("[thrd:")
        .and_then(|rest| rest.split_once("]: "))
        .map_or(text, |(_, line)| line)
}

/// A client of an admin command. librdkafka hands its log lines and errors
/// to the context only when the client is polled.
pub(super) trait CommandClient {
    fn kafka_client(&self) -> &Client<CommandContext>;

    /// Hands the log lines and errors waiting to the context.
    fn serve_events(&self);
}

impl CommandClient for BaseProducer<CommandContext> {
    fn kafka_client(&self) -> &Client<CommandContext> {
        self.client()
    }

    fn serve_events(&self) {
        self.poll(Duration::ZERO);
    }
}

impl CommandClient for ThreadedProducer<CommandContext> {
    fn kafka_client(&self) -> &Client<CommandContext> {
        self.client()
    }

    /// Its own thread polls it.
    fn serve_events(&self) {}
}

impl CommandClient for BaseConsumer<CommandContext> {
    fn kafka_client(&self) -> &Client<CommandContext> {
        self.client()
    }

    /// Before partitions are assigned, a poll serves events only.
    fn serve_events(&self) {
        let _ = self.poll(Duration::ZERO);
    }
}

impl ConsumerContext for CommandContext {}

impl ProducerContext for CommandContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                lock(&self.first_failure).get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// An admin client with the options of the host's producer (librdkafka's
/// admin client is a producer underneath), as `runnel check --connect`
/// reaches the brokers.
pub(super) fn admin(kafka: &KafkaConfig) -> Result<AdminClient<CommandContext>, AdminError> {
    create(&producer_config(kafka, &kafka.producer))
}

/// A client with the same options, for metadata and watermarks: unlike the
/// admin client, it can be polled for the reason the brokers could not be
/// reached.
pub(super) fn metadata_client(
    kafka: &KafkaConfig,
) -> Result<BaseProducer<CommandContext>, AdminError> {
    create(&producer_config(kafka, &kafka.producer))
}

/// A producer with the host's producer options (`[kafka.producer]` over the
/// host's defaults, idempotence and `acks = all` after them), whose records
/// each fail once `delivery_timeout` has passed without an acknowledgement.
pub(super) fn producer(
    kafka: &KafkaConfig,
    delivery_timeout: Duration,
) -> Result<ThreadedProducer<CommandContext>, AdminError> {
    let mut config = producer_config(kafka, &kafka.producer);
    config.set(
        "message.timeout.ms",
        delivery_timeout.as_millis().max(1).to_string(),
    );
    create(&config)
}

/// A consumer that reads assigned partitions with `[kafka.consumer]`'s
/// options, and joins no group and commits nothing whatever they say.
pub(super) fn consumer(kafka: &KafkaConfig) -> Result<BaseConsumer<CommandContext>, AdminError> {
    let mut config = kafka.client_config(CONSUMER_DEFAULTS.iter().copied());
    for (key, value) in &kafka.consumer {
        config.set(key, value);
    }
    for (key, value) in CONSUMER_OWNED {
        config.set(*key, *value);
    }
    create(&config)
}

fn create<T: FromClientConfigAndContext<CommandContext>>(
    config: &ClientConfig,
) -> Result<T, AdminError> {
    config
        .create_with_context(CommandContext::default())
        .map_err(AdminError::Client)
}

/// Every topic of the cluster, which also tells whether a broker answers
/// within `timeout`. Asking for every topic never creates one, where asking
/// for one by name may (`auto.create.topics.enable`).
pub(super) fn cluster_metadata(
    client: &impl CommandClient,
    kafka: &KafkaConfig,
    timeout: Duration,
) -> Result<Metadata, AdminError> {
    let kafka_client = client.kafka_client();
    kafka_client
        .fetch_metadata(None, timeout)
        .map_err(|error| unreachable(client, kafka, timeout, error))
}

/// The brokers did not answer within `timeout`; the reason is the first
/// librdkafka gave (a connection refused, a name that does not resolve).
pub(super) fn unreachable(
    client: &impl CommandClient,
    kafka: &KafkaConfig,
    timeout: Duration,
    error: KafkaError,
) -> AdminError {
    client.serve_events();
    AdminError::Unreachable {
        brokers: kafka.brokers.clone(),
        within: timeout,
        reason: (client.kafka_client().context().first_error())
            .unwrap_or_else(|| error.to_string()),
    }
}

/// The topic called `name` in `metadata`.
pub(super) fn find_topic<'m>(
    metadata: &'m Metadata,
    name: &str,
    kafka: &KafkaConfig,
) -> Result<&'m MetadataTopic, AdminError> {
    metadata
        .topics()
        .iter()
        .find(|topic| {
            topic.name() == name
                && topic.error().map(RDKafkaErrorCode::from)
                    != Some(RDKafkaErrorCode::UnknownTopicOrPartition)
        })
        .ok_or_else(|| AdminError::NoSuchTopic {
            topic: name.to_owned(),
            brokers: kafka.brokers.clone(),
        })
}

/// Refuses a partition the topic does not have.
pub(super) fn check_partition(topic: &MetadataTopic, partition: i32) -> Result<(), AdminError> {
    let count = topic.partitions().len();
    if usize::try_from(partition).is_ok_and(|index| index < count) {
        return Ok(());
    }
    Err(AdminError::NoSuchPartition {
        topic: topic.name().to_owned(),
        partition,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_loses_the_thread_that_wrote_it() {
        assert_eq!(
            without_thread("[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect failed"),
            "127.0.0.1:1/bootstrap: Connect failed"
        );
        assert_eq!(without_thread("no thread here"), "no thread here");
    }
}
