//! What happens to a batch between its source and Kafka: the plugin call,
//! isolation of whole-call failures, and handing the outputs to the
//! producer. Source-agnostic: Kafka partitions and Dapr bindings both feed
//! batches through here.

use std::sync::{Arc, RwLock};

use tokio::sync::Semaphore;

use crate::client_events::LogLimiter;
use crate::config::OnFailure;
use crate::failure::{FailurePolicy, MessageFailure, MessageFailureKind, MessageResult};
use crate::recorder::PipelineRecorder;
use crate::runtime::{
    CallError, EncodedBatch, EncodedOutcomes, Outcome, OutputView, Plugin, Tenant,
};
use crate::sink::headers::tagged;
use crate::sink::{
    DaprOutput, FailedIn, OutputBatch, OutputPolicy, OutputProducer, PendingDelivery, SinkError,
};

/// What the plugin finally made of one message, before anything is sent.
enum Verdict {
    /// Outputs: message `index` of the answer to call `call`.
    Outputs {
        call: usize,
        index: usize,
    },
    Failed(MessageFailure),
}

/// What the plugin made of a batch, before anything is sent: the answers of
/// its calls, and a verdict per message pointing into them.
pub struct Decided {
    served: ServedPlugin,
    answers: Vec<EncodedOutcomes>,
    verdicts: Vec<Verdict>,
}

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
    /// Where the plugin may write and how much.
    pub output_policy: OutputPolicy,
    /// Stats and metrics, recorded together.
    pub recorder: PipelineRecorder,
    /// Bounds the plugin calls running at once.
    pub concurrency: Semaphore,
    /// The pipeline's share of the host's call slots and plugin memory.
    pub tenant: Arc<Tenant>,
    pub failure_policy: FailurePolicy,
}

impl Pipeline {
    /// Runs `batch` through the plugin, retrying transient failures and
    /// isolating messages that break whole calls, then hands every output
    /// (and every dead letter) to `producer` in message order. Returns one
    /// result per message.
    pub async fn process(
        &self,
        batch: &EncodedBatch,
        producer: &OutputProducer,
    ) -> Vec<MessageResult> {
        let decided = self.decide(batch).await;
        self.send(batch, decided, producer).await
    }

    /// The plugin's part of [`Pipeline::process`]: what becomes of each
    /// message, with nothing sent yet. Exactly-once pipelines call the
    /// plugin while a transaction commits, and send once the next is open.
    pub async fn decide(&self, batch: &EncodedBatch) -> Decided {
        self.recorder.batch_started(batch.len());
        let served = self.plugin.current();
        let mut answers = Vec::new();
        let verdicts = self.decide_each(&served.plugin, batch, &mut answers).await;
        self.recorder.batch_decided();
        Decided {
            served,
            answers,
            verdicts,
        }
    }

    /// The producer's part of [`Pipeline::process`]: hands the outputs and
    /// dead letters of `decided` to `producer`, in message order, as one
    /// group whose acknowledgements are awaited together.
    pub async fn send(
        &self,
        batch: &EncodedBatch,
        decided: Decided,
        producer: &OutputProducer,
    ) -> Vec<MessageResult> {
        let count = batch.len();
        let Decided {
            served: ServedPlugin { plugin, version },
            answers,
            verdicts,
        } = decided;
        let outputs = producer.batch();
        let mut results = Vec::with_capacity(count);
        for (index, verdict) in verdicts.into_iter().enumerate() {
            let result = match verdict {
                Verdict::Outputs { call, index: at } => {
                    let Outcome::Outputs(emitted) = answers[call].outcome(at) else {
                        unreachable!("an outputs verdict points at outputs")
                    };
                    let mut sent = self.emit(emitted, &outputs, plugin.name(), &version).await;
                    match sent.failure.take() {
                        // Outputs Kafka refused (too large, no such topic):
                        // the message failed like any other.
                        Some(failure) => {
                            let mut failed = self
                                .fail(&plugin, &version, batch, index, failure, &outputs)
                                .await;
                            sent.deliveries.append(&mut failed.deliveries);
                            MessageResult {
                                deliveries: sent.deliveries,
                                ..failed
                            }
                        }
                        None => sent,
                    }
                }
                Verdict::Failed(failure) => {
                    self.fail(&plugin, &version, batch, index, failure, &outputs)
                        .await
                }
            };
            let stop = result.stop;
            results.push(result);
            if stop {
                // Nothing after the stopping message is sent.
                results.extend((index + 1..count).map(|_| MessageResult {
                    stop: true,
                    ..MessageResult::default()
                }));
                break;
            }
        }
        let failed = results.iter().filter(|r| r.failure.is_some()).count() as u64;
        let succeeded = count as u64 - failed;
        self.recorder.processed(succeeded, failed);
        results
    }

