//! Rota's records: what its operations accept and answer, typed once from the store to the
//! wire to the terminal. The API sends and reads them as JSON (every field here is a
//! promise to its clients; the OpenAPI document is generated from these definitions), the
//! CLI's remote mode reads the same types back, and its tables and `--output json` print
//! them whichever mode produced them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rota_store::{
    AuditRecord, EventRecord, Grant, JobRevision, LogRecord, NamespaceRecord, Role, RunRecord,
    StepRunRecord, TokenRecord,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod fleet;
pub mod schema;

pub use fleet::*;
pub use rota_store::AttemptKey;

/// The keys of a job's definition whose values are durations (`timeout`, `retry.initial`,
/// `retry.max`, a trigger's `every` and `jitter`, …).
const DURATION_KEYS: &[&str] = &[
    "after",
    "cell_timeout",
    "every",
    "expires",
    "hold",
    "initial",
    "jitter",
    "max",
    "timeout",
    "window",
];

/// The keys under which a definition holds the user's own data (parameter values and
/// specs, headers, bodies, environments): left as they are, whatever their shape.
const DATA_KEYS: &[&str] = &[
    "params", "default", "choices", "headers", "env", "body", "json", "outputs",
];

/// A definition as the API sends it: Rust's `{"secs": 1, "nanos": 0}` (how the store keeps
/// a duration, part of each revision's hash) becomes `"1s"`.
pub fn durations_as_text(mut definition: serde_json::Value) -> serde_json::Value {
    walk_durations(&mut definition, &|value| {
        let serde_json::Value::Object(map) = value else {
            return;
        };
        let (Some(secs), Some(nanos)) = (
            map.get("secs").and_then(serde_json::Value::as_u64),
            map.get("nanos").and_then(serde_json::Value::as_u64),
        ) else {
            return;
        };
        if map.len() == 2 && nanos < 1_000_000_000 {
            let duration = std::time::Duration::new(secs, nanos as u32);
            *value = serde_json::Value::String(rota_core::duration::format_duration(duration));
        }
    });
    definition
}

/// The reverse of [`durations_as_text`], for a client that reads a definition from the API
/// into `rota_core::model::Job`.
pub fn durations_from_text(mut definition: serde_json::Value) -> serde_json::Value {
    walk_durations(&mut definition, &|value| {
        if let Some(duration) = value
            .as_str()
            .and_then(|text| rota_core::duration::parse_duration(text).ok())
        {
            *value = serde_json::json!({
                "secs": duration.as_secs(),
                "nanos": duration.subsec_nanos(),
            });
        }
    });
    definition
}

/// Calls `change` on the value of every duration key, outside the user's data.
fn walk_durations(value: &mut serde_json::Value, change: &dyn Fn(&mut serde_json::Value)) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if DATA_KEYS.contains(&key.as_str()) {
                    continue;
                }
                if DURATION_KEYS.contains(&key.as_str()) {
                    change(item);
                }
                walk_durations(item, change);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                walk_durations(item, change);
            }
        }
        _ => {}
    }
}

/// An RFC 9457 problem: the body of every error response (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of problem, `https://rota.dev/problems/<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What was wrong with this request.
    pub detail: String,
    /// Each problem found, for `invalid-job` and `invalid-params` (absent otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemItem>,
}

/// One problem in a request's job file or parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProblemItem {
    /// 1-based line in the job file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column in the job file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The parameter concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// A namespace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Namespace {
    /// Its name.
    pub name: String,
    /// How many jobs it holds.
    pub jobs: u64,
    /// How many runs it holds.
    pub runs: u64,
    /// How long its finished runs are kept (`30d`), if a retention is set; `rota serve`
    /// prunes older ones.
    #[serde(default)]
    pub retention: Option<String>,
}

impl From<NamespaceRecord> for Namespace {
    fn from(r: NamespaceRecord) -> Self {
        Namespace {
            name: r.name,
            jobs: r.jobs,
            runs: r.runs,
            retention: None,
        }
    }
}

/// What `rota prune` / `POST /api/v1/prune` deletes: finished runs older than a duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// Runs that finished longer ago than this (`30d`, `12h`, `1w`) are deleted.
    #[schema(example = "30d")]
    pub older_than: String,
    /// Only runs of this namespace; absent or null for every namespace.
    #[serde(default)]
    #[schema(value_type = Option<crate::ids::Namespace>)]
    pub namespace: Option<String>,
    /// Count what would be deleted; delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Also delete the audit entries older than the cut-off (every namespace only; the
    /// chain is checkpointed so `audit verify` still checks what is kept).
    #[serde(default)]
    pub audit: bool,
}

