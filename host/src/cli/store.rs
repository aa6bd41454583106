//! `runnel plugin deploy|list|remove|rollback`: the cluster's plugin store
//! from the command line. Each reaches the brokers of a host's
//! configuration file when one is given (its `[kafka]` table and
//! `[plugins] store_topic`), with `--brokers` / `RUNNEL_BROKERS` and `--set`
//! over it, as the admin commands do.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use runnel::config::ConfigError;
use runnel::plugin_store::operations::{self, DeployRequest, Deployed};
use runnel::plugin_store::records::{PluginRecord, StatusRecord, StoreState};
use runnel::plugin_store::topic::StoreTopic;
use runnel::plugin_store::{DEFAULT_TOPIC, StoreError};
use serde::Serialize;

use super::ConfigOverrides;
use super::commands::block_on;
use super::exit::{self, CONFIG, FAILED, RUNTIME};
use super::logging::ErrorReport;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Validate a plugin as `plugin validate` does, then write it to the
    /// cluster's plugin store: every host following the store serves it.
    /// Prints `deployed NAME VERSION (sha256 ...)`.
    Deploy {
        /// The component (`.wasm`), or a manifest (`.toml`) naming one.
        file: PathBuf,
        /// The plugin's manifest: its name, version and pipeline.
        #[arg(long, short)]
        manifest: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show what the cluster should run (each plugin's version), and what
    /// each host serves and in which state.
    List {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a plugin from the store: every host drains and stops it.
    Remove {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Serve a plugin's previous version again; the current one becomes
    /// the previous (a second rollback undoes the first).
    Rollback {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the store is.
#[derive(Args)]
pub struct StoreArgs {
    /// A host's configuration file: the command reaches the brokers with
    /// its `[kafka]` table and uses its `[plugins] store_topic`. Optional.
    #[arg(long, short, env = "RUNNEL_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: ConfigOverrides,
    /// The store's topic; overrides `plugins.store_topic` (default
    /// `runnel-plugins`).
    #[arg(long)]
    topic: Option<String>,
    /// How long the brokers have to answer each step.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

impl StoreArgs {
    fn topic(&self) -> Result<StoreTopic, ConfigError> {
        let config = self.overrides.load(self.config.as_deref(), Vec::new())?;
        let configured = config.plugins.as_ref().and_then(|p| p.store_topic.clone());
        let name = (self.topic.clone())
            .or(configured)
            .unwrap_or_else(|| DEFAULT_TOPIC.to_owned());
        Ok(StoreTopic::new(&config.kafka, &name, self.timeout))
    }
}

impl StoreCommand {
    fn store(&self) -> &StoreArgs {
        match self {
            Self::Deploy { store, .. }
            | Self::List { store, .. }
            | Self::Remove { store, .. }
            | Self::Rollback { store, .. } => store,
        }
    }
}

/// Runs a store command: prints its result, or reports its error and exits
/// with the error's code.
pub fn run(command: &StoreCommand, errors: ErrorReport) -> ExitCode {
    let topic = match command.store().topic() {
        Ok(topic) => topic,
        Err(error) => {
            errors.error(&error.to_string());
            return exit::code(CONFIG);
        }
    };
    match block_on(None, errors, perform(command, &topic)) {
        Some(Ok(printed)) => {
            println!("{printed}");
            ExitCode::SUCCESS
        }
        Some(Err(StoreError::Invalid(problems))) => {
            for problem in problems {
                errors.error(&problem.to_string());
            }
            errors.error(&StoreError::Invalid(Vec::new()).to_string());
            exit::code(FAILED)
        }
        Some(Err(error)) => {
            errors.error(&error.to_string());
            exit::code(match error {
                StoreError::Client(_) => CONFIG,
                error if error.is_refusal() => FAILED,
                _ => RUNTIME,
            })
        }
        None => exit::code(RUNTIME),
    }
}

/// Does what `command` asks; returns what to print.
async fn perform(command: &StoreCommand, topic: &StoreTopic) -> Result<String, StoreError> {
    Ok(match command {
        StoreCommand::Deploy { file, manifest, .. } => {
            let request = DeployRequest {
                file,
                manifest: manifest.as_deref(),
            };
            match operations::deploy(topic, request).await? {
                Deployed::New(record) => format!(
                    "deployed {} {} (sha256 {})",
                    record.name, record.current.version, record.current.sha256
                ),
                Deployed::Unchanged(record) => format!(
                    "unchanged: {} {} (sha256 {}) is the current version already",
                    record.name, record.current.version, record.current.sha256
                ),
            }
        }
        StoreCommand::List { json, .. } => {
            let state = operations::list(topic).await?;
            if *json {
                json_listing(&topic.name, state.unwrap_or_default())
            } else {
                text_listing(&topic.name, state)
            }
        }
        StoreCommand::Remove { name, .. } => {
            let record = operations::remove(topic, name).await?;
            format!(
                "removed {} (version {})",
                record.name, record.current.version
            )
        }
        StoreCommand::Rollback { name, .. } => {
            let record = operations::rollback(topic, name).await?;
            let previous = record
                .previous
                .as_ref()
                .map_or("none", |p| p.version.as_str());
            format!(
                "rolled back {} to {} (sha256 {}); previous {previous}",
                record.name, record.current.version, record.current.sha256
            )
        }
    })
}

/// What `plugin list --json` prints: the store's records.
#[derive(Serialize)]
struct Listing<'a> {
    topic: &'a str,
    plugins: Vec<PluginRecord>,
    statuses: Vec<StatusRecord>,
}

fn json_listing(topic: &str, state: StoreState) -> String {
    let listing = Listing {
        topic,
        plugins: state.plugins.into_values().collect(),
        statuses: (state.statuses.into_values())
            .flat_map(|plugins| plugins.into_values())
            .collect(),
    };
    serde_json::to_string_pretty(&listing).expect("a listing serializes")
}

/// Two tables: each plugin's desired version, then each host's.
fn text_listing(topic: &str, state: Option<StoreState>) -> String {
    let Some(state) = state.filter(|state| !state.plugins.is_empty()) else {
        return format!("no plugins in the plugin store {topic}");
    };
    let short = |sha256: &str| sha256.chars().take(12).collect::<String>();
    let mut plugins = vec![row([
        "PLUGIN", "VERSION", "SHA256", "PREVIOUS", "STATE", "UPDATED",
    ])];
    for record in state.plugins.values() {
        let previous = record.previous.as_ref().map_or("-", |p| p.version.as_str());
        let desired = serde_json::to_value(record.state).expect("a state serializes");
        plugins.push(row([
            &record.name,
            &record.current.version,
            &short(&record.current.sha256),
            previous,
            desired.as_str().unwrap_or_default(),
            &record.updated_at,
        ]));
    }
    let mut hosts = vec![row([
        "HOST",
        "PLUGIN",
        "VERSION",
        "SHA256",
        "STATE",
        "UPDATED",
        "LAST ERROR",
    ])];
    for status in state.statuses.values().flat_map(|plugins| plugins.values()) {
        let served = serde_json::to_value(status.state).expect("a state serializes");
        hosts.push(row([
            &status.host,
            &status.plugin,
            status.version.as_deref().unwrap_or("-"),
            &short(status.sha256.as_deref().unwrap_or("-")),
            served.as_str().unwrap_or_default(),
            &status.updated_at,
            status.last_error.as_deref().unwrap_or("-"),
        ]));
    }
    let hosts = match hosts.len() {
        1 => "no host has reported yet".to_owned(),
        _ => table(&hosts),
    };
    format!("{}\n\n{hosts}", table(&plugins))
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|cell| (*cell).to_owned()).collect()
}

/// Rows as columns padded to their widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .map(|r| r[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|cells| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect();
            padded.join("  ").trim_end().to_owned()
        })
        .collect();
    lines.join("\n")
}
