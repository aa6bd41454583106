//! Assembles a host from its configuration and runs it until shutdown.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::Producer;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PluginSource, ResolvedPipeline};
use crate::http::{self, HttpState};
use crate::launcher::{LauncherSettings, PipelineLauncher};
use crate::metrics::Metrics;
use crate::pipeline::{ServedPlugin, UNVERSIONED};
use crate::plugin_dir::{self, PluginRegistry};
use crate::runtime::{EngineSettings, PluginEngine};
use crate::sink::OutputProducer;

/// What readiness depends on.
#[derive(Debug, Default)]
pub struct Health {
    broker_reachable: AtomicBool,
    plugins_loaded: AtomicBool,
}

impl Health {
    pub fn is_ready(&self) -> bool {
        self.broker_reachable.load(Ordering::Relaxed) && self.plugins_loaded.load(Ordering::Relaxed)
    }

    pub fn broker_reachable(&self) -> bool {
        self.broker_reachable.load(Ordering::Relaxed)
    }

    pub fn plugins_loaded(&self) -> bool {
        self.plugins_loaded.load(Ordering::Relaxed)
    }
}

/// Runs every pipeline of `config` until `shutdown` is cancelled, then
/// drains them. Returns whether every pipeline drained within the drain
/// timeout. Errors are start-up errors: bad plugins, bad client settings, a
/// listen address in use.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<bool> {
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());
    let engine = PluginEngine::new(EngineSettings {
        fuel_metering: config.runtime.fuel_metering,
        max_instances: config.runtime.max_instances,
        ..EngineSettings::default()
    })?;
    let producer = OutputProducer::new(&config.kafka.brokers, &config.kafka.producer)?;
    tokio::spawn(watch_broker(
        producer.clone(),
        health.clone(),
        shutdown.clone(),
    ));

    let launcher = Arc::new(PipelineLauncher::new(LauncherSettings {
        brokers: config.kafka.brokers.clone(),
        producer_options: config.kafka.producer.clone(),
        dapr_sidecar: config.dapr.sidecar.clone(),
        drain_timeout: config.drain_timeout,
        producer: producer.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    }));
    let mut references = Vec::new();
    for name in config.pipelines.keys() {
        let settings = config.resolve(name)?;
        match &settings.plugin {
            PluginSource::File(path) => {
                let plugin = load_plugin(&engine, &settings, path, &metrics).await?;
                launcher.start(settings, plugin)?;
            }
            // Started by the plugin directory below.
            PluginSource::Directory(_) => references.push(settings),
        }
    }
    let registry = match &config.plugins {
        Some(plugins) => {
            let registry = Arc::new(PluginRegistry::new(
                plugins.dir.clone(),
                engine.clone(),
                config.clone(),
                references,
                launcher.clone(),
                metrics.clone(),
            ));
            registry.start().await?;
            plugin_dir::watch(
                registry.clone(),
                plugins.debounce,
                plugins.rescan_interval,
                shutdown.clone(),
            );
            Some(registry)
        }
        None => None,
    };
    health.plugins_loaded.store(true, Ordering::Relaxed);

    let state = HttpState::new(launcher.live(), registry, metrics.clone(), health.clone());
    let (address, server) = http::serve(
        config.http.listen,
        http::router(state, config.http.max_body_bytes),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    tracing::info!(%address, "http listening");
    tracing::info!(
        pipelines = launcher.live().pipelines().len(),
        brokers = %config.kafka.brokers,
        "runnel started"
    );

    shutdown.cancelled().await;
    let drain = async {
        let drained = launcher.stop_all().await;
        // The server finishes the binding requests in flight.
        drained & server.await.is_ok()
    };
    // Each input bounds its own drain; this bounds the whole.
    let drained = tokio::time::timeout(config.drain_timeout + Duration::from_secs(5), drain)
        .await
        .unwrap_or(false);
    let flush = producer.clone();
    let _ = tokio::task::spawn_blocking(move || flush.flush(Duration::from_secs(5))).await;
    Ok(drained)
}

/// Loads a plugin named by path in the host config: once, at start.
async fn load_plugin(
    engine: &PluginEngine,
    settings: &ResolvedPipeline,
    path: &Path,
    metrics: &Metrics,
) -> anyhow::Result<ServedPlugin> {
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or(&settings.name)
        .to_owned();
    let wasm = tokio::fs::read(path).await.with_context(|| {
        format!(
            "pipeline {}: cannot read plugin file {}",
            settings.name,
            path.display()
        )
    })?;
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
    Ok(ServedPlugin {
        plugin: Arc::new(plugin),
        version: UNVERSIONED.into(),
    })
}

/// Checks every few seconds that a broker answers, for readiness, and says
/// so in the log when that changes. librdkafka itself keeps reconnecting
/// with backoff.
async fn watch_broker(producer: OutputProducer, health: Arc<Health>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let client = producer.clone();
        let reachable = tokio::task::spawn_blocking(move || {
            client
                .client()
                .client()
                .fetch_metadata(None, Duration::from_secs(3))
                .is_ok()
        })
        .await
        .unwrap_or(false);
        let was = health.broker_reachable.swap(reachable, Ordering::Relaxed);
        if reachable && !was {
            tracing::info!("kafka reachable");
        } else if !reachable {
            tracing::warn!("kafka unreachable; retrying with backoff");
        }
    }
}