/// What a prune deleted, or in a dry run would delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PruneReport {
    /// Runs that finished before this instant were pruned.
    #[schema(value_type = String, format = DateTime)]
    pub cutoff: Timestamp,
    /// The namespace pruned; null for every namespace.
    pub namespace: Option<String>,
    /// Whether nothing was deleted (counts are what would have been).
    pub dry_run: bool,
    /// Runs.
    pub runs: u64,
    /// Step runs.
    pub step_runs: u64,
    /// Step attempts.
    pub attempts: u64,
    /// Log lines.
    pub log_lines: u64,
    /// Bytes of log text.
    pub log_bytes: u64,
    /// Events of those runs.
    pub events: u64,
    /// Notifications of those runs.
    pub notifications: u64,
    /// Artifacts of those runs (rows and bytes).
    #[serde(default)]
    pub artifacts: u64,
    /// Audit entries.
    pub audit_entries: u64,
}

/// `PUT /api/v1/namespaces/{namespace}/retention`: how long the namespace keeps finished
/// runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRetention {
    /// A duration (`30d`, `2w`, `12h`), or null to keep runs forever.
    #[schema(example = "30d")]
    pub retention: Option<String>,
}

/// A namespace's retention setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamespaceRetention {
    /// The namespace.
    pub namespace: String,
    /// How long finished runs are kept; null: forever.
    pub retention: Option<String>,
}

/// One revision of a job, without its source (listings).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobSummary {
    /// Namespace.
    pub namespace: String,
    /// Job id.
    pub id: String,
    /// Revision number, from 1.
    pub revision: i64,
    /// Content hash of the revision.
    pub hash: String,
    /// The file a server's job directory loaded it from; null when it was saved through
    /// the API or `rota jobs put`.
    #[schema(required = true)]
    pub source_path: Option<String>,
    /// When the revision was saved.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<JobRevision> for JobSummary {
    fn from(r: JobRevision) -> Self {
        JobSummary {
            namespace: r.namespace,
            id: r.job_id,
            revision: r.revision,
            hash: r.hash,
            source_path: r.source_path,
            created_at: r.created_at,
        }
    }
}

/// One revision of a job, with its source and normalized definition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Namespace.
    pub namespace: String,
    /// Job id.
    pub id: String,
    /// Revision number, from 1.
    pub revision: i64,
    /// Content hash of the revision.
    pub hash: String,
    /// The job file's text.
    pub source: String,
    /// Where the file was read from.
    #[schema(required = true)]
    pub source_path: Option<String>,
    /// The normalized definition. Its durations (`timeout`, `retry.initial`, `every`, …)
    /// are texts in the job-file syntax: `500ms`, `1s`, `1m30s`, `2h`, `1d`.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    /// When the revision was saved.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<JobRevision> for Job {
    fn from(r: JobRevision) -> Self {
        Job {
            namespace: r.namespace,
            id: r.job_id,
            revision: r.revision,
            hash: r.hash,
            source: r.source,
            source_path: r.source_path,
            definition: durations_as_text(r.definition),
            created_at: r.created_at,
        }
    }
}

/// A run and the latest state of each step.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Run {
    /// Run id.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Job id.
    pub job_id: String,
    /// Job revision used.
    pub job_revision: i64,
    /// `planned`, `awaiting_approval`, `queued`, `running`, `succeeded`, `failed`,
    /// `cancelled`, `timed_out` or `abandoned`.
    #[schema(schema_with = schema::run_status_schema)]
    pub status: String,
    /// Why it ended as it did.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// Resolved parameters.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// Whether it is a dry run.
    pub dry_run: bool,
    /// What started it, e.g. `api`, `cron`, `interval`, `webhook`.
    pub trigger: String,
    /// The schedule occurrence it is for.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub scheduled_at: Option<Timestamp>,
    /// When it was accepted.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it began executing.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub finished_at: Option<Timestamp>,
    /// Whether someone asked to cancel it.
    pub cancel_requested: bool,
    /// The run this one retries, if it is a retry.
    #[schema(required = true)]
    pub retry_of: Option<String>,
    /// Who asked for it (an API token's actor, `local:<user>`); `null` for a run a
    /// schedule, webhook or `after` trigger started.
    #[serde(default)]
    pub started_by: Option<String>,
    /// The run and `job:` step that started it, for a child run; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRun>,
    /// Its steps, in file order.
    pub steps: Vec<StepRun>,
    /// The `approval:` gates it reached, with their decisions (in `GET /runs/{id}`; empty
    /// in listings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<Gate>,
}

