//! Signed plugins on a host that trusts one key: a version signed with it
//! serves; an unsigned one, one signed by a key the host does not trust
//! (made by OpenSSL, as operators make theirs) and one whose manifest was
//! changed after signing are refused with the reason in `/plugins`, while
//! the version serving keeps serving. A component loaded by path needs a
//! signature too: without one `runnel check` (which loads plugins as a
//! starting host does) refuses it.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::cli::runnel;
use support::config::{HostConfig, Pipeline, plugin_manifest};
use support::host::HostProcess;
use support::kafka::{self, TopicReader};
use support::plugin_dir::PluginDir;
use support::{plugin_bytes, plugin_path, wait_until};

const PATIENCE: Duration = Duration::from_secs(60);

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Signs the manifest `name.toml` and its component in `staging` with
/// `key`, and returns the signature's text.
fn sign(staging: &Path, name: &str, key: &Path) -> String {
    let manifest = staging.join(format!("{name}.toml"));
    let signed = runnel(
        &["plugin", "sign", text(&manifest), "--key", text(key)],
        &[],
    );
    assert_eq!(signed.code, 0, "{signed:?}");
    std::fs::read_to_string(staging.join(format!("{name}.sig"))).unwrap()
}

/// Writes version `version` of `upper` to `staging`, as a team builds it
/// before shipping: its component and manifest.
fn stage(staging: &Path, version: &str, pipeline: &Pipeline) {
    std::fs::write(staging.join("upper.wasm"), plugin_bytes("uppercase")).unwrap();
    let manifest = plugin_manifest("upper", version, Some("upper.wasm"), Some(pipeline));
    std::fs::write(staging.join("upper.toml"), manifest).unwrap();
}

/// Ships what `stage` wrote, with `signature` (or none), to the plugin
/// directory: component and signature first, the manifest last.
fn ship(staging: &Path, plugins: &PluginDir, signature: Option<&str>) {
    plugins.write(
        "upper.wasm",
        &std::fs::read(staging.join("upper.wasm")).unwrap(),
    );
    match signature {
        Some(signature) => plugins.write("upper.sig", signature.as_bytes()),
        None => {
            let _ = std::fs::remove_file(plugins.path.join("upper.sig"));
        }
    }
    let manifest = std::fs::read(staging.join("upper.toml")).unwrap();
    plugins.write("upper.toml", &manifest);
}

/// The plugin's entry in `/plugins`, once `done` holds for it.
async fn status(host: &HostProcess, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_until(
        what,
        PATIENCE,
        async || {
            let (_, body) = host.http_get("/plugins").await;
            let plugins: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            plugins["plugins"]
                .as_array()
                .and_then(|all| all.iter().find(|p| p["name"] == "upper").cloned())
                .unwrap_or(Value::Null)
        },
        |plugin| done(plugin),
    )
    .await
}

fn refused_with(reason: &'static str) -> impl Fn(&Value) -> bool {
    move |plugin| {
        plugin["version"] == "1.0.0"
            && plugin["state"] == "running"
            && plugin["last_error"]
                .as_str()
                .is_some_and(|error| error.contains(reason))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_plugins_signed_by_a_trusted_key_are_served() {
    let dir = kafka::scratch_dir();
    let keygen = runnel(
        &["plugin", "keygen", text(&dir.path().join("platform"))],
        &[],
    );
    assert_eq!(keygen.code, 0, "{keygen:?}");
    let platform_key = dir.path().join("platform.key");
    let other_key = dir.path().join("other.key");
    let openssl = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out", text(&other_key)])
        .status()
        .expect("openssl runs");
    assert!(openssl.success());

    let input = kafka::unique_topic("signed-in");
    let output = kafka::unique_topic("signed-out");
    kafka::create_topic(&input, 1);
    kafka::create_topic(&output, 1);
    let pipeline = Pipeline::reading(&input).output(&output).batch(1, "1ms");
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let plugins = PluginDir::new(dir.path());
    stage(&staging, "1.0.0", &pipeline);
    ship(
        &staging,
        &plugins,
        Some(&sign(&staging, "upper", &platform_key)),
    );

    let config = HostConfig::new(&kafka::brokers())
        .plugin_dir(&plugins.path)
        .settings("[runtime]\ntrusted_plugin_keys = [\"platform.pub\"]")
        .write_in(dir.path());
    let host = HostProcess::start(&config, &dir.path().join("host.log"));
    status(&host, "version 1.0.0 to serve", |p| p["state"] == "running").await;

    stage(&staging, "2.0.0", &pipeline);
    ship(&staging, &plugins, None);
    status(
        &host,
        "an unsigned version refused",
        refused_with("unsigned"),
    )
    .await;
    ship(
        &staging,
        &plugins,
        Some(&sign(&staging, "upper", &other_key)),
    );
    let untrusted = "does not verify with any trusted key";
    status(
        &host,
        "another key's signature refused",
        refused_with(untrusted),
    )
    .await;
    let signature = sign(&staging, "upper", &platform_key);
    let widened = pipeline.clone().set("output", "payments");
    stage(&staging, "2.0.0", &widened);
    ship(&staging, &plugins, Some(&signature));
    status(&host, "a changed manifest refused", refused_with(untrusted)).await;

    // Version 1.0.0 served all along.
    kafka::produce(&input, [("k".to_owned(), "still served".to_owned())]);
    let mut outputs = TopicReader::new(&output, 1, "read_uncommitted");
    assert!(outputs.read_until(PATIENCE, |records| !records.is_empty()));
    assert_eq!(outputs.records[0].value, "STILL SERVED");
    assert_eq!(
        outputs.records[0].header_values("runnel-plugin-version"),
        ["1.0.0"]
    );

    stage(&staging, "2.0.0", &pipeline);
    ship(
        &staging,
        &plugins,
        Some(&sign(&staging, "upper", &platform_key)),
    );
    status(&host, "the signed 2.0.0 to serve", |p| {
        p["version"] == "2.0.0"
    })
    .await;
    host.assert_running_then_stop(Duration::from_secs(30)).await;
}

#[test]
fn a_component_loaded_by_path_is_refused_until_it_is_signed() {
    let dir = kafka::scratch_dir();
    let keygen = runnel(
        &["plugin", "keygen", text(&dir.path().join("platform"))],
        &[],
    );
    assert_eq!(keygen.code, 0, "{keygen:?}");
    let component = dir.path().join("upper.wasm");
    std::fs::copy(plugin_path("uppercase"), &component).unwrap();
    let config = HostConfig::new(&kafka::brokers())
        .settings("[runtime]\ntrusted_plugin_keys = [\"platform.pub\"]")
        .pipeline(
            "upper",
            Pipeline::reading("in").output("out").plugin(&component),
        )
        .write_in(dir.path());
    let check = runnel(&["check", "--config", text(&config)], &[]);
    assert_ne!(check.code, 0, "{check:?}");
    assert!(
        check.stdout.contains("unsigned") || check.stderr.contains("unsigned"),
        "{check:?}"
    );

    let signed = runnel(
        &[
            "plugin",
            "sign",
            text(&component),
            "--key",
            text(&dir.path().join("platform.key")),
        ],
        &[],
    );
    assert_eq!(signed.code, 0, "{signed:?}");
    assert!(dir.path().join("upper.wasm.sig").exists());
    let check = runnel(&["check", "--config", text(&config)], &[]);
    assert_eq!(check.code, 0, "{check:?}");
}
