//! `runnel check`: what `runnel run` checks before it starts, without
//! starting anything. Every pipeline's plugin is loaded and started (`init`)
//! with its pipeline's configuration, the plugin directory's plugins too,
//! and the producer's options are put to librdkafka; when asked, the
//! brokers are reached and the pipelines' topics looked up. It runs the
//! host's own loading code, so it finds what a start would find, and it
//! reports every problem that does not hang on another.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use rdkafka::producer::Producer;

use crate::app;
use crate::client_events::ClientEvents;
use crate::config::{Config, PluginDirConfig, PluginSource, ResolvedPipeline};
use crate::metrics::Metrics;
use crate::plugin_dir::RegistryError;
use crate::plugin_dir::loader::{
    VersionFiles, VersionLoader, manifest_path, manifests_in, read_version,
};
use crate::plugin_store::materialise::Materialiser;
use crate::plugin_store::records::DesiredState;
use crate::plugin_store::topic::StoreTopic;
use crate::plugins::HostPlugins;
use crate::runtime::{PluginEngine, memory_share, slot_share};
use crate::signing::TrustedKeys;
use crate::sink::OutputProducer;

/// What to check besides the configuration and the plugins.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Reach the brokers, waiting at most this long, and look the
    /// pipelines' topics up.
    pub connect_timeout: Option<Duration>,
}

/// What a check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Pipelines whose plugin loaded and accepted their configuration.
    pub pipelines_ready: usize,
    /// Plugins of the plugin directory that loaded.
    pub directory_plugins: usize,
    /// Plugins of the plugin store that loaded, when it was read.
    pub store_plugins: usize,
    /// The plugin store's topic, when the host follows one and the check
    /// did not reach the brokers to read it.
    pub store_unread: Option<String>,
    /// Topics the pipelines name, looked up on the brokers, when they were
    /// reached.
    pub topics_found: Option<usize>,
    /// How the host would share its plugin calls and memory out.
    pub shares: Option<Shares>,
    /// One sentence per problem.
    pub problems: Vec<String>,
}

/// The host's call slots and plugin memory, and each pipeline's share of
/// them while all its pipelines want calls.
#[derive(Debug, Clone)]
pub struct Shares {
    pub call_slots: usize,
    pub memory_bytes: u64,
    pub pipelines: Vec<PipelineShare>,
}

#[derive(Debug, Clone)]
pub struct PipelineShare {
    pub name: String,
    pub weight: u32,
    pub slots: usize,
    pub memory_bytes: u64,
}

impl Shares {
    fn of<'p>(config: &Config, pipelines: impl Iterator<Item = &'p ResolvedPipeline>) -> Self {
        let settings = app::engine_settings(config);
        let slots = settings.call_slots.max(1);
        let memory = usize::try_from(settings.max_total_memory_bytes).unwrap_or(usize::MAX);
        let weights: Vec<(String, u32)> = pipelines.map(|p| (p.name.clone(), p.weight)).collect();
        let total: usize = weights.iter().map(|(_, weight)| *weight as usize).sum();
        let pipelines = (weights.into_iter())
            .map(|(name, weight)| PipelineShare {
                slots: slot_share(slots, weight as usize, total),
                memory_bytes: memory_share(memory, weight as usize, total) as u64,
                name,
                weight,
            })
            .collect();
        Self {
            call_slots: slots,
            memory_bytes: settings.max_total_memory_bytes,
            pipelines,
        }
    }
}

