//! `confirm:` on a step: a person confirms the resolved step before its first attempt.
//!
//! How depends on the run ([`Confirmations`]): at an interactive terminal the question and
//! the resolved command are shown and answered y/N; a run started with `--yes` by someone
//! allowed to confirm is confirmed beforehand; anywhere else (a server, a pipe) the step
//! waits as an approval gate, with the same machinery as an `approval:` step: the attempt
//! ends `awaiting_approval` after recording `GateOpened`, bound to the hash of the steps
//! from this one on ([`PlanContent::after_gate`]), and `rota approve RUN --step STEP`
//! (or the API or the web UI) settles it. A retry of a confirmed step is not asked again.
//!
//! `on_failure: ask` asks the other question through the same means: once a step's
//! attempts are spent and it failed, retry, skip or abort? At a terminal all three; at a
//! gate (one per failed attempt, [`failure_gate`]) an approval retries, a skip skips and a
//! rejection aborts.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use rota_core::model::{Approval, Step, StepStatus};
use rota_core::plan::PlanContent;
use rota_core::template::Context;
use rota_store::RunEvent;

use crate::process::Stream;
use crate::run::{GateOutcome, GateState, Shared};
use crate::step::{Attempt, log_redacted, render_text};

/// Asks a person at a terminal.
pub trait Confirm: Send + Sync {
    /// Shows `question` (with the resolved step) and waits for the answer; `true` means
    /// confirmed. Blocking.
    fn ask(&self, question: &str) -> bool;

    /// Shows what failed (`question`) and waits for the choice. Blocking.
    fn after_failure(&self, question: &str) -> FailureAnswer;
}

/// What an operator chose after a step with `on_failure: ask` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAnswer {
    /// Another attempt.
    Retry,
    /// The step ends skipped; its dependents run.
    Skip,
    /// The step ends failed.
    Abort,
}

/// What the engine does after a step with `on_failure: ask` failed.
pub(crate) enum AfterFailure {
    /// Another attempt, at the request of `by`.
    Retry { by: String },
    /// The step ends skipped, with this reason.
    Skip { why: String },
    /// The step ends failed, with this reason.
    Abort { why: String },
    /// The question waits at a gate: the step waits as `awaiting_approval`.
    Wait,
}

/// The gate that holds the question asked after attempt `attempt` of `step` failed: one
/// per failure, so a retried step that fails again asks again.
pub fn failure_gate(step: &str, attempt: u32) -> String {
    format!("{step}#{FAILURE_GATE_MARK}{attempt}")
}

/// What sets a failure gate's name apart from a step id (which holds no `#`).
const FAILURE_GATE_MARK: &str = "failed-";

/// Whether `gate` is the gate of a failed step's question ([`failure_gate`]): the only
/// kind of gate a skip settles.
pub fn is_failure_gate(gate: &str) -> bool {
    gate.split_once('#').is_some_and(|(_, rest)| {
        rest.strip_prefix(FAILURE_GATE_MARK)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The answer to the question asked after attempt `attempt_no` of `step` failed with
/// `failure`: given at its gate already (a resumed run), asked at the terminal, or asked
/// at a gate opened now (approve: retry; reject: abort).
pub(crate) async fn after_failure(
    shared: &Arc<Shared>,
    step: &Step,
    attempt_no: u32,
    ctx: &Context,
    failure: &str,
) -> AfterFailure {
    let gate = failure_gate(&step.id, attempt_no);
    match shared.gates.get(&gate).map(|g| &g.outcome) {
        Some(GateOutcome::Approved { by }) => {
            return AfterFailure::Retry { by: by.join(", ") };
        }
        Some(GateOutcome::Rejected { by, reason }) => {
            let why = match reason {
                Some(reason) => format!("{failure}; aborted by {by}: {reason}"),
                None => format!("{failure}; aborted by {by}"),
            };
            return AfterFailure::Abort { why };
        }
        Some(GateOutcome::Skipped { by, reason }) => {
            let why = match reason {
                Some(reason) => format!("{failure}; skipped by {by}: {reason}"),
                None => format!("{failure}; skipped by {by}"),
            };
            return AfterFailure::Skip { why };
        }
        Some(GateOutcome::Expired) => {
            return AfterFailure::Abort {
                why: format!("{failure}; nobody chose to retry it in time"),
            };
        }
        Some(GateOutcome::Waiting) | None => {}
    }
    let question = format!("step {} failed: {failure}", step.id);
    if let Confirmations::Ask(terminal) = &shared.confirmations {
        let terminal = Arc::clone(terminal);
        let asked = question.clone();
        let answer = tokio::task::spawn_blocking(move || terminal.after_failure(&asked))
            .await
            .unwrap_or(FailureAnswer::Abort);
        return match answer {
            FailureAnswer::Retry => AfterFailure::Retry {
                by: "the terminal".to_owned(),
            },
            FailureAnswer::Skip => AfterFailure::Skip {
                why: format!("{failure}; skipped at the terminal"),
            },
            FailureAnswer::Abort => AfterFailure::Abort {
                why: format!("{failure}; aborted at the terminal"),
            },
        };
    }
    let hash = gate_hash(shared, step, ctx);
    let rules = rules(shared.job.approval.as_ref());
    let log = |text: &str| log_redacted(shared, step, attempt_no, Stream::Stdout, text);
    log(&format!(
        "{question}; waiting for one of {} to retry it (rota approve RUN --step {gate}), \
         skip it (rota skip RUN --step {gate}) or abort (rota reject RUN --step {gate})",
        rules.approvers.join(", ")
    ));
    shared.recorder.send(RunEvent::GateOpened {
        run_id: shared.run_id.clone(),
        step_id: gate,
        hash,
        rules,
        message: Some(format!(
            "{question}. Approve to retry it, skip it, or reject to abort."
        )),
        at: Timestamp::now(),
    });
    AfterFailure::Wait
}

/// How a run's `confirm:` steps are confirmed.
#[derive(Clone, Default)]
pub enum Confirmations {
    /// Each waits as an approval gate.
    #[default]
    Gate,
    /// Confirmed beforehand by whoever started the run (`--yes`).
    Given {
        /// The actor, as the audit log names it.
        by: String,
    },
    /// Asked at this terminal.
    Ask(Arc<dyn Confirm>),
}

impl fmt::Debug for Confirmations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Confirmations::Gate => f.write_str("Gate"),
            Confirmations::Given { by } => f.debug_struct("Given").field("by", by).finish(),
            Confirmations::Ask(_) => f.write_str("Ask"),
        }
    }
}

