//! Starts and stops pipelines while the host runs: the host config's at
//! start-up, and a plugin directory's whenever a plugin appears, changes its
//! pipeline settings or is removed. Each pipeline has its own cancellation
//! token, a child of the host's, so one can drain and stop alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::batch::BatchPolicy;
use crate::client_events::ClientEvents;
use crate::config::{KafkaConfig, ResolvedPipeline};
use crate::failure::FailurePolicy;
use crate::metrics::{Metrics, Mode};
use crate::pipeline::{Pipeline, PluginSlot, ServedPlugin};
use crate::recorder::PipelineRecorder;
use crate::runtime::HostShares;
use crate::sink::DeadLetters;
use crate::sink::{DaprOutput, OutputProducer, SinkError};
use crate::source::dapr::BindingInput;
use crate::source::kafka::{KafkaInput, SourceError};
use crate::stats::PipelineStats;

#[derive(Debug, Error)]
pub enum LaunchError {
    #[error("pipeline {0} is already running")]
    AlreadyRunning(String),
    #[error("pipeline {pipeline}: Dapr binding `{binding}` already feeds another pipeline")]
    BindingTaken { pipeline: String, binding: String },
    #[error("pipeline {0} not started: the host is shutting down")]
    ShuttingDown(String),
    #[error("pipeline {pipeline}: {source}")]
    Producer {
        pipeline: String,
        source: Box<SinkError>,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// How much longer than the drain timeout a stopping host waits for its
/// inputs: each bounds its own drain by the timeout, and then commits.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The pipelines and Dapr bindings serving right now, by name: what the
/// HTTP server routes requests and stats queries to.
#[derive(Default)]
pub struct LivePipelines {
    pipelines: RwLock<BTreeMap<String, Arc<Pipeline>>>,
    bindings: RwLock<HashMap<String, Arc<BindingInput>>>,
}

impl LivePipelines {
    pub fn pipeline(&self, name: &str) -> Option<Arc<Pipeline>> {
        read(&self.pipelines).get(name).cloned()
    }

    pub fn pipelines(&self) -> BTreeMap<String, Arc<Pipeline>> {
        read(&self.pipelines).clone()
    }

    pub fn binding(&self, name: &str) -> Option<Arc<BindingInput>> {
        read(&self.bindings).get(name).cloned()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// What every pipeline of the host shares, and the pipelines running.
pub struct PipelineLauncher {
    kafka: KafkaConfig,
    dapr_sidecar: String,
    drain_timeout: Duration,
    /// The at-least-once output producers, by their options: pipelines
    /// whose resolved producer options are the same share one. The host's
    /// own, of `[kafka.producer]`, is there from the start.
    producers: Mutex<HashMap<BTreeMap<String, String>, OutputProducer>>,
    metrics: Metrics,
    shutdown: CancellationToken,
    shares: Arc<HostShares>,
    live: Arc<LivePipelines>,
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    by_name: BTreeMap<String, RunningPipeline>,
    /// Set once shutdown has collected the pipelines: no more may start.
    closed: bool,
}

struct RunningPipeline {
    stop: CancellationToken,
    kafka: Option<JoinHandle<bool>>,
    bindings: Vec<String>,
}

pub struct LauncherSettings {
    /// The cluster, with the options and secrets of every client.
    pub kafka: KafkaConfig,
    pub producer_options: BTreeMap<String, String>,
    pub dapr_sidecar: String,
    pub drain_timeout: Duration,
    pub producer: OutputProducer,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
    /// The call slots and plugin memory every pipeline takes a share of.
    pub shares: Arc<HostShares>,
}

impl PipelineLauncher {
    pub fn new(settings: LauncherSettings) -> Self {
        Self {
            kafka: settings.kafka,
            dapr_sidecar: settings.dapr_sidecar,
            drain_timeout: settings.drain_timeout,
            producers: Mutex::new(HashMap::from([(
                settings.producer_options,
                settings.producer,
            )])),
            metrics: settings.metrics,
            shutdown: settings.shutdown,
            shares: settings.shares,
            live: Arc::new(LivePipelines::default()),
            running: Mutex::new(Running::default()),
        }
    }

    pub fn live(&self) -> Arc<LivePipelines> {
        self.live.clone()
    }

    /// The running pipeline called `name`.
    pub fn pipeline(&self, name: &str) -> Option<Arc<Pipeline>> {
        self.live.pipeline(name)
    }

    /// Starts a pipeline serving `plugin`: its Dapr bindings answer at once
    /// and its Kafka consumer joins its group.
    pub fn start(
        &self,
        settings: ResolvedPipeline,
        plugin: ServedPlugin,
    ) -> Result<Arc<Pipeline>, LaunchError> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let name = settings.name.clone();
        if running.closed || self.shutdown.is_cancelled() {
            return Err(LaunchError::ShuttingDown(name));
        }
        if running.by_name.contains_key(&name) {
            return Err(LaunchError::AlreadyRunning(name));
        }
        if let Some(binding) = settings
            .bindings
            .iter()
            .find(|binding| self.live.binding(binding).is_some())
        {
            return Err(LaunchError::BindingTaken {
                pipeline: name,
                binding: binding.clone(),
            });
        }
        let producer = self.producer_for(&settings)?;
        let pipeline = Arc::new(Pipeline {
            name: name.clone(),
            plugin: PluginSlot::new(plugin),
            default_output: settings.output.clone(),
            producer,
            output_binding: settings
                .output_binding
                .as_deref()
                .map(|binding| DaprOutput::new(&self.dapr_sidecar, binding)),
            output_policy: settings.output_policy.clone(),
            recorder: PipelineRecorder::new(
                &name,
                PipelineStats::new(settings.batch_size, settings.batch_timeout),
                self.metrics.clone(),
                Mode::for_batch_size(settings.batch_size),
            ),
            concurrency: Semaphore::new(settings.max_concurrent),
            tenant: self.shares.tenant(&name, settings.weight),
            failure_policy: FailurePolicy {
                retry: settings.retry.clone(),
                dead_letters: settings.dead_letter_topic.as_deref().map(DeadLetters::new),
                on_failure: settings.on_failure,
            },
        });
        let stop = self.shutdown.child_token();
        let kafka = if settings.inputs.is_empty() {
            None
        } else {
            let input = KafkaInput::new(
                &self.kafka,
                settings.clone(),
                pipeline.clone(),
                self.drain_timeout,
            )?;
            Some(tokio::spawn(input.run(stop.clone())))
        };
        let policy = BatchPolicy {
            batch_size: settings.batch_size,
            batch_timeout: settings.batch_timeout,
        };
        {
            let mut bindings = write(&self.live.bindings);
            for binding in &settings.bindings {
                let input = BindingInput::start(binding, pipeline.clone(), policy, stop.clone());
                bindings.insert(binding.clone(), input);
            }
        }
        write(&self.live.pipelines).insert(name.clone(), pipeline.clone());
        running.by_name.insert(
            name,
            RunningPipeline {
                stop,
                kafka,
                bindings: settings.bindings,
            },
        );
        Ok(pipeline)
    }

    /// The producer of the pipeline's outputs: one already serving its
    /// options, or a new one labelled with the first pipeline to need it.
    fn producer_for(&self, settings: &ResolvedPipeline) -> Result<OutputProducer, LaunchError> {
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(producer) = producers.get(&settings.producer) {
            return Ok(producer.clone());
        }
        let events = ClientEvents::new("producer", &settings.name, self.metrics.clone());
        let producer =
            OutputProducer::new(&self.kafka, &settings.producer, events).map_err(|source| {
                LaunchError::Producer {
                    pipeline: settings.name.clone(),
                    source: Box::new(source),
                }
            })?;
        producers.insert(settings.producer.clone(), producer.clone());
        Ok(producer)
    }

    /// Stops one pipeline: its bindings stop taking requests and answer the
    /// queued ones, its consumer finishes the batches in flight, commits
    /// their offsets and leaves the group. Returns whether it drained within
    /// the drain timeout, or None when no such pipeline runs.
    pub async fn stop(&self, name: &str) -> Option<bool> {
        let pipeline = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .remove(name)?;
        Some(self.finish(name, pipeline).await)
    }

    /// After the host's shutdown token is cancelled: waits for every
    /// pipeline to drain. Returns whether all did in time.
    pub async fn stop_all(&self) -> bool {
        let pipelines = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.closed = true;
            std::mem::take(&mut running.by_name)
        };
        let stops = pipelines
            .into_iter()
            .map(|(name, pipeline)| async move { self.finish(&name, pipeline).await });
        futures::future::join_all(stops)
            .await
            .into_iter()
            .all(|drained| drained)
    }

    async fn finish(&self, name: &str, pipeline: RunningPipeline) -> bool {
        {
            let mut bindings = write(&self.live.bindings);
            for binding in &pipeline.bindings {
                bindings.remove(binding);
            }
        }
        pipeline.stop.cancel();
        let drained = match pipeline.kafka {
            // The input bounds its own drain; this bounds the wait for it.
            Some(input) => tokio::time::timeout(self.drain_timeout + DRAIN_GRACE, input)
                .await
                .is_ok_and(|joined| joined.unwrap_or(false)),
            None => true,
        };
        let stopped = write(&self.live.pipelines).remove(name);
        // A stopped pipeline's gauges would otherwise keep their last
        // values; its counters stay, as counters do.
        if let Some(stopped) = stopped {
            stopped.recorder.retain_lag(|_, _| false);
        }
        self.metrics.forget_tenant(name);
        drained
    }
}
