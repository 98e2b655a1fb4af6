//! Run reports: one self-contained file (HTML or Markdown) that tells what a run was and
//! how it went: its parameters, the plan it came from and who planned, approved and
//! applied it, its gates, each step's resolved definition, attempts, timing, status and
//! (already redacted) log lines, and each executed notebook rendered inline.
//!
//! [`gather`] reads everything from the store (and the run's directory, for notebooks);
//! [`render`] writes it. The HTML has inline CSS, no scripts and no external references,
//! and escapes everything it shows, so it opens offline and cannot run anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use rota_core::plan::PlannedStep;
use rota_store::{LogRecord, StepAttemptRecord};
use serde::{Deserialize, Serialize};

use crate::records::{Plan, Run, StepRun};

mod html;
mod md;
use crate::{Ops, OpsError};

/// The step a run's kept report is listed under among its artifacts (no job step can
/// have this id): `rota artifacts RUN @run --get report.html`.
pub use rota_store::RUN_STEP;

/// Log lines shown per step; past that, a note says how many were left out.
pub const LOG_LINES_PER_STEP: usize = 5_000;

/// Log lines read per query.
const LOG_PAGE: u32 = 1_000;

/// The formats a report is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// A self-contained HTML page.
    #[default]
    Html,
    /// Markdown.
    Md,
}

/// The query of `GET /api/v1/runs/{id}/report`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `html` (the default) or `md`.
    #[param(inline)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ReportFormat>,
}

impl ReportFormat {
    /// The format of the report a run keeps when its job says `report:`, if any.
    pub fn kept(report: rota_core::model::KeptReport) -> Option<ReportFormat> {
        match report {
            rota_core::model::KeptReport::None => None,
            rota_core::model::KeptReport::Html => Some(ReportFormat::Html),
            rota_core::model::KeptReport::Md => Some(ReportFormat::Md),
        }
    }

    /// The path of a kept report among its run's artifacts (step [`rota_store::RUN_STEP`]).
    pub fn kept_path(self) -> &'static str {
        match self {
            ReportFormat::Html => "report.html",
            ReportFormat::Md => "report.md",
        }
    }

    /// The media type of a report in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            ReportFormat::Html => "text/html; charset=utf-8",
            ReportFormat::Md => "text/markdown; charset=utf-8",
        }
    }
}

/// Everything a report shows, read once.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run, with its steps and gates.
    pub run: Run,
    /// The plan whose apply created it, if any.
    pub plan: Option<Plan>,
    /// Each step's definition with its templates rendered, by step id.
    pub resolved: BTreeMap<String, PlannedStep>,
    /// The earlier attempts of steps that ran more than once, by step id.
    pub attempts: BTreeMap<String, Vec<StepAttemptRecord>>,
    /// Log lines by step id, at most [`LOG_LINES_PER_STEP`] each.
    pub logs: BTreeMap<String, Vec<LogRecord>>,
    /// Lines left out per step.
    pub logs_left_out: BTreeMap<String, usize>,
    /// Executed notebooks by step id: (attempt, the notebook as JSON).
    pub notebooks: BTreeMap<String, Vec<(u32, serde_json::Value)>>,
}

/// Reads what the report of `run` shows.
pub async fn gather(ops: &Ops, run: Run) -> Result<RunReport, OpsError> {
    let store = ops.store();
    let plan = store.plan_of_run(&run.id).await?;
    let resolved_steps = match &plan {
        Some(plan) => plan.content.steps.clone(),
        None => resolve_steps(ops, &run).await?,
    };
    let resolved = resolved_steps
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let mut attempts = BTreeMap::new();
    for step in run.steps.iter().filter(|s| s.attempts > 1) {
        let all = store.step_attempts(&run.id, &step.id).await?;
        attempts.insert(step.id.clone(), all);
    }
    let (logs, logs_left_out) = read_logs(ops, &run.id).await?;
    let notebooks = read_notebooks(ops, &run);
    Ok(RunReport {
        plan: plan.map(Plan::from),
        run,
        resolved,
        attempts,
        logs,
        logs_left_out,
        notebooks,
    })
}

