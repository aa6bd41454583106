//! The HTTP surface with a real client against the real binary: Dapr
//! binding endpoints, stats, metrics and health, and every error they give.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::config::{HostConfig, Pipeline};
use support::host::{HostProcess, sample};
use support::kafka::{self, TopicReader};
use support::{plugin_path, wait_until};

/// Nothing listens on port 1.
const UNREACHABLE: &str = "127.0.0.1:1";

struct Host {
    process: HostProcess,
    base: String,
    output: String,
    feed: String,
    _dir: tempfile::TempDir,
}

/// A host with three pipelines: `orders` (a Dapr binding, per-message mode),
/// `bulk` (a Dapr binding, batches of up to 5) and `feed` (a Kafka topic).
/// All run the `misbehave` plugin, which echoes values and fails on command;
/// `bulk` gives it a fuel budget, so that its calls count fuel.
async fn start_host(brokers: &str) -> Host {
    let dir = kafka::scratch_dir();
    let output = kafka::unique_topic("http-out");
    let feed = kafka::unique_topic("http-feed");
    // The unreachable-broker test must not touch the real broker at all.
    let reachable = brokers != UNREACHABLE;
    if reachable {
        kafka::create_topic(&output, 1);
        kafka::create_topic(&feed, 2);
    }
    let plugin = plugin_path("misbehave");
    let orders = Pipeline::bound_to("orders")
        .plugin(&plugin)
        .output(&output)
        .settings(r#"limits = { call_timeout = "2s" }"#);
    let bulk = Pipeline::bound_to("bulk")
        .plugin(&plugin)
        .output(&output)
        .batch(5, "300ms")
        .settings("limits = { fuel = 1000000000000 }");
    let feed_pipeline = Pipeline::reading(&feed)
        .plugin(&plugin)
        .output(&output)
        .consumer("statistics.interval.ms", "1000");
    let config = HostConfig::new(brokers)
        .drain_timeout("10s")
        .settings("[http]\nmax_body_bytes = 1024")
        .pipeline("orders", orders)
        .pipeline("bulk", bulk)
        .pipeline("feed", feed_pipeline)
        .write_in(dir.path());
    let process = HostProcess::start(&config, &dir.path().join("host.log"));
    let address = process.http_address().await;
    Host {
        process,
        base: format!("http://{address}"),
        output,
        feed,
        _dir: dir,
    }
}

async fn get_json(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(url).send().await.expect("GET succeeds");
    response.json().await.expect("a JSON body")
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> (u16, Value) {
    let response = client
        .post(url)
        .header("metadata.source", "test")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn dapr_binding_endpoints_answer_deliver_and_refuse_bad_requests() {
    let host = start_host(&kafka::brokers()).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", host.base);

    let options = client
        .request(reqwest::Method::OPTIONS, url("/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 200, "Dapr's start-up probe");
    let options = client
        .request(reqwest::Method::OPTIONS, url("/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 404);

    let (status, body) = post(&client, &url("/orders"), "hello").await;
    assert_eq!(
        (status, &body["status"], &body["outputs"]),
        (200, &Value::from("ok"), &Value::from(1))
    );
    let mut reader = TopicReader::new(&host.output, 1, "read_uncommitted");
    assert!(reader.read_until(Duration::from_secs(30), |records| !records.is_empty()));
    let record = &reader.records[0];
    assert_eq!(record.value, "hello");
    assert!(
        record
            .headers
            .contains(&("metadata.source".to_owned(), "test".to_owned())),
        "request headers become message headers: {:?}",
        record.headers
    );

    let (status, body) = post(&client, &url("/nope"), "x").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "unknown binding nope");

    let (status, body) = post(&client, &url("/orders"), &"x".repeat(2048)).await;
    assert_eq!(status, 413, "over max_body_bytes");
    assert_eq!(
        body["error"],
        "the request body is larger than the limit of 1024 bytes (http.max_body_bytes)"
    );

    let (status, body) = post(&client, &url("/orders"), "permanent").await;
    assert_eq!((status, &body["kind"]), (500, &Value::from("permanent")));
    let (status, body) = post(&client, &url("/orders"), "transient").await;
    assert_eq!(
        (status, &body["kind"]),
        (503, &Value::from("transient")),
        "a retry may help"
    );
    let (status, body) = post(&client, &url("/orders"), "trap").await;
    assert_eq!((status, &body["kind"]), (500, &Value::from("trap")));
    let (status, body) = post(&client, &url("/orders"), "loop").await;
    assert_eq!((status, &body["kind"]), (503, &Value::from("timeout")));

    // Nothing above disturbed the binding.
    let (status, _) = post(&client, &url("/orders"), "still fine").await;
    assert_eq!(status, 200);

    let response = client.get(url("/nowhere/at/all")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    drop(host);
}

// One scenario, read top to bottom: the 80-line bound is for the host.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread")]
async fn stats_and_metrics_count_exactly_by_status_and_mode() {
    let host = start_host(&kafka::brokers()).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", host.base);
    for i in 0..10 {
        let body = if i % 3 == 0 {
            "permanent".to_owned()
        } else {
            format!("ok-{i}")
        };
        post(&client, &url("/orders"), &body).await;
    }
    // Ten requests at once: they join batches of up to five.
    let requests = (0..10).map(|i| {
        let client = client.clone();
        let url = url("/bulk");
        async move { post(&client, &url, &format!("bulk-{i}")).await.0 }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");

    let orders: Value = get_json(&client, url("/messages/v1/stats/orders")).await;
    assert_eq!(orders["total_processed"], 10);
    assert_eq!(orders["total_errors"], 4);
    assert_eq!(orders["is_batch_mode"], false);
    assert_eq!(orders["batch_size_threshold"], 1);
    assert_eq!(orders["is_running"], true);
    assert!(orders["time_since_last_process"].as_f64().unwrap() >= 0.0);
    let bulk: Value = get_json(&client, url("/messages/v1/stats/bulk")).await;
    assert_eq!(bulk["total_processed"], 10);
    assert_eq!(bulk["total_errors"], 0);
    assert_eq!(bulk["is_batch_mode"], true);
    assert_eq!(bulk["batch_size_threshold"], 5);
    assert_eq!(bulk["batch_timeout"], 0.3);

    // `feed` is a pipeline with a Kafka input and no binding: its stats
    // are found by the pipeline's name.
    let feed = client
        .get(url("/messages/v1/stats/feed"))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let feed: Value = feed.json().await.unwrap();
    assert_eq!(feed["is_running"], true, "{feed}");
    assert!(feed["consumer_lag"].is_array());

    let all: Value = get_json(&client, url("/messages/v1/stats")).await;
    assert_eq!(all["pipelines"].as_object().unwrap().len(), 3);
    let unknown = client
        .get(url("/messages/v1/stats/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"],
        "unknown pipeline or binding nope"
    );

    let metrics = client
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let processed = "kafka_messages_processed_total";
    assert_eq!(
        sample(
            &metrics,
            processed,
            &[("status", "success"), ("mode", "per_message")]
        ),
        6.0
    );
    assert_eq!(
        sample(
            &metrics,
            processed,
            &[("status", "error"), ("mode", "per_message")]
        ),
        4.0
    );
    assert_eq!(
        sample(
            &metrics,
            processed,
            &[("status", "success"), ("mode", "batch")]
        ),
        10.0
    );
    let requests = "kafka_binding_requests_total";
    assert_eq!(
        sample(
            &metrics,
            requests,
            &[("binding", "orders"), ("status", "success")]
        ),
        6.0
    );
    assert_eq!(
        sample(
            &metrics,
            requests,
            &[("binding", "orders"), ("status", "error")]
        ),
        4.0
    );
    assert_eq!(
        sample(
            &metrics,
            requests,
            &[("binding", "bulk"), ("status", "success")]
        ),
        10.0
    );
    assert_eq!(
        sample(
            &metrics,
            "kafka_binding_duration_seconds_count",
            &[("binding", "orders")]
        ),
        10.0
    );
    for binding in ["orders", "bulk"] {
        assert_eq!(
            sample(
                &metrics,
                "runnel_message_processing_seconds_count",
                &[("pipeline", binding)]
            ),
            10.0,
            "{binding}: one processing time per message, failed ones included"
        );
    }
    assert!(sample(&metrics, "kafka_batch_size_count", &[("pipeline", "bulk")]) >= 2.0);
    assert!(sample(&metrics, "kafka_batch_size_count", &[("pipeline", "bulk")]) <= 10.0);
    assert_eq!(
        sample(
            &metrics,
            "runnel_message_failures_total",
            &[("plugin", "misbehave"), ("kind", "permanent")]
        ),
        4.0
    );
    assert!(
        sample(
            &metrics,
            "runnel_plugin_invocation_duration_seconds_count",
            &[("plugin", "misbehave")]
        ) > 0.0
    );
    assert!(
        sample(
            &metrics,
            "runnel_plugin_fuel_used_total",
            &[("plugin", "misbehave")]
        ) > 0.0
    );
    assert!(
        sample(
            &metrics,
            "runnel_plugin_memory_bytes",
            &[("plugin", "misbehave")]
        ) > 0.0
    );
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_kafka_lag() {
    let host = start_host(&kafka::brokers()).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", host.base);
    let alive = client.get(url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200);

    wait_until(
        "ready once the broker answers and plugins are loaded",
        Duration::from_secs(10),
        async || client.get(url("/readyz")).send().await.unwrap().status(),
        |&status| status == 200,
    )
    .await;

    let feed = host.feed.clone();
    kafka::produce(&feed, (0..20).map(|i| (format!("k{i}"), format!("v{i}"))));
    let stats = wait_until(
        "consumer lag reported for both partitions",
        Duration::from_secs(60),
        async || get_json(&client, url("/messages/v1/stats/feed")).await,
        |stats| {
            stats["total_processed"] == 20
                && stats["consumer_lag"]
                    .as_array()
                    .is_some_and(|lag| lag.len() == 2)
        },
    )
    .await;
    let lag = &stats["consumer_lag"];
    assert!(
        lag.as_array()
            .unwrap()
            .iter()
            .all(|p| p["topic"] == feed.as_str() && p["lag"].as_i64().unwrap() >= 0)
    );
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_is_retried_and_readiness_says_not_ready() {
    let host = start_host(UNREACHABLE).await;
    let client = reqwest::Client::new();
    // The outage is logged once the host has tried the broker.
    host.process
        .wait_for_log(
            "kafka unreachable; retrying with backoff",
            Duration::from_secs(30),
        )
        .await;
    let response = client
        .get(format!("{}/readyz", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["broker_reachable"], false);
    assert_eq!(body["plugins_loaded"], true);
    let alive = client
        .get(format!("{}/healthz", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200, "alive while it retries");
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_with_nothing_to_run_says_so() {
    let dir = kafka::scratch_dir();
    let config = HostConfig::new(UNREACHABLE).write_in(dir.path());
    let host = HostProcess::start(&config, &dir.path().join("host.log"));
    let warning = host
        .wait_for_log(
            "no pipelines configured and no plugin directory: serving only health and metrics; add a [pipelines.NAME] table or a [plugins] directory",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(warning["level"], "WARN");
    drop(host);
}
