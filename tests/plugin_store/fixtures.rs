//! What the plugin store tests share: the store of a test and the
//! commands run against it, hosts following it, and readers of what they
//! produce.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::config::{HostConfig, Pipeline, plugin_manifest};
use crate::support::host::HostProcess;
use crate::support::kafka::{self, Record, TopicReader};
use crate::support::wait_until;

const VERSION_HEADER: &str = "runnel-plugin-version";
/// The plugin every test deploys, and so its pipeline's name.
pub const PLUGIN: &str = "upper";
/// How long every host has to serve a version once it is in the store.
pub const SERVE_BOUND: Duration = Duration::from_secs(30);

/// What one run of the binary left behind.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The store of one test: its topic, and a folder for the files deployed.
pub struct Store {
    pub topic: String,
    pub files: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        let files = dir.join("deployed");
        std::fs::create_dir(&files).unwrap();
        Self {
            topic: kafka::unique_topic("plugin-store"),
            files,
        }
    }

    /// Runs `runnel plugin ARGS` against this store.
    pub fn plugin(&self, args: &[&str]) -> Ran {
        let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .arg("plugin")
            .args(args)
            .args(["--topic", &self.topic])
            .env("RUNNEL_BROKERS", kafka::brokers())
            .env_remove("RUNNEL_CONFIG")
            .env_remove("RUNNEL_LOG_FORMAT")
            .stdin(Stdio::null())
            .output()
            .expect("running runnel plugin");
        Ran {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Writes the component and the manifest of `version` of [`PLUGIN`],
    /// each in a folder of its own, and deploys them.
    pub fn deploy(&self, version: &str, wasm: &[u8], pipeline: &Pipeline) -> Ran {
        let (component, manifest) = self.write_version(version, wasm, pipeline);
        self.plugin(&["deploy", text(&component), "--manifest", text(&manifest)])
    }

    pub fn write_version(
        &self,
        version: &str,
        wasm: &[u8],
        pipeline: &Pipeline,
    ) -> (PathBuf, PathBuf) {
        let folder = self.files.join(version);
        std::fs::create_dir_all(&folder).unwrap();
        let component = folder.join("component.wasm");
        std::fs::write(&component, wasm).unwrap();
        let manifest = folder.join(format!("{PLUGIN}.toml"));
        let text = plugin_manifest(PLUGIN, version, None, Some(pipeline));
        std::fs::write(&manifest, text).unwrap();
        (component, manifest)
    }

    pub fn list(&self) -> Value {
        let ran = self.plugin(&["list", "--json"]);
        assert_eq!(ran.code, 0, "{ran:?}");
        serde_json::from_str(&ran.stdout).expect("list --json prints JSON")
    }

    /// The statuses `plugin list` shows, by host.
    pub fn statuses(&self) -> BTreeMap<String, Value> {
        let list = self.list();
        let statuses = list["statuses"].as_array().unwrap().iter();
        statuses
            .map(|status| (status["host"].as_str().unwrap().to_owned(), status.clone()))
            .collect()
    }

    /// How many records the store's topic holds.
    pub fn size(&self) -> i64 {
        kafka::topic_size(&self.topic, 1)
    }
}

pub fn text(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `wasm` with a custom section of `size` bytes appended: a component
/// that behaves as `wasm` does, with another digest, big enough to need
/// several chunks.
pub fn padded(wasm: &[u8], size: usize) -> Vec<u8> {
    let name = b"padding";
    let mut content = leb128(name.len());
    content.extend_from_slice(name);
    content.extend((0..size).map(|i| (i * 7 % 251) as u8));
    let mut padded = wasm.to_vec();
    padded.push(0);
    padded.extend(leb128(content.len()));
    padded.extend(content);
    padded
}

fn leb128(mut value: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            bytes.push(byte);
            return bytes;
        }
        bytes.push(byte | 0x80);
    }
}

/// A host following the store, with its HTTP server.
pub struct Host {
    pub process: HostProcess,
    base: String,
    client: reqwest::Client,
}

