//! Handlers in every language: the three example handlers of each SDK
//! (`sdk/<language>/examples`) run through the real Kafka pipeline beside
//! the Rust ones (`plugins/`) on the same input, and must produce the same
//! records byte for byte: values, keys, headers, routed topics, and the
//! dead letters of the messages they fail.
//!
//! `scripts/test.sh` builds the examples first (`scripts/sdks.sh`), with each
//! SDK's `build.sh --examples`, into `$RUNNEL_PLUGINS_TARGET_DIR/sdk/<language>`.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use support::config::{HostConfig, Pipeline};
use support::host::HostProcess;
use support::kafka::{self, Record};
use support::sdk::{self, read_all};

/// One input message: key (None: no key), value, headers.
type Input = (
    Option<&'static str>,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// An input message as produced, or a record's content as compared.
type Content = (Option<String>, String, Vec<(String, String)>);

const UPPERCASE_INPUT: &[Input] = &[
    (Some("k1"), "hello", &[]),
    (None, "no key at all", &[]),
    (Some(""), "an empty key", &[]),
    (Some("k2"), "héllo wörld: only ASCII changes", &[]),
    (Some("k3"), "", &[]),
    (
        Some("k4"),
        "with headers",
        &[("h", "1"), ("h", "2"), ("other", "")],
    ),
];

/// Every record names a topic per language in its own field, so that each
/// language's router writes to a topic of its own.
fn json_router_input(topics: &BTreeMap<String, String>) -> Vec<(Option<String>, String)> {
    let routes: Vec<String> = topics
        .iter()
        .map(|(language, topic)| format!("\"to_{language}\":\"{topic}\""))
        .collect();
    let routed = format!("{{\"kind\":\"order\",{}}}", routes.join(","));
    [
        routed.as_str(),
        r#"{"kind":"no route"}"#,
        r#"{"test":"yes","kind":"dropped by its string"}"#,
        r#"{"test":true,"kind":"kept: true is not the text yes"}"#,
        "not json",
        "[1, 2]",
        r#"{"to_rust":3,"to_js":3,"to_python":3,"to_go":3,"to_c":3}"#,
        r#"{"to_rust":"","to_js":"","to_python":"","to_go":"","to_c":""}"#,
        r#"  {"kind" : "spacing kept"}  "#,
    ]
    .into_iter()
    .enumerate()
    .map(|(index, value)| (Some(format!("key-{index}")), value.to_owned()))
    .collect()
}

const COUNTER_INPUT: &[Input] = &[
    (Some("a"), "1", &[]),
    (Some("b"), "2", &[("seen", "forged by the producer")]),
    (Some("a"), "3", &[]),
    (None, "4", &[]),
    (Some(""), "5", &[]),
    (None, "6", &[]),
    (Some("a"), "7", &[]),
];

fn produce(
    topic: &str,
    messages: impl IntoIterator<Item = (Option<String>, String, Vec<(String, String)>)>,
) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka::brokers())
        .create()
        .expect("test producer");
    for (key, value, headers) in messages {
        let mut owned = OwnedHeaders::new();
        for (name, value) in &headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let mut record = BaseRecord::to(topic).payload(&value).headers(owned);
        if let Some(key) = &key {
            record = record.key(key);
        }
        producer
            .send(record)
            .map_err(|(error, _)| error)
            .expect("enqueued");
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("acknowledged");
}

fn owned(inputs: &[Input]) -> Vec<Content> {
    inputs
        .iter()
        .map(|(key, value, headers)| {
            (
                key.map(str::to_owned),
                (*value).to_owned(),
                headers
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                    .collect(),
            )
        })
        .collect()
}

/// What must match across languages in a record: everything but its
/// place in the log, its time, and the plugin's version (a hash of its
/// component, different per language by nature). A parser's own words
/// for invalid JSON differ between languages; the router's prefix must not.
fn comparable(record: &Record) -> Content {
    let headers = record
        .headers
        .iter()
        .filter(|(name, _)| name != "runnel-plugin-version")
        .map(
            |(name, value)| match value.split_once("value is not valid JSON") {
                Some((before, _)) if name == "runnel-error" => {
                    (name.clone(), format!("{before}value is not valid JSON"))
                }
                _ => (name.clone(), with_any_route_field(value)),
            },
        )
        .collect();
    (record.key.clone(), record.value.clone(), headers)
}

/// Each language's router reads its own field (`to_<language>`), which its
/// failures name: the same failure reads the same in every language.
fn with_any_route_field(text: &str) -> String {
    sdk::every_language().fold(text.to_owned(), |text, language| {
        text.replace(&format!("`to_{language}`"), "`to_<language>`")
    })
}

/// The topics one language's three handlers write to.
struct Lane {
    language: String,
    /// Per handler: its output topic and its dead-letter topic.
    topics: BTreeMap<&'static str, (String, String)>,
    routed: String,
}

impl Lane {
    fn new(language: &str) -> Self {
        let topics = ["uppercase", "json-router", "counter"]
            .into_iter()
            .map(|handler| {
                let output = kafka::unique_topic(&format!("lang-{language}-{handler}"));
                let dead_letters = kafka::unique_topic(&format!("lang-{language}-{handler}-dlq"));
                kafka::create_topic(&output, 1);
                kafka::create_topic(&dead_letters, 1);
                (handler, (output, dead_letters))
            })
            .collect();
        let routed = kafka::unique_topic(&format!("lang-{language}-routed"));
        kafka::create_topic(&routed, 1);
        Self {
            language: language.to_owned(),
            topics,
            routed,
        }
    }

