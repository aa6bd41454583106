//! A plugin's manifest, `NAME.toml`: which component, which version, and the
//! pipeline it runs.
//!
//! ```toml
//! name = "orders"
//! version = "1.4.0"
//! component = "orders-1.4.0.wasm"   # default: orders.wasm
//!
//! [pipeline]                        # the fields of a [pipelines.NAME] table
//! inputs = ["orders"]
//! output = "orders-enriched"
//! batch_size = 100
//! [pipeline.config]
//! region = "eu"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::config::{PipelineConfig, is_plugin_name};

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("manifest {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The manifest file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    /// The plugin's name: letters, digits, `-` and `_`. In a plugin
    /// directory the manifest's file is named after it (`NAME.toml`).
    name: String,
    /// The version, stamped on every output as `runnel-plugin-version`. Any
    /// text of up to 64 visible ASCII characters; the host only compares
    /// versions for equality and serves whatever the directory holds, so a
    /// rollback is writing the older version back.
    version: String,
    /// The component file, relative to the manifest; `NAME.wasm` when
    /// omitted. Naming a file per version (`orders-1.4.0.wasm`) makes an
    /// update atomic: the new manifest only ever points at a complete file.
    component: Option<PathBuf>,
    /// The pipeline the plugin runs, named after the plugin: the fields of a
    /// `[pipelines.NAME]` table of the host config, without `plugin`.
    /// Without it, the plugin runs only in host-config pipelines that name
    /// it (`plugin = "NAME"`).
    pipeline: Option<toml::Table>,
}

/// A parsed and checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// The component's path.
    pub component: PathBuf,
    /// The plugin's own pipeline, its `plugin` naming this plugin.
    pub pipeline: Option<PipelineConfig>,
    /// The `[pipeline]` table without `config` and `limits`. When a new
    /// version changes only those, it swaps in at a batch boundary;
    /// otherwise its pipeline drains and restarts with the new settings.
    pub pipeline_settings: Option<toml::Table>,
}

/// The longest version accepted.
const MAX_VERSION_LEN: usize = 64;

impl Manifest {
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of the manifest at `path` (which relative component
    /// paths are resolved against).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            path: path.to_owned(),
            message,
        };
        let file: ManifestFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if !is_plugin_name(&file.name) {
            return Err(invalid(format!(
                "`name = \"{}\"`: a plugin name is letters, digits, `-` and `_`",
                file.name
            )));
        }
        let version = &file.version;
        if version.is_empty()
            || version.len() > MAX_VERSION_LEN
            || !version.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(invalid(format!(
                "`version = \"{version}\"`: a version is 1 to {MAX_VERSION_LEN} visible ASCII \
                 characters, without spaces"
            )));
        }
        let pipeline = match &file.pipeline {
            None => None,
            Some(table) => {
                if table.contains_key("plugin") {
                    return Err(invalid(
                        "`[pipeline]` must not set `plugin`: the manifest's `component` is the \
                         plugin"
                            .into(),
                    ));
                }
                let mut pipeline: PipelineConfig = toml::Value::Table(table.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| invalid(format!("in `[pipeline]`: {e}")))?;
                pipeline.plugin = PathBuf::from(&file.name);
                Some(pipeline)
            }
        };
        let pipeline_settings = file.pipeline.map(|mut table| {
            table.remove("config");
            table.remove("limits");
            table
        });
        let base = path.parent().unwrap_or(Path::new("."));
        let component = base.join(
            file.component
                .unwrap_or_else(|| PathBuf::from(format!("{}.wasm", file.name))),
        );
        Ok(Self {
            name: file.name,
            version: file.version,
            component,
            pipeline,
            pipeline_settings,
        })
    }
}

impl Manifest {
    /// In a plugin directory a manifest is found by its plugin's name, so
    /// its file must be named after the plugin.
    pub fn check_file_name(&self, path: &Path) -> Result<(), ManifestError> {
        let stem = path.file_stem().and_then(|stem| stem.to_str());
        if stem == Some(self.name.as_str()) {
            return Ok(());
        }
        Err(ManifestError::Invalid {
            path: path.to_owned(),
            message: format!(
                "it names plugin `{name}`, so its file must be named {name}.toml",
                name = self.name
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("/plugins/orders.toml"))
    }

    #[test]
    fn a_full_manifest_gives_its_pipeline_and_component() {
        let manifest = parse(
            r#"
            name = "orders"
            version = "1.4.0"
            component = "orders-1.4.0.wasm"
            [pipeline]
            inputs = ["orders"]
            output = "orders-out"
            batch_size = 100
            batch_timeout = "20ms"
            [pipeline.config]
            region = "eu"
            [pipeline.limits]
            call_timeout = "2s"
            "#,
        )
        .unwrap();
        assert_eq!(manifest.name, "orders");
        assert_eq!(manifest.version, "1.4.0");
        assert_eq!(
            manifest.component,
            Path::new("/plugins/orders-1.4.0.wasm"),
            "relative to the manifest"
        );
        let pipeline = manifest.pipeline.unwrap();
        assert_eq!(pipeline.inputs, ["orders"]);
        assert_eq!(pipeline.batch_size, Some(100));
        assert_eq!(pipeline.config["region"], "eu");
        assert_eq!(pipeline.plugin, Path::new("orders"), "names itself");
        let settings = manifest.pipeline_settings.unwrap();
        assert!(settings.contains_key("batch_size"));
        assert!(!settings.contains_key("config") && !settings.contains_key("limits"));
    }

    #[test]
    fn the_component_defaults_to_the_plugin_name_and_the_pipeline_is_optional() {
        let manifest = parse("name = \"orders\"\nversion = \"7\"\n").unwrap();
        assert_eq!(manifest.component, Path::new("/plugins/orders.wasm"));
        assert!(manifest.pipeline.is_none());
    }

    #[test]
    fn the_file_is_named_after_the_plugin() {
        let manifest = parse("name = \"order\"\nversion = \"1\"\n").unwrap();
        let error = manifest
            .check_file_name(Path::new("/plugins/orders.toml"))
            .unwrap_err();
        assert!(error.to_string().contains("order.toml"), "{error}");
        assert!(
            manifest
                .check_file_name(Path::new("/plugins/order.toml"))
                .is_ok()
        );
    }

    #[test]
    fn mistakes_are_one_clear_sentence() {
        let cases = [
            ("version = \"1\"\n", "missing field `name`"),
            ("name = \"orders\"\n", "missing field `version`"),
            (
                "name = \"orders\"\nversion = \"1\"\nversoin = \"2\"\n",
                "unknown field `versoin`",
            ),
            ("name = \"or ders\"\nversion = \"1\"\n", "a plugin name is"),
            (
                "name = \"orders\"\nversion = \"1 beta\"\n",
                "without spaces",
            ),
            (
                "name = \"orders\"\nversion = \"1\"\n[pipeline]\ninputs = [\"a\"]\nbatch_sise = 3\n",
                "unknown field `batch_sise`",
            ),
            (
                "name = \"orders\"\nversion = \"1\"\n[pipeline]\nplugin = \"x.wasm\"\n",
                "must not set `plugin`",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(
                error.contains(expected) && error.contains("/plugins/orders.toml"),
                "{text:?} gave {error}"
            );
        }
    }
}
