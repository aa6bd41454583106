//! Who may use the HTTP surface: the admin endpoints want the admin token,
//! Dapr binding requests want Dapr's app API token when one is set,
//! metrics and stats can be put behind the admin token, and the server can
//! speak TLS. Each test runs a real host.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::config::{HostConfig, Pipeline, plugin_manifest};
use support::host::HostProcess;
use support::kafka::{self, TopicReader};
use support::plugin_path;

/// Nothing listens on port 1.
const UNREACHABLE: &str = "127.0.0.1:1";

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
