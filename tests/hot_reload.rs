//! Plugins loaded from a watched directory, against a real broker and the
//! real binary: versions swapped under load without losing or repeating a
//! message, bad versions rejected while the old one serves, a removed plugin
//! drained with its offsets committed, hosts sharing a directory
//! converging, and `runnel plugin validate`.
//!
//! The load test needs the machine's cores to itself, so these tests run
//! one at a time.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::config::{HostConfig, Pipeline};
use support::host::HostProcess;
use support::kafka::{self, Record, TopicReader};
use support::plugin_dir::PluginDir;
use support::{number_of, numbered_value, plugin_bytes, wait_until};
use tokio::sync::Mutex;

const VERSION_HEADER: &str = "runnel-plugin-version";
const PLUGIN_HEADER: &str = "runnel-plugin";

/// Held for a whole test. Each test has a runtime of its own; tokio's mutex
/// works across them.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::const_new(());
    SERIAL.lock().await
}

/// A plugin directory the test writes into the way a deployment should:
/// each file written under a temporary name and renamed into place,
/// component first, manifest last.
/// The pipeline of an echo plugin from `input` to `output`.
fn echo_pipeline(input: &str, output: &str, batch_size: i64) -> Pipeline {
    Pipeline::reading(input)
        .output(output)
        .batch(batch_size, "20ms")
        .quick_failover()
}

/// A host config watching `plugins`.
fn host_config(plugins: &PluginDir) -> HostConfig {
    HostConfig::new(&kafka::brokers())
        .drain_timeout("20s")
        .plugin_dir(&plugins.path)
}

struct Host {
    process: HostProcess,
    base: String,
    client: reqwest::Client,
}

impl Host {
    async fn start(config: &Path, log: &Path) -> Self {
        let process = HostProcess::start(config, log);
        let address = process.http_address().await;
        Self {
            process,
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
        }
    }

