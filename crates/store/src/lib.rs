//! Rota's durable state: job revisions, runs, step runs and their attempts, captured log
//! lines and the append-only event log.
//!
//! This is the only crate that writes SQL. Everything goes through [`Store`]: the engine
//! records what happens as batches of [`RunEvent`]s, each batch in one transaction; the CLI
//! (and later the server) reads runs, logs and events back, requests cancellation from
//! another process, and recovers runs whose process died.
//!
//! The scheduler daemon records every schedule occurrence with [`Store::record_occurrence`],
//! which inserts the occurrence and its queued run in one transaction, so an occurrence
//! never runs twice.
//!
//! The backend is SQLite (`$ROTA_HOME/rota.db`) by default, or PostgreSQL
//! ([`Store::open_url`] with a `postgres://` URL) for servers sharing one store, with the same
//! semantics on both (see the `store` module's docs for how writes are serialized). The schema
//! is portable: ids are text, timestamps are integer microseconds since the Unix epoch (UTC),
//! JSON is stored as text.
//!
//! It deliberately knows nothing of HTTP, processes or terminals.
//!
//! ```
//! # async fn demo() -> Result<(), rota_store::StoreError> {
//! let home = std::env::temp_dir().join(format!("rota-doc-{}", std::process::id()));
//! let store = rota_store::Store::open(&home).await?;
//! let rev = rota_store::NewJobRevision::new(
//!     "default", "hello", "id: hello\n", serde_json::json!({"id": "hello"}),
//!     jiff::Timestamp::now(),
//! );
//! assert_eq!(store.save_job_revision(&rev).await?.revision, 1);
//! # store.close().await;
//! # let _ = std::fs::remove_dir_all(home);
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?
//! #     .block_on(demo()).map_err(|e| e.to_string())?;
//! # Ok::<(), String>(())
//! ```
#![warn(missing_docs)]

mod artifacts;
mod attempts;
mod audit;
mod blobs;
mod catalog;
mod changes;
mod children;
mod control;
mod convert;
mod dialect;
mod error;
mod events;
mod feed;
mod fleet;
mod gates;
mod hooks;
pub mod ids;
mod job_delete;
mod jobs;
mod metrics;
mod notify;
mod plans;
mod prune;
mod read;
mod records;
mod resume;
mod retry;
mod run_digest;
mod run_report;
mod schedule;
mod secrets;
mod store;
#[cfg(test)]
#[path = "../../testkit/src/postgres.rs"]
#[allow(dead_code)]
mod test_postgres;
#[cfg(test)]
mod testing;
mod tokens;
mod wake;
mod write;

pub use artifacts::{ArtifactRecord, NewArtifact};
pub use audit::{AuditBreak, AuditBreakKind, AuditRecord, GENESIS_HASH, NewAuditEntry};
pub use blobs::{ArtifactBlobs, BlobError, artifact_key};
pub use catalog::{DEFAULT_NAMESPACE, NamespaceRecord};
pub use changes::{ChangeCounters, FileJobSave, JobHeadChange, SavedFileJob};
pub use children::Ancestor;
pub use control::{CancelState, PendingCancel};
pub use error::StoreError;
pub use events::{LogStream, NewJobRevision, NewRun, Owner, RunEvent, RunParent};
pub use feed::EVENT_FEED_KEEP;
pub use fleet::{
    AttemptKey, DispatchRecord, DispatchState, Expired, Fenced, NewDispatch, Renewed, ServerRecord,
    WorkerInfo, WorkerLine, WorkerRecord, labels_match,
};
pub use gates::{GateDecided, GateDecisionRecord, GateError, GateRecord, GateStatus};
pub use hooks::{HookRecord, SeenDelivery};
pub use job_delete::FileJobHead;
pub use metrics::{RunCount, STEP_DURATION_LIMIT};
pub use notify::{DeliveryOutcome, NewNotification, NotificationRecord, NotificationStatus};
pub use plans::{
    Approver, Decision, NewPlan, PLAN_TRIGGER, PlanDecisionRecord, PlanError, PlanFilter,
    PlanRecord, PlanStatus, is_approver,
};
pub use prune::{AUDIT_CHECKPOINT, PRUNE_BATCH, PruneCounts, PruneSpec, RetentionSetting};
pub use records::{
    ActiveRun, EventRecord, FOREGROUND_TRIGGER, JobRevision, LogRecord, RunCursor, RunFilter,
    RunRecord, RunningStep, StepAttemptRecord, StepRunRecord,
};
pub use run_digest::{RUN_DIGEST, RunChanged};
pub use run_report::{RUN_REPORT, RUN_STEP, ReportChanged, ReportProblem};
pub use schedule::{
    JobLoadError, NewOccurrence, OccurrenceKind, OccurrenceRecord, ScheduleState, TriggerRunRecord,
    TriggerState,
};
pub use secrets::{NewSecret, SealedSecret, SecretInfo, SecretRecord, SecretUse};
pub use store::{Backend, DB_FILE, Store};
pub use tokens::{Grant, NewToken, Role, TokenRecord};
pub use wake::{Wake, WakeUps};
