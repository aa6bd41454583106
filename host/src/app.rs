//! Assembles a host from its configuration and runs it until shutdown.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::Producer;
use thiserror::Error;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client_events::{self, ClientEvents, ConnectionFailure, LogLimiter};
use crate::config::{Config, PluginDirConfig, PluginSource, ResolvedPipeline, defaults};
use crate::http::{self, HttpAccess, HttpState};
use crate::launcher::{DRAIN_GRACE, LauncherSettings, PipelineLauncher};
use crate::metrics::Metrics;
use crate::pipeline::{ServedPlugin, UNVERSIONED};
use crate::plugin_dir::{self, PluginRegistry};
use crate::plugin_store::{self, follower::StoreFollower};
use crate::plugins::{HostPlugins, UnservedPipeline};
use crate::runtime::{EngineSettings, PluginEngine, read_component};
use crate::signing::{TrustedKeys, signature_path};
use crate::sink::OutputProducer;

/// What readiness depends on.
#[derive(Debug, Default)]
pub struct Health {
    broker_reachable: AtomicBool,
    /// Why the broker was last found unreachable.
    broker_error: Mutex<Option<String>>,
    /// Start-up has loaded every plugin.
    plugins_loaded: AtomicBool,
}

impl Health {
    /// Why the host is not ready, a sentence per reason; empty when it is
    /// ready. `unserved` are the pipelines no plugin version serves.
    pub fn not_ready_reasons(&self, unserved: &[UnservedPipeline]) -> Vec<String> {
        if !self.plugins_loaded() {
            return vec!["plugins are still loading".into()];
        }
        let mut reasons: Vec<String> = unserved.iter().map(ToString::to_string).collect();
        if !self.broker_reachable() {
            let error = self.broker_error.lock().unwrap_or_else(|e| e.into_inner());
            reasons.push(match &*error {
                Some(error) => format!("no Kafka broker answers: {error}"),
                None => "no Kafka broker has answered yet".into(),
            });
        }
        reasons
    }

    pub fn broker_reachable(&self) -> bool {
        self.broker_reachable.load(Ordering::Relaxed)
    }

    pub fn plugins_loaded(&self) -> bool {
        self.plugins_loaded.load(Ordering::Relaxed)
    }
}

/// Why a host could not start.
#[derive(Debug, Error)]
pub enum HostError {
    /// What the configuration asks for cannot run: a client setting
    /// librdkafka refuses, a plugin that does not load or refuses its
    /// configuration. `runnel check` finds these without starting a host.
    #[error("{0:#}")]
    Config(anyhow::Error),
    /// Something outside the configuration: the WebAssembly engine could
    /// not start, the listen address is taken.
    #[error("{0:#}")]
    Runtime(anyhow::Error),
}

/// Runs every pipeline of `config` until `shutdown` is cancelled, then
/// drains them. Returns whether every pipeline drained within the drain
/// timeout. Errors are start-up errors: bad plugins, bad client settings, a
/// listen address in use.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<bool, HostError> {
    let (access, tls) = http_security(&config).map_err(HostError::Config)?;
    access.log();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());
    let engine = PluginEngine::new(engine_settings(&config))
        .map_err(|error| HostError::Runtime(error.into()))?;
    let producer = OutputProducer::new(
        &config.kafka,
        &config.kafka.producer,
        ClientEvents::new("producer", "", metrics.clone()),
    )
    .map_err(|error| HostError::Config(error.into()))?;
    tokio::spawn(watch_broker(
        producer.clone(),
        health.clone(),
        shutdown.clone(),
    ));

    let launcher = Arc::new(PipelineLauncher::new(LauncherSettings {
        kafka: config.kafka.clone(),
        producer_options: config.kafka.producer.clone(),
        dapr_sidecar: config.dapr.sidecar.clone(),
        drain_timeout: config.drain_timeout,
        producer: producer.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        shares: engine.shares().clone(),
    }));
    let (plugins, store) = start_pipelines(&config, &engine, &launcher, &metrics, &shutdown)
        .await
        .map_err(HostError::Config)?;
    let serves_nothing = config.pipelines.is_empty() && plugins.directory().is_none();
    health.plugins_loaded.store(true, Ordering::Relaxed);

    let state = HttpState::new(
        launcher.live(),
        Arc::new(plugins),
        metrics.clone(),
        health.clone(),
    );
    let (address, server) = http::serve(
        config.http.listen,
        http::router(state, config.http.max_body_bytes, access),
        tls,
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {}", config.http.listen))
    .map_err(HostError::Runtime)?;
    tracing::info!(%address, scheme, "http listening");
    tracing::info!(
        pipelines = launcher.live().pipelines().len(),
        brokers = %config.kafka.brokers,
        "runnel started"
    );
    crate::memory::started();
    if serves_nothing {
        // Nothing to consume: say so rather than look like a host that
        // silently does nothing.
        tracing::warn!(
            %address,
            "no pipelines configured and no plugin directory: serving only health and metrics; add a [pipelines.NAME] table or a [plugins] directory"
        );
    }

    shutdown.cancelled().await;
    let drain = async {
        let drained = launcher.stop_all().await;
        // The server finishes the binding requests in flight.
        drained & server.await.is_ok()
    };
    // Each input bounds its own drain; this bounds the whole.
    let drained = tokio::time::timeout(config.drain_timeout + DRAIN_GRACE, drain)
        .await
        .unwrap_or(false);
    let flush = producer.clone();
    let _ = tokio::task::spawn_blocking(move || flush.flush(Duration::from_secs(5))).await;
    if let Some(store) = store {
        // It deletes this host's status records in the store.
        let _ = tokio::time::timeout(STORE_LEAVE_TIMEOUT, store).await;
    }
    Ok(drained)
}

