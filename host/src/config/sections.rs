//! The host-wide tables of the configuration file: `[kafka]`, `[http]`,
//! `[runtime]`, `[dapr]`, `[plugins]`, and the file itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::KafkaSecrets;
use super::PipelineConfig;
use super::defaults;

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
    #[serde(default = "defaults::drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// The pipelines, by name.
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// A plugin directory to watch: plugins added, changed or removed there
    /// start, swap or stop their pipelines while the host runs.
    pub plugins: Option<PluginDirConfig>,
}

/// The `[kafka]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (librdkafka's `bootstrap.servers`).
    #[serde(default = "defaults::brokers")]
    pub brokers: String,
    /// This host's stable identity in its consumer groups. When set, each
    /// pipeline joins its group as the static member `{instance_id}-{pipeline}`
    /// (librdkafka's `group.instance.id`, KIP-345): a host restarted with the
    /// same identity within the session timeout gets its partitions back
    /// without a rebalance. Give each host its own (a StatefulSet pod's
    /// name, a compose service's name); leave it unset where hosts come and
    /// go under new names.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Raw librdkafka options for every Kafka client the host makes:
    /// pipelines' consumers and producers (transactional ones too), the
    /// admin client, the plugin store's reader and writer, and the commands
    /// `topics`, `produce`, `consume` and `plugin`. The place for how to
    /// reach the cluster: `security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `ssl.ca.location` and the like (passwords belong
    /// in `sasl_password_file` or the environment). They win over Runnel's
    /// defaults; `[kafka.consumer]`, `[kafka.producer]`, a profile's presets
    /// and a pipeline's own options win over them. The options of
    /// [`HOST_OWNED_CONSUMER_OPTIONS`](super::HOST_OWNED_CONSUMER_OPTIONS)
    /// and [`HOST_OWNED_PRODUCER_OPTIONS`](super::HOST_OWNED_PRODUCER_OPTIONS)
    /// are refused.
    #[serde(default)]
    pub client: BTreeMap<String, String>,
    /// A file holding the SASL password (librdkafka's `sasl.password`),
    /// relative to the config file; its content without the final line
    /// break. The environment variable `RUNNEL_KAFKA_SASL_PASSWORD` wins
    /// over it when set and not empty. Given to every client, after all the
    /// option tables.
    #[serde(default)]
    pub sasl_password_file: Option<PathBuf>,
    /// A file holding the password of the client's TLS key (librdkafka's
    /// `ssl.key.password`, for an encrypted `ssl.key.location`), relative to
    /// the config file. `RUNNEL_KAFKA_SSL_KEY_PASSWORD` wins over it.
    #[serde(default)]
    pub ssl_key_password_file: Option<PathBuf>,
    /// The secrets read from the environment and the files above when the
    /// configuration is loaded; never in the file itself.
    #[serde(skip)]
    pub secrets: KafkaSecrets,
    /// Raw librdkafka options for every consumer, passed through unchanged
    /// (for example `"fetch.wait.max.ms" = "100"`). They win over
    /// Runnel's defaults; the options its delivery promises rest on
    /// ([`HOST_OWNED_CONSUMER_OPTIONS`](super::HOST_OWNED_CONSUMER_OPTIONS))
    /// are refused.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// Raw librdkafka options for every producer, passed through unchanged;
    /// those of [`HOST_OWNED_PRODUCER_OPTIONS`](super::HOST_OWNED_PRODUCER_OPTIONS)
    /// are refused.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: defaults::BROKERS.into(),
            instance_id: None,
            client: BTreeMap::new(),
            sasl_password_file: None,
            ssl_key_password_file: None,
            secrets: KafkaSecrets::default(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// The `[dapr]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaprConfig {
    /// Base URL of the sidecar's HTTP API.
    #[serde(default = "defaults::dapr_sidecar")]
    pub sidecar: String,
    /// A file holding Dapr's app API token (its content, with surrounding
    /// whitespace trimmed), relative to the config file. With a token,
    /// every binding request (`OPTIONS` and `POST /{binding}`) must carry it
    /// in the `dapr-api-token` header, as daprd sends it when it runs with
    /// `APP_API_TOKEN` in its environment; others get 401 and are neither
    /// processed nor counted. The environment variable `APP_API_TOKEN`, the
    /// one daprd reads, wins over this file when it is set and not empty.
    #[serde(default)]
    pub app_api_token_file: Option<PathBuf>,
}

impl Default for DaprConfig {
    fn default() -> Self {
        Self {
            sidecar: defaults::DAPR_SIDECAR.into(),
            app_api_token_file: None,
        }
    }
}

