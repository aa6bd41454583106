//! How long a new plugin version takes to serve: from its manifest landing
//! in the plugin directory to the first output the new version produced,
//! read from the outputs' Kafka timestamps. Runs the real binary against a
//! real broker (RUNNEL_TEST_BROKERS, or one started for the run) with the
//! default debounce, under a light steady load, alternating two components
//! so that every swap compiles.
//!
//! `cargo bench -p runnel --bench hot_swap`

#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use support::config::HostConfig;
use support::host::HostProcess;
use support::kafka::{self, TopicReader};
use support::plugin_bytes;

const SWAPS: usize = 12;

/// A plugin directory whose `echo` plugin alternates between two
/// components, one version after another.
struct PluginDir {
    dir: std::path::PathBuf,
    components: [(&'static str, Vec<u8>); 2],
    pipeline: String,
}

impl PluginDir {
    /// Installs `version`; returns when it landed, in ms since the epoch.
    fn install(&self, version: usize) -> i64 {
        let (_, wasm) = &self.components[version % 2];
        write(&self.dir, &format!("echo-{version}.wasm"), wasm);
        let manifest = format!(
            "name = \"echo\"\nversion = \"{version}\"\ncomponent = \"echo-{version}.wasm\"\n{}",
            self.pipeline
        );
        write(&self.dir, "echo.toml", manifest.as_bytes());
        now_millis()
    }
}

/// What the swaps measured, in ms.
#[derive(Default)]
struct Measured {
    /// Landing to first output, per component.
    by_component: [Vec<i64>; 2],
    /// Input to output of every message meanwhile.
    pipeline_latency: Vec<i64>,
    /// Each version and when it landed.
    landings: Vec<(usize, i64)>,
}

fn main() {
    let dir = kafka::scratch_dir();
    let input = kafka::unique_topic("bench-swap-in");
    let output = kafka::unique_topic("bench-swap-out");
    kafka::create_topic(&input, 1);
    kafka::create_topic(&output, 1);
    let plugins = PluginDir {
        dir: dir.path().join("plugins"),
        components: [
            ("misbehave", plugin_bytes("misbehave")),
            ("uppercase", plugin_bytes("uppercase")),
        ],
        pipeline: format!(
            "[pipeline]\ninputs = [\"{input}\"]\ngroup = \"{input}\"\noutput = \"{output}\"\n"
        ),
    };
    std::fs::create_dir(&plugins.dir).unwrap();
    plugins.install(0);
    let config = HostConfig::new(&kafka::brokers())
        .plugin_dir(&plugins.dir)
        .write_in(dir.path());
    let host = HostProcess::start(&config, &dir.path().join("host.log"));
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the test support's waits");
    runtime.block_on(host.wait_for_log("partitions assigned", Duration::from_secs(60)));

    // A message every 2 ms, so a batch starts soon after any moment.
    let feeding = Arc::new(AtomicBool::new(true));
    let feeder = {
        let feeding = feeding.clone();
        let input = input.clone();
        std::thread::spawn(move || feed(&input, &feeding))
    };
    let measured = swap(&plugins, &output);
    feeding.store(false, Ordering::Relaxed);
    feeder.join().unwrap();
    let serving = serving_times(&host);
    drop(host);
    report(&plugins, measured, &serving);
}

/// Installs `SWAPS` versions, one a second, each time waiting for the
/// first output of the new version.
fn swap(plugins: &PluginDir, output: &str) -> Measured {
    let mut reader = TopicReader::new(output, 1, "read_uncommitted");
    let mut measured = Measured::default();
    for version in 1..=SWAPS {
        std::thread::sleep(Duration::from_secs(1));
        let landed = plugins.install(version);
        measured.landings.push((version, landed));
        let wanted = version.to_string();
        let started = Instant::now();
        let mut first = None;
        while first.is_none() && started.elapsed() < Duration::from_secs(60) {
            reader.poll_for(Duration::from_millis(100));
            first = reader
                .records
                .iter()
                .filter(|r| r.header_values("runnel-plugin-version") == [wanted.as_str()])
                .filter_map(|r| r.timestamp)
                .min();
        }
        let first = first.unwrap_or_else(|| panic!("version {version} never served"));
        measured.by_component[version % 2].push(first - landed);
        for record in &reader.records {
            if let (Ok(sent), Some(out)) = (record.value.parse::<i64>(), record.timestamp) {
                measured.pipeline_latency.push(out - sent);
            }
        }
        reader.records.clear();
    }
    measured
}

fn report(plugins: &PluginDir, measured: Measured, serving: &HashMap<usize, i64>) {
    println!("hot swap: manifest landing -> first output of the new version (debounce 250ms)");
    for ((name, wasm), mut latencies) in plugins.components.iter().zip(measured.by_component) {
        latencies.sort_unstable();
        println!(
            "  {name:<10} ({:>3} KiB component, {} swaps): min {} ms, median {} ms, max {} ms",
            wasm.len() / 1024,
            latencies.len(),
            latencies[0],
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1],
        );
    }
    let mut pipeline_latency = measured.pipeline_latency;
    pipeline_latency.sort_unstable();
    println!(
        "  input -> output latency meanwhile: median {} ms, p99 {} ms",
        pipeline_latency[pipeline_latency.len() / 2],
        pipeline_latency[pipeline_latency.len() * 99 / 100],
    );
    // The part before the swap: notice, debounce, read, compile, `init`.
    let mut loading: Vec<i64> = measured
        .landings
        .iter()
        .filter_map(|(version, landed)| Some(serving.get(version)? - landed))
        .collect();
    loading.sort_unstable();
    if !loading.is_empty() {
        println!(
            "  of which landing -> swapped in (host log): min {} ms, median {} ms, max {} ms",
            loading[0],
            loading[loading.len() / 2],
            loading[loading.len() - 1],
        );
    }
}

/// When the host logged each version as serving, in ms since the epoch.
fn serving_times(host: &HostProcess) -> HashMap<usize, i64> {
    host.log_lines()
        .iter()
        .filter(|line| line["fields"]["message"] == "plugin version serving")
        .filter_map(|line| {
            let version = line["fields"]["version"].as_str()?.parse().ok()?;
            let at = humantime::parse_rfc3339(line["timestamp"].as_str()?).ok()?;
            let millis = at.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64;
            Some((version, millis))
        })
        .collect()
}

/// Produces a message every 2 ms until `feeding` turns false. Each value is
/// when it was produced, which tells the pipeline's own latency apart.
fn feed(input: &str, feeding: &AtomicBool) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka::brokers())
        .set("linger.ms", "0")
        .create()
        .expect("feeder");
    while feeding.load(Ordering::Relaxed) {
        let value = now_millis().to_string();
        let _ = producer.send(BaseRecord::to(input).key("k").payload(&value));
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = producer.flush(Duration::from_secs(10));
}

fn write(dir: &std::path::Path, file: &str, bytes: &[u8]) {
    let temporary = dir.join(format!(".{file}.tmp"));
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, dir.join(file)).unwrap();
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
