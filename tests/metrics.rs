//! Every metric the README documents counts both ways a message comes in: a
//! Kafka input and a Dapr input binding. The list is read from the README's
//! metrics table, so a metric documented later is checked too; each path
//! runs on a host of its own with one pipeline, so that every sample a host
//! exports belongs to that path. Failures are provoked (the `misbehave`
//! plugin fails on command, a stand-in sidecar refuses an output), since
//! several metrics move only then.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use support::config::{HostConfig, Pipeline};
use support::host::{HostProcess, sample};
use support::kafka;
use support::{plugin_path, repo_root, wait_until};

/// The two ways a message reaches a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    KafkaInput,
    Binding,
}

/// Documented metrics that cannot move on one path, and why. Everything
/// else documented must move on both.
const CANNOT_APPLY: &[(&str, Path, &str)] = &[
    (
        "kafka_binding_requests_total",
        Path::KafkaInput,
        "counts Dapr input binding requests; a Kafka input receives none",
    ),
    (
        "kafka_binding_duration_seconds",
        Path::KafkaInput,
        "times Dapr input binding requests; a Kafka input receives none",
    ),
    (
        "runnel_consumer_lag",
        Path::Binding,
        "the lag of the host's consumer; for a binding, Dapr's consumer reads the topic",
    ),
    (
        "runnel_partition_rewinds_total",
        Path::Binding,
        "a binding's message whose outputs are not acknowledged is answered 503 and \
         Dapr delivers it again; the host has no partition to rewind",
    ),
];

/// Move only for exactly-once pipelines, which the path tests' pipelines
/// cannot be (their outputs go to a Dapr output binding, which is not
/// transactional): checked by
/// `transaction_metrics_move_for_an_exactly_once_pipeline`.
const EXACTLY_ONCE_ONLY: [&str; 3] = [
    "runnel_transactions_total",
    "runnel_transaction_commit_seconds",
    "runnel_transaction_messages",
];

/// Move only when pipelines contend for the host's call slots or plugin
/// memory, which one pipeline alone never does: checked by
/// `tests/tenants.rs`.
const CONTENTION_ONLY: [&str; 2] = [
    "runnel_call_slot_waits_total",
    "runnel_plugin_memory_refused_total",
];

/// Moves only when a plugin writes where its pipeline does not allow, which
/// the path tests' plugins never do: checked by `tests/hostile.rs`.
const REFUSALS: &str = "runnel_outputs_refused_total";

/// Moves only when a broker cannot be reached, which the hosts of the path
/// tests need: checked for both paths by
/// `kafka_client_errors_count_for_the_consumer_and_the_shared_producer`.
const CLIENT_ERRORS: &str = "runnel_kafka_client_errors_total";

/// Nothing listens on port 1.
const UNREACHABLE: &str = "127.0.0.1:1";

/// The metric names of the README's metrics table (`### Metrics`).
fn documented_metrics() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("reading README");
    let section = readme
        .split("\n### Metrics\n")
        .nth(1)
        .expect("README has a `### Metrics` section");
    let metrics: Vec<String> = section
        .lines()
        .take_while(|line| !line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .map(str::to_owned)
        .collect();
    assert!(
        metrics.len() > 10,
        "the metrics table is found: {metrics:?}"
    );
    metrics
}

/// Whether `metric` has moved in the exposition `text`: a counter or a
/// histogram with a sample above zero, a gauge with any sample (a lag of
/// zero is a lag reported).
fn moved(text: &str, metric: &str) -> bool {
    let kind = text
        .lines()
        .find_map(|line| line.strip_prefix(&format!("# TYPE {metric} ")));
    let series = match kind {
        Some("histogram") => format!("{metric}_count"),
        Some(_) => metric.to_owned(),
        None => return false,
    };
    let mut values = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.starts_with(&format!("{series}{{")) || line.starts_with(&format!("{series} "))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok());
    if kind == Some("gauge") {
        values.next().is_some()
    } else {
        values.any(|value| value > 0.0)
    }
}