/// An `approval:` gate a run reached.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Gate {
    /// The gate's step.
    pub step: String,
    /// `awaiting_approval`, `approved`, `rejected`, `expired` or `cancelled`.
    #[schema(schema_with = schema::gate_status_schema)]
    pub status: String,
    /// The hash of what runs after the gate, which decisions bind to.
    pub hash: String,
    /// Who may decide: token names, or `role:<role>`.
    pub approvers: Vec<String>,
    /// How many approvals it needs.
    pub quorum: u32,
    /// Whether the run's starter may approve it.
    pub allow_self: bool,
    /// What the approvers are asked.
    #[schema(required = true)]
    pub message: Option<String>,
    /// When the run reached it.
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: Timestamp,
    /// When it expires, if it does.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub expires_at: Option<Timestamp>,
    /// When it was settled.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub decided_at: Option<Timestamp>,
    /// Its decisions, oldest first.
    pub decisions: Vec<GateDecision>,
}

impl From<rota_store::GateRecord> for Gate {
    fn from(g: rota_store::GateRecord) -> Gate {
        Gate {
            step: g.step_id,
            status: g.status.as_str().to_owned(),
            hash: g.hash,
            approvers: g.rules.approvers,
            quorum: g.rules.quorum,
            allow_self: g.rules.allow_self,
            message: g.message,
            opened_at: g.opened_at,
            expires_at: g.expires_at,
            decided_at: g.decided_at,
            decisions: g
                .decisions
                .into_iter()
                .map(|d| GateDecision {
                    actor: d.actor,
                    at: d.at,
                    decision: d.decision.as_str().to_owned(),
                    comment: d.comment,
                })
                .collect(),
        }
    }
}

/// One approver's decision on a gate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GateDecision {
    /// Who.
    pub actor: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `approve` or `reject`.
    #[schema(schema_with = schema::decision_schema)]
    pub decision: String,
    /// Their comment (a rejection's reason).
    #[schema(required = true)]
    pub comment: Option<String>,
}

/// A decision on a run's `approval:` gate (`POST /runs/{id}/approve`, `/reject`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideGate {
    /// The gate's step; may be left out when the run waits at one gate only.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub step: Option<String>,
    /// Why, in the approver's words (a rejection's reason).
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
    /// The gate hash the approver reviewed; when given, the decision is refused (409)
    /// unless it is the gate's hash.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: Option<String>,
}

/// The run and `job:` step that started a child run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParentRun {
    /// The parent run's id.
    pub run: String,
    /// Its `job:` step.
    pub step: String,
}

impl From<RunRecord> for Run {
    fn from(r: RunRecord) -> Self {
        Run {
            id: r.id,
            namespace: r.namespace,
            job_id: r.job_id,
            job_revision: r.job_revision,
            status: r.status.as_str().to_owned(),
            reason: r.reason,
            params: r.params,
            dry_run: r.dry_run,
            // Runs recorded before interval triggers were named `interval` say `every`.
            trigger: if r.trigger == "every" {
                "interval".to_owned()
            } else {
                r.trigger
            },
            scheduled_at: r.scheduled_at,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            cancel_requested: r.cancel_requested,
            retry_of: r.retry_of,
            started_by: r.started_by,
            parent: r.parent.map(|p| ParentRun {
                run: p.run_id,
                step: p.step_id,
            }),
            steps: r.steps.into_iter().map(StepRun::from).collect(),
            gates: Vec::new(),
        }
    }
}

/// The latest state of one step of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepRun {
    /// Step id.
    pub id: String,
    /// Status of the latest attempt (or `pending` / `skipped`).
    #[schema(schema_with = schema::step_status_schema)]
    pub status: String,
    /// Latest attempt number; 0 if it never started.
    pub attempt: u32,
    /// How many attempts were recorded.
    pub attempts: u32,
    /// Exit code of the latest attempt.
    #[schema(required = true)]
    pub exit_code: Option<i32>,
    /// Why the step ended as it did.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// Outputs of the latest attempt.
    pub outputs: BTreeMap<String, String>,
    /// Start of the latest attempt.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub started_at: Option<Timestamp>,
    /// End of the latest attempt.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub finished_at: Option<Timestamp>,
    /// Start of the first attempt: from it to `finished_at` is the step's whole time,
    /// retries and their waits included.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub first_started_at: Option<Timestamp>,
    /// The worker that ran each attempt a server handed to workers (`runs_on:`), oldest
    /// first; absent for a step that ran on its server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<AttemptWorker>,
    /// The latest run a `job:` step started; absent for other steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_run: Option<String>,
}

impl From<StepRunRecord> for StepRun {
    fn from(s: StepRunRecord) -> Self {
        StepRun {
            id: s.step_id,
            status: s.status.as_str().to_owned(),
            attempt: s.attempt,
            attempts: s.attempts,
            exit_code: s.exit_code,
            reason: s.reason,
            outputs: s.outputs,
            started_at: s.started_at,
            finished_at: s.finished_at,
            first_started_at: s.first_started_at,
            workers: Vec::new(),
            child_run: s.child_run,
        }
    }
}

