//! Kafka over TLS with SASL: a host reaches a broker whose clients'
//! listener wants TLS (a CA made for the run) and SASL (SCRAM-SHA-512 users
//! created with Kafka's storage tool, PLAIN users in the listener's JAAS
//! configuration), with its options in `[kafka.client]` and its password in
//! a file or the environment. Outputs, commits, transactions and dead
//! letters work; a wrong password or an untrusted certificate is one clear
//! error line, readiness 503, and a host that stays up.
//!
//! One secured broker (`broker.sh start --security sasl_ssl`) serves the
//! file's tests; they take turns, each host having the machine to itself.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::cli::{runnel, runnel_with_input};
use support::config::{HostConfig, Pipeline};
use support::host::HostProcess;
use support::kafka::{self, Cluster, TopicReader};
use support::secured::{Mechanism, SecuredBroker};
use support::{numbered_value, plugin_path, wait_until};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const PARTITIONS: i32 = 2;
const MESSAGES: usize = 200;
/// Message numbers the plugin is asked to fail (`misbehave`'s `permanent`).
const POISON: [usize; 3] = [17, 101, 150];

/// How long a host on a secured broker may take to process what the tests
/// send: TLS and SASL handshakes, a group join, a transactional producer's
/// start, on a busy machine.
const PROCESSING_BOUND: Duration = Duration::from_secs(90);

/// How long a refused host is watched: it must stay up and unready.
const REFUSED_WATCH: Duration = Duration::from_secs(8);

fn broker() -> &'static SecuredBroker {
    static BROKER: OnceLock<SecuredBroker> = OnceLock::new();
    BROKER.get_or_init(SecuredBroker::start)
}

/// A host configuration reaching the secured broker as `mechanism`'s user,
/// with `ca_file` as the trusted CA; the password is not in it.
fn secured_config(mechanism: Mechanism, ca_file: &Path) -> HostConfig {
    let broker = broker();
    let mut config = HostConfig::new(&broker.broker.cluster.bootstrap).drain_timeout("20s");
    for (key, value) in broker.client_options(mechanism) {
        config = config.client(&key, &value);
    }
    config.client("ssl.ca.location", &ca_file.to_string_lossy())
}

fn write_secret(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).expect("writing a secret file");
    path
}

fn message(i: usize) -> (String, String) {
    match POISON.contains(&i) {
        true => (format!("poison-{i}"), "permanent".to_owned()),
        false => (format!("key-{i}"), numbered_value(i)),
    }
}

/// A pipeline's topics on the secured broker.
struct Lane {
    name: &'static str,
    input: String,
    output: String,
    dead_letters: String,
    exactly_once: bool,
}

impl Lane {
    fn new(cluster: &Cluster, name: &'static str, exactly_once: bool) -> Self {
        let lane = Self {
            name,
            input: kafka::unique_topic(&format!("secured-{name}-in")),
            output: kafka::unique_topic(&format!("secured-{name}-out")),
            dead_letters: kafka::unique_topic(&format!("secured-{name}-dlq")),
            exactly_once,
        };
        cluster.create_topic(&lane.input, PARTITIONS);
        cluster.create_topic(&lane.output, PARTITIONS);
        cluster.create_topic(&lane.dead_letters, 1);
        lane
    }

    fn pipeline(&self) -> Pipeline {
        Pipeline::reading(&self.input)
            .output(&self.output)
            .set("dead_letter_topic", self.dead_letters.as_str())
            .plugin(plugin_path("misbehave"))
            .batch(20, "5ms")
            .set("exactly_once", self.exactly_once)
    }

