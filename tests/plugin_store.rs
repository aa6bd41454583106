//! The cluster's plugin store, against a real broker and the real binary:
//! `runnel plugin deploy` of a new version while three hosts process a
//! steady load reaches every host without losing or repeating a message; a
//! rollback serves the previous version again; a host started later serves
//! the current version; a version a host cannot start changes nothing;
//! `plugin list` shows each host's version and state; `plugin remove` stops
//! the plugin everywhere.
//!
//! The load test needs the machine's cores to itself, so these tests run
//! one at a time.

#[path = "plugin_store/fixtures.rs"]
mod fixtures;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use fixtures::{
    Host, PLUGIN, SERVE_BOUND, Store, landed, owners, padded, probes, sha256, text, version_of,
    versions_serving, write_unvalidated,
};
use serde_json::json;
use support::config::{HostConfig, Pipeline, plugin_manifest};
use support::kafka::{self, Record, TopicReader};
use support::{number_of, numbered_value, plugin_bytes, plugin_path, wait_until};
use tokio::sync::Mutex;

/// Held for a whole test. Each test has a runtime of its own; tokio's mutex
/// works across them.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::const_new(());
    SERIAL.lock().await
}

// One scenario, read top to bottom: the 80-line bound is for the host.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_under_load_reaches_every_host_and_loses_or_repeats_nothing() {
    const PARTITIONS: i32 = 6;
    const RATE: usize = 11_000;
    const COUNT: usize = 150_000;
    const WARM_UP: usize = 600;
    let _serial = serial().await;
    let dir = kafka::scratch_dir();
    let store = Store::new(dir.path());
    let input = kafka::unique_topic("store-in");
    let output = kafka::unique_topic("store-out");
    kafka::create_topic(&input, PARTITIONS);
    kafka::create_topic(&output, PARTITIONS);
    let pipeline = Pipeline::reading(&input)
        .output(&output)
        .batch(100, "20ms")
        .quick_failover();
    let v1 = plugin_bytes("uppercase");
    // 2.5 MiB: five chunks and a bit.
    let v2 = padded(&v1, 5 * 512 * 1024);

    let ran = store.deploy("1", &v1, &pipeline);
    let said = format!("deployed {PLUGIN} 1 (sha256 {})", sha256(&v1));
    assert_eq!((ran.code, ran.stdout.trim()), (0, said.as_str()), "{ran:?}");
    let ids = ["a", "b", "c"].map(|name| format!("{}-{name}", store.topic));
    let mut hosts = Vec::new();
    for id in &ids {
        let identity = format!("[kafka]\ninstance_id = \"{id}\"\n");
        hosts.push(Host::start(dir.path(), id, &store, &identity).await);
    }
    for host in &hosts {
        host.wait_for_version("1").await;
    }

    let messages: Vec<(String, String)> = (0..COUNT)
        .map(|i| (format!("key-{}", i % 1000), numbered_value(i)))
        .collect();
    kafka::produce(&input, messages[..WARM_UP].to_vec());
    let owner = owners(&input, &ids, &input, PARTITIONS).await;
    let revocations: Vec<usize> = hosts.iter().map(Host::revocations).collect();

    // The load, and version 2 deployed 4 s into it.
    let producing = {
        let input = input.clone();
        let load = messages[WARM_UP..].to_vec();
        std::thread::spawn(move || kafka::produce_at_rate(&input, &load, RATE))
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ran = store.deploy("2", &v2, &pipeline);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains(&sha256(&v2)), "{ran:?}");
    for host in &hosts {
        host.wait_for_version("2").await;
    }
    let took = producing.join().unwrap();
    let rate = (COUNT - WARM_UP) as f64 / took.as_secs_f64();
    eprintln!(
        "produced {} messages in {took:?} ({rate:.0}/s)",
        COUNT - WARM_UP
    );
    assert!(
        rate >= 10_000.0,
        "the load must be at least 10k messages/s; was {rate:.0}"
    );

    let mut reader = TopicReader::new(&output, PARTITIONS, "read_uncommitted");
    let complete = reader.read_until(Duration::from_secs(300), |r| r.len() >= COUNT);
    assert!(complete, "only {} of {COUNT} outputs", reader.records.len());
    reader.poll_for(Duration::from_secs(3));
    assert_eq!(reader.records.len(), COUNT, "one output per input");
    let mut inputs = TopicReader::new(&input, PARTITIONS, "read_uncommitted");
    assert!(inputs.read_until(Duration::from_secs(120), |r| r.len() >= COUNT));
    let mut partition_of = vec![0; COUNT];
    for record in &inputs.records {
        partition_of[number_of(&record.value)] = record.partition as usize;
    }
    let mut seen = vec![false; COUNT];
    let mut by_key: HashMap<String, String> = HashMap::new();
    let mut per_version: BTreeMap<String, usize> = BTreeMap::new();
    let mut first_v2: BTreeMap<usize, i64> = BTreeMap::new();
    for record in &reader.records {
        let index = number_of(&record.value.to_lowercase());
        assert_eq!(record.value, numbered_value(index).to_uppercase());
        assert!(!seen[index], "message {index} processed twice");
        seen[index] = true;
        let version = version_of(record).to_owned();
        let key = record.key.clone().unwrap();
        if let Some(before) = by_key.insert(key.clone(), version.clone()) {
            assert!(
                before <= version,
                "key {key}: version {version} after {before}"
            );
        }
        *per_version.entry(version.clone()).or_default() += 1;
        if version == "2" {
            let at = record.timestamp.unwrap();
            let first = first_v2.entry(owner[partition_of[index]]).or_insert(at);
            *first = (*first).min(at);
        }
    }
    assert!(seen.iter().all(|&s| s), "an input is missing");
    eprintln!("outputs per version: {per_version:?}");
    let now: Vec<usize> = hosts.iter().map(Host::revocations).collect();
    assert_eq!(
        now, revocations,
        "no rebalance: each host's outputs are those of its partitions"
    );
    assert_eq!(
        first_v2.len(),
        hosts.len(),
        "every host served version 2: {first_v2:?}"
    );
    let landed = landed(&store, "2");
    let mut took: Vec<i64> = first_v2.values().map(|at| at - landed).collect();
    took.sort_unstable();
    eprintln!(
        "version 2 landed in the store; each host's first output of it {took:?} ms later \
         (median {} ms, max {} ms)",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    for host in &hosts {
        let since = |message| host.logged_at(message, "2").map(|at| at - landed);
        eprintln!(
            "  a host wrote it to its directory after {:?} ms, served it after {:?} ms",
            since("plugin version from the store written"),
            since("plugin version serving"),
        );
    }

    rollbacks_serve_the_previous_version(&store, &hosts, &input, &mut reader).await;
    let late =
        a_late_host_serves_the_current_version(&store, dir.path(), &input, &mut reader).await;
    hosts.push(late);
    rejected_versions_change_nothing(&store, &hosts, &pipeline, &input, &mut reader).await;
    removal_stops_the_plugin_everywhere(&store, &hosts, &input, &mut reader).await;
    for host in hosts {
        host.process
            .assert_running_then_stop(Duration::from_secs(30))
            .await;
    }
    assert_eq!(
        store.statuses(),
        BTreeMap::new(),
        "stopped hosts delete their statuses"
    );
    let default_dir = std::env::temp_dir().join(format!("runnel-plugins-{}-a", store.topic));
    assert!(!default_dir.exists(), "a host's own directory goes with it");
}

