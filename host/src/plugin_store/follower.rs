//! A host following the plugin store: it reads the topic from its
//! beginning (assigned its partition, in no consumer group), keeps the
//! latest record of each key, and writes each plugin's current version into
//! its plugin directory. The directory's registry then validates the
//! version off the hot path and swaps it in at a batch boundary, or rejects
//! it while the old version serves, exactly as for a version copied into
//! the directory by hand. After each change, and whenever the registry's
//! view of a store plugin changes, the host writes a status record of what
//! it serves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::StoreError;
use super::materialise::Materialiser;
use super::records::{DesiredState, RecordKey, StatusRecord, StoreState};
use super::topic::{StoreTopic, StoreWriter};
use crate::client_events::{ClientEvents, LogLimiter};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::plugin_dir::PluginRegistry;
use crate::plugins::{PluginStatus, now_rfc3339};

/// How long a host waits at start to read the store to its end before it
/// starts with what it has read (and goes on following it): bounded, so
/// that a host started before its brokers still comes up, serves health
/// and says why it is not ready.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the brokers have to take the host's status records.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the follower waits for another record before it applies what
/// it has read. The end of the partition is reported only once a fetch
/// comes back empty, which the broker holds back for `fetch.wait.max.ms`
/// (librdkafka's 500 ms); records written together arrive well within
/// this of each other.
const APPLY_QUIET: Duration = Duration::from_millis(50);

/// How often the registry's view of the store's plugins is compared with
/// the status records last written; a change is written at the next look.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// What the store consumer's client reports, as the host's other clients
/// report it, but for reaching the end of the partition: that is news the
/// follower waits for, not an error.
struct StoreEvents(ClientEvents);

impl ClientContext for StoreEvents {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, text: &str) {
        self.0.log(level, facility, text);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            self.0.error(error, reason);
        }
    }
}

/// It has no rebalances: its partition is assigned.
impl ConsumerContext for StoreEvents {}

/// Follows the store for one host.
pub struct StoreFollower {
    consumer: StreamConsumer<StoreEvents>,
    host: HostStore,
}

/// Everything but the consumer, so that a record borrowed from the
/// consumer can be taken in.
struct HostStore {
    topic: StoreTopic,
    /// This host's name in its status records.
    name: String,
    writer: StoreWriter<ClientEvents>,
    state: StoreState,
    files: Materialiser,
    /// Why a plugin's current version could not be written into the
    /// directory (its chunks missing or not matching its digest).
    unwritten: BTreeMap<String, String>,
    /// The status records last written, by plugin.
    published: BTreeMap<String, StatusRecord>,
    /// Whether the directory is the host's own, deleted when it stops.
    own_dir: bool,
}

impl StoreFollower {
    /// Connects to the store's topic `topic` (creating it if missing),
    /// reads it to its end (for at most [`CATCH_UP_TIMEOUT`]) and writes
    /// its plugins into `dir`, before the registry reads the directory.
    pub async fn start(
        config: &Config,
        topic: &str,
        dir: PathBuf,
        own_dir: bool,
        metrics: &Metrics,
    ) -> Result<Self, StoreError> {
        let topic = StoreTopic::new(&config.kafka, topic, WRITE_TIMEOUT);
        let events = || ClientEvents::new("plugin_store", "", metrics.clone());
        let consumer: StreamConsumer<StoreEvents> = topic
            .consumer_config()
            .create_with_context(StoreEvents(events()))
            .map_err(StoreError::Client)?;
        let writer = StoreWriter::with_context(&topic, events())?;
        if let Err(error) = topic.ensure().await {
            tracing::warn!(%error, "cannot make sure the plugin store topic exists; following it anyway");
        }
        topic.assign_from_beginning(&consumer)?;
        let mut follower = Self {
            consumer,
            host: HostStore {
                name: super::host_name(config),
                topic,
                writer,
                state: StoreState::new(true),
                files: Materialiser::new(dir),
                unwritten: BTreeMap::new(),
                published: BTreeMap::new(),
                own_dir,
            },
        };
        follower.catch_up().await;
        Ok(follower)
    }

