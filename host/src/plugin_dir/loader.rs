//! Loading one version of a directory plugin: its manifest and component
//! read, the pipelines that would run it resolved, the component compiled
//! and started (`init`) once per pipeline. Nothing serving is touched: the
//! registry swaps a loaded version in, and `runnel check` loads every
//! plugin to find those that would fail.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::manifest::{Manifest, ManifestError};
use crate::config::{Config, ConfigError, PluginSource, ResolvedPipeline, is_plugin_name};
use crate::launcher::LaunchError;
use crate::runtime::{ComponentFileError, LoadError, Plugin, PluginEngine, read_component};
use crate::signing::{SignatureError, TrustedKeys, signature_path};

/// Why a version found in the plugin directory cannot serve. Users see its
/// text: in the log, as the plugin's `last_error`, in a reload's answer and
/// in `runnel check`.
#[derive(Debug, Error)]
pub enum VersionError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Component(#[from] ComponentFileError),
    #[error("the host config already has a pipeline named {0}: rename the plugin or that pipeline")]
    PipelineNameTaken(String),
    /// The manifest's pipeline does not resolve.
    #[error(transparent)]
    Pipeline(#[from] ConfigError),
    #[error("compiling plugin {plugin} failed: {reason}")]
    CompileTask {
        plugin: String,
        reason: tokio::task::JoinError,
    },
    #[error(transparent)]
    Compile(#[from] LoadError),
    /// `init` refused a pipeline's configuration, or failed.
    #[error("pipeline {pipeline}: {reason}")]
    Start { pipeline: String, reason: LoadError },
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// Loads versions of the plugins of one host's directory.
pub struct VersionLoader {
    engine: PluginEngine,
    /// Host-wide settings that manifest pipelines are resolved with.
    config: Config,
    /// Host-config pipelines naming a plugin of the directory, by plugin.
    references: BTreeMap<String, Vec<ResolvedPipeline>>,
    /// Whose signatures a version needs, if anyone's.
    trusted: TrustedKeys,
}

impl VersionLoader {
    /// `references` are the host-config pipelines; those naming a plugin of
    /// the directory run it too.
    pub fn new(
        engine: PluginEngine,
        config: Config,
        references: Vec<ResolvedPipeline>,
        trusted: TrustedKeys,
    ) -> Self {
        let mut by_plugin: BTreeMap<String, Vec<ResolvedPipeline>> = BTreeMap::new();
        for pipeline in references {
            if let PluginSource::Directory(plugin) = &pipeline.plugin {
                by_plugin.entry(plugin.clone()).or_default().push(pipeline);
            }
        }
        Self {
            engine,
            config,
            references: by_plugin,
            trusted,
        }
    }

    /// Whose signatures a version needs, if anyone's.
    pub fn trusted(&self) -> &TrustedKeys {
        &self.trusted
    }

    /// Host-config pipelines naming a plugin of the directory, by plugin.
    pub fn references(&self) -> &BTreeMap<String, Vec<ResolvedPipeline>> {
        &self.references
    }

    /// The pipelines that would run the plugin `name` of `manifest`: its
    /// own, then the host-config pipelines that name it.
    pub fn pipelines(
        &self,
        name: &str,
        manifest: &Manifest,
    ) -> Result<Vec<ResolvedPipeline>, VersionError> {
        let mut pipelines = Vec::new();
        if let Some(pipeline) = &manifest.pipeline {
            if self.config.pipelines.contains_key(name) {
                return Err(VersionError::PipelineNameTaken(name.to_owned()));
            }
            pipelines.push(self.config.resolve_pipeline(name, pipeline)?);
        }
        pipelines.extend(self.references.get(name).into_iter().flatten().cloned());
        Ok(pipelines)
    }

    /// Compiles the component (on a blocking thread) and starts an instance
    /// for each of `pipelines`, with that pipeline's configuration.
    pub async fn start(
        &self,
        name: &str,
        wasm: Vec<u8>,
        pipelines: Vec<ResolvedPipeline>,
    ) -> Result<Vec<(ResolvedPipeline, Plugin)>, VersionError> {
        let engine = self.engine.clone();
        let plugin = name.to_owned();
        let fuel_budget = pipelines
            .iter()
            .any(|pipeline| pipeline.limits.fuel_per_call.is_some());
        let compiled =
            tokio::task::spawn_blocking(move || engine.compile(&plugin, &wasm, fuel_budget))
                .await
                .map_err(|reason| VersionError::CompileTask {
                    plugin: name.to_owned(),
                    reason,
                })??;
        let mut ready = Vec::with_capacity(pipelines.len());
        for settings in pipelines {
            let in_pipeline = |reason| VersionError::Start {
                pipeline: settings.name.clone(),
                reason,
            };
            let plugin = compiled
                .configure(settings.plugin_config.clone(), settings.limits.clone())
                .map_err(in_pipeline)?;
            plugin.validate().await.map_err(in_pipeline)?;
            ready.push((settings, plugin));
        }
        Ok(ready)
    }
}

/// The plugin names that have a manifest in `dir`. Hidden and temporary
/// files (`.orders.toml`, `orders.toml.tmp`) are not manifests.
pub fn manifests_in(dir: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|extension| extension != "toml") {
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|stem| stem.to_str())
            && is_plugin_name(stem)
        {
            names.insert(stem.to_owned());
        }
    }
    Ok(names)
}

/// The manifest of plugin `name` in `dir`.
pub fn manifest_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.toml"))
}