    fn plugin(&self, handler: &str) -> PathBuf {
        sdk::example(&self.language, handler)
    }

    /// Every topic this lane writes, in a fixed order.
    fn every_topic(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self
            .topics
            .values()
            .flat_map(|(output, dead_letters)| [output.as_str(), dead_letters.as_str()])
            .collect();
        topics.push(&self.routed);
        topics
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_language_produces_what_the_rust_handlers_produce() {
    let dir = kafka::scratch_dir();
    let inputs: BTreeMap<&str, String> = ["uppercase", "json-router", "counter"]
        .into_iter()
        .map(|handler| {
            let topic = kafka::unique_topic(&format!("lang-in-{handler}"));
            kafka::create_topic(&topic, 1);
            (handler, topic)
        })
        .collect();
    let lanes: Vec<Lane> = sdk::every_language().map(Lane::new).collect();

    let mut config = HostConfig::new(&kafka::brokers());
    for lane in &lanes {
        for (handler, (output, dead_letters)) in &lane.topics {
            let mut pipeline = Pipeline::reading(&inputs[handler])
                .set("group", kafka::unique_topic("lang-group"))
                .output(output)
                .set("dead_letter_topic", dead_letters.as_str())
                .plugin(lane.plugin(handler))
                .batch(4, "20ms");
            pipeline = match *handler {
                "json-router" => pipeline
                    .settings(&format!(
                        "config = {{ route_field = \"to_{}\", drop_field = \"test\", drop_value = \"yes\" }}",
                        lane.language
                    ))
                    .set(
                        "allowed_output_topics",
                        vec![output.as_str(), dead_letters.as_str(), lane.routed.as_str()],
                    ),
                "counter" => pipeline.settings("config = { header = \"seen\" }"),
                _ => pipeline,
            };
            config = config.pipeline(&format!("{}-{handler}", lane.language), pipeline);
        }
    }
    let config = config.write_in(dir.path());
    let host = HostProcess::start(&config, &dir.path().join("host.log"));
    sdk::wait_until_compiled(&host).await;

    produce(&inputs["uppercase"], owned(UPPERCASE_INPUT));
    let routes = lanes
        .iter()
        .map(|lane| (lane.language.clone(), lane.routed.clone()))
        .collect();
    produce(
        &inputs["json-router"],
        json_router_input(&routes)
            .into_iter()
            .map(|(key, value)| (key, value, Vec::new())),
    );
    produce(&inputs["counter"], owned(COUNTER_INPUT));

    // The Rust handlers' records first: how many every topic must hold.
    let (rust, others) = lanes.split_first().unwrap();
    // In the order of `every_topic`: counter, json-router, uppercase (each
    // output, then dead letters), then the routed topic.
    let expected_counts = [7, 0, 3, 4, 6, 0, 1];
    let expected: Vec<Vec<Record>> = rust
        .every_topic()
        .into_iter()
        .zip(expected_counts)
        .map(|(topic, count)| read_all(topic, count))
        .collect();
    for (records, count) in expected.iter().zip(expected_counts) {
        assert_eq!(
            records.len(),
            count,
            "the Rust handlers' records: {records:#?}"
        );
    }
    for lane in others {
        for (topic, rust_records) in lane.every_topic().into_iter().zip(&expected) {
            let records = read_all(topic, rust_records.len());
            let got: Vec<_> = records.iter().map(comparable).collect();
            let want: Vec<_> = rust_records.iter().map(comparable).collect();
            assert_eq!(
                got, want,
                "{}: topic {topic} differs from the Rust handler's",
                lane.language
            );
        }
    }
    host.assert_running_then_stop(Duration::from_secs(30)).await;
}

/// Runs `runnel` with `args`; panics with its output unless it succeeds.
fn runnel(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("runnel runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "runnel {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn a_new_plugin_builds_and_validates_in_every_language() {
    let dir = kafka::scratch_dir();
    // The Rust scaffold's dependencies are those of plugins/, built already.
    let plugins_target = std::env::var_os("RUNNEL_PLUGINS_TARGET_DIR")
        .unwrap_or_else(|| support::repo_root().join("plugins/target").into_os_string());
    let env = [("CARGO_TARGET_DIR", plugins_target.as_os_str())];
    for language in ["rust", "js", "ts", "python", "go", "c"] {
        let name = format!("new-{language}");
        let folder = dir.path().join(&name);
        let folder_text = folder.to_string_lossy();
        let created = runnel(
            &[
                "plugin",
                "new",
                &name,
                "--lang",
                language,
                "--dir",
                &folder_text,
            ],
            &env,
        );
        assert!(created.starts_with("created "), "{created}");
        let built = runnel(&["plugin", "build", &folder_text], &env);
        let component = folder.join("build").join(format!("new_{language}.wasm"));
        assert_eq!(built.trim(), format!("built {}", component.display()));
        let validated = runnel(&["plugin", "validate", &component.to_string_lossy()], &env);
        assert!(
            validated.starts_with(&format!("ok: new_{language}")),
            "{language}: {validated}"
        );
    }
}
