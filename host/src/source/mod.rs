//! Where messages come from: Kafka topics or Dapr input bindings.

pub mod dapr;
pub mod kafka;