/// A page of runs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    /// The runs.
    pub items: Vec<Run>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A file a step left in `$ROTA_ARTIFACTS`, kept with its run; or the report the run kept
/// when it ended (`report:` in its job), step `@run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    /// The step; `@run` (no job step can have it) for the run's kept report.
    pub step: String,
    /// Its path relative to the step's `$ROTA_ARTIFACTS`, `/`-separated; `report.html` or
    /// `report.md` for the run's kept report.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// The attempt that left it; 0 for the run's kept report.
    pub attempt: u32,
    /// When it was kept.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<rota_store::ArtifactRecord> for Artifact {
    fn from(a: rota_store::ArtifactRecord) -> Self {
        Artifact {
            step: a.step_id,
            path: a.path,
            size: a.size,
            sha256: a.sha256,
            attempt: a.attempt,
            created_at: a.created_at,
        }
    }
}

/// One captured output line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Position; pass the last one seen as `after` to continue.
    pub seq: i64,
    /// Step id.
    pub step_id: String,
    /// Attempt number.
    pub attempt: u32,
    /// When the line was read.
    #[schema(value_type = String, format = DateTime)]
    pub ts: Timestamp,
    /// `stdout`, `stderr` or `system`.
    #[schema(schema_with = schema::log_stream_schema)]
    pub stream: String,
    /// The line.
    pub text: String,
}

impl From<LogRecord> for LogLine {
    fn from(l: LogRecord) -> Self {
        LogLine {
            seq: l.seq,
            step_id: l.step_id,
            attempt: l.attempt,
            ts: l.ts,
            stream: l.stream.as_str().to_owned(),
            text: l.text,
        }
    }
}

/// A page of log lines, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogPage {
    /// The lines.
    pub items: Vec<LogLine>,
    /// Pass as `after` to continue: the last `seq` returned, or the `after` given.
    pub next_after: i64,
}

/// One state change from the event log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Position; pass the last one seen as `after` to continue.
    pub id: i64,
    /// When it happened.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// What happened, e.g. `run.started`.
    pub kind: String,
    /// The run concerned.
    #[schema(required = true)]
    pub run_id: Option<String>,
    /// The step concerned.
    #[schema(required = true)]
    pub step_id: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<EventRecord> for Event {
    fn from(e: EventRecord) -> Self {
        Event {
            id: e.id,
            at: e.at,
            kind: e.kind,
            run_id: e.run_id,
            step_id: e.step_id,
            data: e.data,
        }
    }
}

/// A page of events, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// The events.
    pub items: Vec<Event>,
    /// Pass as `after` to continue: the last `id` returned, or the `after` given.
    pub next_after: i64,
}

/// The answer to a cancel request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancelAccepted {
    /// The run.
    pub run_id: String,
    /// Always true: the run's owner will stop it.
    pub cancel_requested: bool,
}

/// A role in a namespace, or in every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenGrant {
    /// The namespace; absent or null for every namespace.
    #[serde(default)]
    #[schema(value_type = Option<crate::ids::Namespace>)]
    pub namespace: Option<String>,
    /// `viewer`, `operator`, `editor` or `admin`.
    #[schema(schema_with = schema::role_schema)]
    pub role: String,
}

impl From<Grant> for TokenGrant {
    fn from(g: Grant) -> Self {
        TokenGrant {
            namespace: g.namespace,
            role: g.role.as_str().to_owned(),
        }
    }
}

impl TokenGrant {
    /// The store's grant, if the role and namespace are valid.
    pub fn to_grant(&self) -> Result<Grant, String> {
        let role = Role::parse(&self.role).ok_or_else(|| {
            format!(
                "unknown role {:?}: expected worker, viewer, operator, editor or admin",
                self.role
            )
        })?;
        if let Some(ns) = &self.namespace {
            crate::ids::Namespace::try_from(ns.clone())?;
        }
        Ok(Grant {
            namespace: self.namespace.clone(),
            role,
        })
    }
}

/// A token to create.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A human name: who or what uses it (1–200 characters, not only spaces).
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\n\r]")]
    pub name: String,
    /// Its roles (at least one). A namespace named twice gets the stronger role.
    #[schema(min_items = 1)]
    pub grants: Vec<TokenGrant>,
}

/// A token (its text is never shown again after creation).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// Id, for listing and revoking.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Its roles.
    pub grants: Vec<TokenGrant>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was last used (to the minute).
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub revoked_at: Option<Timestamp>,
}

