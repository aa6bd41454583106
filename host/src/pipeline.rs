//! What happens to a batch between its source and Kafka: the plugin call,
//! isolation of whole-call failures, and handing the outputs to the
//! producer. Source-agnostic: Kafka partitions and Dapr bindings both feed
//! batches through here.

use std::sync::{Arc, RwLock};

use tokio::sync::Semaphore;

use crate::metrics::{Metrics, Mode};
use crate::runtime::codec;
use crate::runtime::{Batch, CallError, FailureKind, HandledBatch, MessageOutcome, Plugin};
use crate::sink::{DaprOutput, OutputProducer, PendingDelivery};
use crate::stats::PipelineStats;

/// Why one message could not be processed.
#[derive(Debug, Clone)]
pub struct MessageFailure {
    /// `transient`, `permanent`, or the kind of whole-call failure (`trap`,
    /// `timeout`, `out_of_memory`, ...) that this message caused on its own.
    pub kind: &'static str,
    pub message: String,
}

/// The result of processing one input message.
#[derive(Default)]
pub struct MessageResult {
    /// Outputs handed to the producer, to be confirmed before the input
    /// counts as done.
    pub deliveries: Vec<PendingDelivery>,
    pub failure: Option<MessageFailure>,
}

/// Output headers naming the plugin and the version that produced an output.
/// The host sets them on every output, replacing any a plugin copied from its
/// input, so they always say which version really ran.
pub const PLUGIN_HEADER: &str = "runnel-plugin";
pub const PLUGIN_VERSION_HEADER: &str = "runnel-plugin-version";

/// The version label of a plugin loaded by path rather than from the plugin
/// directory, which has no manifest to give one.
pub const UNVERSIONED: &str = "unversioned";

/// A plugin as a pipeline serves it: the compiled plugin and its version.
#[derive(Debug, Clone)]
pub struct ServedPlugin {
    pub plugin: Arc<Plugin>,
    pub version: Arc<str>,
}

/// The plugin a pipeline runs. Swapped whole: each batch takes the plugin
/// current when it starts and finishes on it, so a swap lands at a batch
/// boundary.
pub struct PluginSlot {
    current: RwLock<ServedPlugin>,
}

impl PluginSlot {
    pub fn new(plugin: ServedPlugin) -> Self {
        Self {
            current: RwLock::new(plugin),
        }
    }

    pub fn current(&self) -> ServedPlugin {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn replace(&self, plugin: ServedPlugin) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = plugin;
    }
}

pub struct Pipeline {
    pub name: String,
    pub plugin: PluginSlot,
    /// Topic for outputs that do not name one.
    pub default_output: Option<String>,
    pub producer: OutputProducer,
    /// When set, outputs go to this Dapr output binding instead of Kafka.
    pub output_binding: Option<DaprOutput>,
    pub stats: Arc<PipelineStats>,
    pub metrics: Metrics,
    pub mode: Mode,
    /// Bounds the plugin calls running at once.
    pub concurrency: Semaphore,
}

