//! The store's error type.
//!
//! Variants speak in the caller's terms (which run, which prefix) and keep the offending
//! input; database failures keep sqlx's error as their source.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database URL is not one this build can open.
    #[error("unsupported database URL {url:?}: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        why: String,
    },
    /// Opening or connecting to the database failed.
    #[error("cannot open the store at {location}: {source}")]
    Open {
        /// A path or URL.
        location: String,
        /// The underlying failure.
        source: sqlx::Error,
    },
    /// Bringing the schema up to date failed.
    #[error("cannot migrate the store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// No run has this id (or id prefix).
    #[error("no run matches {0:?}")]
    RunNotFound(String),
    /// A process recorded events of a run it no longer owns: it was taken for dead and
    /// another process recovered the run.
    #[error(
        "run {run} is no longer this process's: another took it over after taking this one for dead"
    )]
    NotOwner {
        /// The run.
        run: String,
    },
    /// A run id prefix matches more than one run.
    #[error("{prefix:?} matches several runs: {}", candidates.join(", "))]
    Ambiguous {
        /// The prefix as given.
        prefix: String,
        /// Some of the matching run ids (at most ten).
        candidates: Vec<String>,
    },
    /// A `RunCreated` event named a run id that already exists.
    #[error("run {0} already exists")]
    DuplicateRun(String),
    /// A `RunCreated` event named a job revision that was never saved.
    #[error("job {namespace}/{job_id} has no revision {revision}")]
    UnknownJobRevision {
        /// Namespace of the job.
        namespace: String,
        /// Job id.
        job_id: String,
        /// The revision number as given.
        revision: i64,
    },
    /// An event named a step the run does not have.
    #[error("run {run_id} has no step {step_id:?}")]
    UnknownStep {
        /// The run.
        run_id: String,
        /// The step id as given.
        step_id: String,
    },
    /// A retry was asked for a run that has not ended yet.
    #[error("run {run_id} has not ended yet ({status})")]
    RunNotEnded {
        /// The run.
        run_id: String,
        /// Its current status.
        status: String,
    },
    /// The job has no revision, or was deleted.
    #[error("no job {namespace}/{job_id}")]
    JobNotFound {
        /// Namespace of the job.
        namespace: String,
        /// Job id.
        job_id: String,
    },
    /// The job's latest revision comes from a file in a server's job directory, which
    /// would bring it back; the file must be removed instead.
    #[error("job {namespace}/{job_id} is defined by file {path}; remove the file")]
    JobDefinedByFile {
        /// Namespace of the job.
        namespace: String,
        /// Job id.
        job_id: String,
        /// The file.
        path: String,
    },
    /// A reader of the event feed asked for events after one the feed no longer holds:
    /// events up to `pruned_through` were dropped by age, and some after `after` with them.
    #[error(
        "the event feed no longer holds the events after {after}: events through \
         {pruned_through} were dropped by age; read the current state from the runs, then \
         follow the feed from {pruned_through} (or from 0, its oldest event)"
    )]
    EventsPruned {
        /// The position asked for.
        after: i64,
        /// The last event dropped.
        pruned_through: i64,
    },
    /// A stored value could not be decoded (a bad status, timestamp or JSON document).
    #[error("invalid stored {what}: {detail}")]
    Corrupt {
        /// Which column or value.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}
