//! The host's configuration file (`runnel.toml`).
//!
//! Every field is documented here; these comments are the reference. Unknown
//! fields are refused so that a typo is an error at start, not a silently
//! ignored setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::backoff::Backoff;
pub use crate::backoff::BackoffKind;
use crate::runtime::{PluginLimits, default_call_timeout, default_max_memory_bytes};

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
    #[error("{0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How to reach Kafka, and raw client options.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// The HTTP server: stats, metrics, health, Dapr bindings.
    #[serde(default)]
    pub http: HttpConfig,
    /// Settings shared by every plugin on this host.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// The Dapr sidecar, for pipelines that send to Dapr output bindings.
    #[serde(default)]
    pub dapr: DaprConfig,
    /// How long shutdown may take to finish in-flight work before giving up.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// The pipelines, by name.
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// A plugin directory to watch: plugins added, changed or removed there
    /// start, swap or stop their pipelines while the host runs.
    pub plugins: Option<PluginDirConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (librdkafka's `bootstrap.servers`).
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Raw librdkafka options for every consumer, passed through unchanged
    /// (for example `"security.protocol" = "SASL_SSL"`). They win over
    /// Runnel's defaults but not over the settings Runnel needs for
    /// correctness (`enable.auto.offset.store`).
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// Raw librdkafka options for the producer, passed through unchanged.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: default_brokers(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaprConfig {
    /// Base URL of the sidecar's HTTP API.
    #[serde(default = "default_dapr_sidecar")]
    pub sidecar: String,
}

impl Default for DaprConfig {
    fn default() -> Self {
        Self {
            sidecar: default_dapr_sidecar(),
        }
    }
}

// ---- plugin directory (hot reload) ----

/// The `[plugins]` table. Each plugin in `dir` is a manifest `NAME.toml`
/// (name, version, component, and optionally a `[pipeline]` table with the
/// settings of a pipeline table here) beside its component (`NAME.wasm`
/// unless the manifest names another file). The manifest is the commit
/// point: write the component first, then the manifest, each by writing a
/// temporary file and renaming it into place.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDirConfig {
    /// The directory, relative to the config file. Hosts that mount the
    /// same directory serve the same versions.
    pub dir: PathBuf,
    /// Quiet time after the last change in the directory before it is read,
    /// so that a file being written is read once it is complete.
    #[serde(default = "default_plugin_debounce", with = "humantime_serde")]
    pub debounce: Duration,
    /// How often the whole directory is read again even without a change
    /// notice: network filesystems do not always deliver them.
    #[serde(default = "default_plugin_rescan", with = "humantime_serde")]
    pub rescan_interval: Duration,
}

fn default_plugin_debounce() -> Duration {
    // Long enough for a copy of a few megabytes to finish, short next to the
    // time a component takes to compile.
    Duration::from_millis(250)
}

fn default_plugin_rescan() -> Duration {
    Duration::from_secs(30)
}

/// Where a pipeline's plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A component file, loaded once at start.
    File(PathBuf),
    /// A plugin of the plugin directory, by name: swapped when it changes,
    /// stopped when it is removed.
    Directory(String),
}

impl PluginSource {
    /// A value containing `/` or ending in `.wasm` is a path; a plain name
    /// (letters, digits, `-`, `_`) names a plugin of the plugin directory.
    fn parse(plugin: &Path) -> Option<Self> {
        let text = plugin.to_string_lossy();
        if text.ends_with(".wasm") || text.contains('/') {
            return Some(Self::File(plugin.to_owned()));
        }
        is_plugin_name(&text).then(|| Self::Directory(text.into_owned()))
    }
}

/// Whether `name` can name a plugin (and its manifest file).
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

