//! TLS for the HTTP server (`http.tls_cert_file`, `http.tls_key_file`):
//! rustls with the ring provider, HTTP/2 and HTTP/1.1 offered by ALPN.
//! The files are read once, at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} file {path}: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("the TLS {what} file {path} holds no PEM {what}: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: rustls::pki_types::pem::Error,
    },
    #[error(
        "the TLS certificate {cert} and key {key} do not make a server configuration: {reason}"
    )]
    Config {
        cert: PathBuf,
        key: PathBuf,
        reason: rustls::Error,
    },
}

/// A server configuration from a PEM certificate chain (the server's
/// certificate first, then any intermediates) and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|reason| TlsError::Read {
            what,
            path: path.to_owned(),
            reason,
        })
    };
    let chain = CertificateDer::pem_slice_iter(&read("certificate", cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error("certificate", cert))?;
    if chain.is_empty() {
        return Err(pem_error("certificate", cert)(
            rustls::pki_types::pem::Error::NoItemsFound,
        ));
    }
    let private_key =
        PrivateKeyDer::from_pem_slice(&read("key", key)?).map_err(pem_error("key", key))?;
    let invalid = |reason| TlsError::Config {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(invalid)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Turns a PEM error of the `what` file `path` into a [`TlsError`].
fn pem_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError + 'a {
    move |reason| TlsError::Pem {
        what,
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_makes_a_configuration_and_bad_files_say_which() {
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
        let config = server_config(&cert, &key).unwrap();
        assert_eq!(config.alpn_protocols[1], b"http/1.1");

        let missing = dir.path().join("missing.pem");
        let error = server_config(&missing, &key).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "cannot read the TLS certificate file {}",
                missing.display()
            )),
            "{error}"
        );
        let error = server_config(&key, &key).unwrap_err().to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        let error = server_config(&cert, &cert).unwrap_err().to_string();
        assert!(error.contains("holds no PEM key"), "{error}");
        let other = rcgen::generate_simple_self_signed(vec!["other".into()]).unwrap();
        std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
        let error = server_config(&cert, &key).unwrap_err().to_string();
        assert!(
            error.contains("do not make a server configuration"),
            "{error}"
        );
    }
}