impl std::fmt::Display for Shares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |bytes: u64| bytes >> 20;
        let slots = count(self.call_slots, "slot", "slots");
        let pipelines = count(self.pipelines.len(), "pipeline", "pipelines");
        let memory = mib(self.memory_bytes);
        let Some(first) = self.pipelines.first() else {
            return write!(f, "{slots} for plugin calls; {memory} MiB of plugin memory");
        };
        if self.pipelines.iter().all(|p| p.weight == first.weight) {
            return write!(
                f,
                "{slots} for plugin calls, {} each while all {pipelines} want them; {memory} MiB \
                 of plugin memory, {} MiB each",
                first.slots,
                mib(first.memory_bytes),
            );
        }
        let each: Vec<String> = (self.pipelines.iter())
            .map(|p| {
                let slots = count(p.slots, "slot", "slots");
                format!(
                    "{} (weight {}) {slots}, {} MiB",
                    p.name,
                    p.weight,
                    mib(p.memory_bytes)
                )
            })
            .collect();
        write!(
            f,
            "{slots} for plugin calls and {memory} MiB of plugin memory, shared by weight while \
             all {pipelines} want them: {}",
            each.join("; ")
        )
    }
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, error: impl std::fmt::Display) {
        self.problems.push(format!("{error:#}"));
    }

    /// What was found ready, in one line.
    pub fn summary(&self) -> String {
        let mut summary = format!(
            "{} ready",
            count(self.pipelines_ready, "pipeline", "pipelines")
        );
        if self.directory_plugins > 0 {
            summary += &format!(
                ", {} loaded from the plugin directory",
                count(self.directory_plugins, "plugin", "plugins")
            );
        }
        if self.store_plugins > 0 {
            summary += &format!(
                ", {} loaded from the plugin store",
                count(self.store_plugins, "plugin", "plugins")
            );
        }
        if let Some(topics) = self.topics_found {
            summary += &format!(
                ", brokers reached, {} present",
                count(topics, "topic", "topics")
            );
        }
        if let Some(topic) = &self.store_unread {
            summary += &format!(", the plugin store {topic} not read (--connect reads it)");
        }
        if let Some(shares) = &self.shares
            && !shares.pipelines.is_empty()
        {
            summary += &format!("; {shares}");
        }
        summary
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Checks what `config` would start. Never starts a pipeline.
pub async fn check(config: &Config, options: &CheckOptions) -> CheckReport {
    let mut report = CheckReport::default();
    if let Err(error) = config.http_tokens() {
        report.problem(error);
    }
    if let (Some(cert), Some(key)) = (&config.http.tls_cert_file, &config.http.tls_key_file)
        && let Err(error) = crate::http::tls_server_config(cert, key)
    {
        report.problem(error);
    }
    if let Err(error) = OutputProducer::check_options(&config.kafka, &config.kafka.producer) {
        report.problem(error);
    }
    let engine = match PluginEngine::new(app::engine_settings(config)) {
        Ok(engine) => engine,
        Err(error) => {
            report.problem(error);
            return report;
        }
    };
    let metrics = Metrics::new();
    let trusted = match TrustedKeys::load(&config.runtime.trusted_plugin_keys) {
        Ok(trusted) => trusted,
        Err(error) => {
            report.problem(error);
            return report;
        }
    };
    // By name: every pipeline that would run, for the topic look-up.
    let mut pipelines = BTreeMap::new();
    let mut references = Vec::new();
    for name in config.pipelines.keys() {
        let settings = match config.resolve(name) {
            Ok(settings) => settings,
            Err(error) => {
                report.problem(error);
                continue;
            }
        };
        if settings.producer != config.kafka.producer
            && let Err(error) = OutputProducer::check_options(&config.kafka, &settings.producer)
        {
            report.problem(format!("pipeline {name}: {error}"));
        }
        match &settings.plugin {
            PluginSource::File(path) => {
                let mut loaded = HostPlugins::default();
                let loading =
                    app::load_plugin(&engine, &settings, path, &trusted, &metrics, &mut loaded);
                match loading.await {
                    Ok(_) => report.pipelines_ready += 1,
                    Err(error) => report.problem(error),
                }
            }
            PluginSource::Directory(_) => references.push(settings.clone()),
        }
        pipelines.insert(name.clone(), settings);
    }
    let loader = VersionLoader::new(engine, config.clone(), references, trusted);
    for settings in check_plugins(config, &loader, options, &mut report).await {
        pipelines.entry(settings.name.clone()).or_insert(settings);
    }
    if let Some(timeout) = options.connect_timeout {
        check_topics(config, pipelines.values(), timeout, &mut report).await;
    }
    report.shares = Some(Shares::of(config, pipelines.values()));
    report
}

/// Loads every plugin the host would find as its registry would: the
/// plugin store's (read when the brokers may be reached), and the plugin
/// directory's that the store does not replace. Reports each host-config
/// pipeline naming a plugin found in neither. Returns the pipelines they
/// would run.
async fn check_plugins(
    config: &Config,
    loader: &VersionLoader,
    options: &CheckOptions,
    report: &mut CheckReport,
) -> Vec<ResolvedPipeline> {
    let Some(plugins) = &config.plugins else {
        return Vec::new();
    };
    let mut pipelines = Vec::new();
    let mut found = BTreeSet::new();
    let store = match (&plugins.store_topic, options.connect_timeout) {
        (Some(topic), Some(timeout)) => read_store(config, topic, timeout, report).await,
        _ => None,
    };
    if let Some(store) = &store {
        let place = format!("the plugin store {}", store.topic);
        let names = store.names.clone();
        let (to_run, loaded) =
            check_plugins_in(store.dir.path(), &place, &names, loader, report).await;
        pipelines.extend(to_run);
        report.store_plugins += loaded;
        found.extend(names);
    }
    if let Some(dir) = &plugins.dir {
        match manifests_in(dir) {
            Ok(names) => {
                let names: BTreeSet<String> = names.difference(&found).cloned().collect();
                let place = dir.display().to_string();
                let (to_run, loaded) = check_plugins_in(dir, &place, &names, loader, report).await;
                pipelines.extend(to_run);
                report.directory_plugins += loaded;
                found.extend(names);
            }
            Err(source) => report.problem(RegistryError::ReadDir {
                dir: dir.to_owned(),
                source,
            }),
        }
    }
    // Unread, the store may hold what the directory lacks.
    if options.connect_timeout.is_none() {
        report.store_unread = plugins.store_topic.clone();
    }
    if plugins.store_topic.is_none() || store.is_some() {
        let missing = (loader.references().iter()).filter(|(name, _)| !found.contains(*name));
        for (name, waiting) in missing {
            for pipeline in waiting {
                report.problem(RegistryError::Reference {
                    pipeline: pipeline.name.clone(),
                    plugin: name.clone(),
                    reason: not_found(plugins, name),
                });
            }
        }
    }
    pipelines
}

/// Why the plugin `name` is found nowhere a host looks for plugins.
fn not_found(plugins: &PluginDirConfig, name: &str) -> String {
    match (&plugins.dir, &plugins.store_topic) {
        (Some(dir), None) => format!("no {name}.toml in {}", dir.display()),
        (None, Some(topic)) => format!("no plugin {name} in the plugin store {topic}"),
        (Some(dir), Some(topic)) => format!(
            "no {name}.toml in {} and no plugin {name} in the plugin store {topic}",
            dir.display()
        ),
        (None, None) => format!("no plugin {name}"),
    }
}

/// The plugin store's deployed plugins, written into a directory of their
/// own the way a host writes them into its plugin directory.
struct StoreCopy {
    topic: String,
    dir: tempfile::TempDir,
    names: BTreeSet<String>,
}

async fn read_store(
    config: &Config,
    topic: &str,
    timeout: Duration,
    report: &mut CheckReport,
) -> Option<StoreCopy> {
    let state = match StoreTopic::new(&config.kafka, topic, timeout)
        .read_with_components()
        .await
    {
        // No topic yet: nothing is deployed.
        Ok(state) => state.unwrap_or_default(),
        Err(error) => {
            report.problem(format!("cannot read the plugin store {topic}: {error}"));
            return None;
        }
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            report.problem(format!(
                "cannot make a directory for the plugin store's plugins: {error}"
            ));
            return None;
        }
    };
    let mut files = Materialiser::new(dir.path().to_owned());
    let mut names = BTreeSet::new();
    let deployed =
        (state.plugins.iter()).filter(|(_, record)| record.state == DesiredState::Deployed);
    for (name, record) in deployed {
        let version = &record.current;
        let written = (state.component(version).map_err(|e| e.to_string()))
            .and_then(|wasm| files.write(name, version, &wasm).map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                names.insert(name.clone());
            }
            Err(reason) => report.problem(format!(
                "plugin {name} version {} in the plugin store {topic}: {reason}",
                version.version
            )),
        }
    }
    Some(StoreCopy {
        topic: topic.to_owned(),
        dir,
        names,
    })
}

