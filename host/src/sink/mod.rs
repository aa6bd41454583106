//! Where outputs go.

pub mod kafka;

pub use kafka::{OutputProducer, PendingDelivery, SinkError};
