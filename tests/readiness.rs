//! What the host says of its plugins: `GET /plugins` lists every plugin it
//! runs, loaded from a file or from the plugin directory, and `/readyz`
//! answers 503 while a pipeline it is configured to run has no plugin
//! version serving it, naming the pipeline and the plugin.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::config::{HostConfig, Pipeline, plugin_manifest};
use support::host::HostProcess;
use support::kafka;
use support::{plugin_bytes, plugin_path, wait_until};

/// Writes `bytes` to `dir/file` under a temporary name, then renames it
/// into place, as a deployment should.
fn write(dir: &Path, file: &str, bytes: &[u8]) {
    let temporary = dir.join(format!(".{file}.tmp"));
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, dir.join(file)).unwrap();
}

/// Installs plugin `name` at `version` with the component `wasm`, running
/// `pipeline` if any.
fn install(dir: &Path, name: &str, version: &str, wasm: &[u8], pipeline: Option<&Pipeline>) {
    let component = format!("{name}-{version}.wasm");
    write(dir, &component, wasm);
    let manifest = plugin_manifest(name, version, Some(&component), pipeline);
    write(dir, &format!("{name}.toml"), manifest.as_bytes());
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

struct Host {
    /// Kept so that the host runs until the test ends.
    _process: HostProcess,
    base: String,
    client: reqwest::Client,
}

impl Host {
    async fn start(config: &Path, log: &Path) -> Self {
        let process = HostProcess::start(config, log);
        let address = process.http_address().await;
        Self {
            _process: process,
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn reload(&self, plugin: &str) -> u16 {
        let url = format!("{}/plugins/{plugin}/reload", self.base);
        let response = self.client.post(url).send().await.unwrap();
        response.status().as_u16()
    }

    /// The plugins `GET /plugins` lists, by name.
    async fn plugin(&self, name: &str) -> Value {
        let (_, body) = self.get("/plugins").await;
        let plugins = body["plugins"].as_array().unwrap();
        let mut named = plugins.iter().filter(|plugin| plugin["name"] == name);
        let plugin = named.next().cloned().unwrap_or(Value::Null);
        assert!(named.next().is_none(), "one plugin named {name}: {body}");
        plugin
    }

    /// Waits until `/readyz` answers `status` with the broker reachable
    /// (so that the reason is about plugins alone), and returns its body.
    async fn wait_for_readiness(&self, status: u16) -> Value {
        let (_, body) = wait_until(
            &format!("/readyz to answer {status}"),
            Duration::from_secs(60),
            async || self.get("/readyz").await,
            |(answered, body)| *answered == status && body["broker_reachable"] == true,
        )
        .await;
        body
    }
}

/// A host with a pipeline running a plugin by path (`by-path`), a
/// host-config pipeline running the directory's `good` (`uses-good`), and a
/// plugin directory holding `good` (its own pipeline), `broken` (a
/// pipeline, a component that is not WebAssembly), `spare` (no pipeline, a
/// broken component) and `notes.toml` (not a manifest, not even TOML).
struct Scene {
    host: Host,
    plugins: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start_scene() -> Scene {
    let dir = kafka::scratch_dir();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let echo = plugin_bytes("misbehave");
    install(
        &plugins,
        "good",
        "1.0.0",
        &echo,
        Some(&Pipeline::bound_to("good")),
    );
    let not_wasm = b"not a component";
    install(
        &plugins,
        "broken",
        "1.0.0",
        not_wasm,
        Some(&Pipeline::bound_to("broken")),
    );
    install(&plugins, "spare", "1.0.0", not_wasm, None);
    write(&plugins, "notes.toml", b"this is [not toml");
    let config = HostConfig::new(&kafka::brokers())
        .plugin_dir(&plugins)
        .pipeline(
            "by-path",
            Pipeline::bound_to("by-path").plugin(plugin_path("uppercase")),
        )
        .pipeline("uses-good", Pipeline::bound_to("uses-good").plugin("good"))
        .write_in(dir.path());
    let host = Host::start(&config, &dir.path().join("host.log")).await;
    Scene {
        host,
        plugins,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_loaded_by_path_is_listed_with_its_source_hash_and_pipelines() {
    let scene = start_scene().await;
    let by_path = scene.host.plugin("uppercase").await;
    let component = plugin_path("uppercase");
    assert_eq!(by_path["source"], "file", "{by_path}");
    assert_eq!(by_path["component"], component.display().to_string());
    assert_eq!(by_path["version"], "unversioned");
    assert_eq!(
        by_path["sha256"],
        sha256_hex(&std::fs::read(&component).unwrap())
    );
    assert_eq!(by_path["state"], "running");
    assert_eq!(by_path["pipelines"], serde_json::json!(["by-path"]));

    let good = scene.host.plugin("good").await;
    assert_eq!(good["source"], "directory", "{good}");
    assert_eq!(good["version"], "1.0.0");
    assert_eq!(good["sha256"], sha256_hex(&plugin_bytes("misbehave")));
    assert_eq!(good["pipelines"], serde_json::json!(["good", "uses-good"]));
}

// One scenario, read top to bottom: the 80-line bound is for the host.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread")]
async fn readiness_names_each_pipeline_without_a_serving_plugin() {
    let scene = start_scene().await;
    let host = &scene.host;

    // `broken` leaves its pipeline without a plugin; `notes` may declare
    // one, for all the host can tell; `spare` runs nowhere, so its failure
    // leaves nothing unserved.
    let body = host.wait_for_readiness(503).await;
    assert_eq!(body["plugins_loaded"], false, "{body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("pipeline broken is not running: plugin broken has no version serving"),
        "{reason}"
    );
    assert!(
        reason.contains("plugin notes has no version serving and its manifest cannot be read"),
        "{reason}"
    );
    assert!(!reason.contains("spare"), "{reason}");
    let broken = host.plugin("broken").await;
    assert_eq!(broken["state"], "failed", "{broken}");
    assert_eq!(broken["pipelines"], serde_json::json!(["broken"]));
    assert!(broken["last_error"].as_str().unwrap().contains("1.0.0"));
    let spare = host.plugin("spare").await;
    assert_eq!(spare["state"], "failed", "{spare}");
    assert_eq!(spare["pipelines"], serde_json::json!([]));

    // Fixed: ready.
    std::fs::remove_file(scene.plugins.join("notes.toml")).unwrap();
    install(
        &scene.plugins,
        "broken",
        "1.0.1",
        &plugin_bytes("misbehave"),
        Some(&Pipeline::bound_to("broken")),
    );
    assert_eq!(host.reload("broken").await, 200);
    assert_eq!(host.reload("notes").await, 404, "notes.toml is gone");
    let body = host.wait_for_readiness(200).await;
    assert_eq!(body["reason"], Value::Null);
    assert_eq!(body["plugins_loaded"], true);

    // A new version that fails while the old one serves: still ready, and
    // the failure shows in /plugins.
    install(
        &scene.plugins,
        "good",
        "2.0.0",
        b"not a component",
        Some(&Pipeline::bound_to("good")),
    );
    assert_eq!(host.reload("good").await, 422);
    let (status, body) = host.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let good = host.plugin("good").await;
    assert_eq!(good["state"], "running", "{good}");
    assert_eq!(good["version"], "1.0.0");
    assert!(good["last_error"].as_str().unwrap().contains("2.0.0"));

    // A plugin a host-config pipeline names is removed: that pipeline
    // waits for it (the plugin's own pipeline went with it).
    std::fs::remove_file(scene.plugins.join("good.toml")).unwrap();
    let body = host.wait_for_readiness(503).await;
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("pipeline uses-good is not running: plugin good has no version serving"),
        "{reason}"
    );
    assert!(reason.contains("good.toml was removed"), "{reason}");
    assert!(!reason.contains("pipeline good "), "{reason}");
    let good = host.plugin("good").await;
    assert_eq!(good["state"], "stopped", "{good}");
    assert_eq!(good["pipelines"], serde_json::json!(["uses-good"]));
}
