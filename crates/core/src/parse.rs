//! Job files → [`Job`]s: YAML, TOML, JSON and `# /// rota` script headers.
//!
//! STUB: signatures only; the parser is being written.

use std::path::Path;

use crate::diag::Diagnostics;
use crate::model::Job;

/// The syntax of a job document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML 1.2.
    Yaml,
    /// TOML 1.0.
    Toml,
    /// JSON.
    Json,
    /// A script whose leading comment block `# /// rota` … `# ///` holds TOML job metadata.
    ScriptHeader,
}

impl Format {
    /// Guesses the format from a file name: `.yaml`/`.yml`, `.toml`, `.json`; anything else is
    /// treated as a script with a header.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("toml") => Format::Toml,
            Some("json") => Format::Json,
            _ => Format::ScriptHeader,
        }
    }
}

/// A parsed, validated job file.
#[derive(Debug, Clone)]
pub struct JobFile {
    /// The jobs it defines (one file may hold a list).
    pub jobs: Vec<Job>,
    /// The exact source text (stored with each job revision).
    pub source: String,
    /// The syntax it was parsed as.
    pub format: Format,
}

/// Errors loading a job file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid job file.
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
}

/// Reads, parses and validates the job file at `path`, reporting every problem.
pub fn load_file(path: &Path) -> Result<JobFile, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let format = Format::from_path(path);
    let jobs = parse_str(&source, &path.display().to_string(), format)?;
    Ok(JobFile {
        jobs,
        source,
        format,
    })
}

/// Parses and validates a job document; `origin` names it in diagnostics.
pub fn parse_str(source: &str, origin: &str, format: Format) -> Result<Vec<Job>, Diagnostics> {
    let _ = (source, origin, format);
    unimplemented!("parser not written yet")
}
