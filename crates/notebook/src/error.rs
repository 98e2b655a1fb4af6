//! The crate's error type: every failure that is not a notebook cell failing.
//!
//! A cell raising an exception is an outcome, not an error (see `execute::RunOutcome`);
//! the variants here are about files, kernels and the protocol.

use std::path::PathBuf;

/// Why a notebook could not be read, prepared, started or driven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotebookError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The notebook is not valid JSON or not a notebook we can upgrade to nbformat 4.
    #[error("{path}: not a readable notebook: {reason}")]
    BadNotebook {
        /// The notebook file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A parameter value or parameters file could not be understood.
    #[error("bad parameters: {0}")]
    BadParameters(String),
    /// The notebook names no kernel and none was given.
    #[error("no kernel name found in notebook and no --kernel given")]
    NoKernelName,
    /// No kernelspec of that name exists in any Jupyter data directory.
    #[error(
        "kernel '{name}' not found (searched: {searched}); install one, e.g. \
         `python3 -m pip install ipykernel && python3 -m ipykernel install --user`"
    )]
    KernelNotFound {
        /// The kernel name asked for.
        name: String,
        /// The directories searched, joined with `:`.
        searched: String,
    },
    /// No parameter translator exists for the notebook's language.
    #[error("no parameter translator for kernel '{kernel}' or language '{language}'")]
    NoTranslator {
        /// The kernel name.
        kernel: String,
        /// The notebook language.
        language: String,
    },
    /// The kernel process could not be started or did not become ready in time.
    #[error("kernel '{kernel}' failed to start: {reason}")]
    KernelStart {
        /// The kernel name.
        kernel: String,
        /// What went wrong.
        reason: String,
    },
    /// Talking to the kernel failed (socket or message error).
    #[error("kernel protocol error: {0}")]
    Protocol(String),
    /// A failed notebook cannot be resumed as asked (see `resume`).
    #[error("cannot resume the notebook: {0}")]
    Resume(String),
}

impl NotebookError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NotebookError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = NotebookError> = std::result::Result<T, E>;
