//! The records of the plugin store's topic, and what a reader makes of
//! them: the latest record of each key, read in order, is the store.
//!
//! Three kinds of record, told apart by their key (the format is described
//! in `docs/plugin-store.md`):
//!
//! - `chunk/SHA256/INDEX`: a piece of a component, at most [`CHUNK_SIZE`]
//!   bytes, the value as it is;
//! - `plugin/NAME`: what the cluster should run of plugin `NAME`, a
//!   [`PluginRecord`] in JSON;
//! - `status/HOST/NAME`: what host `HOST` serves of plugin `NAME`, a
//!   [`StatusRecord`] in JSON.
//!
//! A null value (a tombstone) deletes its key, as compaction will.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::is_plugin_name;
use crate::plugins::{PluginState, sha256_hex};

/// The largest chunk of a component: half of the broker's default largest
/// record (`message.max.bytes`, 1 MiB), so that a chunk with its key and
/// headers always fits.
pub const CHUNK_SIZE: usize = 512 * 1024;

/// What a record is, from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Plugin(String),
    Chunk { sha256: String, index: u32 },
    Status { host: String, plugin: String },
}

impl RecordKey {
    /// None for a key the store does not write.
    pub fn parse(key: &str) -> Option<Self> {
        let parts: Vec<&str> = key.split('/').collect();
        match parts[..] {
            ["plugin", name] if is_plugin_name(name) => Some(Self::Plugin(name.to_owned())),
            ["chunk", sha256, index] if is_sha256(sha256) => Some(Self::Chunk {
                sha256: sha256.to_owned(),
                index: index.parse().ok()?,
            }),
            ["status", host, plugin] if !host.is_empty() && is_plugin_name(plugin) => {
                Some(Self::Status {
                    host: host.to_owned(),
                    plugin: plugin.to_owned(),
                })
            }
            _ => None,
        }
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plugin(name) => write!(f, "plugin/{name}"),
            Self::Chunk { sha256, index } => write!(f, "chunk/{sha256}/{index}"),
            Self::Status { host, plugin } => write!(f, "status/{host}/{plugin}"),
        }
    }
}

fn is_sha256(text: &str) -> bool {
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    text.len() == 64 && text.bytes().all(hex)
}

/// One version of a plugin, as deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The manifest's version.
    pub version: String,
    /// SHA-256 of the component, in lowercase hex: its chunks' key.
    pub sha256: String,
    /// The component's size in bytes.
    pub size: u64,
    /// How many chunks hold it (`chunk/SHA256/0` up to `chunks - 1`).
    pub chunks: u32,
    /// The manifest's text as deployed. A host writes it beside the
    /// component with `component` naming the file it wrote.
    pub manifest: String,
    /// When it was deployed (RFC 3339).
    pub deployed_at: String,
    /// Its signature (`runnel plugin sign`), in base64, if it was deployed
    /// with one; a host written it beside the manifest as `NAME.sig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl VersionRecord {
    /// The version of `manifest` whose component is `wasm`.
    pub fn of(version: &str, manifest: &str, wasm: &[u8], deployed_at: String) -> Self {
        Self {
            version: version.to_owned(),
            sha256: sha256_hex(wasm),
            size: wasm.len() as u64,
            chunks: wasm.len().div_ceil(CHUNK_SIZE) as u32,
            manifest: manifest.to_owned(),
            deployed_at,
            signature: None,
        }
    }
}

/// Whether the cluster should run a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    /// Every host serves `current`.
    Deployed,
    /// No host runs it: its pipelines drain and stop.
    Removed,
}

/// What the cluster should run of one plugin: the commit point of a
/// deploy, a removal or a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    pub name: String,
    pub state: DesiredState,
    /// The version to serve; once removed, the version that was served.
    pub current: VersionRecord,
    /// The version before it, which a rollback serves again.
    #[serde(default)]
    pub previous: Option<VersionRecord>,
    /// When this record was written (RFC 3339).
    pub updated_at: String,
}

/// Why a change to a plugin cannot be made.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChangeError {
    #[error("plugin {0} was removed from the store; deploy it again")]
    Removed(String),
    #[error("plugin {0} has no previous version to roll back to")]
    NoPrevious(String),
}