/// The steps of the run's job revision rendered with its parameters, as a plan would show
/// them (secrets stay template text).
async fn resolve_steps(ops: &Ops, run: &Run) -> Result<Vec<PlannedStep>, OpsError> {
    let store = ops.store();
    let Some(revision) = store
        .job_revision(&run.namespace, &run.job_id, run.job_revision)
        .await?
    else {
        return Ok(Vec::new());
    };
    let job = revision.job()?;
    let params = match &run.params {
        serde_json::Value::Object(map) => map.clone().into_iter().collect(),
        _ => BTreeMap::new(),
    };
    let content = store
        .plan_of(&run.namespace, &job, run.job_revision, &params)
        .await?;
    Ok(content.steps)
}

/// Every log line of the run by step, capped per step.
async fn read_logs(
    ops: &Ops,
    run_id: &str,
) -> Result<(BTreeMap<String, Vec<LogRecord>>, BTreeMap<String, usize>), OpsError> {
    let mut logs: BTreeMap<String, Vec<LogRecord>> = BTreeMap::new();
    let mut left_out: BTreeMap<String, usize> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = ops.store().logs(run_id, None, after, LOG_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for line in page {
            let kept = logs.entry(line.step_id.clone()).or_default();
            if kept.len() < LOG_LINES_PER_STEP {
                kept.push(line);
            } else {
                *left_out.entry(line.step_id).or_default() += 1;
            }
        }
    }
    Ok((logs, left_out))
}

/// The executed notebooks (`<step>.<attempt>.ipynb`) in the run's directory, where this
/// process knows it. A notebook that is missing or unreadable is left out: the step's
/// status and logs still tell how it went.
fn read_notebooks(ops: &Ops, run: &Run) -> BTreeMap<String, Vec<(u32, serde_json::Value)>> {
    let Some(dir) = ops.run_dir(&run.id) else {
        return BTreeMap::new();
    };
    let mut found = BTreeMap::new();
    for step in &run.steps {
        for attempt in 1..=step.attempts {
            let path: PathBuf = dir.join(format!("{}.{attempt}.ipynb", step.id));
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let Ok(nb) = serde_json::from_str::<serde_json::Value>(&text) {
                found
                    .entry(step.id.clone())
                    .or_insert_with(Vec::new)
                    .push((attempt, nb));
            }
        }
    }
    found
}

/// Writes `report` in `format`.
pub fn render(report: &RunReport, format: ReportFormat) -> String {
    match format {
        ReportFormat::Html => html::render(report),
        ReportFormat::Md => md::render(report),
    }
}

/// A time as RFC 3339, or `-`.
pub(crate) fn when(at: Option<jiff::Timestamp>) -> String {
    at.map_or_else(|| "-".to_owned(), |t| t.to_string())
}

/// How long from `start` to `end`, e.g. `1.25 s`, or `-`.
pub(crate) fn took(start: Option<jiff::Timestamp>, end: Option<jiff::Timestamp>) -> String {
    match (start, end) {
        (Some(start), Some(end)) => {
            let micros = end.as_microsecond() - start.as_microsecond();
            format!("{:.2} s", micros as f64 / 1e6)
        }
        _ => "-".to_owned(),
    }
}