impl Host {
    /// Starts a host of `store` whose configuration is written in
    /// `dir/name`; `settings` is added to it (an instance id, a directory).
    pub async fn start(dir: &Path, name: &str, store: &Store, settings: &str) -> Self {
        let folder = dir.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        let config = HostConfig::new(&kafka::brokers())
            .drain_timeout("20s")
            .settings(&format!("[plugins]\nstore_topic = \"{}\"\n", store.topic))
            .settings(settings)
            .write_in(&folder);
        let process = HostProcess::start(&config, &folder.join("host.log"));
        let address = process.http_address().await;
        Self {
            process,
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self.client.get(format!("{}{path}", self.base)).send().await;
        response.unwrap().json().await.unwrap()
    }

    pub async fn plugin(&self) -> Value {
        let plugins = self.get("/plugins").await;
        let mut found = plugins["plugins"].as_array().unwrap().iter();
        found
            .find(|plugin| plugin["name"] == PLUGIN)
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub async fn wait_for_plugin(&self, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
        let what = format!("plugin {PLUGIN} to be {what}");
        wait_until(&what, SERVE_BOUND, async || self.plugin().await, condition).await
    }

    pub async fn wait_for_version(&self, version: &str) -> Value {
        let what = format!("version {version}, running");
        let plugin = self
            .wait_for_plugin(&what, |p| {
                p["version"] == version && p["state"] == "running"
            })
            .await;
        assert_eq!(plugin["source"], "store", "{plugin}");
        plugin
    }

    pub fn revocations(&self) -> usize {
        let lines = self.process.log_lines();
        let revoked = |line: &&Value| {
            let message = line["fields"]["message"].as_str().unwrap_or_default();
            message.starts_with("partitions revoked")
        };
        lines.iter().filter(revoked).count()
    }
}

impl Host {
    /// When (ms since the epoch) the host first logged `message` for
    /// version `version` of [`PLUGIN`].
    pub fn logged_at(&self, message: &str, version: &str) -> Option<i64> {
        let lines = self.process.log_lines();
        let line = lines.iter().find(|line| {
            let fields = &line["fields"];
            fields["message"] == message
                && fields["plugin"] == PLUGIN
                && fields["version"] == version
        })?;
        let at = humantime::parse_rfc3339(line["timestamp"].as_str()?).ok()?;
        Some(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
    }
}

pub fn version_of(record: &Record) -> &str {
    let versions = record.header_values(VERSION_HEADER);
    assert_eq!(
        versions.len(),
        1,
        "one version header: {:?}",
        record.headers
    );
    versions[0]
}

/// Waits until the consumer group `group` is stable with `hosts` as its
/// members (by their instance ids, each the static member
/// `{id}-{PLUGIN}`), every partition of `topic` assigned to one of them;
/// returns the index of each partition's host. The broker says it, not
/// the hosts, whose stats may still list a partition they gave up.
pub async fn owners(group: &str, hosts: &[String], topic: &str, partitions: i32) -> Vec<usize> {
    let owner_of = |members: &[(String, Vec<i32>)]| {
        let mut owners = vec![None; partitions as usize];
        for (member, assigned) in members {
            let host = hosts
                .iter()
                .position(|id| member.starts_with(&format!("{id}-{PLUGIN}-")))?;
            for &partition in assigned {
                let slot = owners.get_mut(partition as usize)?;
                slot.replace(host).is_none().then_some(())?;
            }
        }
        owners.into_iter().collect::<Option<Vec<usize>>>()
    };
    let members = wait_until(
        "the hosts to share every input partition",
        Duration::from_secs(60),
        async || group_members(group, topic),
        |members| members.len() == hosts.len() && owner_of(members).is_some(),
    )
    .await;
    owner_of(&members).expect("checked")
}

/// The members of a stable consumer group with the partitions of `topic`
/// assigned to each; empty while the group is rebalancing.
fn group_members(group: &str, topic: &str) -> Vec<(String, Vec<i32>)> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka::brokers())
        .create()
        .expect("a client");
    let Ok(list) = client.fetch_group_list(Some(group), Duration::from_secs(10)) else {
        return Vec::new();
    };
    let stable = list.groups().iter().filter(|g| g.state() == "Stable");
    let members = stable.flat_map(|g| g.members());
    members
        .map(|m| {
            (
                m.id().to_owned(),
                partitions_in(m.assignment().unwrap_or_default(), topic),
            )
        })
        .collect()
}

/// The partitions of `topic` in a consumer protocol assignment: version
/// (int16), then an array (int32 count) of topic (int16 length and bytes)
/// with an array of partitions (int32 each), then user data.
fn partitions_in(assignment: &[u8], topic: &str) -> Vec<i32> {
    let mut bytes = assignment;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = bytes.split_at_checked(n)?;
        bytes = rest;
        Some(head)
    };
    let mut read = || -> Option<Vec<i32>> {
        let int = |b: &[u8]| i32::from_be_bytes(b.try_into().unwrap());
        take(2)?;
        let mut found = Vec::new();
        for _ in 0..int(take(4)?) {
            let length = i16::from_be_bytes(take(2)?.try_into().unwrap());
            let name = take(length as usize)?.to_vec();
            for _ in 0..int(take(4)?) {
                let partition = int(take(4)?);
                if name == topic.as_bytes() {
                    found.push(partition);
                }
            }
        }
        Some(found)
    };
    read().unwrap_or_default()
}

