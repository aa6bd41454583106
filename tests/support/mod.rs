//! Shared by the end-to-end tests: builds the example plugins once per test
//! binary and hands out their paths.

#![allow(dead_code)]

pub mod host;
pub mod kafka;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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
