//! Runnel: runs sandboxed WebAssembly handlers over Kafka and Dapr message
//! streams.

pub mod admin;
pub mod app;
pub mod backoff;
pub mod batch;
pub mod check;
pub mod client_events;
pub mod config;
pub mod dev;
pub mod failure;
pub mod http;
pub mod kafka_client;
pub mod launcher;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod plugin_dir;
pub mod plugin_store;
pub mod plugins;
pub mod recorder;
pub mod runtime;
pub mod signing;
pub mod sink;
pub mod source;
pub mod stats;
