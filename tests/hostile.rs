//! Hostile plugins on a real broker, beside a healthy pipeline on the same
//! host. One plugin tries to reach past its sandbox (files, the
//! environment, the network, a sleep past its deadline), to write to
//! another tenant's topic and to one nobody declared, to forge the host's
//! `runnel-*` headers and to flood one message with outputs; another
//! answers with an encoding that lies about its counts. Each attempt is
//! refused or contained and dead-lettered with why, nothing lands where it
//! must not, and the healthy pipeline gets every output out.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::config::{HostConfig, Pipeline};
use support::host::{HostProcess, sample};
use support::kafka::{self, Cluster, Record, TopicReader};
use support::{numbered_value, plugin_path, wait_until};

const HEALTHY_MESSAGES: usize = 2_000;
/// Outputs the hostile pipeline allows per message.
const MAX_OUTPUTS: usize = 1_000;
const PATIENCE: Duration = Duration::from_secs(120);

struct Topics {
    input: String,
    output: String,
    dead_letters: String,
}

impl Topics {
    fn new(name: &str, partitions: i32) -> Self {
        let topics = Self {
            input: kafka::unique_topic(&format!("hostile-{name}-in")),
            output: kafka::unique_topic(&format!("hostile-{name}-out")),
            dead_letters: kafka::unique_topic(&format!("hostile-{name}-dlq")),
        };
        kafka::create_topic(&topics.input, partitions);
        kafka::create_topic(&topics.output, partitions);
        kafka::create_topic(&topics.dead_letters, 1);
        topics
    }

    fn pipeline(&self, plugin: &str) -> Pipeline {
        Pipeline::reading(&self.input)
            .output(&self.output)
            .set("dead_letter_topic", self.dead_letters.as_str())
            .plugin(plugin_path(plugin))
            .batch(10, "5ms")
    }
}

fn header<'a>(record: &'a Record, name: &str) -> Vec<&'a str> {
    record.header_values(name)
}

/// Reads `topic` (one partition) until it holds `count` records.
fn read_all(topic: &str, count: usize) -> Vec<Record> {
    let mut reader = TopicReader::on(&Cluster::shared(), topic, 1, "read_uncommitted");
    let complete = reader.read_until(PATIENCE, |records| records.len() >= count);
    assert!(
        complete,
        "{topic}: {} of {count} records: {:?}",
        reader.records.len(),
        reader.records.iter().map(|r| &r.value).collect::<Vec<_>>()
    );
    reader.records
}

/// The dead letter of the message whose value was `value`, and its
/// `runnel-error`.
fn dead_letter<'a>(dead_letters: &'a [Record], value: &str) -> (&'a Record, &'a str) {
    let record = dead_letters
        .iter()
        .find(|record| record.value == value)
        .unwrap_or_else(|| panic!("`{value}` was dead-lettered"));
    let errors = header(record, "runnel-error");
    assert_eq!(errors.len(), 1, "one reason, the host's: {record:?}");
    (record, errors[0])
}

/// What the hostile plugin is asked to do, one message each, and which of
/// those are dead-lettered, with a word of the reason.
fn attempts(
    healthy_output: &str,
    forbidden: &str,
    broker_port: &str,
) -> Vec<(String, &'static str)> {
    vec![
        (format!("write-to:{healthy_output}"), "may not write to"),
        (format!("write-to:{forbidden}"), "may not write to"),
        (
            format!("fan-out:{}", MAX_OUTPUTS + 1),
            "outputs for one message",
        ),
        ("fan-out:1000000".into(), "outputs for one message"),
        ("sleep:60000".into(), "did not finish within 1s"),
        (format!("fan-out:{MAX_OUTPUTS}"), ""),
        ("forge-headers".into(), ""),
        ("read-file:/etc/passwd".into(), ""),
        ("list-dir:/".into(), ""),
        ("env".into(), ""),
        (format!("connect:127.0.0.1:{broker_port}"), ""),
    ]
}

/// Every refused attempt is dead-lettered with the reason, one
/// `runnel-error` each: the host's.
fn assert_refused(hostile: &Topics, attempts: &[(String, &str)]) {
    let refused: Vec<_> = attempts
        .iter()
        .filter(|(_, reason)| !reason.is_empty())
        .collect();
    let dead_letters = read_all(&hostile.dead_letters, refused.len() + 1);
    for (command, reason) in &refused {
        let (_, error) = dead_letter(&dead_letters, command);
        assert!(error.contains(reason), "{command}: {error}");
    }
    let (forged_upstream, error) = dead_letter(&dead_letters, "permanent");
    assert!(error.contains("permanent failure requested"), "{error}");
    assert_eq!(header(forged_upstream, "trace-id"), ["t1"]);
}

