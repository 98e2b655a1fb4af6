//! The stored form of a job definition: what `job_revisions.definition` holds, with its
//! schema version beside it.
//!
//! Every reader of a stored definition goes through [`decode_definition`], the one typed
//! decoder; every writer through [`encode_definition`]. A change to the model's serialized
//! shape bumps [`DEFINITION_VERSION`] and adds a decoder arm for the previous version, so
//! rows written by earlier releases keep loading (`tests/stored.rs` loads one).

use serde::Deserialize as _;
use serde_json::Value as Json;

use crate::model::Job;

/// The schema version of the definitions this release writes. Version 1 is the serde form
/// of [`Job`] as the first release stored it (rows from before the version column are 1).
pub const DEFINITION_VERSION: u32 = 1;

/// A stored definition that does not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// A version this release does not read (written by a newer one).
    #[error(
        "definition schema version {0} is unknown to this rota (it reads up to {DEFINITION_VERSION}); upgrade rota"
    )]
    UnknownVersion(u32),
    /// Not a definition of its version.
    #[error("definition (schema version {version}) does not decode: {source}")]
    Invalid {
        /// The row's schema version.
        version: u32,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
}

/// The stored form of `job`, of version [`DEFINITION_VERSION`].
pub fn encode_definition(job: &Job) -> Json {
    // A `Job` holds only string-keyed maps and plain data: serializing it cannot fail.
    serde_json::to_value(job).unwrap_or(Json::Null)
}

/// The job of a stored definition of schema `version`.
pub fn decode_definition(version: u32, definition: &Json) -> Result<Job, DefinitionError> {
    match version {
        1 => Job::deserialize(definition)
            .map_err(|source| DefinitionError::Invalid { version, source }),
        other => Err(DefinitionError::UnknownVersion(other)),
    }
}