async fn rollbacks_serve_the_previous_version(
    store: &Store,
    hosts: &[Host],
    input: &str,
    reader: &mut TopicReader,
) {
    for (back_to, label) in [("1", "rollback"), ("2", "rollback-again")] {
        let ran = store.plugin(&["rollback", PLUGIN]);
        let said = format!("rolled back {PLUGIN} to {back_to} ");
        assert!(ran.code == 0 && ran.stdout.starts_with(&said), "{ran:?}");
        for host in hosts {
            host.wait_for_version(back_to).await;
        }
        let versions = versions_serving(input, reader, &probes(label));
        assert!(
            versions.iter().all(|v| v == back_to),
            "{label}: {versions:?}"
        );
    }
}

/// A host started now, with a plugin directory of its own, joins the
/// three: it serves version 2 and takes a share of the input.
async fn a_late_host_serves_the_current_version(
    store: &Store,
    dir: &Path,
    input: &str,
    reader: &mut TopicReader,
) -> Host {
    let plugins = dir.join("late-plugins");
    std::fs::create_dir(&plugins).unwrap();
    let settings = format!("[plugins]\ndir = \"{}\"\n", plugins.display());
    let late = Host::start(dir, "late", store, &settings).await;
    late.wait_for_version("2").await;
    assert!(plugins.join(format!("{PLUGIN}.toml")).exists());
    late.process
        .wait_for_log("partitions assigned", Duration::from_secs(60))
        .await;
    let versions = versions_serving(input, reader, &probes("late"));
    assert!(versions.iter().all(|v| v == "2"), "{versions:?}");
    let processed = async || {
        let stats = late.get(&format!("/messages/v1/stats/{PLUGIN}")).await;
        stats["total_processed"].as_u64().unwrap_or(0)
    };
    wait_until("the late host to process", SERVE_BOUND, processed, |&n| {
        n > 0
    })
    .await;
    late
}

