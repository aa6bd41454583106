//! `runnel plugin validate`: the checks a host runs on a version before it
//! serves it, from the command line, so a team can check a build before
//! shipping it.

use std::path::Path;

use thiserror::Error;

use super::manifest::{Manifest, ManifestError};
use crate::config::{Config, ConfigError, PipelineConfig};
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

/// What to check.
#[derive(Debug)]
pub struct ValidateRequest<'a> {
    /// The component (`.wasm`), or a manifest (`.toml`) naming one.
    pub file: &'a Path,
    /// The plugin's manifest, when `file` is its component.
    pub manifest: Option<&'a Path>,
    /// Settings for `init`, over the manifest's `[pipeline.config]`.
    pub config: Vec<(String, String)>,
}

/// Checks a component (or a manifest naming one) against the `plugin`
/// world and, when there is a manifest, against it: the manifest parses,
/// its pipeline resolves, and the component's `init` accepts the pipeline's
/// configuration with the request's settings over it. Returns
/// `NAME VERSION`, or every error found.
pub async fn validate(request: ValidateRequest<'_>) -> Result<String, Vec<CheckError>> {
    let mut errors = Vec::new();
    let file = request.file;
    let (manifest_path, component_path) = match request.manifest {
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
    let settings = match manifest.and_then(|m| m.pipeline) {
        Some(pipeline) => match resolve(&name, pipeline, request.config) {
            Ok(settings) => Some(settings),
            Err(error) => {
                errors.push(error);
                None
            }
        },
        None => Some(InitSettings {
            config: request.config,
            limits: PluginLimits::default(),
        }),
    };
    if let Err(error) = load(&name, &component, settings).await {
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

/// What the plugin's `init` is given and the limits it runs under.
struct InitSettings {
    config: Vec<(String, String)>,
    limits: PluginLimits,
}

/// The manifest's pipeline, with `config` over its configuration, as a
/// host with default settings resolves it.
fn resolve(
    name: &str,
    mut pipeline: PipelineConfig,
    config: Vec<(String, String)>,
) -> Result<InitSettings, CheckError> {
    pipeline.config.extend(config);
    let host = Config::parse("[plugins]\ndir = \".\"\n", &[])?;
    let resolved = host.resolve_pipeline(name, &pipeline)?;
    Ok(InitSettings {
        config: resolved.plugin_config,
        limits: resolved.limits,
    })
}

/// Compiles the component and, given its settings, starts it. Without
/// them (its pipeline did not resolve) only the component is checked: an
/// `init` without its settings would report errors that are not there.
async fn load(
    name: &str,
    component: &Path,
    settings: Option<InitSettings>,
) -> Result<(), CheckError> {
    let wasm = read_component(component).await?;
    let engine = PluginEngine::new(EngineSettings::default())?;
    match settings {
        Some(InitSettings { config, limits }) => {
            let plugin = engine.load(name, &wasm, config, limits)?;
            plugin.validate().await?;
        }
        None => {
            engine.compile(name, &wasm, false)?;
        }
    }
    Ok(())
}