/// A plugin's files as one look at the directory found them.
pub struct VersionFiles {
    /// Of the manifest's text and the component's bytes, or of why either
    /// could not be read: unchanged files are not acted on again.
    pub fingerprint: u64,
    /// The manifest's version, once the manifest parsed.
    pub version: Option<String>,
    /// Whether the manifest has a `[pipeline]` table, even one that is not
    /// valid; None when the manifest is not TOML at all, or unreadable.
    pub declares_pipeline: Option<bool>,
    pub files: Result<(Manifest, Vec<u8>), VersionError>,
}

/// Reads the manifest at `path` and the component it names, and checks
/// their signature when `trusted` wants one; `None` when there is no
/// manifest.
pub async fn read_version(path: &Path, trusted: &TrustedKeys) -> Option<VersionFiles> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(source) => Err(VersionError::from(ManifestError::Read {
            path: path.to_owned(),
            source,
        })),
    };
    let mut fingerprint = DefaultHasher::new();
    text.as_ref()
        .map_err(ToString::to_string)
        .hash(&mut fingerprint);
    let declares_pipeline = text.as_ref().ok().and_then(|text| {
        let table = text.parse::<toml::Table>().ok()?;
        Some(table.contains_key("pipeline"))
    });
    let (text, manifest) = match text {
        Ok(text) => {
            let manifest = Manifest::parse(&text, path).and_then(|manifest| {
                manifest.check_file_name(path)?;
                Ok(manifest)
            });
            (text, manifest.map_err(VersionError::from))
        }
        Err(error) => (String::new(), Err(error)),
    };
    let version = manifest.as_ref().ok().map(|m| m.version.clone());
    let signature = signature_path(path);
    // A signature added or replaced is a change to act on.
    std::fs::read(&signature).ok().hash(&mut fingerprint);
    let files = match manifest {
        Ok(manifest) => match read_component(&manifest.component).await {
            Ok(wasm) => match trusted.verify(&signature, Some(&text), &wasm) {
                Ok(()) => Ok((manifest, wasm)),
                Err(error) => Err(error.into()),
            },
            Err(error) => Err(error.into()),
        },
        Err(error) => Err(error),
    };
    files
        .as_ref()
        .map(|(_, wasm)| wasm)
        .map_err(ToString::to_string)
        .hash(&mut fingerprint);
    Some(VersionFiles {
        fingerprint: fingerprint.finish(),
        version,
        declares_pipeline,
        files,
    })
}