    async fn catch_up(&mut self) {
        let reading = async {
            loop {
                match self.consumer.recv().await {
                    Ok(message) => self.host.take(&message),
                    Err(KafkaError::PartitionEOF(_)) => return,
                    Err(error) => self.host.read_failed(&error),
                }
            }
        };
        if tokio::time::timeout(CATCH_UP_TIMEOUT, reading)
            .await
            .is_err()
        {
            tracing::warn!(
                topic = %self.host.topic.name,
                waited = ?CATCH_UP_TIMEOUT,
                "the plugin store was not read to its end in time; starting with what was read, and following it"
            );
        }
        self.host.write_plugins();
        let plugins = self.host.files.names().count();
        tracing::info!(topic = %self.host.topic.name, host = %self.host.name, plugins, dir = %self.host.files.dir().display(), "plugin store read");
    }

    /// The plugins written into the directory so far.
    pub fn plugin_names(&self) -> BTreeSet<String> {
        self.host.files.names().cloned().collect()
    }

    /// Follows the store until `shutdown`, applying each change through
    /// `registry`; then deletes this host's status records. The task ends
    /// once they are deleted.
    pub fn follow(
        self,
        registry: Arc<PluginRegistry>,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let Self { consumer, mut host } = self;
        tokio::spawn(async move {
            let mut look = tokio::time::interval(STATUS_INTERVAL);
            look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Records taken in but not yet applied: they are applied once
            // the partition's end is reached or no record has come for
            // APPLY_QUIET, so that records written together (a deploy's
            // chunks and plugin record, a burst of changes) are applied
            // together, and only each plugin's latest version is loaded.
            let mut pending = false;
            let quiet = tokio::time::sleep(APPLY_QUIET);
            tokio::pin!(quiet);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = look.tick() => host.publish(&registry).await,
                    () = &mut quiet, if pending => {
                        pending = false;
                        host.apply(&registry).await;
                    }
                    received = consumer.recv() => match received {
                        Ok(message) => {
                            host.take(&message);
                            pending = true;
                            quiet.as_mut().reset(Instant::now() + APPLY_QUIET);
                        }
                        Err(KafkaError::PartitionEOF(_)) => {
                            if std::mem::take(&mut pending) {
                                host.apply(&registry).await;
                            }
                        }
                        Err(error) => host.read_failed(&error),
                    },
                }
            }
            host.leave().await;
        })
    }
}

impl HostStore {
    fn take(&mut self, message: &BorrowedMessage<'_>) {
        let key = message.key().unwrap_or_default();
        if let Err(error) = self.state.apply(key, message.payload())
            && LogLimiter::global().admit("plugin-store-record").is_some()
        {
            tracing::warn!(topic = %self.topic.name, offset = message.offset(), %error, "plugin store record skipped");
        }
    }

    fn read_failed(&self, error: &KafkaError) {
        if let Some(held_back) = LogLimiter::global().admit("plugin-store-read") {
            tracing::warn!(topic = %self.topic.name, %error, held_back, "cannot read the plugin store; retrying");
        }
    }

    /// Writes what changed into the directory, has the registry read it,
    /// and writes this host's status.
    async fn apply(&mut self, registry: &PluginRegistry) {
        let changed = self.write_plugins();
        registry.set_store_plugins(self.files.names().cloned().collect());
        if changed {
            // Read now rather than after the watcher's debounce; the
            // watcher's own read then finds nothing new.
            registry.sync().await;
            self.files.clean_up();
        }
        self.publish(registry).await;
    }

