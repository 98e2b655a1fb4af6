//! What callers write: job revisions, and the run events the engine records in batches.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rota_core::model::{RunStatus, StepStatus};
use sha2::{Digest, Sha256};

/// A job revision to save: the exact source text of the job file and the job's normalized
/// definition.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJobRevision {
    /// Namespace of the job.
    pub namespace: String,
    /// Job id.
    pub job_id: String,
    /// The job file's text, byte for byte.
    pub source: String,
    /// Where the file was read from, if it came from a file.
    pub source_path: Option<String>,
    /// The normalized definition in its stored form (`rota_core::stored`).
    pub definition: serde_json::Value,
    /// The schema version of `definition`.
    pub definition_version: u32,
    /// Content hash; saving the same hash as the latest revision creates nothing.
    pub hash: String,
    /// When this revision was first saved.
    pub created_at: Timestamp,
}

impl NewJobRevision {
    /// A revision of `job`, stored in the current schema version.
    pub fn of_job(
        namespace: impl Into<String>,
        job: &rota_core::model::Job,
        source: impl Into<String>,
        created_at: Timestamp,
    ) -> NewJobRevision {
        let definition = rota_core::stored::encode_definition(job);
        NewJobRevision::new(namespace, job.id.clone(), source, definition, created_at)
    }

    /// A revision whose `hash` is the SHA-256 (hex) of the source text and the definition,
    /// which must be in the current schema version.
    pub fn new(
        namespace: impl Into<String>,
        job_id: impl Into<String>,
        source: impl Into<String>,
        definition: serde_json::Value,
        created_at: Timestamp,
    ) -> NewJobRevision {
        let source = source.into();
        let mut hasher = Sha256::new();
        hasher.update(source.as_bytes());
        // A NUL cannot occur in JSON text, so it keeps the two parts apart.
        hasher.update([0u8]);
        hasher.update(definition.to_string().as_bytes());
        NewJobRevision {
            namespace: namespace.into(),
            job_id: job_id.into(),
            source,
            source_path: None,
            definition,
            definition_version: rota_core::stored::DEFINITION_VERSION,
            hash: hex::encode(hasher.finalize()),
            created_at,
        }
    }
}

/// The process that owns (executes) a run; crash recovery checks whether it still lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// Something that tells this process from a later one with the same pid
    /// (e.g. the process start time from `/proc/<pid>/stat`).
    pub start_token: String,
}

impl Owner {
    /// The owner of a queued run: nobody, until a server claims it and becomes its owner.
    pub fn nobody() -> Owner {
        Owner {
            host: String::new(),
            pid: 0,
            start_token: String::new(),
        }
    }
}

/// A run to create; it starts `queued`, with one `pending` step row per step.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// Unique run id.
    pub id: String,
    /// Namespace of the job.
    pub namespace: String,
    /// Job id.
    pub job_id: String,
    /// The job revision the run uses; it must have been saved with `save_job_revision`.
    pub job_revision: i64,
    /// Resolved parameters.
    pub params: serde_json::Value,
    /// Whether every step runs in its dry-run mode.
    pub dry_run: bool,
    /// What started the run: `manual`, `cli`, `cron`, `webhook`, …
    pub trigger: String,
    /// Who asked for it (an API token's actor, `local:<user>`); `None` for a run a
    /// schedule, webhook or `after` trigger started.
    pub started_by: Option<String>,
    /// The occurrence this run is for, when a schedule started it.
    pub scheduled_at: Option<Timestamp>,
    /// When the run was accepted.
    pub created_at: Timestamp,
    /// The process executing the run.
    pub owner: Owner,
    /// Step ids in file order.
    pub steps: Vec<String>,
    /// The run and step that started it, for a run of a `job:` step.
    pub parent: Option<RunParent>,
}

/// The run and `job:` step that started a run (its child).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunParent {
    /// The parent run's id.
    pub run_id: String,
    /// The parent run's step that started the child.
    pub step_id: String,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// The step's standard output.
    Stdout,
    /// The step's standard error.
    Stderr,
    /// A line written by Rota itself about the step.
    System,
}

