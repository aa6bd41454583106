//! `runnel dev`, the README's first command: it runs on an embedded cluster,
//! so these tests need no broker.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::plugin_path;

/// Long enough for the embedded cluster to start and a few samples to pass
/// through; a demo that fails must fail well inside it.
const DEMO_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `runnel dev ARGS` in `folder` and returns its output, or panics when
/// it has not exited within [`DEMO_TIMEOUT`].
fn run_dev(folder: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runnel"));
    command
        .arg("dev")
        .args(args)
        .current_dir(folder)
        .env_remove("RUNNEL_PLUGINS_TARGET_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("starting runnel dev");
    let started = Instant::now();
    while child.try_wait().expect("polling runnel dev").is_none() {
        if started.elapsed() > DEMO_TIMEOUT {
            child.kill().expect("killing runnel dev");
            let output = child.wait_with_output().expect("reading runnel dev");
            panic!(
                "runnel dev {args:?} did not exit within {DEMO_TIMEOUT:?}; stdout: {}; stderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("reading runnel dev")
}

#[test]
fn a_missing_plugin_fails_the_demo_at_once_naming_the_file() {
    let folder = tempfile::tempdir().unwrap();
    let output = run_dev(
        folder.path(),
        &["--plugin", "missing.wasm", "--exit-after-samples"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("plugin file missing.wasm not found"),
        "stderr: {stderr}"
    );
}

#[test]
fn a_plugin_the_host_cannot_load_ends_the_demo_with_the_hosts_error() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("broken.wasm"),
        b"\0asm\x0d\0\x01\0 truncated",
    )
    .unwrap();
    let output = run_dev(
        folder.path(),
        &["--plugin", "broken.wasm", "--exit-after-samples"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("pipeline demo"),
        "the host's own error is shown: {stderr}"
    );
}

#[test]
fn the_demo_finds_the_example_plugin_from_any_folder() {
    let uppercase = plugin_path("uppercase");
    // plugin_path is TARGET/wasm32-wasip2/release/uppercase.wasm.
    let plugins_target = uppercase.ancestors().nth(3).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let output = run_dev(
        elsewhere.path(),
        &["--samples", "3", "--exit-after-samples"],
        &[("RUNNEL_PLUGINS_TARGET_DIR", plugins_target)],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("value=HELLO FROM RUNNEL, MESSAGE 0"),
        "stdout: {stdout}"
    );
    assert!(
        stdout.contains("all 3 sample outputs seen"),
        "stdout: {stdout}"
    );
}