    fn isolation(&self) -> &'static str {
        if self.exactly_once {
            "read_committed"
        } else {
            "read_uncommitted"
        }
    }

    /// Every good message reached the output once at least, and every
    /// poisoned one the dead-letter topic.
    fn assert_processed(&self, cluster: &Cluster) {
        let mut outputs = TopicReader::on(cluster, &self.output, PARTITIONS, self.isolation());
        let wanted = MESSAGES - POISON.len();
        let complete = outputs.read_until(PROCESSING_BOUND, |records| {
            kafka::distinct_values(records) >= wanted
        });
        let missing: Vec<usize> = (0..MESSAGES)
            .filter(|i| !POISON.contains(i))
            .filter(|i| !outputs.value_counts().contains_key(&numbered_value(*i)))
            .collect();
        assert!(
            complete && missing.is_empty(),
            "{}: outputs missing for {missing:?}",
            self.name
        );
        if self.exactly_once {
            let duplicates = outputs.records.len() - kafka::distinct_values(&outputs.records);
            assert_eq!(
                duplicates, 0,
                "{}: exactly once wrote duplicates",
                self.name
            );
        }
        let mut dead = TopicReader::on(cluster, &self.dead_letters, 1, self.isolation());
        dead.read_until(PROCESSING_BOUND, |records| records.len() >= POISON.len());
        let mut keys: Vec<String> = dead.records.iter().filter_map(|r| r.key.clone()).collect();
        keys.sort();
        let mut wanted: Vec<String> = POISON.iter().map(|i| format!("poison-{i}")).collect();
        wanted.sort();
        assert_eq!(keys, wanted, "{}: dead letters", self.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_over_tls_processes_commits_and_dead_letters_at_least_and_exactly_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = broker();
    let cluster = broker.cluster();
    let lanes = [
        Lane::new(&cluster, "at_least_once", false),
        Lane::new(&cluster, "exactly_once", true),
    ];
    let dir = kafka::scratch_dir();
    let (_, password) = broker.user(Mechanism::ScramSha512);
    let password_file = write_secret(dir.path(), "sasl-password", password);
    let mut config = secured_config(Mechanism::ScramSha512, &broker.credentials.ca_file)
        .sasl_password_file(&password_file);
    for lane in &lanes {
        config = config.pipeline(lane.name, lane.pipeline());
    }
    let config = config.write_in(dir.path());
    let host = HostProcess::start(&config, &dir.path().join("host.log"));

    for lane in &lanes {
        cluster.produce(&lane.input, (0..MESSAGES).map(message));
    }
    for lane in &lanes {
        lane.assert_processed(&cluster);
    }
    // Offsets: the at-least-once pipeline commits them on its own, the
    // exactly-once one inside its transactions; both reach the inputs' ends.
    for lane in &lanes {
        wait_until(
            &format!("{}'s offsets to be committed to the end", lane.name),
            PROCESSING_BOUND,
            async || cluster.try_committed_offsets(&lane.input, &lane.input, PARTITIONS),
            |committed| {
                committed.as_ref().is_ok_and(|offsets| {
                    *offsets == cluster.high_watermarks(&lane.input, PARTITIONS)
                })
            },
        )
        .await
        .expect("committed offsets");
    }
    let (status, body) = host.http_get("/readyz").await;
    assert_eq!(status, 200, "ready on the secured broker: {body}");
    let log = std::fs::read_to_string(dir.path().join("host.log")).unwrap();
    assert!(!log.contains(password), "the password is in the host's log");
    host.assert_running_then_stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_over_tls_with_the_password_in_the_environment_produces_outputs() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = broker();
    let cluster = broker.cluster();
    let input = kafka::unique_topic("secured-plain-in");
    let output = kafka::unique_topic("secured-plain-out");
    cluster.create_topic(&input, PARTITIONS);
    cluster.create_topic(&output, PARTITIONS);
    let dir = kafka::scratch_dir();
    let config = secured_config(Mechanism::Plain, &broker.credentials.ca_file)
        .pipeline(
            "upper",
            Pipeline::reading(&input)
                .output(&output)
                .plugin(plugin_path("uppercase")),
        )
        .write_in(dir.path());
    let (_, password) = broker.user(Mechanism::Plain);
    let host = HostProcess::start_with_env(
        &config,
        &dir.path().join("host.log"),
        &[("RUNNEL_KAFKA_SASL_PASSWORD", password)],
    );
    cluster.produce(
        &input,
        (0..MESSAGES).map(|i| (i.to_string(), numbered_value(i))),
    );
    let mut outputs = TopicReader::on(&cluster, &output, PARTITIONS, "read_uncommitted");
    outputs.read_until(PROCESSING_BOUND, |records| {
        kafka::distinct_values(records) >= MESSAGES
    });
    assert_eq!(outputs.missing_uppercased(MESSAGES), Vec::<usize>::new());
    host.assert_running_then_stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_one_clear_error_and_an_unready_host_that_stays_up() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = broker();
    let config = secured_config(Mechanism::ScramSha512, &broker.credentials.ca_file);
    assert_refused(config, "not-the-password", "kafka authentication failed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_is_one_clear_error_and_an_unready_host_that_stays_up() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = broker();
    let other_ca = kafka::scratch_dir();
    let ca_file = make_other_ca(other_ca.path());
    let config = secured_config(Mechanism::ScramSha512, &ca_file);
    let (_, password) = broker.user(Mechanism::ScramSha512);
    assert_refused(config, password, "kafka broker certificate not trusted").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_topic_commands_reach_the_secured_broker_with_the_hosts_settings() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = broker();
    let dir = kafka::scratch_dir();
    let config =
        secured_config(Mechanism::ScramSha512, &broker.credentials.ca_file).write_in(dir.path());
    let config = config.to_str().expect("test paths are UTF-8");
    let (_, password) = broker.user(Mechanism::ScramSha512);
    let env = [("RUNNEL_KAFKA_SASL_PASSWORD", password)];
    let topic = kafka::unique_topic("secured-cli");
    let ran = |args: &[&str]| runnel(&[args, &["--config", config]].concat(), &env);

    let created = ran(&["topics", "create", &topic, "--partitions", "1"]);
    assert_eq!(created.code, 0, "{created:?}");
    let produced = runnel_with_input(
        &["produce", &topic, "--config", config],
        &env,
        Some(b"one\ntwo\n"),
    );
    assert_eq!(produced.code, 0, "{produced:?}");
    let consumed = ran(&["consume", &topic, "--format", "json", "-e"]);
    assert_eq!(consumed.code, 0, "{consumed:?}");
    let values: Vec<serde_json::Value> = (consumed.stdout.lines())
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["value"].clone())
        .collect();
    assert_eq!(values, ["one", "two"], "{consumed:?}");
    let listed = ran(&["topics", "list"]);
    assert!(listed.stdout.contains(&topic), "{listed:?}");

    let refused = runnel(
        &["topics", "list", "--timeout", "5s", "--config", config],
        &[("RUNNEL_KAFKA_SASL_PASSWORD", "not-the-password")],
    );
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains("Authentication failed"),
        "the reason is librdkafka's: {refused:?}"
    );
    assert!(!refused.stderr.contains(password) && !consumed.stderr.contains(password));
}