/// Loads the plugins `names` of `dir` (said as `place`), and each
/// host-config pipeline naming one. Returns the pipelines they would run,
/// and how many plugins loaded.
async fn check_plugins_in(
    dir: &Path,
    place: &str,
    names: &BTreeSet<String>,
    loader: &VersionLoader,
    report: &mut CheckReport,
) -> (Vec<ResolvedPipeline>, usize) {
    let mut pipelines = Vec::new();
    let mut loaded_plugins = 0;
    for name in names {
        let Some(VersionFiles { version, files, .. }) =
            read_version(&manifest_path(dir, name), loader.trusted()).await
        else {
            // Removed since the directory was listed.
            continue;
        };
        let loaded = async {
            let (manifest, wasm) = files?;
            let to_run = loader.pipelines(name, &manifest)?;
            pipelines.extend(to_run.iter().cloned());
            loader.start(name, wasm, to_run).await
        }
        .await;
        match loaded {
            Ok(started) => {
                loaded_plugins += 1;
                report.pipelines_ready += started.len();
            }
            Err(error) => {
                let version = version
                    .map(|version| format!(" version {version}"))
                    .unwrap_or_default();
                report.problem(format!("plugin {name}{version} in {place}: {error}"));
            }
        }
    }
    (pipelines, loaded_plugins)
}