/// The documented metrics `path` must move that have not moved in `text`.
fn not_moved(text: &str, path: Path) -> Vec<String> {
    documented_metrics()
        .into_iter()
        .filter(|metric| {
            !CANNOT_APPLY
                .iter()
                .any(|(name, on, _)| name == metric && *on == path)
        })
        .filter(|metric| metric != CLIENT_ERRORS && metric != REFUSALS)
        .filter(|metric| !EXACTLY_ONCE_ONLY.contains(&metric.as_str()))
        .filter(|metric| !CONTENTION_ONLY.contains(&metric.as_str()))
        .filter(|metric| !moved(text, metric))
        .collect()
}

/// Every metric a host exports is documented.
fn assert_documented(text: &str) {
    let documented = documented_metrics();
    for exported in text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
    {
        assert!(
            documented.iter().any(|metric| metric == exported),
            "{exported} is exported but not in the README's metrics table"
        );
    }
}

#[test]
fn the_exceptions_name_documented_metrics() {
    let documented = documented_metrics();
    let excepted = CANNOT_APPLY
        .iter()
        .map(|(metric, _, _)| *metric)
        .chain([CLIENT_ERRORS, REFUSALS])
        .chain(EXACTLY_ONCE_ONLY)
        .chain(CONTENTION_ONLY);
    for metric in excepted {
        assert!(
            documented.iter().any(|name| name == metric),
            "{metric} is excepted but not documented"
        );
    }
}

/// A pipeline's retry and limits: a transient failure is tried once more
/// at once, and calls count fuel.
fn failing_fast(pipeline: Pipeline, dead_letters: &str) -> Pipeline {
    pipeline
        .plugin(plugin_path("misbehave"))
        .set("dead_letter_topic", dead_letters)
        .settings(
            "limits = { fuel = 1000000000000 }\n\
             [retry]\nbackoff = \"fixed\"\ninitial_delay = \"10ms\"\nmax_attempts = 2",
        )
}

/// Values for `misbehave` that make it echo, fail transiently (retried,
/// then dead-lettered), fail permanently (dead-lettered) and trap (a call
/// error, dead-lettered).
const VALUES: [&str; 5] = ["first", "transient", "permanent", "trap", "last"];
/// How many of [`VALUES`] have an output.
const ECHOED: usize = 2;