/// Who may settle a confirmation gate: the job's approvers if it has an `approval:`,
/// else anyone with at least the operator role; one of them, who may be the run's starter.
pub fn rules(approval: Option<&Approval>) -> Approval {
    Approval {
        approvers: approval
            .map_or_else(|| vec!["role:operator".to_owned()], |a| a.approvers.clone()),
        quorum: 1,
        allow_self: true,
        expires: approval.and_then(|a| a.expires),
    }
}

/// Confirms step `step` before attempt `attempt_no`, which would run `display`. `None`:
/// go on; `Some`: the attempt ends so (declined, rejected, or waiting at the gate).
pub(crate) async fn before_attempt(
    shared: &Arc<Shared>,
    step: &Step,
    attempt_no: u32,
    ctx: &Context,
    display: &str,
) -> Option<Attempt> {
    let question = step.confirm.as_ref()?;
    let log = |text: &str| log_redacted(shared, step, attempt_no, Stream::Stdout, text);
    let question = render_text(question, ctx).unwrap_or_else(|_| question.clone());
    let question = shared.redactor.redact(&question).into_owned();
    let hash = gate_hash(shared, step, ctx);
    match shared.gates.get(&step.id) {
        Some(GateState { outcome, .. }) if *outcome == GateOutcome::Waiting => {}
        Some(GateState { hash: bound, .. }) if *bound != hash => {
            return Some(Attempt::failed(format!(
                "the step changed since it was confirmed (hash {} then, {} now)",
                short(bound),
                short(&hash)
            )));
        }
        Some(GateState { outcome, .. }) => return decided(outcome, &log),
        None => {}
    }
    if attempt_no > 1 {
        // Only a confirmed first attempt leads to a retry.
        return None;
    }
    match &shared.confirmations {
        Confirmations::Given { by } => {
            log(&format!("confirmed beforehand by {by} (--yes): {question}"));
            None
        }
        Confirmations::Ask(terminal) => {
            let terminal = Arc::clone(terminal);
            let asked = format!("{question}\n  step {}: {display}", step.id);
            let yes = tokio::task::spawn_blocking(move || terminal.ask(&asked))
                .await
                .unwrap_or(false);
            if yes {
                log(&format!("confirmed at the terminal: {question}"));
                None
            } else {
                Some(Attempt::failed(format!(
                    "not confirmed at the terminal: {question}"
                )))
            }
        }
        Confirmations::Gate => Some(open_gate(shared, step, attempt_no, question, hash)),
    }
}

/// The attempt's end for a confirmation gate someone settled.
fn decided(outcome: &GateOutcome, log: &dyn Fn(&str)) -> Option<Attempt> {
    match outcome {
        GateOutcome::Approved { by } => {
            log(&format!("confirmed by {}", by.join(", ")));
            None
        }
        GateOutcome::Rejected { by, reason } | GateOutcome::Skipped { by, reason } => {
            Some(Attempt::failed(match reason {
                Some(reason) => format!("not confirmed: rejected by {by}: {reason}"),
                None => format!("not confirmed: rejected by {by}"),
            }))
        }
        GateOutcome::Expired => Some(Attempt::failed(
            "not confirmed in time (the job's approval `expires`)".to_owned(),
        )),
        GateOutcome::Waiting => None,
    }
}

/// Records that the step waits for its confirmation and ends the attempt waiting.
fn open_gate(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    question: String,
    hash: String,
) -> Attempt {
    let rules = rules(shared.job.approval.as_ref());
    let log = |text: &str| log_redacted(shared, step, attempt_no, Stream::Stdout, text);
    log(&format!(
        "waiting for confirmation by one of {} (gate hash {}): {question}",
        rules.approvers.join(", "),
        short(&hash)
    ));
    shared.recorder.send(RunEvent::GateOpened {
        run_id: shared.run_id.clone(),
        step_id: step.id.clone(),
        hash,
        rules,
        message: Some(question),
        at: Timestamp::now(),
    });
    Attempt {
        status: StepStatus::AwaitingApproval,
        exit_code: None,
        outputs: BTreeMap::new(),
        reason: Some("waiting for confirmation".to_owned()),
    }
}

/// What a confirmation or failure gate binds to: the hash of the steps from `step` on.
fn gate_hash(shared: &Shared, step: &Step, ctx: &Context) -> String {
    PlanContent::after_gate(
        &shared.namespace,
        &shared.job,
        shared.job_revision,
        &ctx.params,
        &step.id,
        &ctx.steps,
    )
    .hash()
}

/// The first 12 characters of a hash, as gate messages show it.
pub(crate) fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