async fn rejected_versions_change_nothing(
    store: &Store,
    hosts: &[Host],
    pipeline: &Pipeline,
    input: &str,
    reader: &mut TopicReader,
) {
    let records = store.size();
    let ran = store.deploy("3", b"not a component", pipeline);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr.contains("is not a WebAssembly binary"),
        "{ran:?}"
    );
    let refusing = pipeline.clone().settings("[config]\ninit_fail = \"yes\"");
    let misbehave = plugin_bytes("misbehave");
    let ran = store.deploy("3", &misbehave, &refusing);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stderr.contains("refused its configuration"), "{ran:?}");
    assert_eq!(store.size(), records, "a refused deploy writes nothing");

    // The same version written to the store directly: hosts reject it.
    let current = store.list()["plugins"][0]["current"].clone();
    let manifest = plugin_manifest(PLUGIN, "3", None, Some(&refusing));
    write_unvalidated(store, "3", &misbehave, &manifest, &current);
    for host in hosts {
        let plugin = host
            .wait_for_plugin("rejecting version 3", |p| {
                p["last_error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("version 3:"))
            })
            .await;
        assert!(
            plugin["last_error"]
                .as_str()
                .unwrap()
                .contains("refused its configuration")
        );
        assert_eq!(
            (&plugin["version"], &plugin["state"]),
            (&json!("2"), &json!("running"))
        );
    }
    let versions = versions_serving(input, reader, &probes("rejected"));
    assert!(versions.iter().all(|v| v == "2"), "{versions:?}");

    // `plugin list`: what the cluster should run, and what each host does.
    let statuses = wait_until(
        "every host's status to say version 3 was rejected",
        SERVE_BOUND,
        async || store.statuses(),
        |statuses| {
            statuses.len() == hosts.len()
                && statuses.values().all(|s| {
                    s["version"] == "2"
                        && s["state"] == "running"
                        && s["last_error"]
                            .as_str()
                            .is_some_and(|e| e.starts_with("version 3:"))
                })
        },
    )
    .await;
    let late = format!("-{}", hosts[3].process.pid());
    assert!(
        statuses.keys().any(|host| host.ends_with(&late)),
        "{statuses:?}"
    );
    let list = store.list();
    assert_eq!(list["plugins"][0]["current"]["version"], "3");
    assert_eq!(list["plugins"][0]["previous"]["version"], "2");
    let ran = store.plugin(&["list"]);
    for host in statuses.keys() {
        assert!(ran.stdout.contains(host.as_str()), "{}", ran.stdout);
    }
    eprintln!("plugin list:\n{}", ran.stdout);
}

