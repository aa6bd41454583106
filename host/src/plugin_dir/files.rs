//! Reading one plugin's files from the directory: its manifest and the
//! component it names, as they are at one look.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use super::manifest::{Manifest, ManifestError};
use super::registry::VersionError;

/// A plugin's files as one look at the directory found them.
pub(super) struct VersionFiles {
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

/// Reads the manifest at `path` and the component it names; `None` when
/// there is no manifest.
pub(super) async fn read_version(path: &Path) -> Option<VersionFiles> {
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
    let manifest = text.and_then(|text| {
        let manifest = Manifest::parse(&text, path)?;
        manifest.check_file_name(path)?;
        Ok(manifest)
    });
    let version = manifest.as_ref().ok().map(|m| m.version.clone());
    let files = match manifest {
        Ok(manifest) => match tokio::fs::read(&manifest.component).await {
            Ok(wasm) => Ok((manifest, wasm)),
            Err(reason) => Err(VersionError::ReadComponent {
                path: manifest.component.clone(),
                reason,
            }),
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
