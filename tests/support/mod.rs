//! Shared by the end-to-end tests: builds the example plugins once per test
//! binary and hands out their paths, and waits for what a test expects.

#![allow(dead_code)]

pub mod cli;
pub mod config;
pub mod daprd;
pub mod host;
pub mod kafka;
pub mod plugin_dir;
pub mod sdk;
pub mod secured;

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often [`wait_until`] looks again. A look may create a Kafka client
/// or read a whole host log; the conditions awaited take seconds to come
/// true, and ten looks a second see them soon enough.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Observes the state of something every [`POLL_INTERVAL`] until `done`
/// holds for it, and returns that state. Past `timeout` it panics with
/// `what` was awaited (as "the host to exit") and the last state observed.
pub async fn wait_until<State: Debug>(
    what: &str,
    timeout: Duration,
    mut observe: impl AsyncFnMut() -> State,
    mut done: impl FnMut(&State) -> bool,
) -> State {
    let started = Instant::now();
    loop {
        let state = observe().await;
        if done(&state) {
            return state;
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}; last observed: {state:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A 100-byte value that carries its message number, for tests that check
/// every message arrives once and in order.
pub fn numbered_value(index: usize) -> String {
    let head = format!("message-{index:07}-");
    format!("{head}{}", "x".repeat(100 - head.len()))
}

/// The message number a [`numbered_value`] carries, whatever its case.
pub fn number_of(value: &str) -> usize {
    value["message-".len().."message-".len() + 7]
        .parse()
        .unwrap_or_else(|_| panic!("unexpected value {value}"))
}

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Builds the plugins workspace for wasm32-wasip2 (once per process) and
/// returns the path of the named plugin's component.
pub fn plugin_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let out_dir = BUILT.get_or_init(build_plugins);
    let path = out_dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "plugin {name} was not built at {}",
        path.display()
    );
    path
}

pub fn plugin_bytes(name: &str) -> Vec<u8> {
    std::fs::read(plugin_path(name)).expect("reading a built plugin")
}

fn build_plugins() -> PathBuf {
    let plugins = repo_root().join("plugins");
    let target_dir = std::env::var_os("RUNNEL_PLUGINS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| plugins.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Cargo reads plugins/.cargo/config.toml (the wasm target) from the
    // working directory, and a separate target directory keeps this build
    // clear of the outer cargo's lock.
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .current_dir(&plugins)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("running cargo to build the plugins");
    assert!(
        status.success(),
        "building the plugins failed; is the wasm32-wasip2 target installed? \
         (rustup target add wasm32-wasip2)"
    );
    target_dir.join("wasm32-wasip2").join("release")
}
