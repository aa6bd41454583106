//! The admin commands' work on Kafka: topics listed, created and described,
//! records produced from lines of text or JSON and consumed back to them.
//! Every client here is built from the `[kafka]` table of the host's
//! configuration, so the options a host reaches its brokers with reach them
//! here too.

mod clients;
pub mod consume;
pub mod produce;
pub mod records;
pub mod topics;

use std::time::Duration;

use rdkafka::error::KafkaError;
use thiserror::Error;

pub use records::LineFormat;

/// Why an admin command could not do what it was asked.
#[derive(Debug, Error)]
pub enum AdminError {
    #[error("cannot reach the Kafka brokers {brokers} within {}: {reason}", humantime::format_duration(*.within))]
    Unreachable {
        brokers: String,
        within: Duration,
        reason: String,
    },
    #[error("topic {topic} does not exist on {brokers}")]
    NoSuchTopic { topic: String, brokers: String },
    #[error("topic {topic} already exists on {brokers} (`--if-not-exists` accepts that)")]
    TopicExists { topic: String, brokers: String },
    #[error("topic {topic} has no partition {partition} (it has {count})")]
    NoSuchPartition {
        topic: String,
        partition: i32,
        count: usize,
    },
    #[error("the brokers refused to {action}: {reason}")]
    Refused { action: String, reason: String },
    /// librdkafka refused the client options of the configuration.
    #[error("cannot create the Kafka client: {0}")]
    Client(KafkaError),
    /// A line of the input is not a record; those before it were produced.
    #[error("{source_name}, line {line}: {reason}; {}", produced_before(*.produced))]
    BadLine {
        source_name: String,
        line: u64,
        reason: String,
        produced: u64,
    },
    #[error("cannot read {source_name}: {reason}")]
    Read {
        source_name: String,
        reason: std::io::Error,
    },
    #[error("{failed} of {sent} records were not delivered to {topic}: {reason}")]
    Undelivered {
        topic: String,
        failed: u64,
        sent: u64,
        reason: String,
    },
    #[error("cannot write the records read: {0}")]
    Write(std::io::Error),
    #[error("reading topic {topic} failed: {reason}")]
    Consume { topic: String, reason: KafkaError },
}

impl AdminError {
    /// Whether the command failed for a reason outside what it was asked
    /// to do: a broker that does not answer, a delivery that failed, an
    /// output that cannot be written. The others are a request the brokers
    /// or the input cannot satisfy as it stands.
    pub fn is_runtime(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::Undelivered { .. }
                | Self::Write(_)
                | Self::Consume { .. }
        )
    }

    /// Whether the configuration's client options are what failed.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Client(_))
    }
}

/// What a bad line's error says of the records before it.
fn produced_before(produced: u64) -> String {
    match produced {
        0 => "nothing was produced".into(),
        1 => "the record before it was produced".into(),
        n => format!("the {n} records before it were produced"),
    }
}
