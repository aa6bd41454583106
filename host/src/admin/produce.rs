//! `runnel produce`: a record per line of the input, produced to one topic
//! with the host's producer options, every delivery awaited.

use std::io::BufRead;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::metadata::MetadataTopic;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::AdminError;
use super::clients::{self, CommandContext, check_partition, cluster_metadata, find_topic};
use super::records::{LineFormat, LineRecord};
use crate::config::KafkaConfig;

/// How long to wait for room when librdkafka's queue of records not yet
/// acknowledged is full: it drains as the broker acknowledges them.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(1);

/// What is produced, and how.
#[derive(Debug, Clone)]
pub struct ProduceRequest {
    pub topic: String,
    pub format: LineFormat,
    /// Headers every record gets, before those of its own line.
    pub headers: Vec<(String, Vec<u8>)>,
    /// How long to wait for the brokers to answer, and for each record to
    /// be acknowledged once sent.
    pub timeout: Duration,
}

/// Produces a record for each line of `input` (called `source_name` in
/// errors) that is not empty (blank, in JSON), and waits until every one
/// is acknowledged. Returns how many were. A line that is not a record
/// stops the reading; the records before it are still delivered, and the
/// error says how many.
pub fn produce(
    kafka: &KafkaConfig,
    request: &ProduceRequest,
    input: impl BufRead,
    source_name: &str,
) -> Result<u64, AdminError> {
    let producer = clients::producer(kafka, request.timeout)?;
    let metadata = cluster_metadata(&producer, kafka, request.timeout)?;
    let topic = find_topic(&metadata, &request.topic, kafka)?;
    let mut sent = 0;
    let read = send_lines(&producer, request, topic, input, &mut sent);
    // Every record is given up on by librdkafka after `timeout`, so the
    // flush ends even when the brokers stop answering.
    let flushed = crate::kafka_client::flush(producer.client(), request.timeout + request.timeout);
    let context = producer.context();
    let delivered = context.delivered.load(Ordering::Relaxed);
    if delivered < sent {
        let reason = context
            .first_failure()
            .or_else(|| flushed.err().map(|error| error.to_string()))
            .unwrap_or_else(|| "no acknowledgement".into());
        return Err(AdminError::Undelivered {
            topic: request.topic.clone(),
            failed: sent - delivered,
            sent,
            reason,
        });
    }
    read.map_err(|stop| match stop {
        Stop::Read(reason) => AdminError::Read {
            source_name: source_name.to_owned(),
            reason,
        },
        Stop::BadLine { line, reason } => AdminError::BadLine {
            source_name: source_name.to_owned(),
            line,
            reason,
            produced: delivered,
        },
    })?;
    Ok(delivered)
}

/// Why the reading stopped before the input's end.
enum Stop {
    Read(std::io::Error),
    BadLine { line: u64, reason: String },
}

/// Sends a record for each line, counting those handed to librdkafka.
fn send_lines(
    producer: &ThreadedProducer<CommandContext>,
    request: &ProduceRequest,
    topic: &MetadataTopic,
    input: impl BufRead,
    sent: &mut u64,
) -> Result<(), Stop> {
    for (index, line) in input.split(b'\n').enumerate() {
        let number = index as u64 + 1;
        let bad_line = |reason: String| Stop::BadLine {
            line: number,
            reason,
        };
        let mut line = line.map_err(Stop::Read)?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let blank = match request.format {
            LineFormat::Json => line.iter().all(u8::is_ascii_whitespace),
            LineFormat::Text { .. } => line.is_empty(),
        };
        if blank {
            continue;
        }
        let record = request.format.parse(&line).map_err(bad_line)?;
        if let Some(partition) = record.partition {
            check_partition(topic, partition).map_err(|error| bad_line(error.to_string()))?;
        }
        send(producer, &request.topic, &request.headers, &record)
            .map_err(|error| bad_line(format!("the record cannot be sent: {error}")))?;
        *sent += 1;
    }
    Ok(())
}

/// Hands one record to librdkafka, waiting while its queue is full.
fn send(
    producer: &ThreadedProducer<CommandContext>,
    topic: &str,
    common_headers: &[(String, Vec<u8>)],
    record: &LineRecord,
) -> Result<(), KafkaError> {
    let mut headers = OwnedHeaders::new_with_capacity(common_headers.len() + record.headers.len());
    let common = (common_headers.iter()).map(|(name, value)| (name, Some(value.as_slice())));
    let own = (record.headers.iter()).map(|(name, value)| (name, value.as_deref()));
    for (key, value) in common.chain(own) {
        headers = headers.insert(Header { key, value });
    }
    let mut outgoing = BaseRecord::<[u8], [u8]>::to(topic).headers(headers);
    if let Some(key) = &record.key {
        outgoing = outgoing.key(key);
    }
    if let Some(value) = &record.value {
        outgoing = outgoing.payload(value);
    }
    if let Some(partition) = record.partition {
        outgoing = outgoing.partition(partition);
    }
    if let Some(timestamp) = record.timestamp {
        outgoing = outgoing.timestamp(timestamp);
    }
    loop {
        match producer.send(outgoing) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                outgoing = returned;
                std::thread::sleep(QUEUE_FULL_WAIT);
            }
            Err((error, _)) => return Err(error),
        }
    }
}