    /// Brings the directory to the store's current state. Returns whether
    /// anything in it changed.
    fn write_plugins(&mut self) -> bool {
        let mut changed = false;
        for (name, record) in &self.state.plugins {
            let removed = match record.state {
                DesiredState::Removed => true,
                DesiredState::Deployed if self.files.holds(name, &record.current) => continue,
                DesiredState::Deployed => false,
            };
            let written = if removed {
                self.files.remove(name).map_err(|e| e.to_string())
            } else {
                let version = &record.current;
                self.state
                    .component(version)
                    .map_err(|e| e.to_string())
                    .and_then(|wasm| {
                        self.files
                            .write(name, version, &wasm)
                            .map(|()| true)
                            .map_err(|e| {
                                format!("cannot write it into {}: {e}", self.files.dir().display())
                            })
                    })
            };
            let version = &record.current.version;
            match written {
                Ok(wrote) => {
                    self.unwritten.remove(name);
                    changed |= wrote;
                    let sha256 = &record.current.sha256;
                    if wrote && removed {
                        tracing::info!(plugin = %name, version, "plugin removed from the store; stopping it");
                    } else if wrote {
                        tracing::info!(plugin = %name, version, sha256, "plugin version from the store written");
                    }
                }
                Err(reason) => {
                    let error = format!("version {version}: {reason}");
                    if self.unwritten.get(name) != Some(&error) {
                        tracing::error!(plugin = %name, version, %error, "plugin version from the store cannot be written");
                    }
                    self.unwritten.insert(name.clone(), error);
                }
            }
        }
        // Plugins whose record was deleted altogether.
        let gone: Vec<String> = (self.files.names())
            .filter(|name| !self.state.plugins.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            changed |= self.files.remove(&name).unwrap_or(false);
        }
        changed
    }

    /// Writes a status record for each store plugin whose status changed
    /// since the last one written.
    async fn publish(&mut self, registry: &PluginRegistry) {
        let mut names: BTreeSet<&String> = self.state.plugins.keys().collect();
        names.extend(self.published.keys());
        names.extend(self.unwritten.keys());
        let changed: Vec<StatusRecord> = names
            .into_iter()
            .filter_map(|name| self.status(registry, name))
            .filter(|status| {
                let last = self.published.get(&status.plugin);
                !last.is_some_and(|last| same_status(last, status))
            })
            .collect();
        if changed.is_empty() {
            return;
        }
        let values: Vec<(RecordKey, Vec<u8>)> = changed
            .iter()
            .map(|status| {
                let key = RecordKey::Status {
                    host: self.name.clone(),
                    plugin: status.plugin.clone(),
                };
                (
                    key,
                    serde_json::to_vec(status).expect("a status serializes"),
                )
            })
            .collect();
        let records = (values.iter())
            .map(|(key, value)| (key.clone(), Some(&value[..])))
            .collect();
        match self.writer.write(records).await {
            Ok(()) => {
                for status in changed {
                    self.published.insert(status.plugin.clone(), status);
                }
            }
            Err(error) => {
                if LogLimiter::global().admit("plugin-store-status").is_some() {
                    tracing::warn!(%error, "cannot write this host's plugin status to the store; trying again");
                }
            }
        }
    }

    /// What this host serves of plugin `name`: the registry's status, with
    /// the reason the store's current version could not be written, if it
    /// could not.
    fn status(&self, registry: &PluginRegistry, name: &str) -> Option<StatusRecord> {
        let unwritten = self.unwritten.get(name).cloned();
        let status = match registry.status(name) {
            Some(status) => status,
            None if unwritten.is_some() => PluginStatus::unloaded(name),
            None => return None,
        };
        Some(StatusRecord {
            host: self.name.clone(),
            plugin: name.to_owned(),
            version: status.version,
            sha256: status.sha256,
            state: status.state,
            pipelines: status.pipelines,
            last_error: unwritten.or(status.last_error),
            loaded_at: status.loaded_at,
            updated_at: now_rfc3339(),
        })
    }

    /// The host stops: its status records are deleted (a host that is
    /// killed leaves its last ones, with their time), and its own directory
    /// too.
    async fn leave(self) {
        let tombstones = (self.published.keys())
            .map(|plugin| {
                let key = RecordKey::Status {
                    host: self.name.clone(),
                    plugin: plugin.clone(),
                };
                (key, None)
            })
            .collect();
        if let Err(error) = self.writer.write(tombstones).await {
            tracing::warn!(%error, "cannot delete this host's plugin status records");
        }
        if self.own_dir
            && let Err(error) = std::fs::remove_dir_all(self.files.dir())
        {
            tracing::warn!(dir = %self.files.dir().display(), %error, "cannot delete the plugin directory");
        }
    }
}

/// Whether two status records say the same, whenever written.
fn same_status(a: &StatusRecord, b: &StatusRecord) -> bool {
    StatusRecord {
        updated_at: String::new(),
        ..a.clone()
    } == StatusRecord {
        updated_at: String::new(),
        ..b.clone()
    }
}