/// What was allowed got out, with the host's headers only, and every
/// look past the sandbox came back refused.
fn assert_allowed_outputs(hostile: &Topics) {
    let written = read_all(&hostile.output, MAX_OUTPUTS + 5);
    let flood = written.iter().filter(|record| record.value == "x").count();
    assert_eq!(flood, MAX_OUTPUTS, "only the allowed fan-out got out");
    let forged = written
        .iter()
        .find(|record| record.value == "forge-headers")
        .expect("the forging plugin's output");
    assert!(header(forged, "runnel-error").is_empty(), "{forged:?}");
    assert!(
        header(forged, "Runnel-Plugin-Version").is_empty(),
        "{forged:?}"
    );
    assert!(
        header(forged, "runnel-source-offset").is_empty(),
        "{forged:?}"
    );
    assert_eq!(header(forged, "runnel-plugin-version"), ["unversioned"]);
    assert_eq!(header(forged, "trace-id"), ["kept"]);
    let probes: Vec<&str> = written
        .iter()
        .map(|record| record.value.as_str())
        .filter(|value| *value != "x" && *value != "forge-headers")
        .collect();
    assert_eq!(probes.len(), 4, "{probes:?}");
    for probe in probes {
        assert!(
            probe.starts_with("err:") || probe == "env:0:",
            "the sandbox let it through: {probe}"
        );
    }
}

/// A healthy pipeline, the misbehaving one (one-second calls, room for a
/// million outputs in memory but [`MAX_OUTPUTS`] allowed) and the liar.
fn config(dir: &Path, healthy: &Topics, hostile: &Topics, liar: &Topics) -> PathBuf {
    HostConfig::new(&kafka::brokers())
        .pipeline("healthy", healthy.pipeline("uppercase"))
        .pipeline(
            "hostile",
            hostile.pipeline("misbehave").settings(&format!(
                "limits = {{ call_timeout = \"1s\", max_memory_mib = 256, \
                 max_outputs_per_message = {MAX_OUTPUTS} }}"
            )),
        )
        .pipeline(
            "liar",
            liar.pipeline("broken-answer")
                .settings("config = { answer = \"lying-count\" }"),
        )
        .write_in(dir)
}

/// The refusals are counted by the rule broken, and only the hostile
/// pipeline's.
async fn assert_refusals_counted(host: &HostProcess) {
    let text = wait_until(
        "the refusals to be counted",
        Duration::from_secs(30),
        async || host.http_get("/metrics").await.1,
        |text| {
            let refused = |reason| {
                sample(
                    text,
                    "runnel_outputs_refused_total",
                    &[("pipeline", "hostile"), ("reason", reason)],
                )
            };
            refused("topic") == 2.0 && refused("count") == 2.0
        },
    )
    .await;
    assert_eq!(
        sample(
            &text,
            "runnel_outputs_refused_total",
            &[("pipeline", "healthy"), ("reason", "topic")]
        ),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_plugins_are_contained_while_a_healthy_neighbour_is_served() {
    let dir = kafka::scratch_dir();
    let healthy = Topics::new("healthy", 2);
    let hostile = Topics::new("misbehave", 1);
    let liar = Topics::new("liar", 1);
    let forbidden = kafka::unique_topic("hostile-forbidden");
    kafka::create_topic(&forbidden, 1);

    let config = config(dir.path(), &healthy, &hostile, &liar);
    let host = HostProcess::start(&config, &dir.path().join("host.log"));
    host.http_address().await;

    let broker_port = kafka::brokers().rsplit(':').next().unwrap().to_owned();
    let attempts = attempts(&healthy.output, &forbidden, &broker_port);
    kafka::produce(
        &hostile.input,
        attempts
            .iter()
            .map(|(command, _)| ("k".to_owned(), command.clone())),
    );
    // A message that comes in with the host's headers already on it.
    kafka::produce_with_headers(
        &hostile.input,
        "k",
        "permanent",
        &[("runnel-error", "written upstream"), ("trace-id", "t1")],
    );
    kafka::produce(
        &liar.input,
        (0..3).map(|i| ("k".to_owned(), format!("lie-{i}"))),
    );
    let values: Vec<(String, String)> = (0..HEALTHY_MESSAGES)
        .map(|i| (format!("key-{}", i % 100), numbered_value(i)))
        .collect();
    kafka::produce(&healthy.input, values);

    // The healthy neighbour: every output, and nothing else.
    let cluster = Cluster::shared();
    let mut outputs = TopicReader::on(&cluster, &healthy.output, 2, "read_uncommitted");
    assert!(
        outputs.read_until(PATIENCE, |records| records.len() >= HEALTHY_MESSAGES),
        "healthy outputs: {} of {HEALTHY_MESSAGES}",
        outputs.records.len()
    );
    assert_eq!(
        outputs.missing_uppercased(HEALTHY_MESSAGES),
        Vec::<usize>::new()
    );

    assert_refused(&hostile, &attempts);
    assert_allowed_outputs(&hostile);

    // A lying answer fails every message of its call as a contract
    // violation, isolated one by one.
    let lies = read_all(&liar.dead_letters, 3);
    for lie in &lies {
        assert_eq!(
            header(lie, "runnel-error-kind"),
            ["contract_violation"],
            "{lie:?}"
        );
    }

    // Nothing where it must not be: the forbidden topic is empty, the
    // neighbour's topic holds only its own outputs.
    assert_eq!(kafka::topic_size(&forbidden, 1), 0);
    assert_eq!(
        kafka::topic_size(&healthy.output, 2),
        HEALTHY_MESSAGES as i64
    );
    assert_refusals_counted(&host).await;
    host.assert_running_then_stop(Duration::from_secs(30)).await;
}
