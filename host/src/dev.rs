//! `runnel dev`: the main job on an embedded Kafka-protocol cluster
//! (librdkafka's mock cluster), so a fresh machine can see Runnel work with
//! nothing installed. It feeds sample messages through a plugin, prints the
//! outputs as they arrive, and keeps running for messages produced by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PipelineConfig};

const INPUT_TOPIC: &str = "runnel-in";
const OUTPUT_TOPIC: &str = "runnel-out";

#[derive(Debug, clap::Args)]
pub struct DevOptions {
    /// The plugin to run [default: the uppercase example, where
    /// `scripts/demo.sh` or `scripts/test.sh` built it].
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// Sample messages fed in at start.
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// Messages per plugin call (1 is per-message mode).
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Exit once the samples' outputs have been printed.
    #[arg(long)]
    exit_after_samples: bool,
}

pub async fn run(options: DevOptions, shutdown: CancellationToken) -> anyhow::Result<bool> {
    let plugin = match &options.plugin {
        Some(plugin) => plugin.clone(),
        None => example_plugin()?,
    };
    anyhow::ensure!(
        plugin.is_file(),
        "plugin file {} not found (--plugin)",
        plugin.display()
    );
    let cluster = MockCluster::new(1).context("starting the embedded Kafka cluster")?;
    cluster
        .create_topic(INPUT_TOPIC, 4, 1)
        .context("creating the input topic")?;
    cluster
        .create_topic(OUTPUT_TOPIC, 4, 1)
        .context("creating the output topic")?;
    let brokers = cluster.bootstrap_servers();
    println!("embedded Kafka at {brokers}");
    println!("  produce more with: kcat -b {brokers} -t {INPUT_TOPIC} -P");
    println!("  read outputs with: kcat -b {brokers} -t {OUTPUT_TOPIC} -C");

    let config = dev_config(&brokers, &plugin, &options)?;
    let host_shutdown = shutdown.child_token();
    let mut host = tokio::spawn(crate::app::run(config, host_shutdown.clone()));

    let shown = async {
        feed_samples(&brokers, options.samples).await?;
        print_outputs(&brokers, &options, &shutdown).await
    };
    // A host that stops by itself has failed (a plugin it cannot load, a
    // port it cannot bind): that ends the demo at once, with its error,
    // rather than leaving it waiting for outputs that will never come.
    let shown = tokio::select! {
        stopped = &mut host => {
            stopped.context("the host task failed")??;
            anyhow::bail!("the host stopped before the demo ended");
        }
        shown = shown => shown,
    };
    host_shutdown.cancel();
    let drained = host.await.context("the host task failed")??;
    shown?;
    drop(cluster);
    Ok(drained)
}

/// The uppercase example plugin: where the README's commands build it (the
/// plugins target directory they share, as this run or the build of this
/// binary saw it), else the repository's own `plugins/target`.
fn example_plugin() -> anyhow::Result<PathBuf> {
    const BUILT_AT: &str = "wasm32-wasip2/release/uppercase.wasm";
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugin_targets = [
        std::env::var_os("RUNNEL_PLUGINS_TARGET_DIR").map(PathBuf::from),
        option_env!("RUNNEL_PLUGINS_TARGET_DIR").map(PathBuf::from),
        Some(repository.join("plugins/target")),
    ];
    first_built(
        plugin_targets
            .into_iter()
            .flatten()
            .map(|target| target.join(BUILT_AT))
            .collect(),
    )
}

/// The first candidate that is a file, or an error listing where it looked
/// and how to build the example.
fn first_built(candidates: Vec<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(built) = candidates.iter().find(|candidate| candidate.is_file()) {
        return Ok(built.clone());
    }
    let looked_in: Vec<String> = candidates
        .iter()
        .map(|candidate| candidate.display().to_string())
        .collect();
    anyhow::bail!(
        "the example plugin is not built (looked for {}); build it with scripts/demo.sh, \
         or pass --plugin FILE",
        looked_in.join(", ")
    )
}

fn dev_config(brokers: &str, plugin: &Path, options: &DevOptions) -> anyhow::Result<Config> {
    let mut config = Config::parse("", &[])?;
    config.kafka.brokers = brokers.to_owned();
    // The embedded cluster is local; listen where nothing else will.
    config.http.listen = "127.0.0.1:0".parse()?;
    let pipeline: PipelineConfig = toml::from_str(&format!(
        "inputs = [\"{INPUT_TOPIC}\"]\nplugin = {:?}\noutput = \"{OUTPUT_TOPIC}\"\nbatch_size = {}\nbatch_timeout = \"50ms\"\n",
        plugin.display().to_string(),
        options.batch_size,
    ))?;
    config.pipelines = BTreeMap::from([("demo".to_owned(), pipeline)]);
    config.resolve("demo")?;
    Ok(config)
}

async fn feed_samples(brokers: &str, samples: usize) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the sample producer")?;
    for i in 0..samples {
        let key = format!("sample-{i}");
        let value = format!("hello from runnel, message {i}");
        producer
            .send(
                FutureRecord::to(INPUT_TOPIC).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)
            .context("producing a sample message")?;
    }
    println!("fed {samples} sample messages into {INPUT_TOPIC}");
    Ok(())
}

async fn print_outputs(
    brokers: &str,
    options: &DevOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let viewer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "runnel-dev-viewer")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the output viewer")?;
    viewer.subscribe(&[OUTPUT_TOPIC])?;
    let mut seen = 0usize;
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = viewer.recv() => message?,
        };
        seen += 1;
        println!(
            "output {seen}: {OUTPUT_TOPIC}[{}]@{} key={} value={}",
            message.partition(),
            message.offset(),
            String::from_utf8_lossy(message.key().unwrap_or_default()),
            String::from_utf8_lossy(message.payload().unwrap_or_default()),
        );
        if options.exit_after_samples && seen >= options.samples {
            println!("all {seen} sample outputs seen");
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_demo_without_its_example_plugin_says_where_it_looked_and_how_to_build_it() {
        let empty = tempfile::tempdir().unwrap();
        let candidates = vec![empty.path().join("a.wasm"), empty.path().join("b.wasm")];
        let error = first_built(candidates).expect_err("nothing is built");
        let message = error.to_string();
        assert!(
            message.contains("a.wasm, ") && message.contains("b.wasm);"),
            "{message}"
        );
        assert!(message.ends_with("or pass --plugin FILE"), "{message}");

        let built = empty.path().join("b.wasm");
        std::fs::write(&built, b"").unwrap();
        let candidates = vec![empty.path().join("a.wasm"), built.clone()];
        assert_eq!(first_built(candidates).unwrap(), built);
    }
}
