//! A plugin directory a test writes to as a team would: each file written
//! to a hidden temporary name, then renamed into place.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::{Pipeline, plugin_manifest};

pub struct PluginDir {
    pub path: PathBuf,
}

impl PluginDir {
    pub fn new(parent: &Path) -> Self {
        let path = parent.join("plugins");
        std::fs::create_dir(&path).unwrap();
        Self { path }
    }

    pub fn write(&self, file: &str, bytes: &[u8]) {
        let temporary = self.path.join(format!(".{file}.tmp"));
        std::fs::write(&temporary, bytes).unwrap();
        std::fs::rename(&temporary, self.path.join(file)).unwrap();
    }

    /// Installs `version` of plugin `name` with its component in a file of
    /// its own. Returns when the manifest landed, in ms since the epoch.
    pub fn install(
        &self,
        name: &str,
        version: &str,
        wasm: &[u8],
        pipeline: Option<&Pipeline>,
    ) -> i64 {
        let component = format!("{name}-{version}.wasm");
        self.write(&component, wasm);
        self.write_manifest(name, version, Some(&component), pipeline);
        now_millis()
    }

    pub fn write_manifest(
        &self,
        name: &str,
        version: &str,
        component: Option<&str>,
        pipeline: Option<&Pipeline>,
    ) {
        let manifest = plugin_manifest(name, version, component, pipeline);
        self.write(&format!("{name}.toml"), manifest.as_bytes());
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.path.join(file)).unwrap();
    }
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
