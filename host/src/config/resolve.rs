//! A pipeline as it runs: its table with the profile and defaults applied,
//! checked for settings that cannot work together.

use std::collections::BTreeMap;
use std::time::Duration;

use super::owned_options::{
    HOST_OWNED_CONSUMER_OPTIONS, HOST_OWNED_PRODUCER_OPTIONS, HostOwnedOption, refuse_owned,
};
use super::plugin_source::PluginSource;
use super::profiles::ProfileDefaults;
use super::{
    CommitStrategy, Config, ConfigError, OnFailure, PipelineConfig, Profile, RetryConfig, defaults,
};
use crate::runtime::PluginLimits;
use crate::sink::OutputPolicy;

/// Paths of the HTTP server that a Dapr binding must not shadow.
const RESERVED_PATHS: &[&str] = &["metrics", "healthz", "readyz", "messages", "plugins"];

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
    /// What the plugin's outputs may be: their topics, count and bytes.
    pub output_policy: OutputPolicy,
    pub batch_size: usize,
    pub batch_timeout: Duration,
    pub max_concurrent: usize,
    /// Its weight in the host's call slots and plugin memory.
    pub weight: u32,
    pub max_in_flight: usize,
    pub max_in_flight_bytes: usize,
    pub commit: CommitStrategy,
    pub limits: PluginLimits,
    pub retry: RetryConfig,
    pub dead_letter_topic: Option<String>,
    pub on_failure: OnFailure,
    pub exactly_once: bool,
    pub transaction_interval: Duration,
    pub transaction_max_messages: usize,
    /// Consumer options: profile, then `[kafka.consumer]`, then the
    /// pipeline's own.
    pub consumer: BTreeMap<String, String>,
    /// Producer options: profile, then `[kafka.producer]`, then the
    /// pipeline's own.
    pub producer: BTreeMap<String, String>,
}

impl Config {
    /// The named pipeline with its profile and defaults applied.
    pub fn resolve(&self, name: &str) -> Result<ResolvedPipeline, ConfigError> {
        let pipeline = self
            .pipelines
            .get(name)
            .ok_or_else(|| ConfigError::Pipeline {
                pipeline: name.to_owned(),
                message: "no such pipeline".into(),
            })?;
        self.resolve_pipeline(name, pipeline)
    }

    /// `pipeline`, named `name`, with its profile and defaults applied: a
    /// pipeline of this file or of a plugin manifest. The checks run in the
    /// order of the steps below; the first that fails is the error.
    pub fn resolve_pipeline(
        &self,
        name: &str,
        pipeline: &PipelineConfig,
    ) -> Result<ResolvedPipeline, ConfigError> {
        let step = Resolving {
            host: self,
            name,
            pipeline,
            profile: pipeline.profile.map(Profile::defaults),
        };
        let plugin = step.plugin_source()?;
        step.check_inputs()?;
        let (batch_size, batch_timeout) = step.batching()?;
        step.check_in_flight_bounds(batch_size)?;
        let limits = step.plugin_limits();
        step.check_failure_policy()?;
        let consumer = step.consumer_options()?;
        let producer = step.producer_options()?;
        Ok(ResolvedPipeline {
            name: name.to_owned(),
            inputs: pipeline.inputs.clone(),
            bindings: pipeline.bindings.clone(),
            group: pipeline
                .group
                .clone()
                .unwrap_or_else(|| format!("{}{name}", defaults::GROUP_PREFIX)),
            plugin,
            plugin_config: pipeline
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            output: pipeline.output.clone(),
            output_binding: pipeline.output_binding.clone(),
            output_policy: step.output_policy(),
            batch_size,
            batch_timeout,
            max_concurrent: pipeline.max_concurrent,
            weight: pipeline.weight,
            max_in_flight: pipeline.max_in_flight,
            max_in_flight_bytes: pipeline.max_in_flight_mib << 20,
            commit: pipeline.commit,
            limits,
            retry: pipeline.retry.clone(),
            dead_letter_topic: pipeline.dead_letter_topic.clone(),
            on_failure: pipeline.on_failure,
            exactly_once: pipeline.exactly_once,
            transaction_interval: pipeline.transaction_interval,
            transaction_max_messages: pipeline.transaction_max_messages,
            consumer,
            producer,
        })
    }
}