// ---- end plugin directory ----

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP server listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Count fuel in every plugin, so that `runnel_plugin_fuel_used_total`
    /// covers them all. Off, only plugins with a `limits.fuel` budget count
    /// fuel: counting costs a plugin about a tenth of its speed.
    #[serde(default)]
    pub fuel_metering: bool,
    /// Plugin instances alive at once on each of the host's engines (one, or
    /// two once a plugin has a fuel budget).
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Threads running pipelines, plugin calls and the HTTP server; one per
    /// CPU when unset. Different partitions' plugin calls run on them in
    /// parallel. Fewer threads wake fewer of each other per message; on two
    /// cores shared with Kafka, one thread cost batch pipelines 7–18%
    /// of their throughput and did not reliably shorten per-message
    /// latency (the figures are in `bench/README.md`).
    #[serde(default)]
    pub worker_threads: Option<usize>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            fuel_metering: false,
            max_instances: default_max_instances(),
            worker_threads: None,
        }
    }
}

/// When a message's offset is committed relative to its processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CommitStrategy {
    /// After its outputs are acknowledged: at-least-once, never loses a
    /// message, may repeat some after a crash.
    #[default]
    AfterProcessing,
    /// Before the plugin sees it: at-most-once, never repeats a message, may
    /// lose the batch in flight at a crash.
    BeforeProcessing,
}

/// Retries of messages a plugin reports as transiently failed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default)]
    pub backoff: BackoffKind,
    /// Wait before the first retry.
    #[serde(default = "default_initial_delay", with = "humantime_serde")]
    pub initial_delay: Duration,
    /// No wait is longer than this.
    #[serde(default = "default_max_delay", with = "humantime_serde")]
    pub max_delay: Duration,
    /// Attempts in all, the first included; then the message counts as
    /// failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            backoff: BackoffKind::default(),
            initial_delay: default_initial_delay(),
            max_delay: default_max_delay(),
            max_attempts: default_max_attempts(),
        }
    }
}

impl RetryConfig {
    /// The wait after `attempt` failed attempts (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        Backoff {
            kind: self.backoff,
            initial: self.initial_delay,
            max: self.max_delay,
        }
        .delay(attempt)
    }
}

/// What happens to a message that finally failed when there is no
/// dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Log it, count it, and move on.
    #[default]
    Skip,
    /// Stop the pipeline; nothing is committed past the failed message.
    Stop,
}

/// Presets for batching and consumer timeouts; explicit settings win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Small batches, short waits: notifications, event-driven work.
    Realtime,
    /// Large batches: ETL, aggregation.
    Batch,
    /// Slow handlers (up to ten minutes a batch): inference, heavy work.
    LongRunning,
}

/// What a profile sets when the pipeline does not.
struct ProfileDefaults {
    batch_size: usize,
    batch_timeout: Duration,
    call_timeout: Duration,
    consumer: &'static [(&'static str, &'static str)],
}

impl Profile {
    fn defaults(self) -> ProfileDefaults {
        match self {
            Profile::Realtime => ProfileDefaults {
                batch_size: 1,
                batch_timeout: Duration::from_millis(10),
                call_timeout: default_call_timeout(),
                consumer: &[
                    ("fetch.wait.max.ms", "10"),
                    ("session.timeout.ms", "10000"),
                    ("heartbeat.interval.ms", "3000"),
                    ("max.poll.interval.ms", "60000"),
                ],
            },
            Profile::Batch => ProfileDefaults {
                batch_size: 500,
                batch_timeout: Duration::from_secs(1),
                call_timeout: Duration::from_secs(60),
                consumer: &[
                    ("fetch.wait.max.ms", "500"),
                    ("session.timeout.ms", "45000"),
                    ("max.poll.interval.ms", "300000"),
                ],
            },
            Profile::LongRunning => ProfileDefaults {
                batch_size: 10,
                batch_timeout: Duration::from_secs(5),
                call_timeout: Duration::from_secs(600),
                consumer: &[
                    ("session.timeout.ms", "45000"),
                    // A batch may take ten minutes; the group must not evict
                    // the consumer meanwhile.
                    ("max.poll.interval.ms", "900000"),
                ],
            },
        }
    }
}

