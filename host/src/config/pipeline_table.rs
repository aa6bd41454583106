//! A `[pipelines.NAME]` table, as written: what a pipeline of the host
//! config, or of a plugin manifest's `[pipeline]`, may set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::defaults;
use super::profiles::Profile;
use crate::backoff::{Backoff, BackoffKind};

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
    /// Topics the plugin's outputs may name. An output to any other topic
    /// fails its message as permanent, with the reason in the dead letter.
    /// Unset: `output` and `dead_letter_topic`, so a plugin that names no
    /// topic needs nothing here.
    pub allowed_output_topics: Option<Vec<String>>,
    /// Presets for the settings below; explicit settings win.
    pub profile: Option<Profile>,
    /// Messages per plugin call; 1 is per-message mode (no waiting). The
    /// profile's when unset, else 1.
    pub batch_size: Option<usize>,
    /// Longest a batch waits for more messages after its first one. The
    /// profile's when unset, else 100 ms.
    #[serde(default, with = "humantime_serde")]
    pub batch_timeout: Option<Duration>,
    /// Plugin calls running at once (partitions are processed in parallel up
    /// to this).
    #[serde(default = "defaults::max_concurrent")]
    pub max_concurrent: usize,
    /// This pipeline's weight when the host's call slots and plugin memory
    /// are shared out: a pipeline of weight 2 gets twice the share of one
    /// of weight 1 while both want them.
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// Messages received but not yet committed, above which the pipeline
    /// stops taking more.
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
    /// Their keys and values in MiB, above which the pipeline stops taking
    /// more: what bounds memory when messages are large.
    #[serde(default = "defaults::max_in_flight_mib")]
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
    /// With `exactly_once`: a transaction is committed at most this long
    /// after its first batch went in.
    #[serde(default = "defaults::transaction_interval", with = "humantime_serde")]
    pub transaction_interval: Duration,
    /// With `exactly_once`: or once it holds this many messages.
    #[serde(default = "defaults::transaction_max_messages")]
    pub transaction_max_messages: usize,
    /// Raw librdkafka options for this pipeline's consumer; win over
    /// `[kafka.consumer]` and the profile. Those of
    /// [`HOST_OWNED_CONSUMER_OPTIONS`](super::HOST_OWNED_CONSUMER_OPTIONS)
    /// are refused.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// Raw librdkafka options for the producer of this pipeline's outputs;
    /// win over `[kafka.producer]` and the profile. Pipelines whose options
    /// come out the same share one producer. Those of
    /// [`HOST_OWNED_PRODUCER_OPTIONS`](super::HOST_OWNED_PRODUCER_OPTIONS)
    /// are refused.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
}

/// The sandbox limits of a pipeline's plugin (`limits = { ... }`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest linear memory, in MiB; 64 when unset.
    pub max_memory_mib: Option<u64>,
    /// Wall-clock deadline per plugin call; the profile's when unset, else
    /// 5 s.
    #[serde(default, with = "humantime_serde")]
    pub call_timeout: Option<Duration>,
    /// Fuel per call (about one unit per WebAssembly instruction). A plugin
    /// with a budget runs on a fuel-metered engine of its own.
    pub fuel: Option<u64>,
    /// Outputs one message may produce; more fail the message as permanent
    /// and none of them is sent. 10 000 when unset.
    pub max_outputs_per_message: Option<usize>,
    /// MiB of keys, values and headers one message's outputs may hold
    /// together; beyond, as for the count. 16 when unset.
    pub max_output_mib_per_message: Option<usize>,
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
    /// How the wait grows: `fixed`, `linear` or `exponential`.
    #[serde(default)]
    pub backoff: BackoffKind,
    /// Wait before the first retry.
    #[serde(default = "defaults::retry_initial_delay", with = "humantime_serde")]
    pub initial_delay: Duration,
    /// No wait is longer than this.
    #[serde(default = "defaults::retry_max_delay", with = "humantime_serde")]
    pub max_delay: Duration,
    /// Attempts in all, the first included; then the message counts as
    /// failed.
    #[serde(default = "defaults::retry_max_attempts")]
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            backoff: BackoffKind::default(),
            initial_delay: defaults::RETRY_INITIAL_DELAY,
            max_delay: defaults::RETRY_MAX_DELAY,
            max_attempts: defaults::RETRY_MAX_ATTEMPTS,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
