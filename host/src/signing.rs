//! Signed plugins: a detached ed25519 signature over what a plugin is, its
//! component's SHA-256 and its manifest, made with `runnel plugin sign`
//! and checked by a host that trusts some public keys
//! (`[runtime] trusted_plugin_keys`) before it serves a version, whatever
//! its source. Keys are the PEM files OpenSSL writes
//! (`openssl genpkey -algorithm ed25519`), or `runnel plugin keygen`.
//!
//! What is signed is a statement, not the files: the plugin store rewrites
//! a manifest's `component` to the file it materialises, so the statement
//! holds the manifest's settings without `component` (the component is
//! named by its digest instead), as canonical JSON.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Where the signature of a plugin lies: `NAME.sig` beside its manifest
/// `NAME.toml`, or `FILE.wasm.sig` beside a component loaded by path.
pub fn signature_path(signed: &Path) -> PathBuf {
    if signed
        .extension()
        .is_some_and(|extension| extension == "toml")
    {
        signed.with_extension("sig")
    } else {
        let mut path = signed.as_os_str().to_owned();
        path.push(".sig");
        PathBuf::from(path)
    }
}

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an ed25519 {kind} key in PEM ({reason}); make one with \
         `runnel plugin keygen` or `openssl genpkey -algorithm ed25519`"
    )]
    Invalid {
        path: PathBuf,
        kind: &'static str,
        reason: String,
    },
    #[error("cannot generate a key: {0}")]
    Random(getrandom::Error),
}

/// Why a plugin's signature is refused. Users see the text: in the log,
/// as the plugin's `last_error`, in `runnel check`.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error(
        "unsigned: no signature at {0}, and this host serves only plugins signed by one of its \
         trusted keys ([runtime] trusted_plugin_keys); sign it with `runnel plugin sign`"
    )]
    Missing(PathBuf),
    #[error("the signature at {path} is not one: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "the signature at {0} does not verify with any trusted key: the component or manifest \
         changed since it was signed, or another key signed it"
    )]
    Untrusted(PathBuf),
    #[error("the manifest cannot be read for its signature: {0}")]
    Manifest(String),
}

/// The statement a signature covers: the component's digest and the
/// manifest's settings (none for a component loaded by path).
pub fn statement(manifest: Option<&str>, wasm: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let manifest = match manifest {
        Some(text) => {
            let mut table: toml::Table = text
                .parse()
                .map_err(|error: toml::de::Error| SignatureError::Manifest(error.to_string()))?;
            table.remove("component");
            serde_json::to_value(table).map_err(|e| SignatureError::Manifest(e.to_string()))?
        }
        None => serde_json::Value::Null,
    };
    let digest: String = Sha256::digest(wasm)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let statement = serde_json::json!({
        "runnel_plugin_signature": 1,
        "component_sha256": digest,
        "manifest": manifest,
    });
    Ok(statement.to_string().into_bytes())
}

/// The keys a host trusts; empty when it serves unsigned plugins.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<VerifyingKey>,
}

impl TrustedKeys {
    pub fn load(paths: &[PathBuf]) -> Result<Self, KeyError> {
        let keys = paths
            .iter()
            .map(|path| {
                let text = read_key(path)?;
                VerifyingKey::from_public_key_pem(&text).map_err(|error| KeyError::Invalid {
                    path: path.clone(),
                    kind: "public",
                    reason: error.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// Whether plugins must be signed.
    pub fn required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks the signature at `signature` (its file's text: base64)
    /// against the plugin of `manifest` and `wasm`. Passes anything when no
    /// key is trusted.
    pub fn verify(
        &self,
        signature: &Path,
        manifest: Option<&str>,
        wasm: &[u8],
    ) -> Result<(), SignatureError> {
        if !self.required() {
            return Ok(());
        }
        let text = match std::fs::read_to_string(signature) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(SignatureError::Missing(signature.to_owned()));
            }
            Err(error) => {
                return Err(SignatureError::Malformed {
                    path: signature.to_owned(),
                    reason: error.to_string(),
                });
            }
        };
        let malformed = |reason: String| SignatureError::Malformed {
            path: signature.to_owned(),
            reason,
        };
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|error| malformed(format!("not base64: {error}")))?;
        let signature_bytes = Signature::from_slice(&bytes)
            .map_err(|_| malformed(format!("{} bytes, not 64", bytes.len())))?;
        let statement = statement(manifest, wasm)?;
        if self
            .keys
            .iter()
            .any(|key| key.verify_strict(&statement, &signature_bytes).is_ok())
        {
            Ok(())
        } else {
            Err(SignatureError::Untrusted(signature.to_owned()))
        }
    }
}

/// The signature, in base64, of the plugin of `manifest` and `wasm` by the
/// private key in `key`.
pub fn sign(key: &Path, manifest: Option<&str>, wasm: &[u8]) -> anyhow::Result<String> {
    let text = read_key(key)?;
    let key = SigningKey::from_pkcs8_pem(&text).map_err(|error| KeyError::Invalid {
        path: key.to_owned(),
        kind: "private",
        reason: error.to_string(),
    })?;
    let statement = statement(manifest, wasm)?;
    Ok(BASE64.encode(key.sign(&statement).to_bytes()))
}

/// A new key pair, as PEM: the private key (PKCS #8) and the public key.
pub fn generate() -> Result<(String, String), KeyError> {
    let mut seed = [0; 32];
    getrandom::getrandom(&mut seed).map_err(KeyError::Random)?;
    let key = SigningKey::from_bytes(&seed);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an ed25519 key encodes")
        .to_string();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("an ed25519 key encodes");
    Ok((private, public))
}

fn read_key(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