impl From<TokenRecord> for Token {
    fn from(t: TokenRecord) -> Self {
        Token {
            id: t.id,
            name: t.name,
            grants: t.grants.into_iter().map(TokenGrant::from).collect(),
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A token just created, with its text: the only time the text is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub token: Token,
    /// The bearer token's text.
    pub secret: String,
}

/// A page of tokens.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// The tokens, oldest first.
    pub items: Vec<Token>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A page of namespaces.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NamespaceList {
    /// The namespaces the caller can see, by name.
    pub items: Vec<Namespace>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A page of jobs or job revisions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// The jobs (latest revision each, by id) or one job's revisions (newest first).
    pub items: Vec<JobSummary>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub id: i64,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// What, e.g. `run.cancel`.
    pub action: String,
    /// On what, e.g. `run/<id>`.
    pub target: String,
    /// The client's address, when known.
    #[schema(required = true)]
    pub source: Option<String>,
    /// `ok` or the problem slug it failed with.
    pub result: String,
    /// This entry's hash (SHA-256, hex), chained to the previous entry's.
    pub hash: String,
}

impl From<AuditRecord> for AuditEntry {
    fn from(a: AuditRecord) -> Self {
        AuditEntry {
            id: a.id,
            at: a.at,
            actor: a.actor,
            action: a.action,
            target: a.target,
            source: a.source,
            result: a.result,
            hash: a.hash,
        }
    }
}

/// A page of audit entries, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditEntry>,
    /// Pass as `after` to continue.
    pub next_after: i64,
}

/// The outcome of checking the audit log's hash chain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    /// Whether every entry is as it was appended, in order, with none missing, and every
    /// ended run's record and kept report still as their entries recorded.
    pub intact: bool,
    /// Where the chain breaks: the first entry that was modified, deleted or reordered
    /// (for a deleted one, the id it should have had), or the `run.finished` (holding its
    /// digest) or `run.report` entry of a run whose logs or kept report changed since.
    pub broken_entry: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
}

/// The syntax of a job file sent to the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobFormat {
    /// YAML 1.2.
    Yaml,
    /// TOML 1.0.
    Toml,
    /// JSON.
    Json,
    /// A Markdown runbook (docs/runbooks.md); its front matter names the job's `id`, since
    /// a submission has no file name to take it from.
    Markdown,
}

impl JobFormat {
    /// The parser's format.
    pub fn to_core(self) -> rota_core::parse::Format {
        match self {
            JobFormat::Yaml => rota_core::parse::Format::Yaml,
            JobFormat::Toml => rota_core::parse::Format::Toml,
            JobFormat::Json => rota_core::parse::Format::Json,
            JobFormat::Markdown => rota_core::parse::Format::Markdown,
        }
    }
}

/// A job file to validate or save. Whether `source` is a valid job cannot be stated here:
/// an invalid one is a 422 `invalid-job` problem listing each problem with its position.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "format": "yaml",
    "source": "id: hello\nsteps:\n  - id: greet\n    sh: echo hello\n"
}))]
pub struct JobSubmission {
    /// `yaml`, `toml`, `json` or `markdown`.
    pub format: JobFormat,
    /// The job file's text.
    pub source: String,
}

/// A job a valid file defines.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ValidatedJob {
    /// Job id.
    pub id: String,
    /// The namespace the file names, if any.
    #[schema(required = true)]
    pub namespace: Option<String>,
    /// Declared parameters, in file order.
    pub params: Vec<String>,
    /// Step ids, in file order.
    pub steps: Vec<String>,
    /// How many triggers it declares.
    pub triggers: usize,
}

/// The answer to a validation that found no problem.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Validation {
    /// Always true (an invalid file is a 422 problem).
    pub valid: bool,
    /// The jobs the file defines.
    pub jobs: Vec<ValidatedJob>,
}

/// A run to start.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// Parameter values by name, typed as declared (defaults fill the rest).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Plan only: steps are not executed.
    #[serde(default)]
    pub dry_run: bool,
    /// Confirm the job's `confirm:` steps beforehand (`rota run --yes`): the caller must be
    /// one who may confirm them (the job's approvers, else an operator of its namespace);
    /// without it each waits as an approval gate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm: bool,
}

/// One schedule occurrence and what became of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Occurrence {
    /// The trigger, e.g. `cron:0 * * * *@UTC`.
    pub trigger: String,
    /// When it was due.
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_at: Timestamp,
    /// When it was decided.
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
    /// `run`, `skipped` or `missed`.
    #[schema(schema_with = schema::outcome_schema)]
    pub outcome: String,
    /// The run queued for it.
    #[schema(required = true)]
    pub run_id: Option<String>,
    /// Why it did not run.
    #[schema(required = true)]
    pub reason: Option<String>,
}

