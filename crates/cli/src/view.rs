//! One display type per kind of result, shared by local and remote mode so their tables and
//! `--output json` cannot drift apart.
//!
//! Each type reads the API's wire JSON (`rota_ops::records`). Local mode converts a store
//! record into the same wire type the API would send and reads it back through
//! [`via_wire`], so both modes go through one conversion into the display type.


use jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Reads a wire value (what the API would send) into a display type.
pub fn via_wire<W: serde::Serialize, V: DeserializeOwned>(wire: W) -> anyhow::Result<V> {
    let value = serde_json::to_value(wire)?;
    Ok(serde_json::from_value(value)?)
}

/// A run as the API answers it (kept under this name for the commands that still read it).
pub type RunView = rota_ops::records::Run;

/// The JSON contract of a run (`rota run --output json`, `rota runs --output json`): the
/// record with `job` for `job_id`, and without the fields the CLI never printed.
pub fn run_json(run: &rota_ops::records::Run) -> Value {
    json!({
        "id": run.id,
        "job": run.job_id,
        "namespace": run.namespace,
        "status": run.status,
        "reason": run.reason,
        "job_revision": run.job_revision,
        "params": run.params,
        "dry_run": run.dry_run,
        "trigger": run.trigger,
        "created_at": run.created_at.to_string(),
        "started_at": run.started_at.map(|t| t.to_string()),
        "finished_at": run.finished_at.map(|t| t.to_string()),
        "steps": run.steps.iter().map(|step| json!({
            "id": step.id,
            "status": step.status,
            "exit_code": step.exit_code,
            "attempts": step.attempts,
            "outputs": step.outputs,
            "reason": step.reason,
            "started_at": step.started_at.map(|t| t.to_string()),
            "finished_at": step.finished_at.map(|t| t.to_string()),
            "first_started_at": step.first_started_at.map(|t| t.to_string()),
        })).collect::<Vec<_>>(),
    })
}

/// A step's whole time, from its first attempt's start to its last attempt's end (retries
/// and their waits included), as a table shows it.
pub fn step_duration(step: &rota_ops::records::StepRun) -> String {
    crate::output::elapsed(step.first_started_at.or(step.started_at), step.finished_at)
}

/// Whether the run has ended (a status this rota does not know counts as ended).
pub fn run_ended(run: &rota_ops::records::Run) -> bool {
    rota_core::model::RunStatus::parse(&run.status).is_none_or(|s| s.is_terminal())
}

/// The latest revision of a stored job (`wire::JobSummary`, or `wire::Job` with its path).
#[derive(Debug, Clone, Deserialize)]
pub struct JobView {
    pub namespace: String,
    pub id: String,
    pub revision: i64,
    pub hash: String,
    /// Where a server's job directory read the file from.
    pub source_path: Option<String>,
    pub created_at: Timestamp,
}

impl JobView {
    /// The JSON of `rota jobs --output json`.
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "namespace": self.namespace,
            "revision": self.revision,
            "hash": self.hash,
            "source_path": self.source_path,
            "created_at": self.created_at.to_string(),
        })
    }
}

/// One schedule occurrence (`wire::Occurrence`).
#[derive(Debug, Clone, Deserialize)]
pub struct OccurrenceView {
    pub trigger: String,
    pub scheduled_at: Timestamp,
    pub recorded_at: Timestamp,
    pub outcome: String,
    pub run_id: Option<String>,
    pub reason: Option<String>,
}

impl OccurrenceView {
    /// The JSON of `rota schedule history --output json`.
    pub fn json(&self) -> Value {
        json!({
            "scheduled_at": self.scheduled_at.to_string(),
            "trigger": self.trigger,
            "outcome": self.outcome,
            "run_id": self.run_id,
            "reason": self.reason,
            "recorded_at": self.recorded_at.to_string(),
        })
    }
}

/// A schedule's state after pause or resume (`wire::ScheduleState`).
#[derive(Debug, Clone, Deserialize)]
pub struct ScheduleStateView {
    pub namespace: String,
    pub job: String,
    pub paused: bool,
    pub resume_from: Option<Timestamp>,
}

/// A stored secret's metadata (`wire::Secret`); never its value.
#[derive(Debug, Clone, Deserialize)]
pub struct SecretView {
    pub name: String,
    pub latest_version: i64,
    pub versions: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

/// A secret version just stored (`wire::StoredSecret`).
#[derive(Debug, Clone, Deserialize)]
pub struct StoredSecretView {
    pub namespace: String,
    pub name: String,
    pub version: i64,
}

/// One role of a token (`wire::TokenGrant`).
#[derive(Debug, Clone, Deserialize)]
pub struct GrantView {
    pub namespace: Option<String>,
    pub role: String,
}

/// A token, without its text (`wire::Token`).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub grants: Vec<GrantView>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl TokenView {
    /// The JSON of `rota tokens list --output json`.
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "grants": grants_json(&self.grants),
            "created_at": self.created_at.to_string(),
            "last_used_at": self.last_used_at.map(|at| at.to_string()),
            "revoked_at": self.revoked_at.map(|at| at.to_string()),
        })
    }
}

/// The grants as JSON.
pub fn grants_json(grants: &[GrantView]) -> Value {
    grants
        .iter()
        .map(|g| json!({ "namespace": g.namespace, "role": g.role }))
        .collect()
}

