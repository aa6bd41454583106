//! The baseline Runnel is compared with: the least a correct Kafka
//! consume → produce service does, with no WebAssembly, no batching and no
//! per-partition workers. It runs as its own process (`runnel-bench
//! baseline`), like Runnel, so both are measured the same way from outside.
//!
//! "Correct" means Runnel's guarantee: an input's offset is stored only
//! after its output is acknowledged (`enable.auto.offset.store=false`),
//! with the same idempotent producer settings. `--ungated` drops that
//! guarantee (offsets stored on receipt) to show what the gating costs.
//! Values are copied unchanged: upper-casing 100 bytes natively costs tens
//! of nanoseconds, nothing next to a Kafka round trip.
//!
//! It records the time from each receipt to the output's hand-over to the
//! producer in Runnel's own histogram and serves it on `/metrics`, so that
//! what Runnel adds inside the process can be told apart from what the
//! broker and the network add.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use runnel::metrics::{Metrics, Mode, PipelineSeries};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Runnel's producer defaults (`host/src/sink/kafka.rs`): both sides pay
/// the same for delivery.
pub const RUNNEL_PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("linger.ms", "5"),
    ("message.timeout.ms", "300000"),
];

/// Runnel's consumer defaults (`host/src/source/kafka.rs`), less the
/// statistics callback, which the baseline has no use for.
const RUNNEL_CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "true"),
    ("auto.commit.interval.ms", "1000"),
    ("auto.offset.reset", "earliest"),
];

/// Outputs handed to the acknowledgement task at most at once: bounds the
/// work between two offset stores without making them per message.
const MAX_ACKS_PER_STORE: usize = 4096;

#[derive(Debug, Args)]
pub struct BaselineOptions {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    input: String,
    #[arg(long)]
    output: String,
    #[arg(long)]
    group: String,
    /// Store each offset on receipt instead of after the output's
    /// acknowledgement (a crash can lose messages): a reference for what
    /// delivery gating costs.
    #[arg(long)]
    ungated: bool,
    /// A raw producer option on top of Runnel's producer defaults.
    #[arg(long = "producer", value_name = "KEY=VALUE")]
    producer: Vec<String>,
}

/// Runs the loop until the process is killed.
pub fn run(options: BaselineOptions) -> anyhow::Result<()> {
    // The same runtime Runnel's main builds: multi-threaded, one worker per
    // core.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(consume_and_produce(options))
}

/// An output handed to the producer, and the input it came from.
struct PendingOutput {
    delivery: DeliveryFuture,
    partition: i32,
    offset: i64,
}