/// The report's facts about the run, in order: (label, value).
pub(crate) fn run_facts(run: &Run) -> Vec<(&'static str, String)> {
    vec![
        ("Run", run.id.clone()),
        ("Job", format!("{}/{}", run.namespace, run.job_id)),
        ("Revision", run.job_revision.to_string()),
        ("Status", run.status.clone()),
        ("Reason", run.reason.clone().unwrap_or_else(|| "-".into())),
        ("Trigger", run.trigger.clone()),
        (
            "Started by",
            run.started_by.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Dry run", run.dry_run.to_string()),
        ("Created", run.created_at.to_string()),
        ("Started", when(run.started_at)),
        ("Finished", when(run.finished_at)),
        ("Duration", took(run.started_at, run.finished_at)),
        (
            "Retry of",
            run.retry_of.clone().unwrap_or_else(|| "-".into()),
        ),
    ]
}

/// One decision as the report shows it: `who decision at time`.
fn decision_text(actor: &str, decision: &str, at: impl std::fmt::Display) -> String {
    format!("{actor} {decision} at {at}")
}

/// The report's facts about one step, in order, its outputs joined with `separator`.
pub(crate) fn step_facts(step: &StepRun, separator: &str) -> Vec<(&'static str, String)> {
    let outputs: Vec<String> = step
        .outputs
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    vec![
        ("Attempts", step.attempts.to_string()),
        (
            "Exit code",
            step.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
        ),
        ("Reason", step.reason.clone().unwrap_or_else(|| "-".into())),
        ("Started", when(step.first_started_at.or(step.started_at))),
        ("Finished", when(step.finished_at)),
        ("Duration", took(step.started_at, step.finished_at)),
        (
            "Outputs",
            if outputs.is_empty() {
                "-".to_owned()
            } else {
                outputs.join(separator)
            },
        ),
    ]
}

/// The columns of the gates table.
pub(crate) const GATE_COLUMNS: [&str; 4] = ["Step", "Status", "Hash", "Decisions"];

/// The gates table's rows, one per gate of the run.
pub(crate) fn gate_rows(run: &Run) -> Vec<Vec<String>> {
    run.gates
        .iter()
        .map(|gate| {
            let decisions: Vec<String> = gate
                .decisions
                .iter()
                .map(|d| decision_text(&d.actor, &d.decision, d.at))
                .collect();
            vec![
                gate.step.clone(),
                gate.status.clone(),
                gate.hash.clone(),
                decisions.join("; "),
            ]
        })
        .collect()
}

/// The columns of a step's earlier attempts table.
pub(crate) const ATTEMPT_COLUMNS: [&str; 6] =
    ["#", "Status", "Exit", "Reason", "Started", "Duration"];

/// A step's earlier attempts table's rows.
pub(crate) fn attempt_rows(attempts: &[StepAttemptRecord]) -> Vec<Vec<String>> {
    attempts
        .iter()
        .map(|a| {
            vec![
                a.attempt.to_string(),
                a.status.as_str().to_owned(),
                a.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
                a.reason.clone().unwrap_or_else(|| "-".into()),
                when(a.started_at),
                took(a.started_at, a.finished_at),
            ]
        })
        .collect()
}

/// The report's facts about the plan: (label, value).
pub(crate) fn plan_facts(plan: &Plan) -> Vec<(&'static str, String)> {
    let approvals: Vec<String> = plan
        .decisions
        .iter()
        .map(|d| decision_text(&d.actor, &d.decision, d.at))
        .collect();
    vec![
        ("Plan", plan.id.clone()),
        ("Plan hash", plan.hash.clone()),
        ("Planned by", plan.created_by.clone()),
        ("Planned at", plan.created_at.to_string()),
        (
            "Decisions",
            if approvals.is_empty() {
                "-".to_owned()
            } else {
                approvals.join("; ")
            },
        ),
        (
            "Applied by",
            plan.applied_by.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Applied at", when(plan.applied_at)),
    ]
}

/// The parameters as `name = JSON value` lines, in name order.
pub(crate) fn param_lines(run: &Run) -> Vec<String> {
    match &run.params {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<_, _> = map.iter().collect();
            sorted
                .into_iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// A step's resolved definition, pretty-printed JSON.
pub(crate) fn resolved_text(report: &RunReport, step: &str) -> Option<String> {
    report
        .resolved
        .get(step)
        .and_then(|s| serde_json::to_string_pretty(&s.resolved).ok())
}

/// One log line as shown: `time stream text`.
pub(crate) fn log_line(line: &LogRecord) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{} [{}] {}",
        line.ts,
        line.stream.as_str(),
        rota_notebook::redact::strip_ansi(&line.text)
    );
    out
}
