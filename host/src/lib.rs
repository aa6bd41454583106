//! Runnel: runs sandboxed WebAssembly handlers over Kafka and Dapr message
//! streams.

pub mod runtime;