impl From<rota_store::OccurrenceRecord> for Occurrence {
    fn from(o: rota_store::OccurrenceRecord) -> Self {
        Occurrence {
            trigger: o.trigger_key,
            scheduled_at: o.scheduled_at,
            recorded_at: o.recorded_at,
            outcome: o.kind.as_str().to_owned(),
            run_id: o.run_id,
            reason: o.reason,
        }
    }
}

/// A job's schedule occurrences, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OccurrenceList {
    /// The occurrences.
    pub items: Vec<Occurrence>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// How to resume a schedule.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeSchedule {
    /// Occurrences before this instant (RFC 3339, or `now`, the default) are skipped as
    /// paused; later ones run.
    #[serde(default)]
    #[schema(schema_with = schema::resume_from_schema)]
    pub from: Option<String>,
}

/// A job's schedule state after a pause or resume.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleState {
    /// Namespace.
    pub namespace: String,
    /// Job id.
    pub job: String,
    /// Whether the schedule is paused.
    pub paused: bool,
    /// When resumed: occurrences before this instant are skipped.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub resume_from: Option<Timestamp>,
}

/// A stored secret: its name and versions, never its value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Secret {
    /// Its name.
    pub name: String,
    /// The latest version.
    pub latest_version: i64,
    /// How many versions exist.
    pub versions: i64,
    /// When the first version was set.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the latest version was set.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Who set the latest version.
    pub updated_by: String,
}

impl From<rota_store::SecretInfo> for Secret {
    fn from(s: rota_store::SecretInfo) -> Self {
        Secret {
            name: s.name,
            latest_version: s.latest_version,
            versions: s.versions,
            created_at: s.created_at,
            updated_at: s.updated_at,
            updated_by: s.updated_by,
        }
    }
}

/// A page of the secrets of a namespace, by name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretList {
    /// The secrets.
    pub items: Vec<Secret>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A secret's new value.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The value; stored encrypted, never returned.
    pub value: String,
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PutSecret { value: <redacted> }")
    }
}

/// A secret version just stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StoredSecret {
    /// Namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The version stored.
    pub version: i64,
}

/// How to retry a run (`POST /api/v1/runs/{id}/retry`); an empty body reruns every step.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRun {
    /// Rerun this step and every step downstream of it (through `needs`); the other steps
    /// keep the results of the original run. Absent: rerun every step.
    #[serde(default)]
    pub from: Option<String>,
    /// With `from` naming a notebook step that failed: continue its executed notebook from
    /// the failed cell in a fresh kernel (replaying the parameters and `setup`-tagged
    /// cells before it, or every cell before it when none is tagged) instead of running
    /// it from the start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume: bool,
}

/// Which runs to list (`GET /api/v1/runs`'s query): filters and a keyset cursor page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Only this namespace (without it, the caller needs a role in every namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<crate::ids::Namespace>,
    /// Only this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<crate::ids::JobId>,
    /// Only this status.
    #[param(schema_with = schema::run_status_schema)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only runs created at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Only runs created before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// Only runs whose id starts with this (to resolve an abbreviated id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_prefix: Option<crate::ids::RunId>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor`.
    #[param(pattern = "^[0-9]{1,17}\\.[a-z0-9]{1,64}$", max_length = 82)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Which log lines of a run to read (`GET /api/v1/runs/{id}/logs`'s query).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only lines with a larger `seq`; 0 or absent for the start.
    #[param(minimum = 0)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only this step's lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// One upcoming fire time of a job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FireTime {
    /// When it fires.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The trigger, e.g. `cron:0 * * * *@UTC`.
    pub trigger: String,
}

/// A job's time triggers, next fire times and pause state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleNext {
    /// Namespace.
    pub namespace: String,
    /// Job id.
    pub job: String,
    /// Whether the schedule is paused (paused occurrences are skipped).
    pub paused: bool,
    /// When resumed: occurrences before this instant are skipped.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resume_from: Option<Timestamp>,
    /// The keys of the job's time triggers (cron, interval, at).
    pub triggers: Vec<String>,
    /// The next fire times, in time order.
    pub next: Vec<FireTime>,
}

/// A range to backfill.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backfill {
    /// Start of the range (RFC 3339, inclusive).
    #[schema(format = DateTime)]
    pub from: String,
    /// End of the range (RFC 3339, inclusive).
    #[schema(format = DateTime)]
    pub to: String,
}

/// One occurrence a backfill covered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackfilledOccurrence {
    /// When it was due.
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_at: Timestamp,
    /// The trigger.
    pub trigger: String,
    /// The run queued for it; null when the occurrence was already recorded (it is not
    /// run again).
    pub run_id: Option<String>,
}

