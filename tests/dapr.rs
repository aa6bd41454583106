//! Runnel as a Dapr app, end to end with a real `daprd` sidecar built from
//! the dapr module: records produced to Kafka flow through daprd's Kafka
//! input binding into Runnel, through the plugin, and out to Kafka; a plugin
//! failure reaches daprd as an error. Every sidecar runs with an app API
//! token (`APP_API_TOKEN` in daprd's environment) and every host requires
//! it, so records arrive only if the real sidecar sends it.

mod support;

use std::path::Path;
use std::time::Duration;

use support::config::{HostConfig, Pipeline};
use support::daprd::{self, Sidecar};
use support::host::HostProcess;
use support::kafka::{self, TopicReader};
use support::{plugin_path, wait_until};

/// Dapr's app API token of every sidecar and host here.
const APP_API_TOKEN: &str = "dapr-e2e-3c9a71f0b2";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// daprd with a Kafka input binding `binding` on `topic`, its app the host
/// on `app_port`. `meta` adds component metadata (`publishTopic=...` makes
/// the same component an output binding too).
fn start_sidecar(dir: &Path, app_port: u16, topic: &str, binding: &str, meta: &[&str]) -> Sidecar {
    let brokers = kafka::brokers();
    let app_port = app_port.to_string();
    let mut arguments = vec![
        "--app-port",
        &app_port,
        "--brokers",
        &brokers,
        "--topic",
        topic,
        "--binding",
        binding,
        // Leaving out `direction` makes daprd ask OPTIONS /{binding}
        // first, as an app-subscribed binding does.
        "--direction",
        "none",
        // Without this, daprd's Kafka binding drops a record the app
        // rejects; with it, daprd redelivers.
        "--meta",
        "consumeRetryEnabled=true",
    ];
    for entry in meta {
        arguments.extend(["--meta", entry]);
    }
    Sidecar::start(dir, Some(APP_API_TOKEN), &arguments)
}

/// Starts a host listening on `app_port`, where daprd finds it, with the
/// shared broker, daprd's HTTP port `sidecar` for output bindings, one
/// pipeline `name` running `misbehave`, and Dapr's app API token required.
fn start_host(
    dir: &Path,
    app_port: u16,
    sidecar: Option<u16>,
    name: &str,
    pipeline: Pipeline,
) -> HostProcess {
    let token = dir.join("app-api-token");
    std::fs::write(&token, APP_API_TOKEN).expect("writing the token file");
    let mut config = HostConfig::new(&kafka::brokers())
        .listen(&format!("127.0.0.1:{app_port}"))
        .dapr_app_token_file(&token);
    if let Some(port) = sidecar {
        config = config.dapr_sidecar(port);
    }
    let pipeline = pipeline.plugin(plugin_path("misbehave"));
    let config = config.pipeline(name, pipeline).write_in(dir);
    HostProcess::start(&config, &dir.join("host.log"))
}

