//! Rota's secrets: values encrypted at rest, versioned per namespace, resolved for runs and
//! audited at every use (SPEC §3).
//!
//! A [`SecretKey`] (32 bytes) comes from `ROTA_SECRET_KEY` (base64) or from the key file
//! `$ROTA_HOME/secret.key`, created with mode 0600 from OS randomness on first use. Values are
//! sealed with XChaCha20-Poly1305 under a random 24-byte nonce; the associated data binds the
//! namespace, name and version, so a ciphertext copied to another row does not open.
//! The store (rota-store) keeps only nonces and ciphertexts.
//!
//! [`resolve`] gives a run the latest version of each secret its job names, falling back to
//! the process environment for names the store does not hold, and says which version (or
//! `env`) each value came from, so the caller can record the uses with
//! `Store::record_secret_use`.
//!
//! Plaintexts travel as [`SecretValue`], whose `Debug` and `Display` print `***`; key material
//! is never printed either. This crate does not redact step logs (the engine does) and knows
//! nothing of terminals or HTTP.
//!
//! ```
//! # fn demo() -> Result<(), rota_secrets::SecretsError> {
//! use rota_secrets::{SecretKey, SecretValue, open, seal};
//! let key = SecretKey::generate()?;
//! let sealed = seal(&key, "default", "TOKEN", 1, b"s3cret")?;
//! let value: SecretValue = open(&key, "default", "TOKEN", 1, &sealed)?;
//! assert_eq!(value.expose(), "s3cret");
//! assert_eq!(format!("{value:?}"), "***");
//! assert!(open(&key, "default", "TOKEN", 2, &sealed).is_err());
//! # Ok(())
//! # }
//! # demo().map_err(|e| e.to_string())?;
//! # Ok::<(), String>(())
//! ```
#![warn(missing_docs)]

mod cipher;
mod error;
mod key;
mod resolve;
mod value;

pub use cipher::{open, seal};
pub use error::SecretsError;
pub use key::{KEY_ENV, KEY_FILE, SecretKey};
pub use resolve::{Resolved, put, remove, resolve, resolve_with, validate_name};
pub use rota_store::{SealedSecret, SecretInfo, SecretUse};
pub use value::SecretValue;
