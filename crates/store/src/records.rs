//! What callers read back: job revisions, runs with their steps, attempts, log lines,
//! events, and the runs crash recovery must look at.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rota_core::model::{RunStatus, StepStatus};

use crate::{LogStream, Owner};

/// A saved job revision.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRevision {
    /// Namespace of the job.
    pub namespace: String,
    /// Job id.
    pub job_id: String,
    /// Revision number, from 1, per job.
    pub revision: i64,
    /// Content hash.
    pub hash: String,
    /// The job file's text.
    pub source: String,
    /// Where the file was read from.
    pub source_path: Option<String>,
    /// The normalized definition, in its stored form: read it with [`JobRevision::job`].
    pub definition: serde_json::Value,
    /// The schema version of `definition` (`rota_core::stored`).
    pub definition_version: u32,
    /// When the revision was saved.
    pub created_at: Timestamp,
}

impl JobRevision {
    /// The job this revision defines, through the one decoder of stored definitions.
    pub fn job(&self) -> Result<rota_core::model::Job, rota_core::stored::DefinitionError> {
        rota_core::stored::decode_definition(self.definition_version, &self.definition)
    }
}

/// A run and the latest state of each of its steps.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Run id.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Job id.
    pub job_id: String,
    /// Job revision used.
    pub job_revision: i64,
    /// Current status.
    pub status: RunStatus,
    /// Why it ended as it did.
    pub reason: Option<String>,
    /// Resolved parameters.
    pub params: serde_json::Value,
    /// Whether it is a dry run.
    pub dry_run: bool,
    /// What started it.
    pub trigger: String,
    /// The schedule occurrence it is for.
    pub scheduled_at: Option<Timestamp>,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// When it began executing.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// The process executing it.
    pub owner: Owner,
    /// Whether someone asked to cancel it.
    pub cancel_requested: bool,
    /// Who asked to cancel it.
    pub cancel_requested_by: Option<String>,
    /// The run this one retries ([`Store::create_retry_run`](crate::Store::create_retry_run)).
    pub retry_of: Option<String>,
    /// The notebook step this retry resumes from its failed cell (the executed notebook
    /// of that step in `retry_of` is where it continues).
    pub resume_step: Option<String>,
    /// Who confirmed its `confirm:` steps beforehand (`rota run --yes`), if anyone.
    pub confirmed_by: Option<String>,
    /// Who asked for it; `None` for a run a trigger started.
    pub started_by: Option<String>,
    /// The run and `job:` step that started it, for a child run.
    pub parent: Option<crate::RunParent>,
    /// Its steps, in file order.
    pub steps: Vec<StepRunRecord>,
}

/// The trigger of a run that a `rota run` executes in the foreground: its owner is that
/// process, and no server ever continues it.
pub const FOREGROUND_TRIGGER: &str = "cli";

impl RunRecord {
    /// Whether a `rota run` executes it in the foreground ([`FOREGROUND_TRIGGER`]), rather
    /// than a server.
    pub fn is_foreground(&self) -> bool {
        self.trigger == FOREGROUND_TRIGGER
    }

    /// The cursor that continues a listing after this run.
    pub fn cursor(&self) -> RunCursor {
        RunCursor {
            created_at: self.created_at,
            id: self.id.clone(),
        }
    }
}

/// The latest state of one step of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRunRecord {
    /// Step id.
    pub step_id: String,
    /// Status of the latest attempt (or `pending`/`skipped`).
    pub status: StepStatus,
    /// Latest attempt number; 0 if it never started.
    pub attempt: u32,
    /// How many attempts were recorded.
    pub attempts: u32,
    /// Exit code of the latest attempt.
    pub exit_code: Option<i32>,
    /// Why the step ended as it did.
    pub reason: Option<String>,
    /// Outputs of the latest attempt.
    pub outputs: BTreeMap<String, String>,
    /// Start of the latest attempt.
    pub started_at: Option<Timestamp>,
    /// End of the latest attempt (or when it was skipped).
    pub finished_at: Option<Timestamp>,
    /// Start of the first attempt: with `finished_at`, the step's whole time, retries and
    /// their waits included.
    pub first_started_at: Option<Timestamp>,
    /// The latest run this step started, for a `job:` step.
    pub child_run: Option<String>,
}

/// One attempt of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepAttemptRecord {
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Its status.
    pub status: StepStatus,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Why it ended as it did.
    pub reason: Option<String>,
    /// Outputs it published.
    pub outputs: BTreeMap<String, String>,
    /// When it started (absent if it was recorded finished without a start).
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Its process group.
    pub pgid: Option<i32>,
}

/// One captured output line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Ordering key and cursor; grows within a run (and globally).
    pub seq: i64,
    /// The run.
    pub run_id: String,
    /// The step.
    pub step_id: String,
    /// Attempt number.
    pub attempt: u32,
    /// When the line was read.
    pub ts: Timestamp,
    /// Which stream.
    pub stream: LogStream,
    /// The line.
    pub text: String,
}

/// One row of the append-only event log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Position in the log; a cursor for `events_after`.
    pub id: i64,
    /// When the change happened.
    pub at: Timestamp,
    /// `run.created`, `run.started`, `run.finished`, `step.started`, `step.finished`,
    /// `step.skipped`, `run.cancel_requested`, `run.abandoned`, `run.requeued` or
    /// `job.deleted` (which names no run). A retry's `run.created` carries `retry_of`.
    pub kind: String,
    /// The run concerned.
    pub run_id: Option<String>,
    /// The step concerned.
    pub step_id: Option<String>,
    /// Details of the change.
    pub data: serde_json::Value,
}

/// Where a newest-first run listing continues: runs strictly older than this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCursor {
    /// `created_at` of the last run seen.
    pub created_at: Timestamp,
    /// Id of the last run seen (breaks ties on `created_at`).
    pub id: String,
}

/// Which runs `list_runs` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFilter {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this job (combine with `namespace` to be exact).
    pub job_id: Option<String>,
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Only runs created at or after this instant.
    pub created_since: Option<Timestamp>,
    /// Only runs created before this instant.
    pub created_until: Option<Timestamp>,
    /// Only runs whose id starts with this (an abbreviated id, as `rota` prints them).
    pub id_prefix: Option<String>,
    /// At most this many runs (capped at 1,000).
    pub limit: u32,
    /// Only runs after this cursor, in newest-first order.
    pub before: Option<RunCursor>,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter {
            namespace: None,
            job_id: None,
            status: None,
            created_since: None,
            created_until: None,
            id_prefix: None,
            limit: 50,
            before: None,
        }
    }
}

/// A run still `queued` or `running`, for crash recovery.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveRun {
    /// Run id.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Job id.
    pub job_id: String,
    /// `queued` or `running`.
    pub status: RunStatus,
    /// The process that owns it.
    pub owner: Owner,
    /// Its steps that are `running`.
    pub running_steps: Vec<RunningStep>,
}

/// A running step of an active run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningStep {
    /// Step id.
    pub step_id: String,
    /// Current attempt.
    pub attempt: u32,
    /// Process group of the step's process, if recorded.
    pub pgid: Option<i32>,
}