impl PluginRecord {
    /// `version` deployed over `before` (the plugin's record until now, if
    /// any), whose current version becomes the previous one; unless it is
    /// the same build (a removed plugin deployed again, a manifest
    /// changed), which keeps the previous version it had.
    pub fn deployed(
        name: &str,
        version: VersionRecord,
        before: Option<&PluginRecord>,
        now: String,
    ) -> Self {
        let previous = before.and_then(|before| {
            let current = &before.current;
            let same = current.version == version.version && current.sha256 == version.sha256;
            if same {
                before.previous.clone()
            } else {
                Some(current.clone())
            }
        });
        Self {
            name: name.to_owned(),
            state: DesiredState::Deployed,
            current: version,
            previous,
            updated_at: now,
        }
    }

    /// The plugin removed: its versions are kept, for a later look.
    pub fn removed(&self, now: String) -> Result<Self, ChangeError> {
        if self.state == DesiredState::Removed {
            return Err(ChangeError::Removed(self.name.clone()));
        }
        Ok(Self {
            state: DesiredState::Removed,
            updated_at: now,
            ..self.clone()
        })
    }

    /// The previous version made current again, the current one previous.
    pub fn rolled_back(&self, now: String) -> Result<Self, ChangeError> {
        if self.state == DesiredState::Removed {
            return Err(ChangeError::Removed(self.name.clone()));
        }
        let Some(previous) = &self.previous else {
            return Err(ChangeError::NoPrevious(self.name.clone()));
        };
        Ok(Self {
            name: self.name.clone(),
            state: DesiredState::Deployed,
            current: previous.clone(),
            previous: Some(self.current.clone()),
            updated_at: now,
        })
    }

    /// Whether the record keeps the component `sha256` (as current or
    /// previous version): its chunks must stay.
    pub fn references(&self, sha256: &str) -> bool {
        self.current.sha256 == sha256 || self.previous.as_ref().is_some_and(|p| p.sha256 == sha256)
    }
}

/// What one host serves of one plugin, from its plugin registry: the data
/// of `GET /plugins`, with the host's name and the time it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// The host: its `kafka.instance_id`, or its hostname and process id.
    pub host: String,
    pub plugin: String,
    /// The version serving (or last served); null when none has loaded.
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub state: PluginState,
    pub pipelines: Vec<String>,
    /// Why the latest version the host was given did not serve.
    pub last_error: Option<String>,
    pub loaded_at: Option<String>,
    pub updated_at: String,
}

/// A record the store cannot read. Readers skip it.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error("a record with key {0:?} is not a plugin store record")]
    UnknownKey(String),
    #[error("record {key} is not valid: {reason}")]
    Invalid { key: String, reason: String },
}

/// Why the component of a version cannot be put together.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AssemblyError {
    #[error("chunk {index} of {chunks} of component {sha256} is not in the store")]
    MissingChunk {
        sha256: String,
        index: u32,
        chunks: u32,
    },
    #[error("the chunks of component {sha256} add up to {found} bytes, not {size}")]
    Size {
        sha256: String,
        size: u64,
        found: u64,
    },
    #[error("the chunks of component {expected} have SHA-256 {found}")]
    Digest { expected: String, found: String },
}

/// The store as read so far: the latest record of each key.
#[derive(Debug, Default)]
pub struct StoreState {
    pub plugins: BTreeMap<String, PluginRecord>,
    /// By host, then plugin.
    pub statuses: BTreeMap<String, BTreeMap<String, StatusRecord>>,
    /// Chunks by component and index.
    chunks: HashMap<String, BTreeMap<u32, Vec<u8>>>,
    /// Whether chunks keep their bytes (a host needs them) or only count
    /// (a command that writes to the store needs to know which exist).
    keep_chunk_bytes: bool,
}

impl StoreState {
    /// An empty store; `keep_chunk_bytes` for a reader that assembles
    /// components.
    pub fn new(keep_chunk_bytes: bool) -> Self {
        Self {
            keep_chunk_bytes,
            ..Self::default()
        }
    }