/// One pipeline on its way to a [`ResolvedPipeline`]: each step reads what
/// it needs from here.
/// Consumer options that Kafka's consumer group protocol (KIP-848) keeps on
/// the broker.
pub const BROKER_SIDE_TIMING: &[&str] = &["session.timeout.ms", "heartbeat.interval.ms"];

struct Resolving<'a> {
    host: &'a Config,
    name: &'a str,
    pipeline: &'a PipelineConfig,
    profile: Option<ProfileDefaults>,
}

impl Resolving<'_> {
    fn invalid(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Pipeline {
            pipeline: self.name.to_owned(),
            message: message.into(),
        }
    }

    /// `plugin`: a component file, or a plugin of the plugin directory when
    /// the host has one.
    fn plugin_source(&self) -> Result<PluginSource, ConfigError> {
        let plugin = &self.pipeline.plugin;
        if plugin.as_os_str().is_empty() {
            return Err(self.invalid(
                "needs `plugin`: a path to a `.wasm` component or the name of a plugin in the \
                 plugin directory",
            ));
        }
        let source = PluginSource::parse(plugin).ok_or_else(|| {
            self.invalid(format!(
                "`plugin` must be a path to a `.wasm` component or the name of a plugin in the \
                 plugin directory, not `{}`",
                plugin.display()
            ))
        })?;
        if let PluginSource::Directory(plugin) = &source
            && self.host.plugins.is_none()
        {
            return Err(self.invalid(format!(
                "`plugin = \"{plugin}\"` names a plugin of the plugin directory, but `[plugins] dir` \
                 is not set (a path to a component ends in `.wasm`)"
            )));
        }
        Ok(source)
    }

    /// Something feeds the pipeline, and every Dapr binding's name can be a
    /// path of the HTTP server.
    fn check_inputs(&self) -> Result<(), ConfigError> {
        let pipeline = self.pipeline;
        if pipeline.inputs.is_empty() && pipeline.bindings.is_empty() {
            return Err(
                self.invalid("needs `inputs` (Kafka topics) or `bindings` (Dapr input bindings)")
            );
        }
        for binding in &pipeline.bindings {
            if RESERVED_PATHS.contains(&binding.as_str())
                || binding.is_empty()
                || !binding
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(self.invalid(format!(
                    "binding name `{binding}` is reserved or not a plain path segment"
                )));
            }
        }
        Ok(())
    }

    /// Batch size and timeout: the pipeline's, else the profile's, else the
    /// defaults.
    fn batching(&self) -> Result<(usize, Duration), ConfigError> {
        let batch_size = self
            .pipeline
            .batch_size
            .or(self.profile.as_ref().map(|p| p.batch_size))
            .unwrap_or(defaults::BATCH_SIZE);
        if batch_size == 0 {
            return Err(self.invalid("`batch_size` must be at least 1"));
        }
        let batch_timeout = self
            .pipeline
            .batch_timeout
            .or(self.profile.as_ref().map(|p| p.batch_timeout))
            .unwrap_or(defaults::BATCH_TIMEOUT);
        Ok((batch_size, batch_timeout))
    }

    /// Concurrency and the in-flight bounds leave room for a batch.
    fn check_in_flight_bounds(&self, batch_size: usize) -> Result<(), ConfigError> {
        let pipeline = self.pipeline;
        if pipeline.max_concurrent == 0 {
            return Err(self.invalid("`max_concurrent` must be at least 1"));
        }
        if !(1..=defaults::MAX_WEIGHT).contains(&pipeline.weight) {
            return Err(self.invalid(format!(
                "`weight` must be from 1 to {}",
                defaults::MAX_WEIGHT
            )));
        }
        if pipeline.max_in_flight < batch_size {
            return Err(self.invalid(format!(
                "`max_in_flight` ({}) must be at least `batch_size` ({batch_size})",
                pipeline.max_in_flight
            )));
        }
        if pipeline.max_in_flight_mib == 0 {
            return Err(self.invalid("`max_in_flight_mib` must be at least 1"));
        }
        Ok(())
    }

    /// The sandbox limits: the pipeline's, else the profile's call timeout,
    /// else the runtime's defaults.
    fn plugin_limits(&self) -> PluginLimits {
        let limits = &self.pipeline.limits;
        PluginLimits {
            max_memory_bytes: limits
                .max_memory_mib
                .map_or(defaults::MAX_MEMORY_BYTES, |mib| mib << 20),
            call_timeout: limits
                .call_timeout
                .or(self.profile.as_ref().map(|p| p.call_timeout))
                .unwrap_or(defaults::CALL_TIMEOUT),
            fuel_per_call: limits.fuel,
        }
    }

    /// Where the plugin may write and how much: the declared topics, else
    /// the pipeline's own output and dead-letter topics. Outputs to a Dapr
    /// binding have no topic to confine.
    fn output_policy(&self) -> OutputPolicy {
        let pipeline = self.pipeline;
        let limits = &pipeline.limits;
        let allowed_topics = pipeline.output_binding.is_none().then(|| {
            pipeline.allowed_output_topics.clone().unwrap_or_else(|| {
                [&pipeline.output, &pipeline.dead_letter_topic]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect()
            })
        });
        OutputPolicy {
            allowed_topics,
            max_outputs: limits
                .max_outputs_per_message
                .unwrap_or(defaults::MAX_OUTPUTS_PER_MESSAGE),
            max_bytes: limits
                .max_output_mib_per_message
                .unwrap_or(defaults::MAX_OUTPUT_MIB_PER_MESSAGE)
                << 20,
        }
    }

    /// Retries, commits and outputs agree with each other.
    fn check_failure_policy(&self) -> Result<(), ConfigError> {
        let pipeline = self.pipeline;
        if pipeline.retry.max_attempts == 0 {
            return Err(self.invalid("`retry.max_attempts` must be at least 1"));
        }
        if pipeline.exactly_once && pipeline.commit == CommitStrategy::BeforeProcessing {
            return Err(self.invalid(
                "`exactly_once` commits offsets with the outputs; it cannot be combined with \
                 `commit = \"before_processing\"`",
            ));
        }
        if pipeline.exactly_once && pipeline.output_binding.is_some() {
            return Err(self.invalid(
                "`exactly_once` needs Kafka outputs; a Dapr output binding is not transactional",
            ));
        }
        if pipeline.transaction_interval.is_zero() || pipeline.transaction_max_messages == 0 {
            return Err(self.invalid(
                "`transaction_interval` and `transaction_max_messages` must be above zero",
            ));
        }
        Ok(())
    }

    /// The Kafka consumer's raw options in layers: the profile's, then
    /// `[kafka.consumer]`, then the pipeline's own. Neither of the user's
    /// layers may name an option the host sets for this pipeline.
    ///
    /// With `kafka.instance_id`, the pipeline is a static member of its
    /// group unless it names its own `group.instance.id`. With
    /// `group.protocol = "consumer"` (KIP-848) the broker owns the session
    /// and heartbeat timing: the profile's are left out, and the user's are
    /// refused, as librdkafka would refuse them at start-up.
    fn consumer_options(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        let layers = [
            ("kafka.consumer", &self.host.kafka.consumer),
            ("consumer", &self.pipeline.consumer),
        ];
        let profile = self
            .profile
            .as_ref()
            .map_or(&[][..], |profile| profile.consumer);
        let consumer_protocol = layers
            .iter()
            .rev()
            .find_map(|(_, options)| options.get("group.protocol"))
            .is_some_and(|protocol| protocol == "consumer");
        let profile: Vec<(&str, &str)> = profile
            .iter()
            .copied()
            .filter(|(key, _)| !(consumer_protocol && BROKER_SIDE_TIMING.contains(key)))
            .collect();
        if consumer_protocol {
            for (section, options) in layers {
                if let Some(key) = BROKER_SIDE_TIMING
                    .iter()
                    .find(|key| options.contains_key(**key))
                {
                    return Err(self.invalid(format!(
                        "`{section}.{key}` cannot be set with `group.protocol = \"consumer\"`: \
                         the broker sets it (`group.consumer.session.timeout.ms`, \
                         `group.consumer.heartbeat.interval.ms`)"
                    )));
                }
            }
        }
        let mut options = self.client_options(layers, HOST_OWNED_CONSUMER_OPTIONS, &profile)?;
        if let Some(instance) = &self.host.kafka.instance_id {
            options
                .entry("group.instance.id".to_owned())
                .or_insert_with(|| format!("{instance}-{}", self.name));
        }
        Ok(options)
    }

    /// The output producer's raw options, layered as the consumer's.
    /// `[kafka.producer]` was checked with the whole file.
    fn producer_options(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        self.client_options(
            [
                ("kafka.producer", &self.host.kafka.producer),
                ("producer", &self.pipeline.producer),
            ],
            HOST_OWNED_PRODUCER_OPTIONS,
            self.profile
                .as_ref()
                .map_or(&[], |profile| profile.producer),
        )
    }

    fn client_options(
        &self,
        layers: [(&str, &BTreeMap<String, String>); 2],
        owned: &[HostOwnedOption],
        profile: &[(&str, &str)],
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let exactly_once = self.pipeline.exactly_once;
        for (section, options) in layers {
            refuse_owned(section, options, owned, exactly_once)
                .map_err(|error| self.invalid(error.to_string()))?;
        }
        let mut merged: BTreeMap<String, String> = profile
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        for (_, options) in layers {
            merged.extend(options.clone());
        }
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::super::MINIMAL;
    use super::*;
    use crate::backoff::BackoffKind;

    #[test]
    fn defaults_apply_to_a_minimal_pipeline() {
        let config = Config::parse(MINIMAL, &[]).unwrap();
        let pipeline = config.resolve("upper").unwrap();
        assert_eq!(pipeline.group, "runnel-upper");
        assert_eq!(pipeline.batch_size, 1);
        assert_eq!(pipeline.commit, CommitStrategy::AfterProcessing);
        assert_eq!(config.http.listen.port(), 3000);
        assert!(
            config.http.listen.ip().is_loopback(),
            "nothing is exposed beyond the machine unless asked"
        );
    }

    #[test]
    fn a_weight_is_from_one_to_the_most_a_host_takes() {
        let weighted = |weight: &str| Config::parse(&format!("{MINIMAL}weight = {weight}\n"), &[]);
        assert_eq!(
            Config::parse(MINIMAL, &[])
                .unwrap()
                .resolve("upper")
                .unwrap()
                .weight,
            1
        );
        assert_eq!(weighted("3").unwrap().resolve("upper").unwrap().weight, 3);
        for refused in ["0", "1001"] {
            let error = weighted(refused).unwrap_err().to_string();
            assert!(error.contains("`weight` must be from 1 to 1000"), "{error}");
        }
    }

    #[test]
    fn an_instance_id_makes_each_pipeline_a_static_member_of_its_group() {
        let text = format!(
            "[kafka]\ninstance_id = \"host-1\"\n{MINIMAL}\n[pipelines.other]\ninputs = [\"in\"]\noutput = \"out\"\nplugin = \"x.wasm\"\n[pipelines.other.consumer]\n\"group.instance.id\" = \"mine\"\n"
        );
        let config = Config::parse(&text, &[]).unwrap();
        let upper = config.resolve("upper").unwrap();
        assert_eq!(upper.consumer["group.instance.id"], "host-1-upper");
        let other = config.resolve("other").unwrap();
        assert_eq!(
            other.consumer["group.instance.id"], "mine",
            "the pipeline's own wins"
        );
        let without = Config::parse(MINIMAL, &[])
            .unwrap()
            .resolve("upper")
            .unwrap();
        assert!(!without.consumer.contains_key("group.instance.id"));
        let bad = format!("[kafka]\ninstance_id = \"a b\"\n{MINIMAL}");
        assert!(Config::parse(&bad, &[]).is_err());
    }

    #[test]
    fn the_consumer_group_protocol_leaves_session_timing_to_the_broker() {
        let text = format!(
            "[kafka.consumer]\n\"group.protocol\" = \"consumer\"\n{MINIMAL}\nprofile = \"realtime\"\n"
        );
        let pipeline = Config::parse(&text, &[]).unwrap().resolve("upper").unwrap();
        assert!(!pipeline.consumer.contains_key("session.timeout.ms"));
        assert!(!pipeline.consumer.contains_key("heartbeat.interval.ms"));
        assert_eq!(
            pipeline.consumer["fetch.wait.max.ms"], "10",
            "the rest of the profile stays"
        );

        let clash =
            format!("{text}[pipelines.upper.consumer]\n\"session.timeout.ms\" = \"6000\"\n");
        let error = Config::parse(&clash, &[]).unwrap_err();
        assert!(error.to_string().contains("the broker sets it"), "{error}");
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
