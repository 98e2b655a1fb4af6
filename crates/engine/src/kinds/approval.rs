//! The `approval:` step kind: a gate in the middle of a run.
//!
//! The gate does no work of its own. Its attempt looks up how the gate was decided (the
//! run's [`GateState`]s, which the application layer reads from the store when it prepares
//! a run): approved gates succeed, rejected and expired ones fail with who and why, and an
//! open (or new) gate ends its attempt `awaiting_approval` after recording that it opened,
//! with the hash of what follows it ([`PlanContent::after_gate`]). The run loop then
//! starts nothing downstream of it and, once nothing else runs, the run waits as
//! `awaiting_approval` ([`crate::run`]), holding no process and no slot. A decision that
//! settles the gate queues the run again, and the resumed run comes back here.
//!
//! An approval binds to the hash the approvers saw: if what follows the gate hashes
//! differently when the run resumes (it cannot, as long as the revision, parameters and
//! the outcomes before the gate are those it was opened with), the gate fails.
//!
//! In a dry run the gate is shown, not waited for, unless its `dry_run` is `run`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rota_core::kinds::approval::ApprovalStep;
use rota_core::model::StepStatus;
use rota_core::plan::PlanContent;
use rota_store::RunEvent;

use super::{Executor, ResolveCx};
use crate::confirm::short;
use crate::process::Stream;
use crate::run::{GateOutcome, GateState};
use crate::step::{Attempt, AttemptCx, Resolved, Work, log_redacted, render_text};

pub(crate) struct Approval;

impl Executor for Approval {
    fn name(&self) -> &'static str {
        "approval"
    }

    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String> {
        let gate: ApprovalStep = r.step.kind.decode()?;
        let message = match &gate.message {
            // A dry run has no outputs of the steps before: the message shows as written.
            Some(text) if r.dry_run.is_some() => {
                Some(render_text(text, r.ctx).unwrap_or_else(|_| text.clone()))
            }
            Some(text) => Some(render_text(text, r.ctx)?),
            None => None,
        }
        .map(|text| r.shared.redactor.redact(&text).into_owned());
        let hash = PlanContent::after_gate(
            &r.shared.namespace,
            &r.shared.job,
            r.shared.job_revision,
            &r.ctx.params,
            &r.step.id,
            &r.ctx.steps,
        )
        .hash();
        let display = gate.describe();
        let work = GateWork {
            decided: r.shared.gates.get(&r.step.id).cloned(),
            gate,
            message,
            hash,
        };
        Ok(Resolved::work_or_echo(
            Box::new(work),
            display,
            r.dry_run,
            "would wait for",
        ))
    }
}

/// A gate's attempt: its decision so far, and what it binds to now.
struct GateWork {
    decided: Option<GateState>,
    gate: ApprovalStep,
    message: Option<String>,
    hash: String,
}

impl Work for GateWork {
    fn run<'a>(
        self: Box<Self>,
        at: AttemptCx<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Attempt> + Send + 'a>> {
        Box::pin(async move { self.end(&at) })
    }
}

impl GateWork {
    fn end(self, at: &AttemptCx<'_>) -> Attempt {
        let log =
            |text: &str| log_redacted(at.shared, at.step, at.attempt_no, Stream::Stdout, text);
        let (hash, outcome) = match &self.decided {
            Some(GateState { hash, outcome }) if *outcome != GateOutcome::Waiting => {
                (hash, outcome)
            }
            _ => return self.wait(at),
        };
        if *hash != self.hash {
            return Attempt::failed(format!(
                "what runs after the gate changed since it was decided (hash {} then, {} now)",
                short(hash),
                short(&self.hash)
            ));
        }
        match outcome {
            GateOutcome::Approved { by } => {
                log(&format!("approved by {}", by.join(", ")));
                Attempt {
                    status: StepStatus::Succeeded,
                    exit_code: None,
                    outputs: BTreeMap::from([("approved_by".to_owned(), by.join(","))]),
                    reason: None,
                }
            }
            GateOutcome::Rejected { by, reason } | GateOutcome::Skipped { by, reason } => {
                Attempt::failed(match reason {
                    Some(reason) => format!("rejected by {by}: {reason}"),
                    None => format!("rejected by {by}"),
                })
            }
            GateOutcome::Expired => Attempt::failed(match self.gate.rules.expires {
                Some(expires) => format!(
                    "not approved within {} (the gate's `expires`)",
                    crate::run::humantime(expires)
                ),
                None => "the gate expired".to_owned(),
            }),
            GateOutcome::Waiting => self.wait(at),
        }
    }

    /// Records that the run reached the gate (a gate already open stays as it was) and
    /// ends the attempt waiting.
    fn wait(&self, at: &AttemptCx<'_>) -> Attempt {
        at.shared.recorder.send(RunEvent::GateOpened {
            run_id: at.shared.run_id.clone(),
            step_id: at.step.id.clone(),
            hash: self.hash.clone(),
            rules: self.gate.rules.clone(),
            message: self.message.clone(),
            at: Timestamp::now(),
        });
        let log =
            |text: &str| log_redacted(at.shared, at.step, at.attempt_no, Stream::Stdout, text);
        log(&format!(
            "waiting for {} (gate hash {})",
            self.gate.describe(),
            short(&self.hash)
        ));
        if let Some(message) = &self.message {
            log(message);
        }
        Attempt {
            status: StepStatus::AwaitingApproval,
            exit_code: None,
            outputs: BTreeMap::new(),
            reason: Some(format!("waiting for {}", self.gate.describe())),
        }
    }
}