    /// Takes in the next record of the topic. A record that cannot be read
    /// changes nothing.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), RecordError> {
        let text = String::from_utf8_lossy(key);
        let parsed =
            RecordKey::parse(&text).ok_or_else(|| RecordError::UnknownKey(text.to_string()))?;
        let invalid = |reason: String| RecordError::Invalid {
            key: text.to_string(),
            reason,
        };
        match (parsed, value) {
            (RecordKey::Chunk { sha256, index }, Some(bytes)) => {
                let bytes = if self.keep_chunk_bytes {
                    bytes.to_vec()
                } else {
                    Vec::new()
                };
                self.chunks.entry(sha256).or_default().insert(index, bytes);
            }
            (RecordKey::Chunk { sha256, index }, None) => {
                if let Some(chunks) = self.chunks.get_mut(&sha256) {
                    chunks.remove(&index);
                    if chunks.is_empty() {
                        self.chunks.remove(&sha256);
                    }
                }
            }
            (RecordKey::Plugin(name), Some(json)) => {
                let record: PluginRecord =
                    serde_json::from_slice(json).map_err(|e| invalid(e.to_string()))?;
                if record.name != name {
                    return Err(invalid(format!("it names plugin {}", record.name)));
                }
                self.plugins.insert(name, record);
            }
            (RecordKey::Plugin(name), None) => {
                self.plugins.remove(&name);
            }
            (RecordKey::Status { host, plugin }, Some(json)) => {
                let record: StatusRecord =
                    serde_json::from_slice(json).map_err(|e| invalid(e.to_string()))?;
                self.statuses
                    .entry(host)
                    .or_default()
                    .insert(plugin, record);
            }
            (RecordKey::Status { host, plugin }, None) => {
                if let Some(plugins) = self.statuses.get_mut(&host) {
                    plugins.remove(&plugin);
                    if plugins.is_empty() {
                        self.statuses.remove(&host);
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether every chunk of `version`'s component is in the store.
    pub fn has_component(&self, version: &VersionRecord) -> bool {
        self.chunks
            .get(&version.sha256)
            .is_some_and(|chunks| (0..version.chunks).all(|index| chunks.contains_key(&index)))
    }

    /// The component of `version`, put together from its chunks and checked
    /// against its size and digest. Needs a store that keeps chunk bytes.
    pub fn component(&self, version: &VersionRecord) -> Result<Vec<u8>, AssemblyError> {
        let sha256 = &version.sha256;
        let chunks = self.chunks.get(sha256);
        let mut wasm = Vec::with_capacity(version.size as usize);
        for index in 0..version.chunks {
            let chunk = chunks
                .and_then(|chunks| chunks.get(&index))
                .ok_or_else(|| AssemblyError::MissingChunk {
                    sha256: sha256.clone(),
                    index,
                    chunks: version.chunks,
                })?;
            wasm.extend_from_slice(chunk);
        }
        if wasm.len() as u64 != version.size {
            return Err(AssemblyError::Size {
                sha256: sha256.clone(),
                size: version.size,
                found: wasm.len() as u64,
            });
        }
        let found = sha256_hex(&wasm);
        if found != *sha256 {
            return Err(AssemblyError::Digest {
                expected: sha256.clone(),
                found,
            });
        }
        Ok(wasm)
    }

    /// The keys of the chunks of component `sha256` that no plugin record
    /// keeps any more (none while one does).
    pub fn unreferenced_chunks(&self, sha256: &str) -> Vec<RecordKey> {
        if self
            .plugins
            .values()
            .any(|record| record.references(sha256))
        {
            return Vec::new();
        }
        let indexes = self.chunks.get(sha256).into_iter().flat_map(|c| c.keys());
        indexes
            .map(|&index| RecordKey::Chunk {
                sha256: sha256.to_owned(),
                index,
            })
            .collect()
    }
}

/// `wasm` cut into the chunks the store holds it in.
pub fn chunks_of(wasm: &[u8]) -> impl Iterator<Item = &[u8]> {
    wasm.chunks(CHUNK_SIZE)
}

#[cfg(test)]
mod tests;
