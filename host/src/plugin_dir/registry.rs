//! The plugins of the plugin directory: what each serves, and how a new
//! version gets there. A version is compiled on a blocking thread and
//! started (`init`) once per pipeline before anything changes; only then is
//! it swapped in, at a batch boundary. Whatever fails on the way leaves the
//! version before it serving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use super::loader::{
    VersionError, VersionFiles, VersionLoader, manifest_path, manifests_in, read_version,
};
use super::manifest::Manifest;
use crate::config::{Config, ResolvedPipeline, is_plugin_name};
use crate::launcher::{LaunchError, PipelineLauncher};
use crate::metrics::Metrics;
use crate::pipeline::ServedPlugin;
use crate::plugins::{
    PluginOrigin, PluginState, PluginStatus, UnservedPipeline, now_rfc3339, sha256_hex,
};
use crate::runtime::{Plugin, PluginEngine};
use crate::signing::TrustedKeys;

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("cannot read the plugin directory {dir}: {source}")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("pipeline {pipeline}: plugin `{plugin}` cannot serve: {reason}")]
    Reference {
        pipeline: String,
        plugin: String,
        reason: String,
    },
}

#[derive(Debug, Error)]
pub enum ReloadError {
    #[error("no plugin named {name} in {dir}")]
    Unknown { name: String, dir: String },
    #[error("{0}")]
    Rejected(String),
}

pub struct PluginRegistry {
    dir: PathBuf,
    loader: VersionLoader,
    launcher: Arc<PipelineLauncher>,
    metrics: Metrics,
    /// One change is applied at a time, whether a notice, a rescan or a
    /// reload request asked for it.
    plugins: tokio::sync::Mutex<BTreeMap<String, Entry>>,
    /// Kept apart so that status and readiness reads never wait for a
    /// load.
    published: Mutex<BTreeMap<String, Published>>,
    /// The plugins the plugin store wrote into the directory: listed with
    /// the store as their origin.
    from_store: Mutex<BTreeSet<String>>,
}

/// What `GET /plugins` and readiness read of one plugin.
struct Published {
    status: PluginStatus,
    /// The pipelines waiting for this plugin to serve a version.
    unserved: Vec<UnservedPipeline>,
}

#[derive(Default)]
struct Entry {
    /// Fingerprint of the files last acted on, whatever came of it:
    /// unchanged files are not loaded again (nor rejected again).
    seen: Option<u64>,
    serving: Option<Serving>,
}

struct Serving {
    version: Arc<str>,
    /// The manifest's pipeline settings, when it has its own pipeline.
    settings: Option<toml::Table>,
    pipelines: Vec<String>,
}

/// What came of looking at one plugin's files.
enum Outcome {
    Unchanged,
    Served,
    Rejected(VersionError),
    Removed,
    Absent,
}

