//! `runnel consume`: a topic's records written as lines, from a start
//! chosen per partition. The partitions are assigned, not subscribed to: no
//! consumer group takes part and no offset is committed, so reading a topic
//! this way leaves no trace a pipeline could see.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::AdminError;
use super::clients::{self, CommandContext, check_partition, cluster_metadata, find_topic};
use super::records::{LineFormat, RecordView};
use crate::config::KafkaConfig;

/// How long the brokers have to answer when no idle timeout says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait in one poll: short enough to notice an idle timeout
/// soon after it passes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Where reading starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The first record the partition still holds.
    Beginning,
    /// After its last record: only records that arrive from now on.
    End,
    /// That offset (the nearest one held when it is outside them).
    At(i64),
    /// The last that many records.
    Last(i64),
}

impl FromStr for StartOffset {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let error = || {
            format!(
                "`{text}` is not a start offset: give `beginning`, `end`, an offset N, or -N for \
                 the last N records"
            )
        };
        match text {
            "beginning" => Ok(Self::Beginning),
            "end" => Ok(Self::End),
            _ => {
                let (count, make): (_, fn(i64) -> Self) = match text.strip_prefix('-') {
                    Some(count) => (count, Self::Last),
                    None => (text, Self::At),
                };
                let number = count
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| i64::try_from(n).ok());
                number.map(make).ok_or_else(error)
            }
        }
    }
}

impl StartOffset {
    /// The offset to start at in a partition that holds `low..high`.
    fn resolve(self, low: i64, high: i64) -> i64 {
        match self {
            Self::Beginning => low,
            Self::End => high,
            Self::At(offset) => offset.clamp(low, high),
            Self::Last(count) => high.saturating_sub(count).max(low),
        }
    }
}

/// What is read, and when reading stops.
#[derive(Debug, Clone)]
pub struct ConsumeRequest {
    pub topic: String,
    pub start: StartOffset,
    /// The partitions to read; every one when empty.
    pub partitions: Vec<i32>,
    /// Stop after this many records.
    pub limit: Option<u64>,
    /// Stop once nothing has arrived for this long. It also bounds the wait
    /// for the brokers ([`DEFAULT_CONNECT_TIMEOUT`] without it).
    pub idle_timeout: Option<Duration>,
    /// Stop once every partition read has been read to its end.
    pub exit_at_end: bool,
    pub format: LineFormat,
}

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Limit,
    Idle,
    AtEnd,
    /// Whatever read the output has closed it (`| head`).
    OutputClosed,
}

/// Writes the records of `request` to `out`, a line each, until one of
/// its stops; returns how many were written and why it stopped.
pub fn consume(
    kafka: &KafkaConfig,
    request: &ConsumeRequest,
    out: &mut impl Write,
) -> Result<(u64, Ended), AdminError> {
    let consumer = clients::consumer(kafka)?;
    let connect_timeout = request.idle_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let metadata = cluster_metadata(&consumer, kafka, connect_timeout)?;
    let topic = find_topic(&metadata, &request.topic, kafka)?;
    let partitions: Vec<i32> = if request.partitions.is_empty() {
        topic.partitions().iter().map(|p| p.id()).collect()
    } else {
        for partition in &request.partitions {
            check_partition(topic, *partition)?;
        }
        request.partitions.clone()
    };
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(&request.topic, partition, connect_timeout)
            .map_err(|error| clients::unreachable(&consumer, kafka, connect_timeout, error))?;
        let start = request.start.resolve(low, high);
        assignment
            .add_partition_offset(&request.topic, partition, Offset::Offset(start))
            .map_err(|reason| consume_failed(request, reason))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|reason| consume_failed(request, reason))?;
    read(&consumer, request, partitions.into_iter().collect(), out)
}

/// Polls until a stop of `request` is reached.
fn read(
    consumer: &BaseConsumer<CommandContext>,
    request: &ConsumeRequest,
    mut not_at_end: BTreeSet<i32>,
    out: &mut impl Write,
) -> Result<(u64, Ended), AdminError> {
    let mut written = 0;
    let mut last_arrival = Instant::now();
    let ended = loop {
        if request.limit.is_some_and(|limit| written >= limit) {
            break Ended::Limit;
        }
        if request.exit_at_end && not_at_end.is_empty() {
            break Ended::AtEnd;
        }
        let mut wait = POLL_INTERVAL;
        if let Some(idle) = request.idle_timeout {
            match idle.checked_sub(last_arrival.elapsed()) {
                Some(left) if !left.is_zero() => wait = wait.min(left),
                _ => break Ended::Idle,
            }
        }
        let message = match consumer.poll(wait) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                not_at_end.remove(&partition);
                continue;
            }
            Some(Err(reason)) => return Err(consume_failed(request, reason)),
            Some(Ok(message)) => message,
        };
        last_arrival = Instant::now();
        match request.format.write(&view(&message), out) {
            Ok(()) => written += 1,
            Err(error) if error.kind() == ErrorKind::BrokenPipe => break Ended::OutputClosed,
            Err(error) => return Err(AdminError::Write(error)),
        }
    };
    match out.flush() {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => Err(AdminError::Write(error)),
        _ => Ok((written, ended)),
    }
}

fn view<'a>(message: &'a BorrowedMessage<'a>) -> RecordView<'a> {
    let headers = message
        .headers()
        .map(|headers| {
            (headers.iter())
                .map(|header| (header.key, header.value))
                .collect()
        })
        .unwrap_or_default();
    RecordView {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis(),
        key: message.key(),
        value: message.payload(),
        headers,
    }
}

fn consume_failed(request: &ConsumeRequest, reason: KafkaError) -> AdminError {
    AdminError::Consume {
        topic: request.topic.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets_read_as_documented_and_stay_within_the_partition() {
        let parse = |text: &str| text.parse::<StartOffset>();
        assert_eq!(parse("beginning"), Ok(StartOffset::Beginning));
        assert_eq!(parse("end"), Ok(StartOffset::End));
        assert_eq!(parse("42"), Ok(StartOffset::At(42)));
        assert_eq!(parse("-3"), Ok(StartOffset::Last(3)));
        for wrong in ["", "latest", "-", "--3", "1.5", "-x"] {
            let error = parse(wrong).unwrap_err();
            assert!(error.starts_with(&format!("`{wrong}` is not a start offset")));
        }
        // A partition holding offsets 10 to 19.
        let (low, high) = (10, 20);
        let cases = [
            (StartOffset::Beginning, 10),
            (StartOffset::End, 20),
            (StartOffset::At(15), 15),
            (StartOffset::At(3), 10),
            (StartOffset::At(99), 20),
            (StartOffset::Last(4), 16),
            (StartOffset::Last(50), 10),
            (StartOffset::Last(0), 20),
        ];
        for (start, expected) in cases {
            assert_eq!(start.resolve(low, high), expected, "{start:?}");
        }
    }
}
