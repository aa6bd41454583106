//! `runnel plugin validate`: the checks a host runs on a version before it
//! serves it, from the command line, so a team can check a build before
//! shipping it.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::manifest::{Manifest, ManifestError};
use crate::config::{Config, ConfigError, PipelineConfig, ResolvedPipeline};
use crate::pipeline::UNVERSIONED;
use crate::runtime::{
    ComponentFileError, EngineError, EngineSettings, LoadError, PluginEngine, PluginLimits,
    read_component,
};

/// One thing wrong with a plugin under check.
#[derive(Debug, Error)]
pub enum CheckError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The manifest's pipeline does not resolve.
    #[error(transparent)]
    Pipeline(#[from] ConfigError),
    #[error(transparent)]
    Component(#[from] ComponentFileError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Checks `file` (a component, or a manifest naming one) against the
/// `plugin` world and, when there is a manifest, against it: the manifest
/// parses, its pipeline resolves, and the component's `init` accepts the
/// pipeline's configuration. Returns `NAME VERSION`, or every error found.
pub async fn validate(file: &Path, manifest: Option<&Path>) -> Result<String, Vec<CheckError>> {
    let mut errors = Vec::new();
    let (manifest_path, component_path) = match manifest {
        Some(manifest) => (Some(manifest), Some(file.to_owned())),
        None if file.extension().is_some_and(|e| e == "toml") => (Some(file), None),
        None => (None, Some(file.to_owned())),
    };
    let manifest = match manifest_path.map(read_manifest) {
        Some(Ok(manifest)) => Some(manifest),
        Some(Err(error)) => {
            errors.push(error);
            None
        }
        None => None,
    };
    let Some(component) = component_path.or_else(|| manifest.as_ref().map(|m| m.component.clone()))
    else {
        return Err(errors);
    };
    let name = match &manifest {
        Some(manifest) => manifest.name.clone(),
        None => stem(&component),
    };
    let version = manifest
        .as_ref()
        .map_or(UNVERSIONED.to_owned(), |m| m.version.clone());
    let (config, limits) = match manifest.as_ref().and_then(|m| m.pipeline.as_ref()) {
        Some(pipeline) => match resolve(&name, pipeline) {
            Ok(settings) => (settings.plugin_config, settings.limits),
            Err(error) => {
                errors.push(error);
                (Vec::new(), PluginLimits::default())
            }
        },
        None => (Vec::new(), PluginLimits::default()),
    };
    if let Err(error) = load(&name, &component, config, limits).await {
        errors.push(error);
    }
    if errors.is_empty() {
        Ok(format!("{name} {version}"))
    } else {
        Err(errors)
    }
}

fn read_manifest(path: &Path) -> Result<Manifest, CheckError> {
    let manifest = Manifest::read(path)?;
    manifest.check_file_name(path)?;
    Ok(manifest)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".to_owned())
}

/// The manifest's pipeline as a host with default settings resolves it.
fn resolve(name: &str, pipeline: &PipelineConfig) -> Result<ResolvedPipeline, CheckError> {
    let host = Config::parse("[plugins]\ndir = \".\"\n", &[])?;
    Ok(host.resolve_pipeline(name, pipeline)?)
}

async fn load(
    name: &str,
    component: &PathBuf,
    config: Vec<(String, String)>,
    limits: PluginLimits,
) -> Result<(), CheckError> {
    let wasm = read_component(component).await?;
    let engine = PluginEngine::new(EngineSettings::default())?;
    let plugin = engine.load(name, &wasm, config, limits)?;
    Ok(plugin.validate().await?)
}
