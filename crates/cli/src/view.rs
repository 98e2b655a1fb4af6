//! How records print where the CLI's own contract differs from the record: the JSON of a
//! run (`rota run` / `rota runs --output json`), and the times tables show. Local and
//! remote mode print the same `rota_ops::records`, so their tables and JSON cannot drift
//! apart.

use serde_json::{Value, json};

/// The JSON contract of a run (`rota run --output json`, `rota runs --output json`): the
/// record with `job` for `job_id`, and without the fields the CLI never printed.
pub fn run_json(run: &rota_ops::records::Run) -> Value {
    let mut value = json!({
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
        "started_by": run.started_by,
    });
    // A run's `approval:` gates and the links of `job:` steps, present only where there is
    // one (as in the API's JSON).
    if !run.gates.is_empty() {
        value["gates"] = json!(run.gates);
    }
    if let Some(parent) = &run.parent {
        value["parent"] = json!({"run": parent.run, "step": parent.step});
    }
    if let Some(steps) = value["steps"].as_array_mut() {
        for (shown, step) in steps.iter_mut().zip(&run.steps) {
            if let Some(child) = &step.child_run {
                shown["child_run"] = json!(child);
            }
        }
    }
    value
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_prints_job_for_job_id_and_keeps_its_keys() {
        let at = jiff::Timestamp::from_second(1_800_000_000).expect("valid instant");
        let wire = json!({
            "id": "r1", "namespace": "default", "job_id": "j", "job_revision": 2,
            "status": "succeeded", "reason": null, "params": {"n": 3}, "dry_run": false,
            "trigger": "api", "scheduled_at": null, "created_at": at, "started_at": at,
            "finished_at": at, "cancel_requested": false, "retry_of": null,
            "steps": [{"id": "a", "status": "succeeded", "attempt": 1, "attempts": 1,
                       "exit_code": 0, "reason": null, "outputs": {"k": "v"},
                       "started_at": at, "finished_at": at, "first_started_at": at}],
        });
        let run: rota_ops::records::Run = serde_json::from_value(wire).expect("wire run reads");
        let json = run_json(&run);
        assert_eq!(json["job"], "j");
        assert_eq!(json["steps"][0]["outputs"]["k"], "v");
        assert_eq!(json["created_at"], at.to_string());
        let keys: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "job",
                "namespace",
                "status",
                "reason",
                "job_revision",
                "params",
                "dry_run",
                "trigger",
                "created_at",
                "started_at",
                "finished_at",
                "steps",
                "started_by"
            ]
        );
    }
}
