//! TLS on the listener (`rota serve --tls-cert CERT.pem --tls-key KEY.pem`): rustls with
//! the ring provider (the one reqwest already brings; aws-lc would need cmake to build).
//!
//! The certificate file holds the server's certificate first, then any intermediates; the
//! key file one private key (PKCS#8, PKCS#1 or SEC1, PEM). Both are read once at start-up:
//! a missing, unreadable or malformed file, or a key that does not belong to the
//! certificate, stops the server with the file's name, before it listens.
//! Only HTTP/1.1 is served (the listener speaks nothing else), so ALPN offers `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ServerError;

/// The files of a server's certificate chain and private key (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain: the server's own certificate first.
    pub cert: PathBuf,
    /// The certificate's private key.
    pub key: PathBuf,
}

/// Reads `files` into the configuration every TLS connection is accepted with.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, ServerError> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error(&files.cert, error.to_string()))?
        .with_no_client_auth()
        // rustls checks here that the key is usable and belongs to the first certificate.
        .with_single_cert(certs, key)
        .map_err(|error| {
            tls_error(
                &files.key,
                format!(
                    "does not fit the certificate in {}: {error}",
                    files.cert.display()
                ),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| tls_error(path, format!("not a PEM certificate chain: {error}")))?;
    if certs.is_empty() {
        return Err(tls_error(
            path,
            "holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)".to_owned(),
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| {
        tls_error(
            path,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {error}"),
        )
    })
}

/// Read once, so an error names the file whatever went wrong with it.
fn read(path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|source| ServerError::Io {
        path: path.to_owned(),
        source,
    })
}

fn tls_error(path: &Path, why: String) -> ServerError {
    ServerError::Tls {
        path: path.to_owned(),
        why,
    }
}
