//! What `runnel plugin deploy`, `list`, `remove` and `rollback` do to the
//! store. Each reads the topic to its end first, to know the plugin's
//! record until now; two commands changing one plugin at the same moment
//! both write, and the later record wins.

use std::path::Path;

use super::StoreError;
use super::records::{DesiredState, PluginRecord, RecordKey, StoreState, VersionRecord, chunks_of};
use super::topic::{StoreTopic, StoreWriter};
use crate::plugin_dir::check::{self, ValidateRequest};
use crate::plugin_dir::manifest::{Manifest, ManifestError};
use crate::plugins::now_rfc3339;
use crate::runtime::read_component;
use crate::signing::signature_path;

/// What to deploy: a component and its manifest, or a manifest naming its
/// component.
#[derive(Debug, Clone, Copy)]
pub struct DeployRequest<'a> {
    pub file: &'a Path,
    pub manifest: Option<&'a Path>,
}

/// What a deploy did.
#[derive(Debug)]
pub enum Deployed {
    /// The plugin's new record, written.
    New(PluginRecord),
    /// The store's current version was this one already: nothing written.
    Unchanged(PluginRecord),
}

/// Validates the plugin as `runnel plugin validate` does; if it passes,
/// writes its component's chunks (unless the store holds them already),
/// then its plugin record, and waits for the brokers to acknowledge each.
/// The chunks of the version that stops being the previous one are then
/// deleted, unless another record keeps them.
pub async fn deploy(
    topic: &StoreTopic,
    request: DeployRequest<'_>,
) -> Result<Deployed, StoreError> {
    let DeployRequest { file, manifest } = request;
    let (manifest_path, component_path) = match manifest {
        Some(manifest) => (manifest, Some(file)),
        None if file.extension().is_some_and(|e| e == "toml") => (file, None),
        None => return Err(StoreError::NoManifest),
    };
    check::validate(ValidateRequest {
        file,
        manifest,
        config: Vec::new(),
    })
    .await
    .map_err(StoreError::Invalid)?;
    let text = std::fs::read_to_string(manifest_path).map_err(|source| ManifestError::Read {
        path: manifest_path.to_owned(),
        source,
    })?;
    let parsed = Manifest::parse(&text, manifest_path)?;
    let wasm = read_component(component_path.unwrap_or(&parsed.component)).await?;
    let name = parsed.name;
    let mut version = VersionRecord::of(&parsed.version, &text, &wasm, now_rfc3339());
    // Hosts that trust keys check it; others ignore it.
    version.signature = std::fs::read_to_string(signature_path(manifest_path))
        .ok()
        .map(|signature| signature.trim().to_owned());

    topic.ensure().await?;
    let mut state = topic.read().await?.unwrap_or_default();
    let before = state.plugins.get(&name).cloned();
    if let Some(before) = &before
        && before.state == DesiredState::Deployed
        && same_version(&before.current, &version)
    {
        return Ok(Deployed::Unchanged(before.clone()));
    }
    let record = PluginRecord::deployed(&name, version, before.as_ref(), now_rfc3339());
    let writer = StoreWriter::new(topic)?;
    if !state.has_component(&record.current) {
        let sha256 = &record.current.sha256;
        let chunks = (chunks_of(&wasm).enumerate())
            .map(|(index, chunk)| {
                let key = RecordKey::Chunk {
                    sha256: sha256.clone(),
                    index: index as u32,
                };
                (key, Some(chunk))
            })
            .collect();
        writer.write(chunks).await?;
    }
    write_record(&writer, &record).await?;

    let dropped = before.and_then(|before| before.previous);
    state.plugins.insert(name.clone(), record.clone());
    if let Some(dropped) = dropped {
        let keys = state.unreferenced_chunks(&dropped.sha256);
        let tombstones = keys.into_iter().map(|key| (key, None)).collect();
        if let Err(error) = writer.write(tombstones).await {
            tracing::warn!(plugin = %name, version = %dropped.version, %error, "deployed, but the chunks of the version no longer kept could not be deleted");
        }
    }
    Ok(Deployed::New(record))
}

/// Whether a deploy of `new` over `current` would change nothing.
fn same_version(current: &VersionRecord, new: &VersionRecord) -> bool {
    current.version == new.version
        && current.sha256 == new.sha256
        && current.manifest == new.manifest
        && current.signature == new.signature
}

/// Marks plugin `name` removed: every host drains and stops it.
pub async fn remove(topic: &StoreTopic, name: &str) -> Result<PluginRecord, StoreError> {
    change(topic, name, |record| Ok(record.removed(now_rfc3339())?)).await
}

/// Makes plugin `name`'s previous version current again, and the current
/// one previous.
pub async fn rollback(topic: &StoreTopic, name: &str) -> Result<PluginRecord, StoreError> {
    change(topic, name, |record| Ok(record.rolled_back(now_rfc3339())?)).await
}

/// Writes what `change` makes of plugin `name`'s record.
async fn change(
    topic: &StoreTopic,
    name: &str,
    change: impl FnOnce(&PluginRecord) -> Result<PluginRecord, StoreError>,
) -> Result<PluginRecord, StoreError> {
    let state = topic.read().await?.unwrap_or_default();
    let record = state.plugins.get(name).ok_or_else(|| StoreError::Unknown {
        name: name.to_owned(),
        topic: topic.name.clone(),
    })?;
    let changed = change(record)?;
    write_record(&StoreWriter::new(topic)?, &changed).await?;
    Ok(changed)
}

async fn write_record(writer: &StoreWriter, record: &PluginRecord) -> Result<(), StoreError> {
    let json = serde_json::to_vec(record).expect("a plugin record serializes");
    let key = RecordKey::Plugin(record.name.clone());
    writer.write(vec![(key, Some(&json[..]))]).await
}

/// The store: what the cluster should run and what each host serves. None
/// when its topic does not exist.
pub async fn list(topic: &StoreTopic) -> Result<Option<StoreState>, StoreError> {
    topic.read().await
}