/// Who may call which endpoint of the HTTP server, and its TLS
/// configuration when it serves HTTPS: the token and certificate files
/// read, before anything else starts.
fn http_security(
    config: &Config,
) -> anyhow::Result<(HttpAccess, Option<Arc<rustls::ServerConfig>>)> {
    let access = HttpAccess::new(
        config.http_tokens()?,
        config.http.listen,
        config.http.metrics_require_admin_token,
    );
    let tls = match (&config.http.tls_cert_file, &config.http.tls_key_file) {
        (Some(cert), Some(key)) => Some(http::tls_server_config(cert, key)?),
        _ => None,
    };
    Ok((access, tls))
}

/// How long a stopping host waits for its plugin store follower to delete
/// its status records.
const STORE_LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine settings of a host's configuration.
pub fn engine_settings(config: &Config) -> EngineSettings {
    let runtime = &config.runtime;
    EngineSettings {
        fuel_metering: runtime.fuel_metering,
        max_instances: runtime.max_instances,
        compile_cache: runtime.compile_cache.clone(),
        call_slots: runtime
            .call_slots
            .or(runtime.worker_threads)
            .unwrap_or_else(defaults::call_slots),
        max_total_memory_bytes: runtime
            .max_plugin_memory_mib
            .map_or_else(defaults::max_total_memory_bytes, |mib| mib << 20),
        ..EngineSettings::default()
    }
}