/// Produces `values` (keyed by themselves) and returns the versions that
/// processed them, read from `output` (`reader` keeps what it read).
pub fn versions_serving(input: &str, reader: &mut TopicReader, values: &[String]) -> Vec<String> {
    kafka::produce(input, values.iter().map(|v| (v.clone(), v.clone())));
    let wanted: Vec<String> = values.iter().map(|v| v.to_uppercase()).collect();
    let found = reader.read_until(Duration::from_secs(60), |records| {
        wanted.iter().all(|w| records.iter().any(|r| &r.value == w))
    });
    assert!(found, "no output for some of {values:?}");
    let of = |w: &String| version_of(reader.records.iter().find(|r| &r.value == w).unwrap());
    wanted.iter().map(|w| of(w).to_owned()).collect()
}

pub fn probes(label: &str) -> Vec<String> {
    (0..30).map(|i| format!("probe-{label}-{i}")).collect()
}

/// Writes version `version` of [`PLUGIN`] into the store without `deploy`
/// and its validation, as its records are documented: the component's
/// chunk, then the plugin record, with `previous` as previous version.
pub fn write_unvalidated(
    store: &Store,
    version: &str,
    wasm: &[u8],
    manifest: &str,
    previous: &Value,
) {
    let digest = sha256(wasm);
    let record = json!({
        "name": PLUGIN,
        "state": "deployed",
        "current": {
            "version": version, "sha256": digest, "size": wasm.len(), "chunks": 1,
            "manifest": manifest, "deployed_at": "2026-01-01T00:00:00Z",
        },
        "previous": previous,
        "updated_at": "2026-01-01T00:00:00Z",
    });
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka::brokers())
        .create()
        .expect("a producer");
    let chunk_key = format!("chunk/{digest}/0");
    let plugin_key = format!("plugin/{PLUGIN}");
    let record = record.to_string();
    let records = [
        BaseRecord::<str, [u8]>::to(&store.topic)
            .partition(0)
            .key(chunk_key.as_str())
            .payload(wasm),
        BaseRecord::to(&store.topic)
            .partition(0)
            .key(plugin_key.as_str())
            .payload(record.as_bytes()),
    ];
    for record in records {
        producer.send(record).map_err(|(e, _)| e).expect("enqueued");
        producer
            .flush(Duration::from_secs(30))
            .expect("acknowledged");
    }
}

/// The time (ms since the epoch) the plugin record naming `version` landed
/// in the store.
pub fn landed(store: &Store, version: &str) -> i64 {
    let mut reader = TopicReader::new(&store.topic, 1, "read_uncommitted");
    let is_it = |record: &Record| {
        record.key.as_deref() == Some(&format!("plugin/{PLUGIN}"))
            && serde_json::from_str::<Value>(&record.value).unwrap()["current"]["version"]
                == version
    };
    assert!(reader.read_until(Duration::from_secs(30), |records| records.iter().any(is_it)));
    let record = reader.records.iter().find(|r| is_it(r)).unwrap();
    record.timestamp.expect("a record timestamp")
}
