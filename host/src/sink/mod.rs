//! Where outputs go: Kafka, or a Dapr output binding; and where messages
//! that failed for good go: the dead-letter topic.

pub mod dapr;
pub mod dead_letter;
mod deliveries;
pub mod headers;
pub mod kafka;
pub mod policy;

pub use dapr::DaprOutput;
pub use dead_letter::{DeadLetters, FailedIn};
pub use kafka::{OutputBatch, OutputProducer, PendingDelivery, SinkError};
pub use policy::OutputPolicy;
