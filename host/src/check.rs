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
use crate::config::{Config, PluginSource, ResolvedPipeline};
use crate::metrics::Metrics;
use crate::plugin_dir::RegistryError;
use crate::plugin_dir::loader::{
    VersionFiles, VersionLoader, manifest_path, manifests_in, read_version,
};
use crate::plugins::HostPlugins;
use crate::runtime::PluginEngine;
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
    /// Topics the pipelines name, looked up on the brokers, when they were
    /// reached.
    pub topics_found: Option<usize>,
    /// One sentence per problem.
    pub problems: Vec<String>,
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
        if let Some(topics) = self.topics_found {
            summary += &format!(
                ", brokers reached, {} present",
                count(topics, "topic", "topics")
            );
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
    // The store's plugins were validated as they were deployed; a host
    // following only the store has no directory to check.
    if let Some(dir) = config.plugins.as_ref().and_then(|p| p.dir.as_ref()) {
        let loader = VersionLoader::new(engine, config.clone(), references, trusted);
        for settings in check_directory(dir, &loader, &mut report).await {
            pipelines.entry(settings.name.clone()).or_insert(settings);
        }
    }
    if let Some(timeout) = options.connect_timeout {
        check_topics(config, pipelines.values(), timeout, &mut report).await;
    }
    report
}

/// Loads every plugin of the directory as the registry would, and each
/// host-config pipeline naming one. Returns the pipelines they would run.
async fn check_directory(
    dir: &Path,
    loader: &VersionLoader,
    report: &mut CheckReport,
) -> Vec<ResolvedPipeline> {
    let mut names = match manifests_in(dir) {
        Ok(names) => names,
        Err(source) => {
            report.problem(RegistryError::ReadDir {
                dir: dir.to_owned(),
                source,
            });
            return Vec::new();
        }
    };
    names.extend(loader.references().keys().cloned());
    let mut pipelines = Vec::new();
    for name in names {
        let Some(VersionFiles { version, files, .. }) =
            read_version(&manifest_path(dir, &name), loader.trusted()).await
        else {
            for pipeline in loader.references().get(&name).into_iter().flatten() {
                report.problem(RegistryError::Reference {
                    pipeline: pipeline.name.clone(),
                    plugin: name.clone(),
                    reason: format!("no {name}.toml in {}", dir.display()),
                });
            }
            continue;
        };
        let loaded = async {
            let (manifest, wasm) = files?;
            let to_run = loader.pipelines(&name, &manifest)?;
            pipelines.extend(to_run.iter().cloned());
            loader.start(&name, wasm, to_run).await
        }
        .await;
        match loaded {
            Ok(started) => {
                report.directory_plugins += 1;
                report.pipelines_ready += started.len();
            }
            Err(error) => {
                let version = version
                    .map(|version| format!(" version {version}"))
                    .unwrap_or_default();
                report.problem(format!(
                    "plugin {name}{version} in {}: {error}",
                    dir.display()
                ));
            }
        }
    }
    pipelines
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