async fn removal_stops_the_plugin_everywhere(
    store: &Store,
    hosts: &[Host],
    input: &str,
    reader: &mut TopicReader,
) {
    let ran = store.plugin(&["remove", PLUGIN]);
    assert_eq!(
        ran.stdout.trim(),
        format!("removed {PLUGIN} (version 3)"),
        "{ran:?}"
    );
    for host in hosts {
        host.wait_for_plugin("stopped", |p| p["state"] == "stopped")
            .await;
    }
    let values = probes("removed");
    kafka::produce(input, values.iter().map(|v| (v.clone(), v.clone())));
    reader.poll_for(Duration::from_secs(3));
    let processed = reader
        .records
        .iter()
        .filter(|r| r.value.starts_with("PROBE-REMOVED"));
    assert_eq!(processed.count(), 0, "a removed plugin processed");
    let statuses = wait_until(
        "every host's status to say stopped",
        SERVE_BOUND,
        async || store.statuses(),
        |statuses| statuses.values().all(|s| s["state"] == "stopped"),
    )
    .await;
    assert_eq!(statuses.len(), hosts.len());
    assert_eq!(store.list()["plugins"][0]["state"], "removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn store_commands_say_what_they_cannot_do() {
    let _serial = serial().await;
    let dir = kafka::scratch_dir();
    let store = Store::new(dir.path());
    let input = kafka::unique_topic("store-errors-in");
    let output = kafka::unique_topic("store-errors-out");
    kafka::create_topic(&input, 1);
    kafka::create_topic(&output, 1);
    let pipeline = Pipeline::reading(&input).output(&output);

    // A host of an empty store creates it, and has read it as soon as it
    // listens.
    let host = Host::start(dir.path(), "host", &store, "").await;
    let read = host.process.log_lines().into_iter().filter_map(|line| {
        let message = line["fields"]["message"].as_str()?.to_owned();
        message.starts_with("plugin store").then_some(message)
    });
    let read: Vec<String> = read.collect();
    assert_eq!(read, ["plugin store topic created", "plugin store read"]);
    let reported = host.process.log_lines().into_iter().filter(|line| {
        line["fields"]["message"] == "kafka client error"
            && line["fields"]["client"] == "plugin_store"
    });
    assert_eq!(reported.count(), 0, "reaching the store's end is no error");

    // A deploy of the current version again writes nothing.
    let v1 = plugin_bytes("uppercase");
    assert_eq!(store.deploy("1", &v1, &pipeline).code, 0);
    host.wait_for_plugin("idle at version 1", |p| p["version"] == "1")
        .await;
    let records = store.size();
    let ran = store.deploy("1", &v1, &pipeline);
    assert!(
        ran.code == 0 && ran.stdout.starts_with("unchanged: "),
        "{ran:?}"
    );
    assert_eq!(store.size(), records);
    let ran = store.plugin(&["rollback", PLUGIN]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr
            .contains("has no previous version to roll back to"),
        "{ran:?}"
    );

    // The manifest alone names the component; the chunks of a version no
    // record keeps any more are deleted.
    let (component, manifest) = store.write_version("2", &padded(&v1, 1 << 20), &pipeline);
    let named = component.file_name().unwrap().to_str().unwrap();
    let naming = plugin_manifest(PLUGIN, "2", Some(named), Some(&pipeline));
    std::fs::write(&manifest, naming).unwrap();
    let ran = store.plugin(&["deploy", text(&manifest)]);
    assert!(
        ran.code == 0 && ran.stdout.starts_with(&format!("deployed {PLUGIN} 2 ")),
        "{ran:?}"
    );
    host.wait_for_plugin("at version 2", |p| p["version"] == "2")
        .await;
    assert_eq!(
        store
            .deploy("3", &plugin_bytes("misbehave"), &pipeline)
            .code,
        0
    );
    let mut reader = TopicReader::new(&store.topic, 1, "read_uncommitted");
    let tombstone = format!("chunk/{}/0", sha256(&v1));
    let deleted = |records: &[Record]| {
        records
            .iter()
            .any(|r| r.key.as_deref() == Some(tombstone.as_str()) && r.value.is_empty())
    };
    assert!(
        reader.read_until(Duration::from_secs(30), deleted),
        "version 1's chunk deleted"
    );
    host.wait_for_plugin("at version 3", |p| p["version"] == "3")
        .await;
    host.process
        .assert_running_then_stop(Duration::from_secs(30))
        .await;
}

#[test]
fn commands_refuse_what_cannot_be_done_each_with_its_exit_code() {
    let dir = kafka::scratch_dir();
    let store = Store::new(dir.path());
    // No topic yet: nothing deployed, nothing to remove.
    let ran = store.plugin(&["list"]);
    let said = format!("no plugins in the plugin store {}", store.topic);
    assert_eq!((ran.code, ran.stdout.trim()), (0, said.as_str()), "{ran:?}");
    let ran = store.plugin(&["remove", PLUGIN]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let said = format!(
        "error: no plugin named {PLUGIN} in the plugin store {}",
        store.topic
    );
    assert_eq!(ran.stderr.trim(), said);
    let uppercase = plugin_path("uppercase");
    let ran = store.plugin(&["deploy", text(&uppercase)]);
    assert!(
        ran.code == 1 && ran.stderr.contains("needs the plugin's manifest"),
        "{ran:?}"
    );

    // Brokers that do not answer, a configuration that cannot be read.
    let ran = store.plugin(&["list", "--brokers", "127.0.0.1:1", "--timeout", "2s"]);
    assert_eq!(ran.code, 4, "{ran:?}");
    assert!(ran.stderr.starts_with("error: "), "{ran:?}");
    let missing = dir.path().join("missing.toml");
    let ran = store.plugin(&["list", "--config", text(&missing)]);
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.stderr.contains("cannot read config file"), "{ran:?}");
}

#[test]
fn check_loads_the_store_plugins_and_finds_a_pipeline_naming_none() {
    let dir = kafka::scratch_dir();
    let store = Store::new(dir.path());
    let input = kafka::unique_topic("store-check-in");
    kafka::create_topic(&input, 1);
    let ran = store.deploy("1", &plugin_bytes("uppercase"), &Pipeline::reading(&input));
    assert_eq!(ran.code, 0, "{ran:?}");
    let config = |with_unknown: bool| {
        let mut config = HostConfig::new(&kafka::brokers())
            .settings(&format!("[plugins]\nstore_topic = \"{}\"\n", store.topic))
            .pipeline("wanted", Pipeline::reading(&input).plugin(PLUGIN));
        if with_unknown {
            config = config.pipeline("named", Pipeline::reading(&input).plugin("nowhere"));
        }
        config.write_in(dir.path())
    };
    let check = |config: &Path, connect: bool| {
        let mut args = vec!["check", "--config", text(config)];
        args.extend(connect.then_some("--connect"));
        support::cli::runnel(&args, &[])
    };

    let checked = check(&config(true), true);
    assert_eq!(checked.code, 1, "{checked:?}");
    let said = format!(
        "error: pipeline named: plugin `nowhere` cannot serve: no plugin nowhere in the \
         plugin store {}",
        store.topic
    );
    assert_eq!(checked.errors(), [said.as_str()], "{checked:?}");

    // Its own pipeline and the one naming it, both started.
    let checked = check(&config(false), true);
    assert_eq!(checked.code, 0, "{checked:?}");
    let said = "ok: 2 pipelines ready, 1 plugin loaded from the plugin store, brokers reached";
    assert!(checked.stdout.starts_with(said), "{checked:?}");

    // Without the brokers the store cannot be read, and the check says so.
    let checked = check(&config(true), false);
    assert_eq!(checked.code, 0, "{checked:?}");
    let said = format!(
        "the plugin store {} not read (--connect reads it)",
        store.topic
    );
    assert!(checked.stdout.contains(&said), "{checked:?}");
}