/// A host of `config` with the SASL password `password`, reading a topic:
/// its log names the cause (`cause` starts the line) once per
/// `SUMMARY_INTERVAL`, `/readyz` answers 503 saying it, `/healthz` 200,
/// and the process is still there after [`REFUSED_WATCH`].
async fn assert_refused(config: HostConfig, password: &str, cause: &str) {
    let dir = kafka::scratch_dir();
    let input = kafka::unique_topic("secured-refused-in");
    broker().cluster().create_topic(&input, PARTITIONS);
    let config = config
        .pipeline(
            "refused",
            Pipeline::reading(&input)
                .output(&input)
                .plugin(plugin_path("uppercase")),
        )
        .write_in(dir.path());
    let mut host = HostProcess::start_with_env(
        &config,
        &dir.path().join("host.log"),
        &[("RUNNEL_KAFKA_SASL_PASSWORD", password)],
    );
    let started = Instant::now();
    let is_cause = |line: &serde_json::Value| {
        line["fields"]["message"]
            .as_str()
            .is_some_and(|message| message.starts_with(cause))
    };
    let line = host
        .wait_for_log_line(cause, PROCESSING_BOUND, is_cause)
        .await;
    assert_eq!(line["level"], "ERROR", "{line}");
    let (status, body) = wait_until(
        "readiness to say why",
        PROCESSING_BOUND,
        async || host.http_get("/readyz").await,
        |(_, body)| body.contains(cause),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let watch_until = Instant::now() + REFUSED_WATCH;
    while Instant::now() < watch_until {
        assert!(
            host.is_running(),
            "the host exited; log:\n{:?}",
            host.log_lines()
        );
        let (status, body) = host.http_get("/readyz").await;
        assert_eq!(status, 503, "still unready: {body}");
        let (status, _) = host.http_get("/healthz").await;
        assert_eq!(status, 200, "still alive");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // librdkafka repeats the failure at every reconnect; the log says it
    // once per summary interval (30 s) whatever the number of clients.
    let lines = host
        .log_lines()
        .iter()
        .filter(|line| is_cause(line))
        .count();
    let allowed = 1 + (started.elapsed().as_secs() / 30) as usize;
    assert!(
        (1..=allowed).contains(&lines),
        "{lines} lines saying {cause:?} in {:?}",
        started.elapsed()
    );
    let log = std::fs::read_to_string(dir.path().join("host.log")).unwrap();
    assert!(!log.contains(password), "the password is in the host's log");
    host.assert_running_then_stop(Duration::from_secs(30)).await;
}

/// A CA of its own, which signed nothing the broker holds, in `dir`.
fn make_other_ca(dir: &Path) -> PathBuf {
    let ca = dir.join("other-ca.pem");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=runnel-test-other-ca", "-keyout"])
        .arg(dir.join("other-ca-key.pem"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("running openssl");
    assert!(
        status.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    ca
}
