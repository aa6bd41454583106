//! Every plugin the host runs, wherever it came from: component files that
//! host-config pipelines name (`plugin = "path.wasm"`), loaded once at
//! start, and the plugin directory's, which come and go. What `GET /plugins`
//! lists, and what readiness asks of plugins.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pipeline::UNVERSIONED;
use crate::plugin_dir::PluginRegistry;

/// What `GET /plugins` shows of one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub name: String,
    /// Where the host found it.
    pub source: PluginOrigin,
    /// The component file of the version serving (or last served).
    pub component: Option<String>,
    /// The version serving (or, once stopped, last served): the manifest's
    /// for a directory plugin, `unversioned` for a file; null when no
    /// version has loaded yet.
    pub version: Option<String>,
    /// SHA-256 of that version's component, in hex: it tells two builds
    /// apart when their version does not, and a file has no version.
    pub sha256: Option<String>,
    pub state: PluginState,
    /// The pipelines running it; for a plugin that serves no version, the
    /// pipelines waiting for one.
    pub pipelines: Vec<String>,
    /// Why the latest version found in the directory was rejected; null
    /// once a version loads.
    pub last_error: Option<String>,
    /// When the version serving was loaded (RFC 3339).
    pub loaded_at: Option<String>,
}

impl PluginStatus {
    /// A directory plugin no version of which has loaded.
    pub fn unloaded(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            source: PluginOrigin::Directory,
            component: None,
            version: None,
            sha256: None,
            state: PluginState::Failed,
            pipelines: Vec::new(),
            last_error: None,
            loaded_at: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginOrigin {
    /// A manifest in the plugin directory (`[plugins] dir`).
    Directory,
    /// A version deployed to the cluster's plugin store
    /// (`[plugins] store_topic`), written into the plugin directory by
    /// the host.
    Store,
    /// A component file a host-config pipeline names by path.
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    /// Serving in one or more pipelines.
    Running,
    /// Loaded, but no pipeline runs it: its manifest has no `[pipeline]`
    /// and no host-config pipeline names it.
    Idle,
    /// No version could be loaded; nothing serves.
    Failed,
    /// Removed from the directory; its pipelines drained and stopped.
    Stopped,
}

/// A pipeline the host is configured to run that no plugin version serves:
/// what makes the host not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnservedPipeline {
    /// None when the plugin's manifest cannot be read, so the host cannot
    /// tell which pipeline it declares.
    pub pipeline: Option<String>,
    pub plugin: String,
    /// Why the plugin serves no version.
    pub reason: String,
}

impl fmt::Display for UnservedPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            pipeline,
            plugin,
            reason,
        } = self;
        match pipeline {
            Some(pipeline) => write!(
                f,
                "pipeline {pipeline} is not running: plugin {plugin} has no version serving ({reason})"
            ),
            None => write!(
                f,
                "plugin {plugin} has no version serving and its manifest cannot be read, so \
                 the pipeline it may declare is not running ({reason})"
            ),
        }
    }
}

/// The plugins of this host, from both sources.
#[derive(Default)]
pub struct HostPlugins {
    /// One per component file, whichever pipelines load it.
    files: Vec<PluginStatus>,
    directory: Option<Arc<PluginRegistry>>,
}

impl HostPlugins {
    /// Records that `pipeline` runs the component at `path`, loaded as
    /// plugin `name`.
    pub fn add_file(&mut self, path: &Path, name: &str, wasm: &[u8], pipeline: &str) {
        let component = path.display().to_string();
        let sha256 = sha256_hex(wasm);
        let same_file = self.files.iter_mut().find(|status| {
            status.component.as_ref() == Some(&component) && status.sha256.as_ref() == Some(&sha256)
        });
        if let Some(status) = same_file {
            status.pipelines.push(pipeline.to_owned());
            return;
        }
        self.files.push(PluginStatus {
            name: name.to_owned(),
            source: PluginOrigin::File,
            component: Some(component),
            version: Some(UNVERSIONED.to_owned()),
            sha256: Some(sha256),
            state: PluginState::Running,
            pipelines: vec![pipeline.to_owned()],
            last_error: None,
            loaded_at: Some(now_rfc3339()),
        });
    }

    pub fn set_directory(&mut self, registry: Arc<PluginRegistry>) {
        self.directory = Some(registry);
    }

    /// The plugin directory, when the host has one.
    pub fn directory(&self) -> Option<&Arc<PluginRegistry>> {
        self.directory.as_ref()
    }

    /// Every plugin: the files first, then the directory's.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        let mut statuses = self.files.clone();
        if let Some(registry) = &self.directory {
            statuses.extend(registry.statuses());
        }
        statuses
    }

    /// The pipelines no plugin version serves. Only the directory's can be
    /// among them: a file that fails to load stops the host from starting.
    pub fn unserved(&self) -> Vec<UnservedPipeline> {
        self.directory
            .as_ref()
            .map(|registry| registry.unserved())
            .unwrap_or_default()
    }
}

/// The SHA-256 of `bytes`, in lowercase hex as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_the_one_sha256sum_prints() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn pipelines_loading_the_same_file_share_one_entry() {
        let mut plugins = HostPlugins::default();
        let path = Path::new("plugins/upper.wasm");
        plugins.add_file(path, "upper", b"one", "orders");
        plugins.add_file(path, "upper", b"one", "billing");
        plugins.add_file(Path::new("other/upper.wasm"), "upper", b"two", "audit");
        let statuses = plugins.statuses();
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses[0].pipelines, ["orders", "billing"]);
        assert_eq!(statuses[0].source, PluginOrigin::File);
        assert_eq!(statuses[0].version.as_deref(), Some(UNVERSIONED));
        assert_eq!(statuses[1].pipelines, ["audit"]);
        assert!(plugins.unserved().is_empty());
    }
}
