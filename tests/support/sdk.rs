//! The example handlers of every language's SDK, as `scripts/sdks.sh` builds
//! them, beside the Rust ones of `plugins/`; and what the tests that run
//! them side by side share.

use std::path::PathBuf;
use std::time::Duration;

use super::host::HostProcess;
use super::kafka::{Record, TopicReader};
use super::{plugin_path, repo_root};

/// The SDKs besides Rust's, by folder name under `sdk/`.
pub const LANGUAGES: [&str; 4] = ["js", "python", "go", "c"];

/// Rust, then every other language.
pub fn every_language() -> impl Iterator<Item = &'static str> {
    std::iter::once("rust").chain(LANGUAGES)
}

/// The component of `handler` in `language`: a plugin of `plugins/` for
/// Rust (built on first use), an SDK example for the others.
pub fn example(language: &str, handler: &str) -> PathBuf {
    if language == "rust" {
        plugin_path(handler)
    } else {
        sdk_example(language, handler)
    }
}

/// Where `scripts/sdks.sh` builds the examples of `language`.
fn sdk_example(language: &str, handler: &str) -> PathBuf {
    let target = std::env::var_os("RUNNEL_PLUGINS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("plugins/target"));
    let path = target
        .join("sdk")
        .join(language)
        .join(format!("{}.wasm", handler.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is not built: run `sdk/{language}/build.sh --examples {}` (scripts/test.sh does)",
        path.display(),
        path.parent().unwrap().display()
    );
    path
}

/// Waits until the host serves. It compiles every component before it
/// does: the JavaScript and Python ones (12 and 18 MB, an engine each) take
/// 15 to 60 s apiece on two busy cores.
pub async fn wait_until_compiled(host: &HostProcess) {
    host.wait_for_log("http listening", Duration::from_secs(900))
        .await;
}

/// The committed records of a one-partition topic once it holds `count`,
/// read a little longer: anything more would be a duplicate or a stray.
pub fn read_all(topic: &str, count: usize) -> Vec<Record> {
    let mut reader = TopicReader::new(topic, 1, "read_committed");
    reader.read_until(Duration::from_secs(180), |records| records.len() >= count);
    reader.poll_for(Duration::from_millis(500));
    reader.records
}
