//! Sealing and opening values with XChaCha20-Poly1305.
//!
//! The nonce is 24 random bytes from the OS, large enough that random nonces never repeat
//! in practice under one key. The associated data is a fixed label followed by the
//! length-prefixed namespace and name and the version, so it is unambiguous whatever the
//! names contain, and a ciphertext only opens for the row it was sealed for.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRng as _;
use rand::rngs::SysRng;
use rota_store::SealedSecret;

use crate::{SecretKey, SecretValue, SecretsError};

/// Label of this associated-data layout; a new layout gets a new label.
const AAD_LABEL: &[u8] = b"rota-secret-v1";

/// Seals `plaintext` for the row (namespace, name, version) under a fresh random nonce.
pub fn seal(
    key: &SecretKey,
    namespace: &str,
    name: &str,
    version: i64,
    plaintext: &[u8],
) -> Result<SealedSecret, SecretsError> {
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let mut nonce = XNonce::default();
    SysRng
        .try_fill_bytes(nonce.as_mut_slice())
        .map_err(|e| SecretsError::Random(e.to_string()))?;
    let aad = associated_data(namespace, name, version);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SecretsError::Seal {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })?;
    Ok(SealedSecret {
        nonce: nonce.to_vec(),
        ciphertext,
    })
}

/// Opens a value sealed for the row (namespace, name, version); fails if the key, the row
/// or a single byte differs.
pub fn open(
    key: &SecretKey,
    namespace: &str,
    name: &str,
    version: i64,
    sealed: &SealedSecret,
) -> Result<SecretValue, SecretsError> {
    let failed = || SecretsError::Open {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        version,
    };
    if sealed.nonce.len() != 24 {
        return Err(failed());
    }
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let aad = associated_data(namespace, name, version);
    let plaintext = cipher
        .decrypt(
            sealed.nonce.as_slice().into(),
            Payload {
                msg: &sealed.ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| failed())?;
    String::from_utf8(plaintext)
        .map(SecretValue::new)
        .map_err(|_| SecretsError::NotUtf8 {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            version,
        })
}

fn associated_data(namespace: &str, name: &str, version: i64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + namespace.len() + name.len() + 24);
    aad.extend_from_slice(AAD_LABEL);
    for part in [namespace.as_bytes(), name.as_bytes()] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}
