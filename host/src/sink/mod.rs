//! Where outputs go: Kafka, or a Dapr output binding.

pub mod dapr;
pub mod kafka;

pub use dapr::DaprOutput;
pub use kafka::{OutputProducer, PendingDelivery, SinkError};