/// What a backfill queued.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackfillResult {
    /// How many runs were queued.
    pub queued: usize,
    /// Every occurrence in the range, in time order.
    pub items: Vec<BackfilledOccurrence>,
}

/// `?limit=&cursor=` of a job's schedule history.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor`.
    #[param(pattern = "^[0-9]{1,17}\\.([0-9a-f]{2}){1,512}$", max_length = 1042)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `?count=` of a job's next fire times.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NextQuery {
    /// How many fire times (1–100, default 5).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// `?limit=&cursor=` of the secrets of a namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SecretPageQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor` (opaque).
    #[param(value_type = Option<crate::ids::SecretName>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `?limit=&cursor=` of the tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenPageQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor` (opaque).
    #[param(pattern = "^[0-9]{1,17}\\.[a-z0-9]{1,64}$", max_length = 82)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `?after=&limit=` of the listings that continue after a position (the audit log, the event
/// log).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AfterQuery {
    /// Only entries after this position (exclusive); 0 or absent for the start.
    #[param(minimum = 0)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A plan to make (`POST /api/v1/namespaces/{namespace}/jobs/{job}/plans`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlan {
    /// Parameter values by name, typed as declared (defaults fill the rest).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Also queue a dry run of the plan (every step in its dry-run mode); its id is the
    /// plan's `dry_run_id`.
    #[serde(default)]
    pub dry_run: bool,
}

/// A decision on a plan (`POST /api/v1/plans/{id}/approve` or `/reject`); an empty body
/// decides without a comment.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecidePlan {
    /// Why, in the approver's words.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
    /// The plan hash the approver reviewed; when given, the decision is refused (409)
    /// unless it is the plan's hash.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: Option<String>,
}

/// One step of a plan, as it will run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanStep {
    /// Step id.
    pub id: String,
    /// Step kind (`sh`, `exec`, `script`, `notebook`, `http`, `check`).
    pub kind: String,
    /// What the step does, in one line, as its kind describes it: a command, a program and
    /// its arguments, a path, `METHOD URL` or a query (rendered like `resolved`).
    pub summary: String,
    /// The step's definition with every template rendered; secrets appear as
    /// `{{ secrets.NAME }}`, never as values. Durations are texts such as `1s` or `1m30s`.
    #[schema(value_type = Object)]
    pub resolved: serde_json::Value,
}

/// A secret a plan's job receives: its name and the version it would get.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanSecret {
    /// The secret's name.
    pub name: String,
    /// The latest stored version; null when the store has none (the server's
    /// environment would provide it).
    #[schema(required = true)]
    pub version: Option<i64>,
}

/// A job's approval rules as a plan was made under them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalRules {
    /// Token names, or `role:<role>`.
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub quorum: u32,
    /// Whether the plan's creator may approve it.
    pub allow_self: bool,
    /// How long a plan stays open, in seconds; null for no limit.
    #[schema(required = true)]
    pub expires_seconds: Option<u64>,
}

/// One approver's decision on a plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanDecision {
    /// Who.
    pub actor: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The plan hash decided on.
    pub hash: String,
    /// `approve` or `reject`.
    #[schema(schema_with = schema::decision_schema)]
    pub decision: String,
    /// Their comment.
    #[schema(required = true)]
    pub comment: Option<String>,
}

/// A plan: a run resolved but not executed, its approvals and what became of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    /// Plan id.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Job id.
    pub job_id: String,
    /// The job revision it pins.
    pub job_revision: i64,
    /// `awaiting_approval`, `approved`, `rejected`, `expired` or `applied`.
    #[schema(schema_with = schema::plan_status_schema)]
    pub status: String,
    /// SHA-256 of the plan's canonical content; approvals bind to it.
    pub hash: String,
    /// Resolved parameters.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// The steps in file order, rendered.
    pub steps: Vec<PlanStep>,
    /// The job's secrets: names and versions, never values.
    pub secrets: Vec<PlanSecret>,
    /// The approval rules; null when the job has none (the plan is approved at once).
    #[schema(required = true)]
    pub approval: Option<ApprovalRules>,
    /// Approvals still needed before it can be applied.
    pub approvals_needed: u32,
    /// The decisions so far, oldest first.
    pub decisions: Vec<PlanDecision>,
    /// Who made it.
    pub created_by: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it expires.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub expires_at: Option<Timestamp>,
    /// The dry run made with it.
    #[schema(required = true)]
    pub dry_run_id: Option<String>,
    /// The run its apply created.
    #[schema(required = true)]
    pub run_id: Option<String>,
    /// Who applied it.
    #[schema(required = true)]
    pub applied_by: Option<String>,
    /// When.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub applied_at: Option<Timestamp>,
    /// What changed since the plan was made (the job's revision, a parameter's or a
    /// secret's version), one sentence each, while it is approved or awaiting approval:
    /// `apply` would refuse it. Empty when nothing changed or the plan is settled.
    pub drift: Vec<String>,
}

