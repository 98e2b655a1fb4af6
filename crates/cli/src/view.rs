//! One display type per kind of result, shared by local and remote mode so their tables and
//! `--output json` cannot drift apart.
//!
//! Each type reads the API's wire JSON (`rota_ops::records`). Local mode converts a store
//! record into the same wire type the API would send and reads it back through
//! [`via_wire`], so both modes go through one conversion into the display type.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Reads a wire value (what the API would send) into a display type.
pub fn via_wire<W: serde::Serialize, V: DeserializeOwned>(wire: W) -> anyhow::Result<V> {
    let value = serde_json::to_value(wire)?;
    Ok(serde_json::from_value(value)?)
}

/// A run with the latest state of each step (`wire::Run`).
#[derive(Debug, Clone, Deserialize)]
pub struct RunView {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_revision: i64,
    pub status: String,
    pub reason: Option<String>,
    pub params: Value,
    pub dry_run: bool,
    pub trigger: String,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub steps: Vec<StepView>,
    /// The local process running it (`pid`, host); the API does not expose owners.
    #[serde(skip)]
    pub owner: Option<(u32, String)>,
}

/// The latest state of one step (`wire::StepRun`).
#[derive(Debug, Clone, Deserialize)]
pub struct StepView {
    pub id: String,
    pub status: String,
    pub attempt: u32,
    pub attempts: u32,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Start of the first attempt (absent from older servers).
    #[serde(default)]
    pub first_started_at: Option<Timestamp>,
}

impl StepView {
    /// The step's whole time, from its first attempt's start to its last attempt's end
    /// (retries and their waits included), as a table shows it.
    pub fn duration(&self) -> String {
        crate::output::elapsed(self.first_started_at.or(self.started_at), self.finished_at)
    }
}

impl RunView {
    /// A store record, as the API would show it, plus its owner.
    pub fn from_record(record: rota_store::RunRecord) -> anyhow::Result<RunView> {
        let owner = (record.owner.pid, record.owner.host.clone());
        let mut view: RunView = via_wire(rota_ops::records::Run::from(record))?;
        view.owner = Some(owner);
        Ok(view)
    }

    /// The run's status, if this rota knows it.
    pub fn run_status(&self) -> Option<rota_core::model::RunStatus> {
        rota_core::model::RunStatus::parse(&self.status)
    }

    /// Whether the run has ended.
    pub fn is_terminal(&self) -> bool {
        self.run_status().is_none_or(|s| s.is_terminal())
    }

    /// The JSON contract of a run (`rota run --output json`, `rota runs --output json`).
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "job": self.job_id,
            "namespace": self.namespace,
            "status": self.status,
            "reason": self.reason,
            "job_revision": self.job_revision,
            "params": self.params,
            "dry_run": self.dry_run,
            "trigger": self.trigger,
            "created_at": self.created_at.to_string(),
            "started_at": self.started_at.map(|t| t.to_string()),
            "finished_at": self.finished_at.map(|t| t.to_string()),
            "steps": self.steps.iter().map(|step| json!({
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
}

/// One captured log line (`wire::LogLine`).
#[derive(Debug, Clone, Deserialize)]
pub struct LogLineView {
    pub seq: i64,
    pub step_id: String,
    pub attempt: u32,
    pub ts: Timestamp,
    /// `stdout`, `stderr` or `system`.
    pub stream: String,
    pub text: String,
}

/// A page of log lines (`wire::LogPage`).
#[derive(Debug, Clone, Deserialize)]
pub struct LogPageView {
    pub items: Vec<LogLineView>,
}

/// A page of runs (`wire::RunPage`).
#[derive(Debug, Clone, Deserialize)]
pub struct RunPageView {
    pub items: Vec<RunView>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_run_and_its_wire_form_give_the_same_view() {
        let at = Timestamp::from_second(1_800_000_000).expect("valid instant");
        let wire = json!({
            "id": "r1", "namespace": "default", "job_id": "j", "job_revision": 2,
            "status": "succeeded", "reason": null, "params": {"n": 3}, "dry_run": false,
            "trigger": "api", "scheduled_at": null, "created_at": at, "started_at": at,
            "finished_at": at, "cancel_requested": false,
            "steps": [{"id": "a", "status": "succeeded", "attempt": 1, "attempts": 1,
                       "exit_code": 0, "reason": null, "outputs": {"k": "v"},
                       "started_at": at, "finished_at": at}],
        });
        let view: RunView = serde_json::from_value(wire).expect("wire run reads");
        let json = view.json();
        assert_eq!(json["job"], "j");
        assert_eq!(json["steps"][0]["outputs"]["k"], "v");
        assert_eq!(json["created_at"], at.to_string());
    }
}