impl PluginRegistry {
    pub fn new(
        dir: PathBuf,
        engine: PluginEngine,
        config: Config,
        references: Vec<ResolvedPipeline>,
        launcher: Arc<PipelineLauncher>,
        metrics: Metrics,
        trusted: TrustedKeys,
    ) -> Self {
        Self {
            dir,
            loader: VersionLoader::new(engine, config, references, trusted),
            launcher,
            metrics,
            plugins: tokio::sync::Mutex::new(BTreeMap::new()),
            published: Mutex::new(BTreeMap::new()),
            from_store: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads what the directory holds. A plugin that fails is logged and
    /// left out; a host-config pipeline whose plugin cannot serve is a
    /// start-up error.
    pub async fn start(&self) -> Result<(), RegistryError> {
        std::fs::read_dir(&self.dir).map_err(|source| RegistryError::ReadDir {
            dir: self.dir.clone(),
            source,
        })?;
        self.sync().await;
        let entries = self.plugins.lock().await;
        for (plugin, pipelines) in self.loader.references() {
            if entries.get(plugin).is_some_and(|e| e.serving.is_some()) {
                continue;
            }
            let reason = self
                .status(plugin)
                .and_then(|status| status.last_error)
                .unwrap_or_else(|| format!("no {plugin}.toml in {}", self.dir.display()));
            return Err(RegistryError::Reference {
                pipeline: pipelines[0].name.clone(),
                plugin: plugin.clone(),
                reason,
            });
        }
        Ok(())
    }

    /// Reads the directory and applies whatever changed since the last
    /// look: new plugins start, changed ones swap, removed ones stop.
    pub async fn sync(&self) {
        let mut entries = self.plugins.lock().await;
        let found = match manifests_in(&self.dir) {
            Ok(found) => found,
            Err(error) => {
                // A network filesystem that hiccups must not stop every
                // plugin: keep what runs and look again later.
                tracing::warn!(dir = %self.dir.display(), %error, "cannot read the plugin directory; keeping what runs");
                return;
            }
        };
        let mut names: BTreeSet<String> = found;
        names.extend(entries.keys().cloned());
        names.extend(self.loader.references().keys().cloned());
        for name in names {
            self.refresh(&mut entries, &name, false).await;
        }
    }

    /// Loads the plugin's files again even if they did not change, and
    /// swaps the result in.
    pub async fn reload(&self, name: &str) -> Result<PluginStatus, ReloadError> {
        let unknown = || ReloadError::Unknown {
            name: name.to_owned(),
            dir: self.dir.display().to_string(),
        };
        if !is_plugin_name(name) {
            return Err(unknown());
        }
        let mut entries = self.plugins.lock().await;
        match self.refresh(&mut entries, name, true).await {
            Outcome::Served | Outcome::Unchanged => self.status(name).ok_or_else(unknown),
            Outcome::Rejected(error) => Err(ReloadError::Rejected(error.to_string())),
            Outcome::Removed | Outcome::Absent => Err(unknown()),
        }
    }

    pub fn statuses(&self) -> Vec<PluginStatus> {
        let published = self.published();
        published
            .values()
            .map(|published| self.with_origin(published.status.clone()))
            .collect()
    }

    pub fn status(&self, name: &str) -> Option<PluginStatus> {
        let status = self.published().get(name)?.status.clone();
        Some(self.with_origin(status))
    }

    /// Says which of the directory's plugins the plugin store wrote there.
    pub fn set_store_plugins(&self, names: BTreeSet<String>) {
        *self.from_store.lock().unwrap_or_else(|e| e.into_inner()) = names;
    }

    fn with_origin(&self, mut status: PluginStatus) -> PluginStatus {
        let from_store = self.from_store.lock().unwrap_or_else(|e| e.into_inner());
        if from_store.contains(&status.name) {
            status.source = PluginOrigin::Store;
        }
        status
    }

    /// The pipelines waiting for a plugin of the directory that serves no
    /// version: its own (its manifest's `[pipeline]`) and the host-config
    /// pipelines naming it while no version of it has loaded, and those
    /// host-config pipelines after it was removed. A plugin whose manifest
    /// is not even TOML counts too: the host cannot tell that no pipeline
    /// waits for it.
    pub fn unserved(&self) -> Vec<UnservedPipeline> {
        self.published()
            .values()
            .flat_map(|published| published.unserved.iter().cloned())
            .collect()
    }

    fn published(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Published>> {
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn refresh(
        &self,
        entries: &mut BTreeMap<String, Entry>,
        name: &str,
        force: bool,
    ) -> Outcome {
        let path = manifest_path(&self.dir, name);
        let Some(found) = read_version(&path, self.loader.trusted()).await else {
            return self.remove(entries, name).await;
        };
        let VersionFiles {
            fingerprint,
            version,
            declares_pipeline,
            files,
        } = found;
        let entry = entries.entry(name.to_owned()).or_default();
        if !force && entry.seen == Some(fingerprint) {
            return Outcome::Unchanged;
        }
        entry.seen = Some(fingerprint);
        let loaded = async {
            let (manifest, wasm) = files?;
            let sha256 = sha256_hex(&wasm);
            let ready = self.prepare(name, &manifest, wasm).await?;
            let same_version = entry
                .serving
                .as_ref()
                .is_some_and(|serving| *serving.version == *manifest.version);
            if same_version && !force {
                tracing::warn!(plugin = name, version = %manifest.version, "plugin files changed but its version did not; outputs of both builds carry the same version");
            }
            self.install(entry, name, manifest, sha256, ready).await
        }
        .await;
        self.metrics.record_plugin_load(name, loaded.is_ok());
        match loaded {
            Ok(()) => Outcome::Served,
            Err(error) => {
                let rejected = Rejected {
                    version: version.as_deref(),
                    declares_pipeline,
                    error: &error,
                };
                self.reject(entry, name, rejected);
                Outcome::Rejected(error)
            }
        }
    }

    /// Compiles the component and starts an instance for each pipeline that
    /// will run it, with that pipeline's configuration: nothing serving is
    /// touched.
    async fn prepare(
        &self,
        name: &str,
        manifest: &Manifest,
        wasm: Vec<u8>,
    ) -> Result<Vec<(ResolvedPipeline, Plugin)>, VersionError> {
        let pipelines = self.loader.pipelines(name, manifest)?;
        for settings in &pipelines {
            for binding in &settings.bindings {
                let live = self.launcher.live().binding(binding);
                if live.is_some_and(|input| input.pipeline.name != settings.name) {
                    // Checked before compiling; the launcher would refuse it.
                    return Err(LaunchError::BindingTaken {
                        pipeline: settings.name.clone(),
                        binding: binding.clone(),
                    }
                    .into());
                }
            }
        }
        self.loader.start(name, wasm, pipelines).await
    }

    /// Puts a prepared version to work: swapped into the pipelines already
    /// running it, started where none runs, and its own pipeline restarted
    /// (drained first) when its settings other than `config` and `limits`
    /// changed.
    async fn install(
        &self,
        entry: &mut Entry,
        name: &str,
        manifest: Manifest,
        sha256: String,
        ready: Vec<(ResolvedPipeline, Plugin)>,
    ) -> Result<(), VersionError> {
        let version: Arc<str> = manifest.version.as_str().into();
        let previous = entry.serving.as_ref();
        let own_settings_changed =
            previous.is_some_and(|previous| previous.settings != manifest.pipeline_settings);
        let mut pipelines = Vec::with_capacity(ready.len());
        for (settings, plugin) in ready {
            let pipeline_name = settings.name.clone();
            let own = manifest.pipeline.is_some() && pipeline_name == name;
            let served = ServedPlugin {
                plugin: Arc::new(plugin),
                version: version.clone(),
            };
            match self.launcher.pipeline(&pipeline_name) {
                Some(pipeline) if !(own && own_settings_changed) => {
                    pipeline.plugin.replace(served);
                }
                running => {
                    if running.is_some() {
                        tracing::info!(plugin = name, pipeline = %pipeline_name, "pipeline settings changed; draining the pipeline to restart it");
                        self.launcher.stop(&pipeline_name).await;
                    }
                    self.launcher.start(settings, served)?;
                }
            }
            pipelines.push(pipeline_name);
        }
        // A pipeline of the previous version that this one no longer has.
        if let Some(previous) = previous {
            for pipeline in previous.pipelines.iter().filter(|p| !pipelines.contains(p)) {
                self.launcher.stop(pipeline).await;
            }
        }
        let previous_version = previous.map(|p| p.version.to_string());
        tracing::info!(
            plugin = name,
            version = %version,
            previous = previous_version.as_deref().unwrap_or("none"),
            pipelines = ?pipelines,
            "plugin version serving"
        );
        let status = PluginStatus {
            name: name.to_owned(),
            source: PluginOrigin::Directory,
            component: Some(manifest.component.display().to_string()),
            version: Some(version.to_string()),
            sha256: Some(sha256),
            state: if pipelines.is_empty() {
                PluginState::Idle
            } else {
                PluginState::Running
            },
            pipelines: pipelines.clone(),
            last_error: None,
            loaded_at: Some(now_rfc3339()),
        };
        self.publish(status, Vec::new());
        entry.serving = Some(Serving {
            version,
            settings: manifest.pipeline_settings,
            pipelines,
        });
        Ok(())
    }

    /// Reports a version that cannot serve. While an older version serves,
    /// nothing else changes; otherwise the plugin is failed, and the
    /// pipelines that would run it wait.
    fn reject(&self, entry: &Entry, name: &str, rejected: Rejected<'_>) {
        let Rejected {
            version,
            declares_pipeline,
            error,
        } = rejected;
        let serving = entry.serving.as_ref().map(|s| s.version.to_string());
        tracing::error!(
            plugin = name,
            version = version.unwrap_or("unknown"),
            serving = serving.as_deref().unwrap_or("none"),
            %error,
            "plugin version rejected"
        );
        let last_error = match version {
            Some(version) => format!("version {version}: {error}"),
            None => error.to_string(),
        };
        let mut status = self
            .status(name)
            .unwrap_or_else(|| PluginStatus::unloaded(name));
        status.last_error = Some(last_error.clone());
        let mut unserved = Vec::new();
        if entry.serving.is_none() {
            status.state = PluginState::Failed;
            status.pipelines = self.pipelines_of(name, declares_pipeline == Some(true));
            unserved = waiting_for(name, &status.pipelines, &last_error);
            if declares_pipeline.is_none() {
                unserved.push(UnservedPipeline {
                    pipeline: None,
                    plugin: name.to_owned(),
                    reason: last_error,
                });
            }
        }
        self.publish(status, unserved);
    }

    /// The plugin's manifest is gone: its pipelines drain, commit and stop.
    async fn remove(&self, entries: &mut BTreeMap<String, Entry>, name: &str) -> Outcome {
        let Some(entry) = entries.remove(name) else {
            return Outcome::Absent;
        };
        let mut status = self.status(name);
        if let Some(serving) = entry.serving {
            let mut drained = true;
            for pipeline in &serving.pipelines {
                drained &= self.launcher.stop(pipeline).await.unwrap_or(true);
            }
            tracing::info!(
                plugin = name,
                version = %serving.version,
                pipelines = ?serving.pipelines,
                drained,
                "plugin removed; its pipelines stopped"
            );
        }
        if let Some(status) = &mut status {
            status.state = PluginState::Stopped;
            // Its own pipeline went with it; host-config pipelines naming
            // it wait for it to come back.
            status.pipelines = self.pipelines_of(name, false);
            status.last_error = None;
            let reason = format!("{name}.toml was removed from {}", self.dir.display());
            let unserved = waiting_for(name, &status.pipelines, &reason);
            self.publish(status.clone(), unserved);
        }
        Outcome::Removed
    }

    /// The pipelines that run plugin `name`: its own, if its manifest has
    /// a `[pipeline]`, and the host-config pipelines that name it.
    fn pipelines_of(&self, name: &str, own: bool) -> Vec<String> {
        let own = own.then(|| name.to_owned());
        let named = self.loader.references().get(name).into_iter().flatten();
        own.into_iter()
            .chain(named.map(|pipeline| pipeline.name.clone()))
            .collect()
    }

    fn publish(&self, status: PluginStatus, unserved: Vec<UnservedPipeline>) {
        self.published()
            .insert(status.name.clone(), Published { status, unserved });
    }
}

/// `pipelines`, waiting for `plugin` to serve a version, for `reason`.
fn waiting_for(plugin: &str, pipelines: &[String], reason: &str) -> Vec<UnservedPipeline> {
    pipelines
        .iter()
        .map(|pipeline| UnservedPipeline {
            pipeline: Some(pipeline.clone()),
            plugin: plugin.to_owned(),
            reason: reason.to_owned(),
        })
        .collect()
}

/// A version that cannot serve, and what is known of it.
struct Rejected<'a> {
    /// The manifest's version, when the manifest parsed.
    version: Option<&'a str>,
    /// Whether its manifest has a `[pipeline]`; None when the manifest is
    /// not TOML.
    declares_pipeline: Option<bool>,
    error: &'a VersionError,
}