/// One pipeline: inputs → plugin → outputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Kafka topics to consume.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Dapr input bindings feeding this pipeline: the sidecar calls
    /// `OPTIONS /{binding}` at start-up and `POST /{binding}` per message.
    #[serde(default)]
    pub bindings: Vec<String>,
    /// Consumer group; defaults to `runnel-<pipeline name>`.
    pub group: Option<String>,
    /// Path of the plugin's component (`.wasm`), relative to the config file;
    /// or the name of a plugin in the plugin directory (`plugin = "orders"`),
    /// which is then swapped when it changes there.
    #[serde(default)]
    pub plugin: PathBuf,
    /// Configuration handed to the plugin's `init`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Topic for outputs that do not name one.
    pub output: Option<String>,
    /// Send outputs to this Dapr output binding instead of Kafka.
    pub output_binding: Option<String>,
    /// Presets for the settings below; explicit settings win.
    pub profile: Option<Profile>,
    /// Messages per plugin call; 1 is per-message mode (no waiting).
    pub batch_size: Option<usize>,
    /// Longest a batch waits for more messages after its first one.
    #[serde(default, with = "humantime_serde")]
    pub batch_timeout: Option<Duration>,
    /// Plugin calls running at once (partitions are processed in parallel up
    /// to this).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Messages received but not yet committed, above which the pipeline
    /// stops taking more.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Their keys and values in MiB, above which the pipeline stops taking
    /// more: what bounds memory when messages are large.
    #[serde(default = "default_max_in_flight_mib")]
    pub max_in_flight_mib: usize,
    /// When offsets are committed: `after_processing` or `before_processing`.
    #[serde(default)]
    pub commit: CommitStrategy,
    /// Sandbox limits for the plugin.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Retries of transient failures.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Topic for messages that finally failed, with headers saying why.
    pub dead_letter_topic: Option<String>,
    /// Without a dead-letter topic: `skip` a failed message, or `stop` the
    /// pipeline at it.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Kafka transactions: a batch's outputs and its consumed offsets are
    /// committed atomically, so `read_committed` consumers see each output
    /// exactly once, across crashes and rebalances.
    #[serde(default)]
    pub exactly_once: bool,
    /// Raw librdkafka options for this pipeline's consumer; win over
    /// `[kafka.consumer]` and the profile.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest linear memory, in MiB.
    pub max_memory_mib: Option<u64>,
    /// Wall-clock deadline per plugin call.
    #[serde(default, with = "humantime_serde")]
    pub call_timeout: Option<Duration>,
    /// Fuel per call (about one unit per WebAssembly instruction). A plugin
    /// with a budget runs on a fuel-metered engine of its own.
    pub fuel: Option<u64>,
}

/// A pipeline's settings with the profile and defaults applied.
#[derive(Debug, Clone)]
pub struct ResolvedPipeline {
    pub name: String,
    pub inputs: Vec<String>,
    pub bindings: Vec<String>,
    pub group: String,
    pub plugin: PluginSource,
    pub plugin_config: Vec<(String, String)>,
    pub output: Option<String>,
    pub output_binding: Option<String>,
    pub batch_size: usize,
    pub batch_timeout: Duration,
    pub max_concurrent: usize,
    pub max_in_flight: usize,
    pub max_in_flight_bytes: usize,
    pub commit: CommitStrategy,
    pub limits: PluginLimits,
    pub retry: RetryConfig,
    pub dead_letter_topic: Option<String>,
    pub on_failure: OnFailure,
    pub exactly_once: bool,
    /// Consumer options: profile, then `[kafka.consumer]`, then the
    /// pipeline's own.
    pub consumer: BTreeMap<String, String>,
}