/// Reaches the brokers with the host's producer settings and looks up the
/// topics the pipelines read and the output and dead-letter topics they
/// name. A plugin may send to other topics, which no check can know.
async fn check_topics(
    config: &Config,
    pipelines: impl Iterator<Item = &ResolvedPipeline>,
    timeout: Duration,
    report: &mut CheckReport,
) {
    let brokers = &config.kafka.brokers;
    let events = ClientEvents::new("producer", "", Metrics::new());
    let producer = match OutputProducer::new(&config.kafka, &config.kafka.producer, events) {
        Ok(producer) => producer,
        // Already reported by the options check.
        Err(_) => return,
    };
    let looked_up = tokio::task::spawn_blocking(move || {
        let metadata = producer.client().client().fetch_metadata(None, timeout)?;
        Ok::<_, rdkafka::error::KafkaError>(
            metadata
                .topics()
                .iter()
                .filter(|topic| topic.error().is_none())
                .map(|topic| topic.name().to_owned())
                .collect::<BTreeSet<_>>(),
        )
    })
    .await;
    let present = match looked_up {
        Ok(Ok(present)) => present,
        Ok(Err(error)) => {
            report.problem(format!(
                "cannot reach the Kafka brokers {brokers} within {}: {error}",
                humantime::format_duration(timeout)
            ));
            return;
        }
        Err(error) => {
            report.problem(format!("looking up the Kafka topics failed: {error}"));
            return;
        }
    };
    let mut found = 0;
    for pipeline in pipelines {
        let inputs = pipeline.inputs.iter().map(|topic| ("input", topic));
        let output = pipeline.output.iter().map(|topic| ("output", topic));
        let dead_letters = (pipeline.dead_letter_topic.iter()).map(|topic| ("dead-letter", topic));
        for (role, topic) in inputs.chain(output).chain(dead_letters) {
            if present.contains(topic) {
                found += 1;
            } else {
                report.problem(format!(
                    "pipeline {}: {role} topic {topic} does not exist on {brokers}",
                    pipeline.name
                ));
            }
        }
    }
    report.topics_found = Some(found);
}