impl LogStream {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::System => "system",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<LogStream> {
        [LogStream::Stdout, LogStream::Stderr, LogStream::System]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One state change of a run, as the engine reports it. `Store::record` applies a batch of
/// them in one transaction, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// A run was accepted (status `queued`).
    RunCreated {
        /// The run.
        run: NewRun,
    },
    /// The run's `confirm:` steps were confirmed beforehand, by `by` (recorded with its
    /// creation, so whoever executes it reads it: `RunRecord::confirmed_by`).
    RunConfirmed {
        /// The run.
        run_id: String,
        /// Who confirmed them (an actor as the audit log names it).
        by: String,
    },
    /// The run began executing (status `running`).
    RunStarted {
        /// The run.
        run_id: String,
        /// When.
        at: Timestamp,
    },
    /// The run ended.
    RunFinished {
        /// The run.
        run_id: String,
        /// Its final status.
        status: RunStatus,
        /// Why, in words, when not plain success.
        reason: Option<String>,
        /// When.
        at: Timestamp,
    },
    /// An attempt of a step started.
    StepStarted {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// Attempt number, from 1.
        attempt: u32,
        /// When.
        at: Timestamp,
        /// Process group of the step's process, if it has one.
        pgid: Option<i32>,
    },
    /// An attempt of a step ended.
    StepFinished {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// Attempt number, from 1.
        attempt: u32,
        /// Outcome of this attempt.
        status: StepStatus,
        /// Exit code, when the process exited.
        exit_code: Option<i32>,
        /// Why, in words, when not plain success.
        reason: Option<String>,
        /// Outputs the step published.
        outputs: BTreeMap<String, String>,
        /// When.
        at: Timestamp,
    },
    /// A step will not run (`skipped` or `cancelled`).
    StepSkipped {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// `skipped` or `cancelled`.
        status: StepStatus,
        /// Why.
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// A run reached an `approval:` gate (the step stays `awaiting_approval`): the gate
    /// opens for decisions, once; a gate already open is left as it is.
    GateOpened {
        /// The run.
        run_id: String,
        /// The gate step.
        step_id: String,
        /// What decisions bind to (`rota_core::plan::PlanContent::after_gate`).
        hash: String,
        /// Its rules.
        rules: rota_core::model::Approval,
        /// What the approvers are asked, rendered and redacted.
        message: Option<String>,
        /// When.
        at: Timestamp,
    },
    /// The run stopped at its open gates with nothing else to do: it waits as
    /// `awaiting_approval`, executed by nobody, until a decision queues it again.
    RunAwaitingApproval {
        /// The run.
        run_id: String,
        /// Which gates it waits for, in words.
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// A notification was queued (into the outbox, with the event that caused it when both
    /// are in one batch).
    NotificationQueued {
        /// What to send.
        notification: crate::NewNotification,
    },
    /// The files an attempt left in `$ROTA_ARTIFACTS`, their bytes already in the
    /// artifact store (no event-log row).
    ArtifactsKept {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// Attempt number.
        attempt: u32,
        /// When they were collected.
        at: Timestamp,
        /// The files.
        artifacts: Vec<crate::NewArtifact>,
    },
    /// One captured output line (no event-log row).
    Log {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// Attempt number.
        attempt: u32,
        /// When the line was read.
        ts: Timestamp,
        /// Which stream.
        stream: LogStream,
        /// The line, without its newline.
        text: String,
    },
}

impl RunEvent {
    /// The run the event belongs to.
    pub fn run_id(&self) -> &str {
        match self {
            RunEvent::RunCreated { run } => &run.id,
            RunEvent::NotificationQueued { notification } => &notification.run_id,
            RunEvent::RunStarted { run_id, .. }
            | RunEvent::RunConfirmed { run_id, .. }
            | RunEvent::RunFinished { run_id, .. }
            | RunEvent::StepStarted { run_id, .. }
            | RunEvent::StepFinished { run_id, .. }
            | RunEvent::StepSkipped { run_id, .. }
            | RunEvent::GateOpened { run_id, .. }
            | RunEvent::RunAwaitingApproval { run_id, .. }
            | RunEvent::ArtifactsKept { run_id, .. }
            | RunEvent::Log { run_id, .. } => run_id,
        }
    }
}
