//! The store's plugins written into a host's plugin directory the way a
//! deployment to a directory should be: each file under a temporary name
//! renamed into place, component first and manifest last, so the registry
//! never reads a manifest naming a half-written component.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::records::VersionRecord;

/// What the store has written into one plugin directory.
pub struct Materialiser {
    dir: PathBuf,
    written: BTreeMap<String, Written>,
    /// Component files of replaced or removed versions, deleted once the
    /// registry has read the directory again.
    stale: Vec<PathBuf>,
}

/// One plugin's files as written.
struct Written {
    version: VersionRecord,
    component: PathBuf,
}

impl Materialiser {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            written: BTreeMap::new(),
            stale: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory holds `version` of plugin `name`.
    pub fn holds(&self, name: &str, version: &VersionRecord) -> bool {
        self.written
            .get(name)
            .is_some_and(|written| written.version == *version)
    }

    /// The plugins written and not removed since.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.written.keys()
    }

    /// Writes `version` of plugin `name`, whose component is `wasm`: the
    /// component as `NAME-SHA256.wasm` (its digest's first 16 digits), its
    /// signature as `NAME.sig` (or none), then the version's manifest as
    /// `NAME.toml`, its `component` naming that file.
    pub fn write(&mut self, name: &str, version: &VersionRecord, wasm: &[u8]) -> io::Result<()> {
        let component = format!("{name}-{}.wasm", &version.sha256[..16]);
        let manifest = manifest_naming(&version.manifest, &component);
        write_atomically(&self.dir.join(&component), wasm)?;
        let signature = self.dir.join(format!("{name}.sig"));
        match &version.signature {
            Some(text) => write_atomically(&signature, text.as_bytes())?,
            None => {
                remove_if_present(&signature)?;
            }
        }
        write_atomically(&self.dir.join(format!("{name}.toml")), manifest.as_bytes())?;
        let component = self.dir.join(component);
        let replaced = self.written.insert(
            name.to_owned(),
            Written {
                version: version.clone(),
                component: component.clone(),
            },
        );
        if let Some(replaced) = replaced
            && replaced.component != component
        {
            self.stale.push(replaced.component);
        }
        Ok(())
    }

    /// Deletes plugin `name`'s manifest, if there is one: the registry
    /// drains and stops its pipelines. Returns whether there was one.
    pub fn remove(&mut self, name: &str) -> io::Result<bool> {
        let removed = remove_if_present(&self.dir.join(format!("{name}.toml")))?;
        remove_if_present(&self.dir.join(format!("{name}.sig")))?;
        if let Some(written) = self.written.remove(name) {
            self.stale.push(written.component);
        }
        Ok(removed)
    }

    /// Deletes the component files no manifest names any more. Call it
    /// after the registry has read the directory since they were replaced.
    pub fn clean_up(&mut self) {
        let in_use: Vec<&PathBuf> = self.written.values().map(|w| &w.component).collect();
        for path in self.stale.drain(..) {
            if in_use.contains(&&path) {
                continue;
            }
            if let Err(error) = std::fs::remove_file(&path)
                && error.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), %error, "cannot delete a replaced component file");
            }
        }
    }
}

/// The manifest `text` with `component` naming `file`. A manifest that is
/// not TOML is written as it is: the registry rejects it, saying why.
fn manifest_naming(text: &str, file: &str) -> String {
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return text.to_owned();
    };
    table.insert("component".into(), file.into());
    toml::to_string(&table).unwrap_or_else(|_| text.to_owned())
}

/// Deletes `path`; returns whether there was a file to delete.
fn remove_if_present(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Writes `bytes` to a hidden temporary file beside `path`, then renames it
/// to `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin_dir::manifest::Manifest;

    fn version(label: &str, wasm: &[u8]) -> VersionRecord {
        let manifest = format!(
            "name = \"orders\"\nversion = \"{label}\"\ncomponent = \"elsewhere.wasm\"\n\
             [pipeline]\ninputs = [\"in\"]\n"
        );
        VersionRecord::of(label, &manifest, wasm, "t".into())
    }

    #[test]
    fn a_version_is_written_as_a_manifest_naming_its_component() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Materialiser::new(dir.path().to_owned());
        let one = version("1", b"first component");
        files.write("orders", &one, b"first component").unwrap();
        assert!(files.holds("orders", &one));
        let manifest_path = dir.path().join("orders.toml");
        let manifest = Manifest::read(&manifest_path).unwrap();
        assert_eq!(manifest.version, "1");
        assert_eq!(manifest.pipeline.unwrap().inputs, ["in"]);
        assert_eq!(
            std::fs::read(&manifest.component).unwrap(),
            b"first component"
        );

        // A new version: the old component goes once cleaned up.
        let two = version("2", b"second component");
        files.write("orders", &two, b"second component").unwrap();
        assert!(!files.holds("orders", &one));
        assert!(
            manifest.component.exists(),
            "kept until the registry moved on"
        );
        files.clean_up();
        assert!(!manifest.component.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "a manifest and its component: {names:?}");

        assert!(files.remove("orders").unwrap());
        files.clean_up();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(files.names().count(), 0);
        assert!(!files.remove("orders").unwrap(), "nothing left to remove");
    }

    /// The store's path for a signed plugin: the manifest is rewritten to
    /// name the file the component was written to, and the signature
    /// still holds for it; a version deployed without one leaves none.
    #[tokio::test]
    async fn a_signed_version_is_written_with_a_signature_that_verifies() {
        use crate::plugin_dir::loader::read_version;
        use crate::signing::{self, TrustedKeys};
        let dir = tempfile::tempdir().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let (private, public) = signing::generate().unwrap();
        std::fs::write(keys.path().join("k.key"), private).unwrap();
        std::fs::write(keys.path().join("k.pub"), public).unwrap();
        let trusted = TrustedKeys::load(&[keys.path().join("k.pub")]).unwrap();
        let component = wat::parse_str("(component)").unwrap();
        let wasm = component.as_slice();
        let mut signed = version("1", wasm);
        let signature = signing::sign(&keys.path().join("k.key"), Some(&signed.manifest), wasm);
        signed.signature = Some(signature.unwrap());

        let mut files = Materialiser::new(dir.path().to_owned());
        files.write("orders", &signed, wasm).unwrap();
        let manifest = dir.path().join("orders.toml");
        let found = read_version(&manifest, &trusted).await.unwrap();
        assert!(found.files.is_ok(), "{:?}", found.files.err());

        files.write("orders", &version("2", wasm), wasm).unwrap();
        assert!(!dir.path().join("orders.sig").exists());
        let found = read_version(&manifest, &trusted).await.unwrap();
        let refusal = found.files.expect_err("unsigned").to_string();
        assert!(refusal.starts_with("unsigned"), "{refusal}");
    }

    #[test]
    fn a_manifest_that_is_not_toml_is_written_as_it_is() {
        assert_eq!(manifest_naming("not [toml", "x.wasm"), "not [toml");
    }
}
