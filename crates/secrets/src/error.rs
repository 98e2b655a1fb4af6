//! The secrets error type: each variant names the secret or the key file concerned, and
//! none ever carries a value or key material.

use std::path::PathBuf;

use rota_store::StoreError;

/// Everything that can go wrong with keys, sealing and resolving secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// `ROTA_SECRET_KEY` is set but is not the base64 of 32 bytes.
    #[error("ROTA_SECRET_KEY is not a valid key: {why} (expected the base64 of 32 bytes)")]
    BadEnvKey {
        /// What is wrong with it.
        why: String,
    },
    /// The key file's content is not the base64 of 32 bytes.
    #[error("the key file {path} is not a valid key: {why} (expected the base64 of 32 bytes)")]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The key file may be read by other users.
    #[error(
        "the key file {path} is readable by group or others (mode {mode:04o}); \
         refusing to use it: run `chmod 600 {path}`"
    )]
    KeyFileExposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or creating the key file failed.
    #[error("cannot {action} the key file {path}: {source}")]
    KeyFileIo {
        /// `read`, `create`…
        action: &'static str,
        /// The key file (or its directory).
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The operating system's random source failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// A secret's name is not usable as an environment variable name.
    #[error(
        "invalid secret name {0:?}: use letters, digits and `_`, not starting with a digit \
         (at most 128)"
    )]
    InvalidName(String),
    /// A secret is stored but no key is available to open it.
    #[error(
        "secret {namespace}/{name} is stored encrypted but no key is available: set \
         ROTA_SECRET_KEY or restore the key file $ROTA_HOME/secret.key"
    )]
    NoKey {
        /// The namespace.
        namespace: String,
        /// The secret's name.
        name: String,
    },
    /// Sealing failed (the value is too large for the cipher).
    #[error("cannot encrypt secret {namespace}/{name}")]
    Seal {
        /// The namespace.
        namespace: String,
        /// The secret's name.
        name: String,
    },
    /// A stored value does not open under this key: wrong key, or the row was altered or
    /// moved.
    #[error(
        "cannot decrypt secret {namespace}/{name} version {version}: wrong key, or the stored \
         value was altered or moved"
    )]
    Open {
        /// The namespace.
        namespace: String,
        /// The secret's name.
        name: String,
        /// The version.
        version: i64,
    },
    /// A decrypted value is not UTF-8 (values are handed to steps as environment variables).
    #[error("secret {namespace}/{name} version {version} is not valid UTF-8")]
    NotUtf8 {
        /// The namespace.
        namespace: String,
        /// The secret's name.
        name: String,
        /// The version.
        version: i64,
    },
    /// A job names secrets found neither in the store nor in the environment.
    #[error(
        "secrets not found in namespace {namespace:?} of the secrets store nor in the \
         environment: {}",
        names.join(", ")
    )]
    Missing {
        /// The namespace searched.
        namespace: String,
        /// The names not found.
        names: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
