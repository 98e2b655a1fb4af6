//! Parameter resolution: defaults, `-p key=value` coerced to the declared type, `--params-file`.
//!
//! STUB: signatures only.

use std::collections::BTreeMap;

use crate::model::{Job, Value};

/// A parameter value that does not fit its declaration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {name}: {message}")]
pub struct ParamError {
    /// The parameter's name.
    pub name: String,
    /// What was expected, e.g. `expected int, got "abc"`.
    pub message: String,
}

/// Resolves the run's parameters: `file_values` (from `--params-file`, already parsed)
/// first, then `cli` pairs from `-p key=value` (strings, coerced), then defaults.
/// Unknown names, missing required values and type mismatches are errors (all reported).
pub fn resolve(
    job: &Job,
    file_values: &BTreeMap<String, Value>,
    cli: &[(String, String)],
) -> Result<BTreeMap<String, Value>, Vec<ParamError>> {
    let _ = (job, file_values, cli);
    unimplemented!("params not written yet")
}