#[tokio::test(flavor = "multi_thread")]
async fn records_flow_from_kafka_through_daprd_and_runnel_back_to_kafka() {
    daprd::ensure_built();
    let input = kafka::unique_topic("dapr-in");
    let output = kafka::unique_topic("dapr-out");
    kafka::create_topic(&input, 1);
    kafka::create_topic(&output, 1);
    let dir = kafka::scratch_dir();
    let app_port = free_port();
    let pipeline = Pipeline::bound_to("kafka-in").output(&output);
    let host = start_host(dir.path(), app_port, None, "from-dapr", pipeline);
    host.wait_for_log("http listening", Duration::from_secs(60))
        .await;
    let sidecar_dir = dir.path().join("daprd");
    std::fs::create_dir_all(&sidecar_dir).unwrap();
    let sidecar = start_sidecar(&sidecar_dir, app_port, &input, "kafka-in", &[]);

    for i in 0..20 {
        kafka::produce_with_headers(
            &input,
            &format!("k{i}"),
            &format!("v{i}"),
            &[("trace-id", "t1")],
        );
    }
    let mut reader = TopicReader::new(&output, 1, "read_uncommitted");
    let arrived = reader.read_until(Duration::from_secs(90), |records| records.len() >= 20);
    assert!(
        arrived,
        "only {} of 20 records came through daprd:\n{}",
        reader.records.len(),
        sidecar.log()
    );
    let values: Vec<&str> = reader.records.iter().map(|r| r.value.as_str()).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    assert_eq!(values, expected, "in order, once each");
    for (i, record) in reader.records.iter().enumerate() {
        assert_eq!(
            record.key.as_deref(),
            Some(format!("k{i}").as_str()),
            "the key survives daprd"
        );
        assert!(
            record
                .headers
                .iter()
                .any(|(name, value)| name == "trace-id" && value == "t1"),
            "record headers survive daprd: {:?}",
            record.headers
        );
        assert!(
            record.header_values("dapr-api-token").is_empty(),
            "daprd's token is not a message header: {:?}",
            record.headers
        );
    }

    // The host did require the token: what daprd delivered carried it.
    let unsigned = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{app_port}/kafka-in"))
        .body("not from daprd")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    // A record the plugin rejects: Runnel answers with an error status and
    // daprd sees the failure.
    kafka::produce_with_headers(&input, "bad", "permanent", &[]);
    wait_until(
        "daprd to report the plugin failure",
        Duration::from_secs(30),
        async || sidecar.log(),
        |log| log.contains("misbehave: permanent failure requested"),
    )
    .await;
    drop(sidecar);
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_can_leave_through_a_dapr_output_binding() {
    daprd::ensure_built();
    let input = kafka::unique_topic("dapr-io-in");
    let output = kafka::unique_topic("dapr-io-out");
    kafka::create_topic(&input, 1);
    kafka::create_topic(&output, 1);
    let dir = kafka::scratch_dir();
    let app_port = free_port();
    // One component, both directions: it reads `input` into Runnel and
    // publishes what Runnel posts back to `output`. daprd waits for the app.
    let sidecar_dir = dir.path().join("daprd");
    std::fs::create_dir_all(&sidecar_dir).unwrap();
    let publish = format!("publishTopic={output}");
    let sidecar = start_sidecar(&sidecar_dir, app_port, &input, "kafka-io", &[&publish]);
    let pipeline = Pipeline::bound_to("kafka-io").set("output_binding", "kafka-io");
    let sidecar_port = Some(sidecar.http_port());
    let host = start_host(dir.path(), app_port, sidecar_port, "through-dapr", pipeline);
    for i in 0..10 {
        kafka::produce_with_headers(&input, &format!("k{i}"), &format!("{{\"n\":{i}}}"), &[]);
    }
    let mut reader = TopicReader::new(&output, 1, "read_uncommitted");
    let arrived = reader.read_until(Duration::from_secs(90), |records| records.len() >= 10);
    assert!(
        arrived,
        "only {} of 10 came back through the output binding:\n{}",
        reader.records.len(),
        sidecar.log()
    );
    for (i, record) in reader.records.iter().enumerate() {
        assert_eq!(record.value, format!("{{\"n\":{i}}}"));
        assert_eq!(record.key.as_deref(), Some(format!("k{i}").as_str()));
    }
    drop(host);
    drop(sidecar);
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_to_a_dapr_output_binding_wait_out_a_sidecar_restart() {
    daprd::ensure_built();
    const COUNT: usize = 2000;
    let input = kafka::unique_topic("dapr-restart-in");
    let output = kafka::unique_topic("dapr-restart-out");
    kafka::create_topic(&input, 2);
    kafka::create_topic(&output, 1);
    let dir = kafka::scratch_dir();
    let app_port = free_port();
    // An output binding only: Runnel reads Kafka itself and answers 404 to
    // daprd's OPTIONS, so daprd starts no input for the component.
    let sidecar_dir = dir.path().join("daprd");
    std::fs::create_dir_all(&sidecar_dir).unwrap();
    let unused_input = kafka::unique_topic("dapr-restart-unused");
    let publish = format!("publishTopic={output}");
    let sidecar = start_sidecar(
        &sidecar_dir,
        app_port,
        &unused_input,
        "to-kafka",
        &[&publish],
    );
    let pipeline = Pipeline::reading(&input)
        .set("output_binding", "to-kafka")
        .batch(20, "5ms");
    let sidecar_port = Some(sidecar.http_port());
    let host = start_host(dir.path(), app_port, sidecar_port, "to-dapr", pipeline);
    let messages: Vec<(String, String)> = (0..COUNT)
        .map(|i| (format!("k{i}"), format!("{{\"n\":{i}}}")))
        .collect();
    // 400 msg/s for 5 s; the sidecar goes away for 4 s in the middle.
    std::thread::scope(|scope| {
        scope.spawn(|| kafka::produce_at_rate(&input, &messages, 400));
        std::thread::sleep(Duration::from_secs(1));
        sidecar.restart_after(Duration::from_secs(4));
    });
    let mut reader = TopicReader::new(&output, 1, "read_uncommitted");
    let wanted: std::collections::HashSet<String> =
        messages.iter().map(|(_, value)| value.clone()).collect();
    let arrived = reader.read_until(Duration::from_secs(120), |records| {
        let seen: std::collections::HashSet<&String> =
            records.iter().map(|record| &record.value).collect();
        wanted.iter().all(|value| seen.contains(value))
    });
    let seen: std::collections::HashSet<&String> =
        reader.records.iter().map(|record| &record.value).collect();
    let missing = wanted.iter().filter(|value| !seen.contains(value)).count();
    assert!(
        arrived,
        "{missing} of {COUNT} outputs never came through the restarted sidecar:\n{}",
        sidecar.log()
    );
    let rewinds = host
        .metric("runnel_partition_rewinds_total", &[("pipeline", "to-dapr")])
        .await;
    eprintln!(
        "sidecar restart: {COUNT} outputs arrived ({} records, {rewinds} partition rewinds)",
        reader.records.len()
    );
    assert!(rewinds > 0.0, "outputs the sidecar refused were sent again");
    host.assert_running_then_stop(Duration::from_secs(30)).await;
    drop(sidecar);
}