async fn consume_and_produce(options: BaselineOptions) -> anyhow::Result<()> {
    let consumer = Arc::new(consumer(&options)?);
    let producer = producer(&options)?;
    let series = serve_metrics().await?;
    let (pending, acknowledgements) = unbounded_channel();
    let storer = (!options.ungated).then(|| {
        tokio::spawn(store_after_delivery(
            consumer.clone(),
            options.input.clone(),
            acknowledgements,
        ))
    });
    eprintln!(
        "baseline: {} -> {} ({})",
        options.input,
        options.output,
        if options.ungated { "ungated" } else { "gated" }
    );
    loop {
        if storer.as_ref().is_some_and(|task| task.is_finished()) {
            // It only stops on an undelivered output; say why.
            if let Some(task) = storer {
                task.await.context("offset storer panicked")??;
            }
            bail!("offset storer stopped");
        }
        // Stamped when taken, one at a time: a message that arrived while
        // the previous one was being produced waited unstamped, where
        // Runnel's receive loop stamps each message as soon as librdkafka
        // has it. That favours the baseline by a few microseconds per
        // message ahead of it in a burst; a variant that took every waiting
        // message before producing any measured the same p99 buckets, but
        // under a backlog it became a take-everything-then-produce loop
        // (peak RSS 75 → 187 MiB, 1.5× the messages/s).
        let (message, received) = match consumer.recv().await {
            Ok(message) => (message, quanta::Instant::now()),
            Err(error) => {
                // librdkafka reconnects by itself; do not spin meanwhile.
                eprintln!("baseline: receive failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let delivery =
            enqueue(&producer, &options.output, message.key(), message.payload()).await?;
        series.record_processing([received]);
        if options.ungated {
            // Dropping the future does not cancel the delivery.
            continue;
        }
        let output = PendingOutput {
            delivery,
            partition: message.partition(),
            offset: message.offset(),
        };
        if pending.send(output).is_err() {
            bail!("offset storer stopped");
        }
    }
}

/// Serves the baseline's metrics on a free loopback port, which it logs
/// (the harness reads it there), and returns the series to record in.
async fn serve_metrics() -> anyhow::Result<PipelineSeries> {
    let metrics = Arc::new(Metrics::new());
    let series = metrics.pipeline_series("baseline", Mode::PerMessage);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the metrics listener")?;
    eprintln!("{METRICS_LOG_PREFIX}{}", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move { metrics.render() }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(series)
}

/// Starts the log line that gives the metrics endpoint's address.
pub const METRICS_LOG_PREFIX: &str = "baseline: metrics on ";

fn consumer(options: &BaselineOptions) -> anyhow::Result<StreamConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("group.id", &options.group);
    for (key, value) in RUNNEL_CONSUMER_DEFAULTS {
        config.set(*key, *value);
    }
    let store_on_receipt = if options.ungated { "true" } else { "false" };
    config.set("enable.auto.offset.store", store_on_receipt);
    let consumer: StreamConsumer = config.create().context("creating the consumer")?;
    consumer
        .subscribe(&[&options.input])
        .with_context(|| format!("subscribing to {}", options.input))?;
    Ok(consumer)
}

fn producer(options: &BaselineOptions) -> anyhow::Result<FutureProducer> {
    let mut settings: BTreeMap<&str, &str> = RUNNEL_PRODUCER_DEFAULTS.iter().copied().collect();
    for option in &options.producer {
        let (key, value) = option
            .split_once('=')
            .with_context(|| format!("producer option `{option}` is not KEY=VALUE"))?;
        settings.insert(key, value);
    }
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &options.brokers);
    for (key, value) in settings {
        config.set(key, value);
    }
    config.create().context("creating the producer")
}

/// Hands one output to the producer, waiting only while its queue is full
/// (exactly what Runnel's sink does).
async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> anyhow::Result<DeliveryFuture> {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(value) = value {
        record = record.payload(value);
    }
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((error, _)) => bail!("failed to produce to {topic}: {error}"),
        }
    }
}

/// Waits for outputs in the order their inputs arrived and stores, per
/// partition, the offset of the last input whose output (and every earlier
/// one) is acknowledged. Returns only if an output could not be delivered.
async fn store_after_delivery(
    consumer: Arc<StreamConsumer>,
    input: String,
    mut pending: UnboundedReceiver<PendingOutput>,
) -> anyhow::Result<()> {
    let mut ready = Vec::with_capacity(MAX_ACKS_PER_STORE);
    let mut acknowledged_up_to = BTreeMap::new();
    while pending.recv_many(&mut ready, MAX_ACKS_PER_STORE).await > 0 {
        for output in ready.drain(..) {
            match output.delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => bail!("an output was not delivered: {error}"),
                Err(_) => bail!("the producer went away before a delivery report"),
            }
            acknowledged_up_to.insert(output.partition, output.offset);
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in std::mem::take(&mut acknowledged_up_to) {
            // The stored offset is the next one to read, as Runnel stores it.
            offsets.add_partition_offset(&input, partition, Offset::Offset(offset + 1))?;
        }
        consumer
            .store_offsets(&offsets)
            .with_context(|| format!("storing offsets of {input}"))?;
    }
    Ok(())
}