impl Pipeline {
    /// Runs `batch` through the plugin and hands every output to the
    /// producer, in order. Returns one result per message.
    pub async fn process(&self, batch: &Batch) -> Vec<MessageResult> {
        let count = batch.count as usize;
        self.metrics.record_batch_size(&self.name, count);
        self.stats.set_current_batch_size(count);
        let ServedPlugin { plugin, version } = self.plugin.current();
        let mut results: Vec<MessageResult> = Vec::with_capacity(count);
        match self.call(&plugin, batch).await {
            Ok(handled) => {
                self.emit_all(&plugin, &version, batch, &handled, &mut results)
                    .await
            }
            Err(error) if count == 1 => {
                results.push(MessageResult {
                    deliveries: Vec::new(),
                    failure: Some(MessageFailure {
                        kind: error.kind.as_str(),
                        message: error.message,
                    }),
                });
            }
            Err(error) => {
                // Something in the batch broke the whole call. Run each
                // message alone on a fresh instance: the innocent ones
                // succeed, the poisonous one fails on its own.
                tracing::warn!(
                    pipeline = %self.name,
                    plugin = plugin.name(),
                    kind = %error.kind,
                    error = %error.message,
                    batch = count,
                    "plugin call failed; isolating the failing message"
                );
                for index in 0..count {
                    let single = codec::select(batch, &[index]);
                    match self.call(&plugin, &single).await {
                        Ok(handled) => {
                            self.emit_all(&plugin, &version, &single, &handled, &mut results)
                                .await
                        }
                        Err(error) => results.push(MessageResult {
                            deliveries: Vec::new(),
                            failure: Some(MessageFailure {
                                kind: error.kind.as_str(),
                                message: error.message,
                            }),
                        }),
                    }
                }
            }
        }
        self.stats.set_current_batch_size(0);
        let failed = results.iter().filter(|r| r.failure.is_some()).count() as u64;
        let succeeded = count as u64 - failed;
        self.stats.record_processed(succeeded, failed);
        self.metrics.record_processed(self.mode, succeeded, failed);
        for (index, result) in results.iter().enumerate() {
            if let Some(failure) = &result.failure {
                tracing::warn!(
                    pipeline = %self.name,
                    plugin = plugin.name(),
                    topic = batch.topics[batch.topic_index[index] as usize].as_str(),
                    partition = batch.partitions[index],
                    offset = batch.offsets[index],
                    kind = failure.kind,
                    error = %failure.message,
                    "message failed"
                );
            }
        }
        results
    }

    async fn call(&self, plugin: &Plugin, batch: &Batch) -> Result<HandledBatch, CallError> {
        let invocation = {
            // Closed only at shutdown, after every caller is gone.
            let _permit = self.concurrency.acquire().await;
            plugin.handle(batch).await
        };
        self.metrics.record_invocation(
            plugin.name(),
            invocation.elapsed.as_secs_f64(),
            invocation.fuel_used,
            invocation.memory_bytes,
        );
        if let Err(error) = &invocation.result {
            self.metrics.record_call_error(plugin.name(), error.kind);
        }
        invocation.result
    }

    /// Hands the outputs of every message of a handled batch to the producer.
    async fn emit_all(
        &self,
        plugin: &Plugin,
        version: &str,
        batch: &Batch,
        handled: &HandledBatch,
        results: &mut Vec<MessageResult>,
    ) {
        for index in 0..batch.count as usize {
            let result = match handled.outcome(index) {
                MessageOutcome::Failed(failure) => {
                    let kind = match failure.kind {
                        FailureKind::Transient => "transient",
                        FailureKind::Permanent => "permanent",
                    };
                    self.metrics.record_message_failure(plugin.name(), kind);
                    MessageResult {
                        deliveries: Vec::new(),
                        failure: Some(MessageFailure {
                            kind,
                            message: failure.message.clone(),
                        }),
                    }
                }
                MessageOutcome::Outputs(outputs) => {
                    self.emit(plugin.name(), version, outputs).await
                }
            };
            results.push(result);
        }
    }

    async fn emit(
        &self,
        plugin: &str,
        version: &str,
        outputs: impl Iterator<Item = crate::runtime::OutputRef<'_>>,
    ) -> MessageResult {
        let mut result = MessageResult::default();
        for output in outputs {
            let Some(topic) = output.topic().or(self.default_output.as_deref()) else {
                result.failure = Some(MessageFailure {
                    kind: "permanent",
                    message: "the output names no topic and the pipeline has no default `output`"
                        .into(),
                });
                break;
            };
            let headers = output
                .headers()
                .filter(|(name, _)| *name != PLUGIN_HEADER && *name != PLUGIN_VERSION_HEADER)
                .chain([
                    (PLUGIN_HEADER, plugin.as_bytes()),
                    (PLUGIN_VERSION_HEADER, version.as_bytes()),
                ]);
            match self
                .producer
                .send(topic, output.key(), output.value(), headers)
                .await
            {
                Ok(pending) => result.deliveries.push(pending),
                Err(error) => {
                    result.failure = Some(MessageFailure {
                        kind: "permanent",
                        message: error.to_string(),
                    });
                    break;
                }
            }
        }
        result
    }
}
