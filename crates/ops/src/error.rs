//! What an operation can refuse or fail with; each edge renders it its own way (a problem
//! body with a status, a message and an exit code).

use rota_core::params::ParamError;

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// What was asked for does not exist (`"run 0190…"`, `"job ops/deploy"`).
    #[error("{0} not found")]
    NotFound(String),
    /// The job has approval rules: it runs only through plan → approve → apply.
    #[error(
        "job {namespace}/{job} has approval rules: {}",
        match .gated {
            crate::Gated::Start => "make a plan, have it approved, then apply it",
            crate::Gated::Retry => "a retry would skip them; make a new plan",
        }
    )]
    NeedsPlan {
        /// The job's namespace.
        namespace: String,
        /// The job.
        job: String,
        /// What was refused.
        gated: crate::Gated,
    },
    /// The state of things does not allow it (a run still active, already ended…).
    #[error("{0}")]
    Conflict(String),
    /// Parameters that do not fit the job's declarations, one entry per parameter.
    #[error("{} parameter problem(s)", .0.len())]
    InvalidParams(Vec<ParamError>),
    /// A request that names something the job does not have.
    #[error("{0}")]
    Invalid(String),
    /// The run's secrets cannot be read (missing, no key, not decryptable).
    #[error("{0}")]
    Secrets(String),
    /// This process was not set up to execute runs (`Ops::runs_here`).
    #[error("this process does not execute runs")]
    NotARunner,
    /// A stored definition does not decode.
    #[error(transparent)]
    Definition(#[from] rota_core::stored::DefinitionError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rota_store::StoreError),
}
