//! What an operation can refuse or fail with; each edge renders it its own way (a problem
//! body with a status, a message and an exit code).

use rota_core::params::ParamError;

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// No valid credentials were presented.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller lacks the role the operation needs.
    #[error("this call needs the {needed} role {scope}", needed = .needed.as_str())]
    Forbidden {
        /// The role needed.
        needed: rota_store::Role,
        /// Where, in words: `in namespace "ops"` or `in every namespace`.
        scope: String,
    },
    /// An abbreviated id that names more than one thing.
    #[error("{prefix:?} matches several runs: {}", .candidates.join(", "))]
    Ambiguous {
        /// What was given.
        prefix: String,
        /// What it matches (some of them).
        candidates: Vec<String>,
    },
    /// A job file that is not a valid job (or not the job asked for); `problems` lists
    /// each problem with its position.
    #[error("{detail}")]
    InvalidJob {
        /// A summary.
        detail: String,
        /// Every problem found.
        problems: Vec<crate::records::ProblemItem>,
    },
    /// Something the operation needs is not set up where it runs (secrets without a key,
    /// schedules without a scheduler).
    #[error("{0}")]
    Unavailable(String),
    /// A server refused the call (`status`, with its problem rendered in `message`),
    /// answered in a way this client does not understand, or could not be reached
    /// (`status` is `None`).
    #[error("{message}")]
    Remote {
        /// The HTTP status, when the server answered.
        status: Option<u16>,
        /// The problem's title, detail and each listed problem, or why there was no answer.
        message: String,
    },
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
    /// A malformed listing or query parameter (a page size out of range, a cursor this
    /// layer did not hand out).
    #[error("{0}")]
    InvalidQuery(String),
    /// A malformed name or id (a secret name with characters it may not hold).
    #[error("{0}")]
    InvalidId(String),
    /// Something stored cannot be used as it is (a stored job whose triggers no longer
    /// compile): a fault of this installation, not of the call.
    #[error("{0}")]
    Internal(String),
    /// The run's secrets cannot be read (missing, no key, not decryptable).
    #[error("{0}")]
    Secrets(String),
    /// This process was not set up to execute runs (`Ops::runs_here`).
    #[error("this process does not execute runs")]
    NotARunner,
    /// The engine could not record or set up a run this process executes.
    #[error(transparent)]
    Engine(#[from] rota_engine::run::EngineError),
    /// A stored definition does not decode.
    #[error(transparent)]
    Definition(#[from] rota_core::stored::DefinitionError),
    /// The store failed.
    #[error(transparent)]
    Store(rota_store::StoreError),
}

impl From<rota_store::StoreError> for OpsError {
    /// A run the store did not find is what was asked for not existing, and an event-feed
    /// cursor older than the feed keeps is the caller's to fix; the rest are failures of the
    /// store.
    fn from(error: rota_store::StoreError) -> Self {
        match error {
            rota_store::StoreError::RunNotFound(id) => OpsError::NotFound(format!("run {id:?}")),
            // The caller's cursor is older than the event feed's window: its query to fix.
            pruned @ rota_store::StoreError::EventsPruned { .. } => {
                OpsError::InvalidQuery(pruned.to_string())
            }
            other => OpsError::Store(other),
        }
    }
}

impl OpsError {
    /// The stable name of the error's kind: the last segment of the API's problem `type`
    /// URI and the `result` of a refused call's audit entry.
    pub fn slug(&self) -> &'static str {
        match self {
            OpsError::Unauthorized(_) => "unauthorized",
            OpsError::Forbidden { .. } => "forbidden",
            OpsError::NotFound(_) => "not-found",
            OpsError::NeedsPlan { .. } | OpsError::Conflict(_) => "conflict",
            OpsError::Ambiguous { .. } => "invalid-id",
            OpsError::InvalidParams(_) => "invalid-params",
            OpsError::Invalid(_) => "invalid-body",
            OpsError::InvalidQuery(_) => "invalid-query",
            OpsError::InvalidId(_) => "invalid-id",
            OpsError::InvalidJob { .. } => "invalid-job",
            OpsError::Unavailable(_) => "unavailable",
            OpsError::Remote { status, .. } => match status {
                Some(401) => "unauthorized",
                Some(403) => "forbidden",
                Some(404) => "not-found",
                Some(409) => "conflict",
                Some(400) => "invalid-query",
                Some(422) => "invalid-body",
                Some(503) => "unavailable",
                _ => "internal",
            },
            OpsError::Secrets(_)
            | OpsError::Internal(_)
            | OpsError::NotARunner
            | OpsError::Engine(_)
            | OpsError::Definition(_)
            | OpsError::Store(_) => "internal",
        }
    }

    /// Whether the state of things refused it (a run that already ended, a job that needs a
    /// plan), here or on a server.
    pub fn is_conflict(&self) -> bool {
        self.slug() == "conflict"
    }

    /// Whether what was asked for does not exist, here or on a server.
    pub fn is_not_found(&self) -> bool {
        self.slug() == "not-found"
    }
}