/// Starts the pipelines whose plugin is a file, and the plugin directory,
/// which starts those that name one of its plugins (with the plugin store's
/// plugins written into it first, when the host follows a store). Returns
/// the plugins they run, and the store follower's task.
async fn start_pipelines(
    config: &Config,
    engine: &PluginEngine,
    launcher: &Arc<PipelineLauncher>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<(HostPlugins, Option<JoinHandle<()>>)> {
    let mut host_plugins = HostPlugins::default();
    let mut references = Vec::new();
    let trusted = TrustedKeys::load(&config.runtime.trusted_plugin_keys)?;
    for name in config.pipelines.keys() {
        let settings = config.resolve(name)?;
        match &settings.plugin {
            PluginSource::File(path) => {
                let plugin = load_plugin(
                    engine,
                    &settings,
                    path,
                    &trusted,
                    metrics,
                    &mut host_plugins,
                )
                .await?;
                launcher.start(settings, plugin)?;
            }
            // Started by the plugin directory below.
            PluginSource::Directory(_) => references.push(settings),
        }
    }
    let Some(plugins) = &config.plugins else {
        return Ok((host_plugins, None));
    };
    let (dir, store) = follow_store(config, plugins, metrics).await?;
    let registry = Arc::new(PluginRegistry::new(
        dir,
        engine.clone(),
        config.clone(),
        references,
        launcher.clone(),
        metrics.clone(),
        trusted,
    ));
    if let Some(store) = &store {
        registry.set_store_plugins(store.plugin_names());
    }
    registry.start().await?;
    plugin_dir::watch(
        registry.clone(),
        plugins.debounce,
        plugins.rescan_interval,
        shutdown.clone(),
    );
    let store = store.map(|store| store.follow(registry.clone(), shutdown.clone()));
    host_plugins.set_directory(registry);
    Ok((host_plugins, store))
}

/// The plugin directory, and the plugin store's follower when the host has
/// a store: the store read and its plugins written into the directory.
async fn follow_store(
    config: &Config,
    plugins: &PluginDirConfig,
    metrics: &Metrics,
) -> anyhow::Result<(PathBuf, Option<StoreFollower>)> {
    let Some(topic) = &plugins.store_topic else {
        let dir = (plugins.dir.clone()).context("[plugins] needs `dir`, `store_topic` or both")?;
        return Ok((dir, None));
    };
    let own_dir = plugins.dir.is_none();
    let dir = match &plugins.dir {
        Some(dir) => dir.clone(),
        None => {
            let dir = plugin_store::default_dir(&plugin_store::host_name(config));
            // Left by an earlier run under the same name: the store holds
            // everything it should.
            let _ = std::fs::remove_dir_all(&dir);
            dir
        }
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the plugin directory {}", dir.display()))?;
    let store = StoreFollower::start(config, topic, dir.clone(), own_dir, metrics).await?;
    Ok((dir, Some(store)))
}

/// Loads a plugin named by path in the host config (once, at start), and
/// records it among the host's plugins.
pub async fn load_plugin(
    engine: &PluginEngine,
    settings: &ResolvedPipeline,
    path: &Path,
    trusted: &TrustedKeys,
    metrics: &Metrics,
    host_plugins: &mut HostPlugins,
) -> anyhow::Result<ServedPlugin> {
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or(&settings.name)
        .to_owned();
    let wasm = read_component(path)
        .await
        .with_context(|| format!("pipeline {}", settings.name))?;
    trusted
        .verify(&signature_path(path), None, &wasm)
        .with_context(|| format!("pipeline {}: plugin {}", settings.name, path.display()))?;
    let loaded = async {
        let plugin = engine.load(
            &name,
            &wasm,
            settings.plugin_config.clone(),
            settings.limits.clone(),
        )?;
        plugin.validate().await?;
        Ok::<_, crate::runtime::LoadError>(plugin)
    }
    .await;
    metrics.record_plugin_load(&name, loaded.is_ok());
    let plugin = loaded.with_context(|| format!("pipeline {}", settings.name))?;
    tracing::info!(pipeline = %settings.name, plugin = %name, path = %path.display(), "plugin loaded");
    host_plugins.add_file(path, &name, &wasm, &settings.name);
    Ok(ServedPlugin {
        plugin: Arc::new(plugin),
        version: UNVERSIONED.into(),
    })
}

/// How often readiness asks a broker for metadata, and how long it waits.
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(2);
const BROKER_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Checks every few seconds that a broker answers, for readiness, and says
/// so in the log when that changes (while it stays unreachable, a line per
/// log summary interval). librdkafka itself keeps reconnecting.
async fn watch_broker(producer: OutputProducer, health: Arc<Health>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(BROKER_CHECK_INTERVAL);
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let client = producer.clone();
        let checked = tokio::task::spawn_blocking(move || {
            client
                .client()
                .client()
                .fetch_metadata(None, BROKER_CHECK_TIMEOUT)
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
        .await
        .unwrap_or_else(|error| Err(error.to_string()));
        let reachable = checked.is_ok();
        // A refused login or an untrusted certificate says more than the
        // metadata request's timeout.
        let cause = if reachable {
            client_events::clear_last_failure();
            None
        } else {
            client_events::last_failure()
        };
        *health
            .broker_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = checked
            .err()
            .map(|error| cause.map_or(error, |cause| cause.message().to_owned()));
        let was = health.broker_reachable.swap(reachable, Ordering::Relaxed);
        match (was, reachable) {
            (false, true) => match down_since.take() {
                Some(since) => tracing::info!(
                    down_for = %humantime::format_duration(Duration::from_secs(since.elapsed().as_secs())),
                    "kafka reachable"
                ),
                None => tracing::info!("kafka reachable"),
            },
            (_, false) => {
                let since = *down_since.get_or_insert_with(std::time::Instant::now);
                if LogLimiter::global().admit("broker-unreachable").is_some() {
                    tracing::warn!(
                        down_for = %humantime::format_duration(Duration::from_secs(since.elapsed().as_secs())),
                        cause = cause.map(ConnectionFailure::message),
                        "kafka unreachable; retrying with backoff"
                    );
                }
            }
            (true, true) => {}
        }
    }
}