/// The `[plugins]` table. Each plugin in `dir` is a manifest `NAME.toml`
/// (name, version, component, and optionally a `[pipeline]` table with the
/// settings of a pipeline table here) beside its component (`NAME.wasm`
/// unless the manifest names another file). The manifest is the commit
/// point: write the component first, then the manifest, each by writing a
/// temporary file and renaming it into place. With `store_topic`, the host
/// also follows the cluster's plugin store and writes its plugins into the
/// directory that way. It needs `dir`, `store_topic` or both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDirConfig {
    /// The directory, relative to the config file. Hosts that mount the
    /// same directory serve the same versions. Without it (and with
    /// `store_topic`), the host writes the store's plugins into a directory
    /// of its own in the system's temporary directory,
    /// `runnel-plugins-{host}`, emptied at start and deleted at exit.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The cluster's plugin store: a Kafka topic (`runnel-plugins` is the
    /// name the commands use when given none) that `runnel plugin deploy`,
    /// `remove` and `rollback` write to. The host follows it from its
    /// beginning, serves the current version of each plugin in it, and
    /// writes back what it serves (`runnel plugin list`). Created, compacted
    /// and with one partition, if missing.
    #[serde(default)]
    pub store_topic: Option<String>,
    /// Quiet time after the last change in the directory before it is read,
    /// so that a file being written is read once it is complete.
    #[serde(default = "defaults::plugin_debounce", with = "humantime_serde")]
    pub debounce: Duration,
    /// How often the whole directory is read again even without a change
    /// notice: network filesystems do not always deliver them.
    #[serde(default = "defaults::plugin_rescan_interval", with = "humantime_serde")]
    pub rescan_interval: Duration,
}

/// The `[http]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP server listens on. The default is loopback only;
    /// a host that Prometheus, probes or a sidecar in another network
    /// namespace must reach listens on `0.0.0.0:3000`.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// A file holding the admin token (its content, with surrounding
    /// whitespace trimmed), relative to the config file. With a token, the
    /// admin endpoints (`GET /plugins`, `POST /plugins/{name}/reload`)
    /// answer only requests with `Authorization: Bearer <token>`, and 401
    /// others. The environment variable `RUNNEL_ADMIN_TOKEN` wins over this
    /// file when it is set and not empty. Without any token, the admin
    /// endpoints are served only when `listen` is a loopback address, and
    /// answer 403 otherwise. There is no setting for the token itself: a
    /// secret belongs in a file or the environment, not in a config file.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// Treat `/metrics` and the stats endpoints (`/messages/v1/stats...`)
    /// as admin endpoints: the admin token is required for them too. Off,
    /// they are open, as are `/healthz` and `/readyz` always, so that
    /// Prometheus and probes need no token.
    #[serde(default)]
    pub metrics_require_admin_token: bool,
    /// Serve HTTPS: the server's certificate chain, PEM (its own certificate
    /// first, then intermediates), relative to the config file. Needs
    /// `tls_key_file`. Read at start; a new certificate takes a restart.
    /// Dapr's sidecar calls its app over plain HTTP unless told otherwise
    /// (`--app-protocol https`).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file`, PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: defaults::LISTEN,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            admin_token_file: None,
            metrics_require_admin_token: false,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// The `[runtime]` table.
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
    #[serde(default = "defaults::max_instances")]
    pub max_instances: u32,
    /// Threads running pipelines, plugin calls and the HTTP server; one per
    /// CPU when unset. Different partitions' plugin calls run on them in
    /// parallel. Fewer threads wake fewer of each other per message; on two
    /// cores shared with Kafka, one thread cost batch pipelines 7–18%
    /// of their throughput and did not reliably shorten per-message
    /// latency (the figures are in `bench/README.md`).
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// A directory where compiled plugins are kept, keyed by the
    /// component's bytes and the engine's settings, relative to the config
    /// file. A host that loads a plugin it (or another host on the machine)
    /// compiled before reads the machine code from here instead of
    /// compiling again: seconds to tens of seconds saved for a large
    /// component (a JavaScript or Python plugin) at every start and reload.
    /// Unset, nothing is kept.
    #[serde(default)]
    pub compile_cache: Option<PathBuf>,
    /// Plugin calls running at once across the host; one per worker thread
    /// when unset. Pipelines that want more take turns: each may run an
    /// equal share while others wait, and a call above its share gives its
    /// slot up at the next epoch tick (10 ms), so a pipeline whose plugin
    /// loops cannot take the host's CPU from the others.
    #[serde(default)]
    pub call_slots: Option<usize>,
    /// Linear memory of all plugin instances together, in MiB; each
    /// pipeline's instances may hold an equal share of it, and a plugin
    /// that grows past its pipeline's share fails the call as out of
    /// memory. Half of the memory the host may use (its cgroup's limit,
    /// or the machine's) when unset.
    #[serde(default)]
    pub max_plugin_memory_mib: Option<u64>,
    /// Public keys (PEM files, relative to the config file) whose
    /// signatures this host accepts. With any, every plugin (from the
    /// plugin directory, the plugin store or a pipeline's path) must carry
    /// a signature by one of them (`runnel plugin sign`), or it is refused
    /// and the version serving keeps serving. Empty, none is needed.
    #[serde(default)]
    pub trusted_plugin_keys: Vec<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            fuel_metering: false,
            max_instances: defaults::MAX_INSTANCES,
            worker_threads: None,
            compile_cache: None,
            call_slots: None,
            max_plugin_memory_mib: None,
            trusted_plugin_keys: Vec::new(),
        }
    }
}