    /// Calls the plugin until every message has a final verdict: transient
    /// failures are retried with backoff up to the policy's attempts, in
    /// place, so the order of outputs is kept.
    async fn decide_each(
        &self,
        plugin: &Plugin,
        batch: &EncodedBatch,
        answers: &mut Vec<EncodedOutcomes>,
    ) -> Vec<Verdict> {
        let count = batch.len();
        let mut verdicts: Vec<Option<Verdict>> = (0..count).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..count).collect();
        let retry = &self.failure_policy.retry;
        let mut attempt = 1;
        loop {
            let subset;
            let current = if pending.len() == count {
                batch
            } else {
                subset = batch.view().select(&pending);
                &subset
            };
            let mut again = Vec::new();
            let outcome = self.call_isolating(plugin, current, answers).await;
            for (position, verdict) in outcome.into_iter().enumerate() {
                let index = pending[position];
                match verdict {
                    Verdict::Failed(mut failure) => {
                        failure.attempts = attempt;
                        let transient = failure.kind == MessageFailureKind::Transient;
                        if transient && attempt < retry.max_attempts {
                            again.push(index);
                        } else {
                            verdicts[index] = Some(Verdict::Failed(failure));
                        }
                    }
                    outputs => verdicts[index] = Some(outputs),
                }
            }
            if again.is_empty() {
                break;
            }
            let delay = retry.delay(attempt);
            tracing::info!(
                pipeline = %self.name,
                plugin = plugin.name(),
                messages = again.len(),
                attempt,
                delay = %humantime::format_duration(delay),
                "retrying transiently failed messages"
            );
            self.recorder.retrying(again.len());
            tokio::time::sleep(delay).await;
            attempt += 1;
            pending = again;
        }
        verdicts
            .into_iter()
            .map(|verdict| verdict.expect("every message has a verdict"))
            .collect()
    }

    /// One call for the whole batch. If the call fails as a whole (a trap, a
    /// timeout, a memory blow-up), the batch is split in halves and each
    /// half tried again on fresh instances, until the message that breaks
    /// the call is alone: it fails, its neighbours succeed.
    async fn call_isolating(
        &self,
        plugin: &Plugin,
        batch: &EncodedBatch,
        answers: &mut Vec<EncodedOutcomes>,
    ) -> Vec<Verdict> {
        let count = batch.len();
        match self.call(plugin, batch).await {
            Ok(handled) => {
                let call = answers.len();
                let verdicts = (0..count)
                    .map(|index| match handled.outcome(index) {
                        Outcome::Outputs(outputs) => match self.output_policy.check(outputs) {
                            Ok(()) => Verdict::Outputs { call, index },
                            Err(refusal) => {
                                self.recorder.outputs_refused(refusal.breach);
                                Verdict::Failed(MessageFailure::new(
                                    MessageFailureKind::Permanent,
                                    refusal.reason,
                                ))
                            }
                        },
                        Outcome::Failed { kind, message } => {
                            let kind = MessageFailureKind::from(kind);
                            self.recorder.message_failed(plugin.name(), kind);
                            Verdict::Failed(MessageFailure::new(kind, message))
                        }
                    })
                    .collect();
                answers.push(handled);
                verdicts
            }
            Err(error) if count == 1 => vec![Verdict::Failed(MessageFailure::new(
                MessageFailureKind::Call(error.kind),
                error.message,
            ))],
            Err(error) => {
                tracing::warn!(
                    pipeline = %self.name,
                    plugin = plugin.name(),
                    kind = %error.kind,
                    error = %error.message,
                    batch = count,
                    "plugin call failed; splitting the batch to isolate the message that breaks it"
                );
                self.isolate_in_halves(plugin, batch, answers).await
            }
        }
    }

    /// [`Pipeline::call_isolating`] on each half of `batch`, in order. Boxed
    /// because the two recurse; only a failed call gets here, so a batch
    /// that succeeds allocates no future.
    fn isolate_in_halves<'a>(
        &'a self,
        plugin: &'a Plugin,
        batch: &'a EncodedBatch,
        answers: &'a mut Vec<EncodedOutcomes>,
    ) -> futures::future::BoxFuture<'a, Vec<Verdict>> {
        Box::pin(async move {
            let count = batch.len();
            let middle = count / 2;
            let first: Vec<usize> = (0..middle).collect();
            let second: Vec<usize> = (middle..count).collect();
            let mut verdicts = self
                .call_isolating(plugin, &batch.view().select(&first), answers)
                .await;
            verdicts.extend(
                self.call_isolating(plugin, &batch.view().select(&second), answers)
                    .await,
            );
            verdicts
        })
    }

    async fn call(
        &self,
        plugin: &Plugin,
        batch: &EncodedBatch,
    ) -> Result<EncodedOutcomes, CallError> {
        let invocation = {
            // Closed only at shutdown, after every caller is gone.
            let _permit = self.concurrency.acquire().await;
            plugin.handle_for(batch, &self.tenant).await
        };
        self.recorder.invocation(plugin.name(), &invocation);
        invocation.result
    }

    /// A message failed for good: dead-letter it, or skip it, or stop here.
    async fn fail(
        &self,
        plugin: &Plugin,
        version: &str,
        batch: &EncodedBatch,
        index: usize,
        failure: MessageFailure,
        producer: &OutputBatch<'_>,
    ) -> MessageResult {
        let message = batch.view().message(index);
        // Every failure is counted and dead-lettered with its reason; the
        // log gets a sample, so a plugin failing every message cannot
        // drown it.
        let kind = format!("message-failed:{}:{}", self.name, failure.kind);
        if let Some(held_back) = LogLimiter::global().admit(&kind) {
            tracing::warn!(
                pipeline = %self.name,
                plugin = plugin.name(),
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                kind = %failure.kind,
                attempts = failure.attempts,
                error = %failure.message,
                held_back,
                "message failed"
            );
        }
        let mut result = MessageResult::default();
        if let Some(dead_letters) = &self.failure_policy.dead_letters {
            let failed_in = FailedIn {
                plugin: plugin.name(),
                version,
            };
            match dead_letters
                .send(producer, &message, &failure, failed_in)
                .await
            {
                Ok(pending) => {
                    result.deliveries.push(pending);
                    result.dead_lettered = true;
                    self.recorder.dead_lettered();
                }
                Err(error) => {
                    // A dead letter that cannot even be queued must not be
                    // lost silently: hold the partition here.
                    tracing::error!(pipeline = %self.name, %error, "cannot send to the dead-letter topic; stopping the pipeline at this message");
                    result.stop = true;
                }
            }
        } else if self.failure_policy.on_failure == OnFailure::Stop {
            result.stop = true;
        }
        result.failure = Some(failure);
        result
    }

    async fn emit(
        &self,
        outputs: impl Iterator<Item = OutputView<'_>>,
        producer: &OutputBatch<'_>,
        plugin: &str,
        version: &str,
    ) -> MessageResult {
        let mut result = MessageResult::default();
        if let Some(binding) = &self.output_binding {
            for output in outputs {
                let sent = binding
                    .send(
                        output.key,
                        output.value,
                        tagged(output.headers, plugin, version),
                    )
                    .await;
                match sent {
                    Ok(()) => result.deliveries.push(PendingDelivery::Acknowledged),
                    // Not the handler's failure: the sidecar, its binding or
                    // the system behind it is away. Like a Kafka output not
                    // acknowledged, the message is processed again later,
                    // not dead-lettered; the rest of its outputs go then.
                    Err(error) => {
                        let refused = PendingDelivery::Refused(SinkError::Binding(error));
                        result.deliveries.push(refused);
                        break;
                    }
                }
            }
            return result;
        }
        for output in outputs {
            let Some(topic) = output.topic.or(self.default_output.as_deref()) else {
                result.failure = Some(MessageFailure::new(
                    MessageFailureKind::Permanent,
                    "the output names no topic and the pipeline has no default `output`",
                ));
                break;
            };
            match producer
                .send(
                    topic,
                    output.key,
                    output.value,
                    tagged(output.headers, plugin, version),
                )
                .await
            {
                Ok(pending) => result.deliveries.push(pending),
                Err(error) if error.refuses_the_record() => {
                    result.failure = Some(MessageFailure::new(
                        MessageFailureKind::Permanent,
                        error.to_string(),
                    ));
                    break;
                }
                // Not the handler's failure nor its output's: the producer
                // takes no records now. Like an output not acknowledged,
                // the message is processed again later, not dead-lettered.
                Err(error) => {
                    result.deliveries.push(PendingDelivery::Refused(error));
                    break;
                }
            }
        }
        result
    }
}