impl Config {
    /// Reads a config file and applies `path.to.field=value` overrides.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
            path: path.to_owned(),
            reason,
        })?;
        let mut config = Self::parse(&text, overrides).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        // Plugin paths are relative to the file that names them.
        let base = path.parent().unwrap_or(Path::new("."));
        for pipeline in config.pipelines.values_mut() {
            let is_file = matches!(
                PluginSource::parse(&pipeline.plugin),
                Some(PluginSource::File(_))
            );
            if is_file && pipeline.plugin.is_relative() {
                pipeline.plugin = base.join(&pipeline.plugin);
            }
        }
        if let Some(plugins) = &mut config.plugins
            && plugins.dir.is_relative()
        {
            plugins.dir = base.join(&plugins.dir);
        }
        Ok(config)
    }

    pub fn parse(text: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message,
        };
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| parse_error(e.to_string()))?;
        for spec in overrides {
            apply_override(&mut table, spec)?;
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| parse_error(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.kafka.brokers.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "kafka.brokers must name at least one broker".into(),
            ));
        }
        if self.runtime.worker_threads == Some(0) {
            return Err(ConfigError::Invalid(
                "runtime.worker_threads must be at least 1".into(),
            ));
        }
        let mut bindings = std::collections::HashSet::new();
        for name in self.pipelines.keys() {
            let pipeline = self.resolve(name)?;
            for binding in pipeline.bindings {
                if !bindings.insert(binding.clone()) {
                    return Err(ConfigError::Invalid(format!(
                        "Dapr binding `{binding}` feeds more than one pipeline"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The named pipeline with its profile and defaults applied.
    pub fn resolve(&self, name: &str) -> Result<ResolvedPipeline, ConfigError> {
        let invalid = |message: String| ConfigError::Pipeline {
            pipeline: name.to_owned(),
            message,
        };
        let pipeline = self
            .pipelines
            .get(name)
            .ok_or_else(|| invalid("no such pipeline".into()))?;
        self.resolve_pipeline(name, pipeline)
    }

    /// `pipeline`, named `name`, with its profile and defaults applied: a
    /// pipeline of this file or of a plugin manifest.
    pub fn resolve_pipeline(
        &self,
        name: &str,
        pipeline: &PipelineConfig,
    ) -> Result<ResolvedPipeline, ConfigError> {
        let invalid = |message: String| ConfigError::Pipeline {
            pipeline: name.to_owned(),
            message,
        };
        if pipeline.plugin.as_os_str().is_empty() {
            return Err(invalid(
                "needs `plugin`: a path to a `.wasm` component or the name of a plugin in the \
                 plugin directory"
                    .into(),
            ));
        }
        let plugin = PluginSource::parse(&pipeline.plugin).ok_or_else(|| {
            invalid(format!(
                "`plugin` must be a path to a `.wasm` component or the name of a plugin in the \
                 plugin directory, not `{}`",
                pipeline.plugin.display()
            ))
        })?;
        if let PluginSource::Directory(plugin) = &plugin
            && self.plugins.is_none()
        {
            return Err(invalid(format!(
                "`plugin = \"{plugin}\"` names a plugin of the plugin directory, but `[plugins] dir` \
                 is not set (a path to a component ends in `.wasm`)"
            )));
        }
        if pipeline.inputs.is_empty() && pipeline.bindings.is_empty() {
            return Err(invalid(
                "needs `inputs` (Kafka topics) or `bindings` (Dapr input bindings)".into(),
            ));
        }
        for binding in &pipeline.bindings {
            if RESERVED_PATHS.contains(&binding.as_str())
                || binding.is_empty()
                || !binding
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(invalid(format!(
                    "binding name `{binding}` is reserved or not a plain path segment"
                )));
            }
        }
        let profile = pipeline.profile.map(Profile::defaults);
        let batch_size = pipeline
            .batch_size
            .or(profile.as_ref().map(|p| p.batch_size))
            .unwrap_or(1);
        if batch_size == 0 {
            return Err(invalid("`batch_size` must be at least 1".into()));
        }
        if pipeline.max_concurrent == 0 {
            return Err(invalid("`max_concurrent` must be at least 1".into()));
        }
        if pipeline.max_in_flight < batch_size {
            return Err(invalid(format!(
                "`max_in_flight` ({}) must be at least `batch_size` ({batch_size})",
                pipeline.max_in_flight
            )));
        }
        if pipeline.max_in_flight_mib == 0 {
            return Err(invalid("`max_in_flight_mib` must be at least 1".into()));
        }
        let batch_timeout = pipeline
            .batch_timeout
            .or(profile.as_ref().map(|p| p.batch_timeout))
            .unwrap_or(Duration::from_millis(100));
        let limits = PluginLimits {
            max_memory_bytes: pipeline
                .limits
                .max_memory_mib
                .map_or(default_max_memory_bytes(), |mib| mib << 20),
            call_timeout: pipeline
                .limits
                .call_timeout
                .or(profile.as_ref().map(|p| p.call_timeout))
                .unwrap_or(default_call_timeout()),
            fuel_per_call: pipeline.limits.fuel,
        };
        if pipeline.retry.max_attempts == 0 {
            return Err(invalid("`retry.max_attempts` must be at least 1".into()));
        }
        if pipeline.exactly_once && pipeline.commit == CommitStrategy::BeforeProcessing {
            return Err(invalid(
                "`exactly_once` commits offsets with the outputs; it cannot be combined with `commit = \"before_processing\"`".into(),
            ));
        }
        if pipeline.exactly_once && pipeline.output_binding.is_some() {
            return Err(invalid(
                "`exactly_once` needs Kafka outputs; a Dapr output binding is not transactional"
                    .into(),
            ));
        }
        let mut consumer = BTreeMap::new();
        if let Some(profile) = &profile {
            for (key, value) in profile.consumer {
                consumer.insert(key.to_string(), value.to_string());
            }
        }
        consumer.extend(self.kafka.consumer.clone());
        consumer.extend(pipeline.consumer.clone());
        Ok(ResolvedPipeline {
            name: name.to_owned(),
            inputs: pipeline.inputs.clone(),
            bindings: pipeline.bindings.clone(),
            group: pipeline
                .group
                .clone()
                .unwrap_or_else(|| format!("runnel-{name}")),
            plugin,
            plugin_config: pipeline
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            output: pipeline.output.clone(),
            output_binding: pipeline.output_binding.clone(),
            batch_size,
            batch_timeout,
            max_concurrent: pipeline.max_concurrent,
            max_in_flight: pipeline.max_in_flight,
            max_in_flight_bytes: pipeline.max_in_flight_mib << 20,
            commit: pipeline.commit,
            limits,
            retry: pipeline.retry.clone(),
            dead_letter_topic: pipeline.dead_letter_topic.clone(),
            on_failure: pipeline.on_failure,
            exactly_once: pipeline.exactly_once,
            consumer,
        })
    }
}

/// Sets `a.b.c = value` in the parsed file. The value is read as TOML when
/// it parses (numbers, booleans, quoted strings), and as a bare string
/// otherwise, so `kafka.brokers=host:9092` needs no quotes.
fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::BadOverride(spec.to_owned());
    let (path, raw) = spec.split_once('=').ok_or_else(bad)?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(bad());
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let (last, parents) = keys.split_last().ok_or_else(bad)?;
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(bad)?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

/// Paths of the HTTP server that a Dapr binding must not shadow.
const RESERVED_PATHS: &[&str] = &["metrics", "healthz", "readyz", "messages", "plugins"];

fn default_initial_delay() -> Duration {
    Duration::from_millis(100)
}

fn default_max_delay() -> Duration {
    Duration::from_secs(10)
}

const fn default_max_attempts() -> u32 {
    3
}

fn default_dapr_sidecar() -> String {
    // Dapr's default HTTP port.
    "http://127.0.0.1:3500".into()
}

fn default_brokers() -> String {
    "127.0.0.1:9092".into()
}

fn default_listen() -> SocketAddr {
    // Port 3000, as the Dapr message processor Runnel replaces used.
    SocketAddr::from(([0, 0, 0, 0], 3000))
}

const fn default_max_body_bytes() -> usize {
    // Kafka's default message.max.bytes is about 1 MiB; a little headroom.
    4 << 20
}

const fn default_max_instances() -> u32 {
    256
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}

const fn default_max_concurrent() -> usize {
    4
}

const fn default_max_in_flight() -> usize {
    // Enough to keep every partition's batches moving while outputs wait for
    // the broker (on a shared two-core machine, 10 000 held the pipeline to
    // 0.8 times a raw consume-produce loop, 50 000 to parity); the byte bound
    // below keeps large messages in check.
    50_000
}

const fn default_max_in_flight_mib() -> usize {
    // librdkafka's own default for prefetched consumer data.
    64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [pipelines.upper]
        inputs = ["in"]
        plugin = "uppercase.wasm"
        output = "out"
    "#;

    #[test]
    fn defaults_apply_to_a_minimal_pipeline() {
        let config = Config::parse(MINIMAL, &[]).unwrap();
        let pipeline = config.resolve("upper").unwrap();
        assert_eq!(pipeline.group, "runnel-upper");
        assert_eq!(pipeline.batch_size, 1);
        assert_eq!(pipeline.commit, CommitStrategy::AfterProcessing);
        assert_eq!(config.http.listen.port(), 3000);
    }

    #[test]
    fn a_profile_presets_and_explicit_settings_win() {
        let text = format!("{MINIMAL}\nprofile = \"batch\"\nbatch_timeout = \"250ms\"\n");
        let pipeline = Config::parse(&text, &[]).unwrap().resolve("upper").unwrap();
        assert_eq!(pipeline.batch_size, 500, "from the profile");
        assert_eq!(
            pipeline.batch_timeout,
            Duration::from_millis(250),
            "explicit"
        );
        assert_eq!(pipeline.consumer["max.poll.interval.ms"], "300000");
    }

    #[test]
    fn raw_consumer_options_layer_global_then_pipeline() {
        let text = format!(
            "[kafka.consumer]\n\"fetch.wait.max.ms\" = \"7\"\n\"client.rack\" = \"a\"\n{MINIMAL}\nprofile = \"realtime\"\n[pipelines.upper.consumer]\n\"client.rack\" = \"b\"\n"
        );
        let pipeline = Config::parse(&text, &[]).unwrap().resolve("upper").unwrap();
        assert_eq!(
            pipeline.consumer["fetch.wait.max.ms"], "7",
            "global beats profile"
        );
        assert_eq!(
            pipeline.consumer["client.rack"], "b",
            "pipeline beats global"
        );
    }

    #[test]
    fn overrides_set_nested_fields_with_or_without_quotes() {
        let config = Config::parse(
            MINIMAL,
            &[
                "kafka.brokers=10.0.0.1:9092".into(),
                "pipelines.upper.batch_size=50".into(),
                "pipelines.upper.batch_timeout=\"2s\"".into(),
            ],
        )
        .unwrap();
        assert_eq!(config.kafka.brokers, "10.0.0.1:9092");
        let pipeline = config.resolve("upper").unwrap();
        assert_eq!(pipeline.batch_size, 50);
        assert_eq!(pipeline.batch_timeout, Duration::from_secs(2));
    }

    #[test]
    fn backoff_kinds_grow_as_documented_and_stop_at_the_maximum() {
        let retry = |backoff| RetryConfig {
            backoff,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            max_attempts: 5,
        };
        let delays = |backoff| {
            (1..=4)
                .map(|a| retry(backoff).delay(a).as_millis())
                .collect::<Vec<_>>()
        };
        assert_eq!(delays(BackoffKind::Fixed), vec![100, 100, 100, 100]);
        assert_eq!(delays(BackoffKind::Linear), vec![100, 200, 300, 400]);
        assert_eq!(delays(BackoffKind::Exponential), vec![100, 200, 400, 500]);
    }

    #[test]
    fn failure_settings_parse_and_conflicts_are_refused() {
        let text = format!(
            "{MINIMAL}\ndead_letter_topic = \"dlq\"\non_failure = \"stop\"\n[pipelines.upper.retry]\nbackoff = \"linear\"\ninitial_delay = \"1s\"\nmax_attempts = 4\n"
        );
        let pipeline = Config::parse(&text, &[]).unwrap().resolve("upper").unwrap();
        assert_eq!(pipeline.retry.backoff, BackoffKind::Linear);
        assert_eq!(pipeline.retry.max_attempts, 4);
        assert_eq!(pipeline.dead_letter_topic.as_deref(), Some("dlq"));
        assert_eq!(pipeline.on_failure, OnFailure::Stop);
        let text = format!("{MINIMAL}\nexactly_once = true\ncommit = \"before_processing\"\n");
        assert!(
            Config::parse(&text, &[])
                .unwrap_err()
                .to_string()
                .contains("exactly_once")
        );
    }

    #[test]
    fn plugin_is_a_path_or_the_name_of_a_directory_plugin() {
        let config = Config::parse(
            "[plugins]\ndir = \"plugins\"\n[pipelines.a]\ninputs = [\"in\"]\nplugin = \"orders\"\n\
             [pipelines.b]\ninputs = [\"in\"]\nplugin = \"./build/orders\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            config.resolve("a").unwrap().plugin,
            PluginSource::Directory("orders".into())
        );
        assert_eq!(
            config.resolve("b").unwrap().plugin,
            PluginSource::File("./build/orders".into())
        );
        let plugins = config.plugins.unwrap();
        assert_eq!(plugins.debounce, Duration::from_millis(250));
        assert_eq!(plugins.rescan_interval, Duration::from_secs(30));

        let error = Config::parse(&MINIMAL.replace("uppercase.wasm", "orders"), &[]).unwrap_err();
        assert!(error.to_string().contains("`[plugins] dir`"), "{error}");
        let error = Config::parse(&MINIMAL.replace("uppercase.wasm", "or ders"), &[]).unwrap_err();
        assert!(error.to_string().contains("not `or ders`"), "{error}");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let error = Config::parse(&format!("{MINIMAL}\nbatch_sise = 3\n"), &[]).unwrap_err();
        assert!(error.to_string().contains("batch_sise"), "{error}");
    }

    #[test]
    fn worker_threads_default_to_the_cpus_and_cannot_be_zero() {
        let config = Config::parse(MINIMAL, &[]).unwrap();
        assert_eq!(config.runtime.worker_threads, None);
        let config = Config::parse(MINIMAL, &["runtime.worker_threads=1".into()]).unwrap();
        assert_eq!(config.runtime.worker_threads, Some(1));
        let error = Config::parse(MINIMAL, &["runtime.worker_threads=0".into()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "runtime.worker_threads must be at least 1"
        );
    }

    #[test]
    fn impossible_settings_are_one_clear_error() {
        let error = Config::parse(&format!("{MINIMAL}\nbatch_size = 0\n"), &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "pipeline upper: `batch_size` must be at least 1"
        );
        let error = Config::parse("[pipelines.p]\nplugin = \"x.wasm\"\n", &[]).unwrap_err();
        assert!(error.to_string().contains("inputs"), "{error}");
        let error = Config::parse(
            "[pipelines.p]\nplugin = \"x.wasm\"\nbindings = [\"metrics\"]\n",
            &[],
        )
        .unwrap_err();
        assert!(error.to_string().contains("reserved"), "{error}");
    }
}
