//! The cluster's plugin store: a compacted Kafka topic that holds every
//! plugin the cluster runs, so that hosts need no shared file system.
//!
//! `runnel plugin deploy` validates a plugin and writes its component, in
//! chunks, then the plugin's record naming that version: the record is the
//! commit point. Every host with `[plugins] store_topic` follows the topic
//! from its beginning ([`follower`]), puts each component together by its
//! SHA-256 and writes component and manifest into its plugin directory,
//! whose registry then swaps the version in as it does for any change to
//! the directory. Each host writes back what it serves, which `runnel
//! plugin list` shows. The records are described in [`records`] and in
//! `docs/plugin-store.md`.

pub mod follower;
pub mod materialise;
pub mod operations;
pub mod records;
pub mod topic;

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::error::KafkaError;
use thiserror::Error;

use crate::config::Config;
use crate::plugin_dir::check::CheckError;
use crate::plugin_dir::manifest::ManifestError;
use crate::runtime::ComponentFileError;
pub use records::ChangeError;

/// The store's topic when the configuration names none.
pub const DEFAULT_TOPIC: &str = "runnel-plugins";

#[derive(Debug, Error)]
pub enum StoreError {
    /// `plugin validate` found these; each is reported.
    #[error("the plugin is not valid; nothing was written to the store")]
    Invalid(Vec<CheckError>),
    #[error(
        "deploy needs the plugin's manifest (`--manifest NAME.toml`, or the manifest as the \
         file): it names the plugin and its version"
    )]
    NoManifest,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Component(#[from] ComponentFileError),
    #[error("no plugin named {name} in the plugin store {topic}")]
    Unknown { name: String, topic: String },
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error("cannot create a Kafka client: {0}")]
    Client(KafkaError),
    #[error("cannot create the plugin store topic {topic}: {source}")]
    CreateTopic { topic: String, source: KafkaError },
    #[error("cannot read the plugin store topic {topic}: {source}")]
    Read { topic: String, source: KafkaError },
    #[error("cannot write to the plugin store topic {topic}: {source}")]
    Write { topic: String, source: KafkaError },
    #[error(
        "the brokers did not let us {what} of the plugin store topic {topic} within {}",
        humantime::format_duration(*timeout)
    )]
    Timeout {
        topic: String,
        what: &'static str,
        timeout: Duration,
    },
    #[error("a plugin store task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// Whether the store or the plugin refused what was asked (the plugin
    /// is invalid, unknown, or has no version to roll back to), as opposed
    /// to the brokers failing to answer.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_)
                | Self::NoManifest
                | Self::Manifest(_)
                | Self::Component(_)
                | Self::Unknown { .. }
                | Self::Change(_)
        )
    }
}

/// The name a host gives itself in the store: its `kafka.instance_id`, or
/// its hostname and process id.
pub fn host_name(config: &Config) -> String {
    if let Some(instance) = &config.kafka.instance_id {
        return instance.clone();
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().replace('/', "-"))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{hostname}-{}", std::process::id())
}

/// The directory a host following the store writes its plugins into when
/// `[plugins] dir` is not set: one of its own in the system's temporary
/// directory, emptied at start (the store holds everything it needs).
pub fn default_dir(host: &str) -> PathBuf {
    std::env::temp_dir().join(format!("runnel-plugins-{host}"))
}
