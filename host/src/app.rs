//! Assembles a host from its configuration and runs it until shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::Producer;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use std::collections::{BTreeMap, HashMap};

use crate::batch::BatchPolicy;
use crate::config::{Config, ResolvedPipeline};
use crate::http::{self, HttpState};
use crate::metrics::{Metrics, Mode};
use crate::pipeline::{FailurePolicy, Pipeline, PluginSlot};
use crate::runtime::{EngineSettings, Plugin, PluginEngine};
use crate::sink::{DaprOutput, OutputProducer};
use crate::source::dapr::BindingInput;
use crate::source::kafka::KafkaInput;
use crate::stats::PipelineStats;

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

    let mut pipelines = BTreeMap::new();
    let mut bindings = HashMap::new();
    let mut kafka_inputs = Vec::new();
    for name in config.pipelines.keys() {
        let settings = config.resolve(name)?;
        let plugin = load_plugin(&engine, &settings, &metrics).await?;
        let pipeline = Arc::new(Pipeline {
            name: name.clone(),
            plugin: PluginSlot::new(plugin),
            default_output: settings.output.clone(),
            producer: producer.clone(),
            output_binding: settings
                .output_binding
                .as_deref()
                .map(|binding| DaprOutput::new(&config.dapr.sidecar, binding)),
            stats: Arc::new(PipelineStats::new(
                settings.batch_size,
                settings.batch_timeout,
            )),
            metrics: metrics.clone(),
            mode: Mode::for_batch_size(settings.batch_size),
            concurrency: Semaphore::new(settings.max_concurrent),
            failure_policy: FailurePolicy {
                retry: settings.retry.clone(),
                dead_letter_topic: settings.dead_letter_topic.clone(),
                on_failure: settings.on_failure,
            },
        });
        let policy = BatchPolicy {
            batch_size: settings.batch_size,
            batch_timeout: settings.batch_timeout,
        };
        for binding in &settings.bindings {
            let input = BindingInput::start(binding, pipeline.clone(), policy, shutdown.clone());
            bindings.insert(binding.clone(), input);
        }
        if !settings.inputs.is_empty() {
            let input = KafkaInput::new(
                &config.kafka.brokers,
                &config.kafka.producer,
                settings,
                pipeline.clone(),
                config.drain_timeout,
            )?;
            kafka_inputs.push(tokio::spawn(input.run(shutdown.clone())));
        }
        pipelines.insert(name.clone(), pipeline);
    }
    health.plugins_loaded.store(true, Ordering::Relaxed);

    let state = HttpState::new(bindings, pipelines.clone(), metrics.clone(), health.clone());
    let (address, server) = http::serve(
        config.http.listen,
        http::router(state, config.http.max_body_bytes),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    tracing::info!(%address, "http listening");
    tracing::info!(pipelines = pipelines.len(), brokers = %config.kafka.brokers, "runnel started");

    shutdown.cancelled().await;
    let drain = async {
        let mut drained = true;
        for input in kafka_inputs {
            drained &= input.await.unwrap_or(false);
        }
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

async fn load_plugin(
    engine: &PluginEngine,
    settings: &ResolvedPipeline,
    metrics: &Metrics,
) -> anyhow::Result<Arc<Plugin>> {
    let path = &settings.plugin_path;
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
    Ok(Arc::new(plugin))
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