/// `admin@*`, `viewer@team-a,viewer@team-b`.
pub fn grants_text(grants: &[GrantView]) -> String {
    grants
        .iter()
        .map(|g| format!("{}@{}", g.role, g.namespace.as_deref().unwrap_or("*")))
        .collect::<Vec<_>>()
        .join(",")
}

/// A token just created, with its text (`wire::CreatedToken`).
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedTokenView {
    #[serde(flatten)]
    pub token: TokenView,
    pub secret: String,
}

/// One audit entry (`wire::AuditEntry`).
#[derive(Debug, Clone, Deserialize)]
pub struct AuditView {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source: Option<String>,
    pub result: String,
    pub hash: String,
}

impl AuditView {
    /// The JSON of `rota audit list --output json`.
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "at": self.at.to_string(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "source": self.source,
            "result": self.result,
            "hash": self.hash,
        })
    }
}

/// A list answer of the API: `{"items": [...]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// A plan with its approvals (`wire::Plan`); `--output json` prints the wire form as is.
#[derive(Debug, Clone, Deserialize)]
pub struct PlanView {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_revision: i64,
    pub status: String,
    pub hash: String,
    pub params: Value,
    pub steps: Vec<PlanStepView>,
    pub secrets: Vec<PlanSecretView>,
    pub approval: Option<ApprovalView>,
    pub approvals_needed: u32,
    pub decisions: Vec<PlanDecisionView>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub dry_run_id: Option<String>,
    pub run_id: Option<String>,
    /// What changed since it was made, while it could still be applied.
    #[serde(default)]
    pub drift: Vec<String>,
    /// The wire JSON it was read from.
    #[serde(skip)]
    pub wire: Value,
}

/// One step of a plan (`wire::PlanStep`).
#[derive(Debug, Clone, Deserialize)]
pub struct PlanStepView {
    pub id: String,
    pub kind: String,
    pub resolved: Value,
}

impl PlanStepView {
    /// What the step runs, in one line: its command, argv, script, notebook, URL or query.
    pub fn what(&self) -> String {
        rota_core::kinds::describe(&self.kind, &self.resolved["kind"][&self.kind])
    }
}

/// A secret of a plan (`wire::PlanSecret`).
#[derive(Debug, Clone, Deserialize)]
pub struct PlanSecretView {
    pub name: String,
    pub version: Option<i64>,
}

/// Approval rules (`wire::ApprovalRules`).
#[derive(Debug, Clone, Deserialize)]
pub struct ApprovalView {
    pub approvers: Vec<String>,
    pub quorum: u32,
    pub allow_self: bool,
}

/// A decision on a plan (`wire::PlanDecision`).
#[derive(Debug, Clone, Deserialize)]
pub struct PlanDecisionView {
    pub actor: String,
    pub at: Timestamp,
    pub decision: String,
    pub comment: Option<String>,
}

impl PlanView {
    /// Reads the wire JSON of a plan, keeping it for `--output json`.
    pub fn from_wire(wire: Value) -> anyhow::Result<PlanView> {
        let mut view: PlanView = serde_json::from_value(wire.clone())?;
        view.wire = wire;
        Ok(view)
    }

    /// A store record, as the API would show it (with its drift).
    pub async fn from_record(
        store: &rota_store::Store,
        record: rota_store::PlanRecord,
    ) -> anyhow::Result<PlanView> {
        let wire = rota_ops::records::Plan::with_drift(store, record).await?;
        PlanView::from_wire(serde_json::to_value(wire)?)
    }

    /// The status to show: `approved` or `awaiting_approval` become `drifted` when what the
    /// plan pinned changed since (apply would refuse it).
    pub fn shown_status(&self) -> String {
        if self.drift.is_empty() {
            self.status.clone()
        } else {
            format!("drifted ({})", self.status)
        }
    }

    /// The approvals it has (`approve` decisions), whatever its status.
    pub fn approvals(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.decision == "approve")
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_prints_job_for_job_id_and_keeps_its_keys() {
        let at = Timestamp::from_second(1_800_000_000).expect("valid instant");
        let wire = json!({
            "id": "r1", "namespace": "default", "job_id": "j", "job_revision": 2,
            "status": "succeeded", "reason": null, "params": {"n": 3}, "dry_run": false,
            "trigger": "api", "scheduled_at": null, "created_at": at, "started_at": at,
            "finished_at": at, "cancel_requested": false, "retry_of": null,
            "steps": [{"id": "a", "status": "succeeded", "attempt": 1, "attempts": 1,
                       "exit_code": 0, "reason": null, "outputs": {"k": "v"},
                       "started_at": at, "finished_at": at, "first_started_at": at}],
        });
        let run: RunView = serde_json::from_value(wire).expect("wire run reads");
        let json = run_json(&run);
        assert_eq!(json["job"], "j");
        assert_eq!(json["steps"][0]["outputs"]["k"], "v");
        assert_eq!(json["created_at"], at.to_string());
        let keys: Vec<&str> = json.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id", "job", "namespace", "status", "reason", "job_revision", "params",
                "dry_run", "trigger", "created_at", "started_at", "finished_at", "steps"
            ]
        );
    }
}
