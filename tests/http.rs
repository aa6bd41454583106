//! The HTTP surface with a real client against the real binary: Dapr
//! binding endpoints, stats, metrics and health, and every error they give.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::config::{HostConfig, Pipeline, plugin_manifest};
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

const ADMIN_TOKEN: &str = "admin-4f9c2e7d1b";
const APP_API_TOKEN: &str = "dapr-app-8e1d5a3c0f";

/// A host whose tokens come from files: the admin token guards its plugin
/// directory's reload, Dapr's app API token its binding `orders`. The
/// directory is read only when asked (a debounce and rescan of an hour),
/// so a version written there loads only when a reload is let through.
struct GuardedHost {
    process: HostProcess,
    base: String,
    output: String,
    plugins: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn start_guarded_host() -> GuardedHost {
    let dir = kafka::scratch_dir();
    let output = kafka::unique_topic("http-guarded-out");
    kafka::create_topic(&output, 1);
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(plugin_path("uppercase"), plugins.join("echo.wasm")).unwrap();
    std::fs::write(
        plugins.join("echo.toml"),
        plugin_manifest("echo", "1", None, None),
    )
    .unwrap();
    let admin_token = dir.path().join("admin-token");
    std::fs::write(&admin_token, format!("{ADMIN_TOKEN}\n")).unwrap();
    let app_token = dir.path().join("app-api-token");
    std::fs::write(&app_token, APP_API_TOKEN).unwrap();
    let orders = Pipeline::bound_to("orders")
        .plugin(plugin_path("misbehave"))
        .output(&output);
    let config = HostConfig::new(&kafka::brokers())
        .plugin_dir(&plugins)
        .settings("[plugins]\ndebounce = \"1h\"\nrescan_interval = \"1h\"")
        .admin_token_file(&admin_token)
        .dapr_app_token_file(&app_token)
        .pipeline("orders", orders)
        .write_in(dir.path());
    let process = HostProcess::start(&config, &dir.path().join("host.log"));
    let base = format!("http://{}", process.http_address().await);
    GuardedHost {
        process,
        base,
        output,
        plugins,
        _dir: dir,
    }
}

/// A request's status, its `WWW-Authenticate` header and its JSON body.
async fn send(request: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let response = request.send().await.expect("the host answers");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned());
    (
        status,
        challenge,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// The `echo` plugin as `GET /plugins` shows it, asked with the admin token.
async fn echo_status(client: &reqwest::Client, base: &str) -> Value {
    let (status, _, body) = send(
        client
            .get(format!("{base}/plugins"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|plugin| plugin["name"] == "echo")
        .cloned()
        .expect("echo is listed")
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints_want_the_admin_token_and_a_refused_reload_changes_nothing() {
    let host = start_guarded_host().await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", host.base);

    let (status, challenge, body) = send(client.get(url("/plugins"))).await;
    assert_eq!(status, 401, "{body}");
    assert!(challenge.unwrap().starts_with("Bearer"));
    assert!(body["error"].as_str().unwrap().contains("admin token"));
    let before = echo_status(&client, &host.base).await;
    assert_eq!(before["version"], "1");

    // A new version lands in the directory, which is read only on a reload.
    std::fs::write(
        host.plugins.join("echo.toml"),
        plugin_manifest("echo", "2", None, None),
    )
    .unwrap();
    let reload = url("/plugins/echo/reload");
    let refused = [
        client.post(&reload),
        client.post(&reload).bearer_auth("admin-wrong"),
        client.post(&reload).bearer_auth(&ADMIN_TOKEN[1..]),
        client.post(&reload).basic_auth("admin", Some(ADMIN_TOKEN)),
        client.post(&reload).header("dapr-api-token", ADMIN_TOKEN),
    ];
    for request in refused {
        let (status, challenge, body) = send(request).await;
        assert_eq!(status, 401, "{body}");
        assert!(challenge.unwrap().starts_with("Bearer"));
        assert!(body["error"].is_string());
    }
    let after = echo_status(&client, &host.base).await;
    assert_eq!(
        (&after["version"], &after["loaded_at"], &after["sha256"]),
        (&before["version"], &before["loaded_at"], &before["sha256"]),
        "no refused reload loaded the new version"
    );
    let loads = [("plugin", "echo"), ("result", "success")];
    assert_eq!(
        host.process
            .metric("runnel_plugin_reloads_total", &loads)
            .await,
        1.0,
        "the load at start only"
    );

    let (status, _, body) = send(client.post(&reload).bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!((status, &body["version"]), (200, &Value::from("2")));
    assert_eq!(echo_status(&client, &host.base).await["version"], "2");

    // Metrics, stats and health stay open by default.
    for path in ["/metrics", "/messages/v1/stats/orders", "/healthz"] {
        let response = client.get(url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} without a token");
    }
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn binding_requests_without_dapr_s_app_api_token_are_refused_and_not_processed() {
    let host = start_guarded_host().await;
    let client = reqwest::Client::new();
    let orders = format!("{}/orders", host.base);

    let options = |token: Option<&str>| {
        let request = client.request(reqwest::Method::OPTIONS, &orders);
        match token {
            Some(token) => request.header("dapr-api-token", token),
            None => request,
        }
    };
    assert_eq!(send(options(None)).await.0, 401);
    assert_eq!(send(options(Some("dapr-app-wrong"))).await.0, 401);
    assert_eq!(send(options(Some(APP_API_TOKEN))).await.0, 200);

    let refused = [
        client.post(&orders).body("no-token"),
        client
            .post(&orders)
            .header("dapr-api-token", "dapr-app-wrong")
            .body("wrong-token"),
        client
            .post(&orders)
            .bearer_auth(APP_API_TOKEN)
            .body("token-in-the-wrong-header"),
    ];
    for request in refused {
        let (status, _, body) = send(request).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("dapr-api-token"),
            "{body}"
        );
    }
    let (_, _, stats) = send(client.get(format!("{}/messages/v1/stats/orders", host.base))).await;
    assert_eq!(stats["total_processed"], 0, "{stats}");
    let requests = "kafka_binding_requests_total";
    for status in ["success", "error"] {
        let counted = host
            .process
            .metric(requests, &[("binding", "orders"), ("status", status)])
            .await;
        assert_eq!(counted, 0.0, "refused requests are not counted as {status}");
    }

    let (status, _, body) = send(
        client
            .post(&orders)
            .header("dapr-api-token", APP_API_TOKEN)
            .header("metadata.source", "test")
            .body("with-token"),
    )
    .await;
    assert_eq!((status, &body["outputs"]), (200, &Value::from(1)), "{body}");
    // One partition: a refused message that had got through would come
    // before this one.
    let mut reader = TopicReader::new(&host.output, 1, "read_uncommitted");
    assert!(reader.read_until(Duration::from_secs(30), |records| !records.is_empty()));
    let record = &reader.records[0];
    assert_eq!(record.value, "with-token");
    assert_eq!(record.header_values("metadata.source"), ["test"]);
    assert!(
        record.header_values("dapr-api-token").is_empty(),
        "the token is not a message header: {:?}",
        record.headers
    );
    let (_, _, stats) = send(client.get(format!("{}/messages/v1/stats/orders", host.base))).await;
    assert_eq!(stats["total_processed"], 1, "{stats}");
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_stats_can_require_the_admin_token_which_the_environment_sets() {
    let dir = kafka::scratch_dir();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, "from-the-file").unwrap();
    let config = HostConfig::new(UNREACHABLE)
        .admin_token_file(&file)
        .settings("[http]\nmetrics_require_admin_token = true")
        .write_in(dir.path());
    let process = HostProcess::start_with_env(
        &config,
        &dir.path().join("host.log"),
        &[("RUNNEL_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let base = format!("http://{}", process.http_address().await);
    let client = reqwest::Client::new();
    for path in ["/metrics", "/messages/v1/stats", "/plugins"] {
        let url = format!("{base}{path}");
        let (status, challenge, _) = send(client.get(&url)).await;
        assert_eq!(status, 401, "{path} without a token");
        assert!(challenge.unwrap().starts_with("Bearer"));
        let (status, _, _) = send(client.get(&url).bearer_auth("from-the-file")).await;
        assert_eq!(status, 401, "{path}: RUNNEL_ADMIN_TOKEN wins over the file");
        let response = client.get(&url).bearer_auth(ADMIN_TOKEN).send().await;
        assert_eq!(response.unwrap().status(), 200, "{path} with the token");
    }
    let (status, _, _) = send(client.get(format!("{base}/healthz"))).await;
    assert_eq!(status, 200, "health needs no token");
    let (status, _, body) = send(client.get(format!("{base}/readyz"))).await;
    assert_eq!(status, 503, "readiness needs no token: {body}");
    drop(process);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_speaks_tls_with_a_certificate_and_key() {
    let dir = kafka::scratch_dir();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        certified.key_pair.serialize_pem(),
    )
    .unwrap();
    let config = HostConfig::new(UNREACHABLE)
        // Relative to the config file.
        .settings("[http]\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"")
        .write_in(dir.path());
    let process = HostProcess::start_with_env(
        &config,
        &dir.path().join("host.log"),
        &[("RUNNEL_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let listening = process
        .wait_for_log("http listening", Duration::from_secs(60))
        .await;
    assert_eq!(listening["fields"]["scheme"], "https");
    let address: std::net::SocketAddr = listening["fields"]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let trusted = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(trusted)
        .resolve("localhost", address)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", address.port());
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let (status, _, _) = send(client.get(format!("{base}/plugins"))).await;
    assert_eq!(status, 401, "the admin token still applies");
    let (status, _, body) = send(
        client
            .get(format!("{base}/plugins"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let plain = reqwest::get(format!("http://{address}/healthz")).await;
    assert!(
        plain.is_err() || plain.is_ok_and(|response| response.status() != 200),
        "plain HTTP is not served"
    );
    drop(process);
}