/// A stand-in for the Dapr sidecar's output binding API that refuses the
/// first output (the host then rewinds the partition) and takes the rest.
struct OutputSidecar {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl OutputSidecar {
    async fn start() -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (seen, taken) = (requests.clone(), accepted.clone());
        let app = Router::new().route(
            "/v1.0/bindings/{binding}",
            post(async move || {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                taken.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { port, accepted }
    }
}

/// Each of [`VALUES`] on `topic`, keyed by itself.
fn produce_values(topic: &str) {
    kafka::produce(
        topic,
        VALUES
            .iter()
            .map(|value| (value.to_string(), value.to_string())),
    );
}

async fn metrics_text(host: &HostProcess) -> String {
    host.http_get("/metrics").await.1
}

/// Waits until every documented metric that `path` must move has moved.
async fn wait_for_every_metric(host: &HostProcess, path: Path) -> String {
    let unmoved = wait_until(
        &format!("every documented metric to move on {path:?}"),
        Duration::from_secs(90),
        async || not_moved(&metrics_text(host).await, path),
        Vec::is_empty,
    )
    .await;
    assert!(unmoved.is_empty());
    metrics_text(host).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_metric_moves_for_a_kafka_input() {
    let dir = kafka::scratch_dir();
    let input = kafka::unique_topic("metrics-in");
    let dead_letters = kafka::unique_topic("metrics-dlq");
    kafka::create_topic(&input, 1);
    kafka::create_topic(&dead_letters, 1);
    let sidecar = OutputSidecar::start().await;
    let pipeline = Pipeline::reading(&input)
        .set("output_binding", "sink")
        .consumer("statistics.interval.ms", "1000");
    let config = HostConfig::new(&kafka::brokers())
        .dapr_sidecar(sidecar.port)
        .pipeline("feed", failing_fast(pipeline, &dead_letters))
        .write_in(dir.path());
    let host = HostProcess::start(&config, &dir.path().join("host.log"));
    host.http_address().await;
    produce_values(&input);

    let text = wait_for_every_metric(&host, Path::KafkaInput).await;
    assert_documented(&text);
    // The refused output was sent again after the rewind: every output the
    // sidecar took is counted, and nothing else is (dead letters are not
    // outputs).
    let counted = wait_until(
        "the outputs the sidecar took to be counted",
        Duration::from_secs(30),
        async || {
            let text = metrics_text(&host).await;
            let outputs = sample(
                &text,
                "runnel_outputs_produced_total",
                &[("pipeline", "feed")],
            );
            (outputs, sidecar.accepted.load(Ordering::SeqCst))
        },
        |&(outputs, accepted)| accepted >= ECHOED && outputs == accepted as f64,
    )
    .await;
    assert!(counted.1 >= ECHOED);
    host.assert_running_then_stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_metric_moves_for_a_dapr_binding() {
    let dir = kafka::scratch_dir();
    let output = kafka::unique_topic("metrics-out");
    let dead_letters = kafka::unique_topic("metrics-dlq");
    kafka::create_topic(&output, 1);
    kafka::create_topic(&dead_letters, 1);
    let pipeline = Pipeline::bound_to("orders").output(&output);
    let config = HostConfig::new(&kafka::brokers())
        .pipeline("orders", failing_fast(pipeline, &dead_letters))
        .write_in(dir.path());
    let host = HostProcess::start(&config, &dir.path().join("host.log"));
    let address = host.http_address().await;
    let client = reqwest::Client::new();
    // As Dapr delivers: one POST per message, answered once it is safe.
    for value in VALUES {
        let response = client
            .post(format!("http://{address}/orders"))
            .body(value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{value}: dead letters answer 200");
    }

    let text = wait_for_every_metric(&host, Path::Binding).await;
    assert_documented(&text);
    assert_eq!(
        sample(
            &text,
            "runnel_outputs_produced_total",
            &[("pipeline", "orders")]
        ),
        ECHOED as f64,
        "one output per echoed message; dead letters are not outputs"
    );
    assert_eq!(
        sample(
            &text,
            "runnel_dead_lettered_total",
            &[("pipeline", "orders")]
        ),
        (VALUES.len() - ECHOED) as f64
    );
    host.assert_running_then_stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_client_errors_count_for_the_consumer_and_the_shared_producer() {
    let dir = kafka::scratch_dir();
    let plugin = plugin_path("misbehave");
    let config = HostConfig::new(UNREACHABLE)
        .pipeline(
            "feed",
            Pipeline::reading("metrics-unreachable").plugin(&plugin),
        )
        .pipeline(
            "orders",
            Pipeline::bound_to("orders").plugin(&plugin).output("out"),
        )
        .write_in(dir.path());
    let host = HostProcess::start(&config, &dir.path().join("host.log"));
    host.http_address().await;
    wait_until(
        "client errors of the Kafka input's consumer and of the producer a binding's outputs take",
        Duration::from_secs(30),
        async || {
            let text = metrics_text(&host).await;
            let feed = [("client", "consumer"), ("pipeline", "feed")];
            (
                sample(&text, CLIENT_ERRORS, &feed),
                sample(&text, CLIENT_ERRORS, &[("client", "producer")]),
            )
        },
        |&(consumer, producer)| consumer > 0.0 && producer > 0.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_metrics_move_for_an_exactly_once_pipeline() {
    let dir = kafka::scratch_dir();
    let input = kafka::unique_topic("metrics-eo-in");
    let output = kafka::unique_topic("metrics-eo-out");
    kafka::create_topic(&input, 1);
    kafka::create_topic(&output, 1);
    let pipeline = Pipeline::reading(&input)
        .output(&output)
        .plugin(plugin_path("uppercase"))
        .set("exactly_once", true);
    let config = HostConfig::new(&kafka::brokers())
        .pipeline("exact", pipeline)
        .write_in(dir.path());
    let host = HostProcess::start(&config, &dir.path().join("host.log"));
    host.http_address().await;
    produce_values(&input);
    let text = wait_until(
        "the transaction metrics to move",
        Duration::from_secs(60),
        async || metrics_text(&host).await,
        |text| EXACTLY_ONCE_ONLY.iter().all(|metric| moved(text, metric)),
    )
    .await;
    assert_documented(&text);
    let committed = [("pipeline", "exact"), ("outcome", "committed")];
    assert!(sample(&text, "runnel_transactions_total", &committed) >= 1.0);
    host.assert_running_then_stop(Duration::from_secs(30)).await;
}
