//! Resident memory of an idle host: `runnel run` with ten pipelines, each
//! with a plugin file of its own (copies of the three example plugins under
//! distinct names, so each is compiled and instantiated separately), each
//! consuming its own empty topic. Read after start-up and a few idle seconds,
//! once the consumers have joined their groups and nothing is happening.
//! A host with one pipeline is measured the same way, to split the figure
//! into a fixed part and a part per plugin.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::kafka::unique_name;
use crate::processor::{Harness, Processor};
use crate::procfs::Memory;
use crate::runnel_config::{PipelineSpec, RunnelConfig};

/// The plugins the idle host loads, in turn: (example plugin, its config).
const PLUGIN_MIX: &[(&str, &[(&str, &str)])] = &[
    ("uppercase", &[]),
    ("json-router", &[("route_field", "topic")]),
    ("misbehave", &[]),
];

const START_TIMEOUT: Duration = Duration::from_secs(60);
const IDLE_TIME: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Footprint {
    pub plugins: usize,
    pub memory: Memory,
}

pub fn measure(harness: &Harness, plugins: usize) -> anyhow::Result<Footprint> {
    let inputs: Vec<String> = (0..plugins)
        .map(|i| unique_name(&format!("idle-{i}")))
        .collect();
    let output = unique_name("idle-out");
    let mut topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    topics.push(&output);
    harness.cluster.create_topics(&topics, 1)?;

    let mut pipelines = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let (example, config) = PLUGIN_MIX[i % PLUGIN_MIX.len()];
        pipelines.push(PipelineSpec {
            name: format!("idle-{i}"),
            input: input.clone(),
            output: output.clone(),
            group: unique_name("idle-group"),
            plugin: plugin_copy(harness, example, i)?,
            profile: None,
            batch_size: Some(1),
            batch_timeout: Some(Duration::from_millis(100)),
            max_in_flight: None,
            exactly_once: false,
            plugin_config: config
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        });
    }
    let config = RunnelConfig {
        brokers: harness.cluster.brokers().to_owned(),
        producer: Vec::new(),
        worker_threads: None,
        pipelines,
    };
    let mut host = Processor::start_runnel(harness, &config, &unique_name("idle-host"), &[])?;
    host.wait_for_log_message("runnel started", START_TIMEOUT)?;
    std::thread::sleep(IDLE_TIME);
    host.ensure_running()?;
    let memory = host.memory().context("reading the idle host's memory")?;
    host.stop();
    Ok(Footprint { plugins, memory })
}

/// A copy of an example plugin under a name of its own: Runnel names a
/// plugin after its file.
fn plugin_copy(harness: &Harness, example: &str, index: usize) -> anyhow::Result<PathBuf> {
    let source = harness.plugin(example);
    let copy = harness
        .work_dir
        .join(format!("{}_{index}.wasm", example.replace('-', "_")));
    std::fs::copy(&source, &copy)
        .with_context(|| format!("copying {} to {}", source.display(), copy.display()))?;
    Ok(copy)
}
