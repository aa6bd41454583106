//! The host's configuration file (`runnel.toml`).
//!
//! Every field is documented on its struct (`sections.rs` for the host-wide
//! tables, `pipeline_table.rs` for a pipeline's); these comments are the
//! reference. Unknown fields are refused so that a typo is an error at
//! start, not a silently ignored setting. Every default is named in
//! [`defaults`].

pub mod defaults;
mod kafka_secrets;
mod load;
mod owned_options;
mod pipeline_table;
mod plugin_source;
mod profiles;
mod resolve;
mod sections;
mod tokens;

use std::path::PathBuf;

use thiserror::Error;

pub use crate::backoff::BackoffKind;
pub use kafka_secrets::{KafkaSecrets, SASL_PASSWORD_ENV, SSL_KEY_PASSWORD_ENV};
pub use owned_options::{
    HOST_OWNED_CONSUMER_OPTIONS, HOST_OWNED_PRODUCER_OPTIONS, HostOwnedOption, OwnedOptionError,
};
pub use pipeline_table::{CommitStrategy, LimitsConfig, OnFailure, PipelineConfig, RetryConfig};
pub use plugin_source::{PluginSource, is_plugin_name};
pub use profiles::Profile;
pub use resolve::{BROKER_SIDE_TIMING, ResolvedPipeline};
pub use sections::{Config, DaprConfig, HttpConfig, KafkaConfig, PluginDirConfig, RuntimeConfig};
pub use tokens::{ADMIN_TOKEN_ENV, APP_API_TOKEN_ENV, HttpTokens, Token};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read {
        path: PathBuf,
        /// Not a `source`: the message already says it, and a source
        /// would be printed a second time in an error chain.
        reason: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("override `{0}` is not of the form path.to.field=value")]
    BadOverride(String),
    #[error("pipeline {pipeline}: {message}")]
    Pipeline { pipeline: String, message: String },
    #[error(transparent)]
    OwnedOption(#[from] OwnedOptionError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read the secret file {path} ({setting}): {reason}")]
    SecretFile {
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot read the token file {path} ({setting}): {reason}")]
    TokenFile {
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// The smallest useful file: one pipeline, everything else defaulted.
#[cfg(test)]
const MINIMAL: &str = r#"
        [pipelines.upper]
        inputs = ["in"]
        plugin = "uppercase.wasm"
        output = "out"
    "#;