impl From<rota_store::PlanRecord> for Plan {
    fn from(p: rota_store::PlanRecord) -> Self {
        let needed = match (&p.approval, p.status) {
            (Some(rules), rota_store::PlanStatus::AwaitingApproval) => {
                (rules.quorum as usize).saturating_sub(p.approvals()) as u32
            }
            _ => 0,
        };
        Plan {
            id: p.id,
            namespace: p.content.namespace,
            job_id: p.content.job,
            job_revision: p.content.revision,
            status: p.status.as_str().to_owned(),
            hash: p.hash,
            params: serde_json::Value::Object(p.content.params.into_iter().collect()),
            steps: p
                .content
                .steps
                .into_iter()
                .map(|s| PlanStep {
                    summary: rota_core::kinds::describe(&s.kind, &s.resolved["kind"][&s.kind]),
                    id: s.id,
                    kind: s.kind,
                    resolved: durations_as_text(s.resolved),
                })
                .collect(),
            secrets: p
                .content
                .secrets
                .into_iter()
                .map(|s| PlanSecret {
                    name: s.name,
                    version: s.version,
                })
                .collect(),
            approval: p.approval.map(|a| ApprovalRules {
                approvers: a.approvers,
                quorum: a.quorum,
                allow_self: a.allow_self,
                expires_seconds: a.expires.map(|d| d.as_secs()),
            }),
            approvals_needed: needed,
            decisions: p
                .decisions
                .into_iter()
                .map(|d| PlanDecision {
                    actor: d.actor,
                    at: d.at,
                    hash: d.hash,
                    decision: d.decision.as_str().to_owned(),
                    comment: d.comment,
                })
                .collect(),
            created_by: p.created_by,
            created_at: p.created_at,
            expires_at: p.expires_at,
            dry_run_id: p.dry_run_id,
            run_id: p.run_id,
            applied_by: p.applied_by,
            applied_at: p.applied_at,
            drift: Vec::new(),
        }
    }
}

/// A page of plans, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanPage {
    /// The plans.
    pub items: Vec<Plan>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/namespaces` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NamespaceQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor` (opaque).
    pub cursor: Option<crate::ids::Namespace>,
}

/// `GET …/jobs` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobPageQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor` (opaque).
    pub cursor: Option<crate::ids::JobId>,
}

/// `GET …/revisions` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevisionPageQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor` (opaque).
    #[param(pattern = "^[1-9][0-9]{0,17}$", max_length = 18)]
    pub cursor: Option<String>,
}

/// `GET /api/v1/plans` filters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// Only this namespace (without it, the caller needs a role in every namespace).
    pub namespace: Option<crate::ids::Namespace>,
    /// Only this status.
    #[param(schema_with = schema::plan_status_schema)]
    pub status: Option<String>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor`.
    #[param(pattern = "^[0-9]{1,17}\\.[a-z0-9]{1,64}$", max_length = 82)]
    pub cursor: Option<String>,
}

/// A job file of a server's job directory that does not load (its last good revision
/// keeps running); not part of the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobLoadProblem {
    /// The file.
    pub path: String,
    /// What is wrong with it (diagnostics, one per line).
    pub message: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_definition_s_durations_become_text_and_back_but_not_the_user_s_data() {
        let stored = json!({
            "id": "j",
            "params": [{"name": "p", "default": {"secs": 1, "nanos": 0}}],
            "policy": {"timeout": {"secs": 90, "nanos": 0}},
            "steps": [{
                "id": "a",
                "retry": {"attempts": 3, "initial": {"secs": 1, "nanos": 0}, "max": null},
                "kind": {"exec": {"argv": ["sleep", "1s"]}},
                "env": {"timeout": "5s"},
            }],
        });
        let wire = durations_as_text(stored.clone());
        assert_eq!(wire["policy"]["timeout"], "1m30s");
        assert_eq!(wire["steps"][0]["retry"]["initial"], "1s");
        assert_eq!(wire["steps"][0]["retry"]["max"], serde_json::Value::Null);
        assert_eq!(wire["params"][0]["default"], json!({"secs": 1, "nanos": 0}));
        assert_eq!(wire["steps"][0]["env"]["timeout"], "5s");
        assert_eq!(wire["steps"][0]["kind"]["exec"]["argv"][1], "1s");
        assert_eq!(durations_from_text(wire), stored);
    }
}