    async fn metrics(&self) -> String {
        let response = self.client.get(format!("{}/metrics", self.base)).send();
        response.await.unwrap().text().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn plugin(&self, name: &str) -> Value {
        let plugins = self.get("/plugins").await;
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|plugin| plugin["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until `GET /plugins` shows `name` satisfying `condition`.
    async fn wait_for_plugin(&self, name: &str, condition: impl Fn(&Value) -> bool) -> Value {
        wait_until(
            &format!("plugin {name} to reach the expected state"),
            Duration::from_secs(60),
            async || self.plugin(name).await,
            condition,
        )
        .await
    }

    async fn wait_for_version(&self, name: &str, version: &str) -> Value {
        self.wait_for_plugin(name, |p| p["version"] == version && p["state"] == "running")
            .await
    }
}

fn version_of(record: &Record) -> &str {
    let versions = record.header_values(VERSION_HEADER);
    assert_eq!(
        versions.len(),
        1,
        "exactly one version header: {:?}",
        record.headers
    );
    versions[0]
}

/// Swaps between two different components so that every swap compiles,
/// and so each output shows which code made it: odd versions echo (the
/// misbehave plugin), even versions upper-case.
// One scenario, read top to bottom: the 80-line bound is for the host.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread")]
async fn five_swaps_under_load_lose_nothing_and_never_mix_versions() {
    const PARTITIONS: i32 = 4;
    const RATE: usize = 12_000;
    const SECONDS: usize = 12;
    const COUNT: usize = RATE * SECONDS;
    let _serial = serial().await;
    let dir = kafka::scratch_dir();
    let input = kafka::unique_topic("swap-in");
    let output = kafka::unique_topic("swap-out");
    kafka::create_topic(&input, PARTITIONS);
    kafka::create_topic(&output, PARTITIONS);
    let plugins = PluginDir::new(dir.path());
    let pipeline = echo_pipeline(&input, &output, 100);
    let echo = plugin_bytes("misbehave");
    let upper = plugin_bytes("uppercase");
    let component = |version: usize| if version % 2 == 1 { &echo } else { &upper };
    plugins.install("echo", "1", component(1), Some(&pipeline));
    let config = host_config(&plugins).write_in(dir.path());
    let host = Host::start(&config, &dir.path().join("host.log")).await;
    host.wait_for_version("echo", "1").await;
    host.process
        .wait_for_log("partitions assigned", Duration::from_secs(60))
        .await;

    // The load: RATE messages a second for SECONDS seconds, paced in slices.
    let producing = {
        let input = input.clone();
        let messages: Vec<_> = (0..COUNT)
            .map(|i| (format!("key-{}", i % 1000), numbered_value(i)))
            .collect();
        std::thread::spawn(move || kafka::produce_at_rate(&input, &messages, RATE))
    };
    // A swap every 1.7 s of the load, each served before the next lands.
    let load_started = Instant::now();
    let mut landed = BTreeMap::new();
    for version in 2..=6 {
        let due = Duration::from_millis(1700 * (version as u64 - 1));
        tokio::time::sleep(due.saturating_sub(load_started.elapsed())).await;
        let name = version.to_string();
        let at = plugins.install("echo", &name, component(version), Some(&pipeline));
        landed.insert(name.clone(), at);
        host.wait_for_version("echo", &name).await;
    }
    let took = producing.join().unwrap();
    let rate = COUNT as f64 / took.as_secs_f64();
    eprintln!("produced {COUNT} messages in {took:?} ({rate:.0}/s)");
    assert!(
        rate >= 10_000.0,
        "the load must be at least 10k messages/s; was {rate:.0}"
    );

    let mut reader = TopicReader::new(&output, PARTITIONS, "read_uncommitted");
    let complete = reader.read_until(Duration::from_secs(300), |records| records.len() >= COUNT);
    assert!(complete, "only {} of {COUNT} outputs", reader.records.len());
    reader.poll_for(Duration::from_secs(3));

    let mut seen = vec![false; COUNT];
    let mut last_version: HashMap<i32, usize> = HashMap::new();
    let mut first_output: BTreeMap<String, i64> = BTreeMap::new();
    let mut per_version: BTreeMap<String, usize> = BTreeMap::new();
    for record in &reader.records {
        assert_eq!(record.header_values(PLUGIN_HEADER), ["echo"]);
        let version = version_of(record);
        let number: usize = version.parse().expect("a version we wrote");
        let index = number_of(&record.value.to_lowercase());
        let expected = if number % 2 == 1 {
            numbered_value(index)
        } else {
            numbered_value(index).to_uppercase()
        };
        assert_eq!(record.value, expected, "version {version} ran other code");
        assert!(!seen[index], "message {index} processed twice");
        seen[index] = true;
        let previous = last_version.insert(record.partition, number).unwrap_or(0);
        assert!(
            previous <= number,
            "partition {}: version {number} after {previous}",
            record.partition
        );
        *per_version.entry(version.to_owned()).or_default() += 1;
        let first = first_output.entry(version.to_owned()).or_insert(i64::MAX);
        *first = (*first).min(record.timestamp.unwrap_or(i64::MAX));
    }
    assert_eq!(reader.records.len(), COUNT, "one output per input");
    assert!(seen.iter().all(|&s| s), "an input is missing");
    let timed = host
        .process
        .metric(
            "runnel_message_processing_seconds_count",
            &[("pipeline", "echo")],
        )
        .await;
    assert_eq!(
        timed, COUNT as f64,
        "every message's time in the host is recorded once"
    );
    eprintln!("outputs per version: {per_version:?}");
    assert_eq!(per_version.len(), 6, "every version served under load");
    for (version, at) in &landed {
        eprintln!(
            "version {version}: first output {} ms after its manifest landed",
            first_output[version] - at
        );
    }
    drop(host);
}

/// Produces one message and returns the version that processed it.
fn served_by(input: &str, reader: &mut TopicReader, value: &str) -> String {
    kafka::produce(input, [(value.to_owned(), value.to_owned())]);
    let found = reader.read_until(Duration::from_secs(60), |records| {
        records.iter().any(|r| r.value == value)
    });
    assert!(found, "no output for {value}");
    let record = reader.records.iter().find(|r| r.value == value).unwrap();
    version_of(record).to_owned()
}

// One scenario, read top to bottom: the 80-line bound is for the host.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread")]
async fn bad_versions_are_rejected_while_the_old_one_keeps_serving() {
    let _serial = serial().await;
    let dir = kafka::scratch_dir();
    let input = kafka::unique_topic("reject-in");
    let output = kafka::unique_topic("reject-out");
    kafka::create_topic(&input, 1);
    kafka::create_topic(&output, 1);
    let plugins = PluginDir::new(dir.path());
    let pipeline = echo_pipeline(&input, &output, 1);
    // The default layout: echo.wasm beside echo.toml.
    let good = plugin_bytes("misbehave");
    plugins.write("echo.wasm", &good);
    plugins.write_manifest("echo", "1", None, Some(&pipeline));
    let config = host_config(&plugins).write_in(dir.path());
    let host = Host::start(&config, &dir.path().join("host.log")).await;
    host.wait_for_version("echo", "1").await;
    let mut reader = TopicReader::new(&output, 1, "read_uncommitted");
    assert_eq!(served_by(&input, &mut reader, "before"), "1");

    let init_fails = pipeline.clone().settings("[config]\ninit_fail = \"yes\"");
    let cases: [(&str, &[u8], &Pipeline, &str); 3] = [
        (
            "2",
            &good[..good.len() / 2],
            &pipeline,
            "not a valid WebAssembly component",
        ),
        (
            "3",
            EMPTY_COMPONENT,
            &pipeline,
            "does not implement the runnel:plugin/plugin world",
        ),
        ("4", &good, &init_fails, "refused its configuration"),
    ];
    for (rejections, (version, wasm, pipeline, reason)) in cases.into_iter().enumerate() {
        plugins.write("echo.wasm", wasm);
        plugins.write_manifest("echo", version, None, Some(pipeline));
        let plugin = host
            .wait_for_plugin("echo", |p| {
                p["last_error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with(&format!("version {version}:")))
            })
            .await;
        let error = plugin["last_error"].as_str().unwrap();
        assert!(error.contains(reason), "version {version}: {error}");
        assert_eq!(plugin["version"], "1", "the old version serves on");
        assert_eq!(plugin["state"], "running");
        assert_eq!(
            served_by(&input, &mut reader, &format!("after-{version}")),
            "1"
        );
        let errors = host
            .process
            .metric(
                "runnel_plugin_reloads_total",
                &[("plugin", "echo"), ("result", "error")],
            )
            .await;
        assert_eq!(errors, (rejections + 1) as f64);
        let logged = host.process.log_lines().iter().any(|line| {
            line["fields"]["message"] == "plugin version rejected"
                && line["fields"]["version"] == version
                && line["fields"]["serving"] == "1"
                && line["fields"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains(reason))
        });
        assert!(logged, "a clear log line for version {version}");
    }
    // A reload of the same bad files is rejected again, with the reason.
    let (status, body) = host.post("/plugins/echo/reload").await;
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("refused its configuration")
    );
    let (status, _) = host.post("/plugins/nope/reload").await;
    assert_eq!(status, 404);

    // A good version goes through, and a reload of it answers with it.
    plugins.write_manifest("echo", "5", None, Some(&pipeline));
    let plugin = host.wait_for_version("echo", "5").await;
    assert_eq!(plugin["last_error"], Value::Null);
    assert_eq!(plugin["pipelines"], serde_json::json!(["echo"]));
    assert!(plugin["loaded_at"].is_string());
    assert_eq!(served_by(&input, &mut reader, "after-5"), "5");
    let (status, body) = host.post("/plugins/echo/reload").await;
    assert_eq!((status, &body["version"]), (200, &Value::from("5")));

    // New pipeline settings: the pipeline drains and restarts with them.
    let batched = echo_pipeline(&input, &output, 5);
    plugins.write_manifest("echo", "6", None, Some(&batched));
    host.wait_for_version("echo", "6").await;
    host.process
        .wait_for_log(
            "pipeline settings changed; draining the pipeline to restart it",
            Duration::from_secs(5),
        )
        .await;
    let stats = host.get("/messages/v1/stats/echo").await;
    assert_eq!(stats["batch_size_threshold"], 5);
    assert_eq!(served_by(&input, &mut reader, "after-6"), "6");
    reader.poll_for(Duration::from_secs(1));
    assert_eq!(
        reader.records.len(),
        reader.value_counts().len(),
        "nothing processed twice across the restart"
    );
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_plugin_drains_commits_and_stops_and_a_returning_one_resumes() {
    const PARTITIONS: i32 = 2;
    const COUNT: usize = 5_000;
    let _serial = serial().await;
    let dir = kafka::scratch_dir();
    let input = kafka::unique_topic("delete-in");
    let output = kafka::unique_topic("delete-out");
    kafka::create_topic(&input, PARTITIONS);
    kafka::create_topic(&output, PARTITIONS);
    let plugins = PluginDir::new(dir.path());
    let pipeline = echo_pipeline(&input, &output, 50);
    plugins.install("echo", "1", &plugin_bytes("misbehave"), Some(&pipeline));
    let config = host_config(&plugins).write_in(dir.path());
    let host = Host::start(&config, &dir.path().join("host.log")).await;
    host.wait_for_version("echo", "1").await;
    kafka::produce(
        &input,
        (0..COUNT).map(|i| (format!("k{i}"), numbered_value(i))),
    );
    let mut reader = TopicReader::new(&output, PARTITIONS, "read_uncommitted");
    assert!(reader.read_until(Duration::from_secs(120), |r| r.len() >= COUNT));
    let gauges = [
        "runnel_consumer_lag{",
        "runnel_call_slots_in_use{",
        "runnel_pipeline_plugin_memory_bytes{",
    ];
    // Lag comes with librdkafka's statistics, every 5 s.
    wait_until(
        "the pipeline's gauges",
        Duration::from_secs(15),
        async || host.metrics().await,
        |metrics| gauges.iter().all(|gauge| has_echo_series(metrics, gauge)),
    )
    .await;

    plugins.remove("echo.toml");
    plugins.remove("echo-1.wasm");
    let plugin = host
        .wait_for_plugin("echo", |p| p["state"] == "stopped")
        .await;
    assert_eq!(plugin["pipelines"], serde_json::json!([]));
    // The pipeline drained and committed.
    host.process
        .wait_for_clean_stop("echo", Duration::from_secs(5))
        .await;
    assert_eq!(
        kafka::committed_offsets(&input, &input, PARTITIONS),
        kafka::high_watermarks(&input, PARTITIONS),
        "every processed offset is committed"
    );
    let stats = host.get("/messages/v1/stats").await;
    assert!(stats["pipelines"].get("echo").is_none(), "{stats}");
    let metrics = host.metrics().await;
    for gauge in gauges {
        assert!(
            !has_echo_series(&metrics, gauge),
            "{gauge} outlived its pipeline"
        );
    }

    // Nothing runs the pipeline now.
    kafka::produce(
        &input,
        (COUNT..COUNT + 100).map(|i| (format!("k{i}"), numbered_value(i))),
    );
    reader.poll_for(Duration::from_secs(3));
    assert_eq!(reader.records.len(), COUNT, "a stopped pipeline consumed");

    // Back again: it picks up where it stopped, repeating nothing.
    plugins.install("echo", "2", &plugin_bytes("misbehave"), Some(&pipeline));
    host.wait_for_version("echo", "2").await;
    assert!(reader.read_until(Duration::from_secs(60), |r| r.len() >= COUNT + 100));
    reader.poll_for(Duration::from_secs(2));
    assert_eq!(reader.records.len(), COUNT + 100, "nothing processed twice");
    assert!(
        reader.records[COUNT..]
            .iter()
            .all(|record| version_of(record) == "2")
    );
    drop(host);
}

/// Whether the metrics text has a series of `metric` (its name and the `{`)
/// for pipeline `echo`.
fn has_echo_series(metrics: &str, metric: &str) -> bool {
    metrics
        .lines()
        .any(|line| line.starts_with(metric) && line.contains("pipeline=\"echo\""))
}

/// Two hosts mount one directory; their shared pipeline is defined in the
/// host config and names its plugin, whose manifest has no pipeline.
#[tokio::test(flavor = "multi_thread")]
async fn hosts_sharing_a_directory_converge_on_its_version() {
    let _serial = serial().await;
    let dir = kafka::scratch_dir();
    let input = kafka::unique_topic("shared-in");
    let output = kafka::unique_topic("shared-out");
    kafka::create_topic(&input, 2);
    kafka::create_topic(&output, 2);
    let plugins = PluginDir::new(dir.path());
    plugins.install("shared", "1", &plugin_bytes("misbehave"), None);
    let orders = Pipeline::reading(&input).output(&output).plugin("shared");
    let config = host_config(&plugins)
        .pipeline("orders", orders)
        .write_in(dir.path());
    let hosts = [
        Host::start(&config, &dir.path().join("first.log")).await,
        Host::start(&config, &dir.path().join("second.log")).await,
    ];
    for host in &hosts {
        let plugin = host.wait_for_version("shared", "1").await;
        assert_eq!(plugin["pipelines"], serde_json::json!(["orders"]));
    }
    plugins.install("shared", "2", &plugin_bytes("uppercase"), None);
    for host in &hosts {
        host.wait_for_version("shared", "2").await;
    }
    kafka::produce(&input, (0..20).map(|i| (format!("k{i}"), format!("v{i}"))));
    let mut reader = TopicReader::new(&output, 2, "read_uncommitted");
    assert!(reader.read_until(Duration::from_secs(60), |r| r.len() >= 20));
    for record in &reader.records {
        assert_eq!(version_of(record), "2");
        assert!(record.value.starts_with('V'), "upper-cased by version 2");
    }
}

/// A component with nothing in it, in the binary format: the header alone.
const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

fn validate(args: &[&Path]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["plugin", "validate"])
        .args(args)
        .output()
        .expect("running runnel plugin validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn plugin_validate_says_pass_or_fail_in_its_exit_status() {
    let dir = kafka::scratch_dir();
    let plugins = PluginDir::new(dir.path());
    let good = plugin_bytes("misbehave");
    plugins.write("echo.wasm", &good);
    plugins.write("cut.wasm", &good[..good.len() / 2]);
    plugins.write("empty.wasm", EMPTY_COMPONENT);
    let pipeline = Pipeline::new().set("inputs", vec!["in"]);
    plugins.write_manifest("echo", "1.2.0", None, Some(&pipeline));
    let file = |name: &str| plugins.path.join(name);

    let (passed, text) = validate(&[&file("echo.wasm")]);
    assert!(passed, "{text}");
    assert_eq!(text.trim(), "ok: echo unversioned");
    let (passed, text) = validate(&[
        &file("echo.wasm"),
        "--manifest".as_ref(),
        &file("echo.toml"),
    ]);
    assert!(passed, "{text}");
    assert_eq!(text.trim(), "ok: echo 1.2.0");
    let (passed, text) = validate(&[&file("echo.toml")]);
    assert!(passed && text.contains("ok: echo 1.2.0"), "{text}");

    let (passed, text) = validate(&[&file("cut.wasm")]);
    assert!(
        !passed && text.contains("error: plugin cut is not a valid WebAssembly component"),
        "{text}"
    );
    let (passed, text) = validate(&[&file("empty.wasm")]);
    assert!(
        !passed && text.contains("does not implement the runnel:plugin/plugin world"),
        "{text}"
    );
    let init_fails = pipeline.clone().settings("[config]\ninit_fail = \"1\"");
    plugins.write_manifest("echo", "2", None, Some(&init_fails));
    let (passed, text) = validate(&[&file("echo.toml")]);
    assert!(
        !passed && text.contains("refused its configuration"),
        "{text}"
    );
    let misspelt = pipeline.set("batch_sise", 3);
    plugins.write_manifest("echo", "2", None, Some(&misspelt));
    let (passed, text) = validate(&[&file("echo.toml")]);
    assert!(
        !passed && text.contains("unknown field `batch_sise`"),
        "{text}"
    );
    let (passed, text) = validate(&[&file("missing.wasm")]);
    assert!(!passed && text.contains("cannot read component"), "{text}");
}
