//! The server's error type.

use std::path::PathBuf;

/// What stops `rota serve` from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rota_store::StoreError),
    /// The artifact store (`--artifacts`) cannot be used.
    #[error("cannot use the artifact store: {0}")]
    Artifacts(#[from] rota_store::BlobError),
    /// An artifact cap set in the environment does not parse.
    #[error("artifact caps: {0}")]
    ArtifactLimits(String),
    /// Another `rota serve` holds the data directory.
    #[error("another rota serve is running on {0} (its lock file is held)")]
    AlreadyRunning(PathBuf),
    /// A file or directory could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A trigger that validation let through cannot be compiled (a bug, or a zone database
    /// that changed).
    #[error("bad trigger: {0}")]
    BadTrigger(String),
    /// The TLS certificate or key given to `rota serve` cannot be used.
    #[error("TLS: {path}: {why}")]
    Tls {
        /// The certificate or key file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The servers sharing the store took this one for dead (it could not renew its row in
    /// time) and resumed its runs: it stopped them and must exit.
    #[error("the other servers took this one for dead and resumed its runs; it stopped them")]
    TakenForDead,
    /// The API could not be set up (e.g. the admin token file).
    #[error("cannot set up the API: {0}")]
    Api(String),
}
