//! `approval:` gates in the middle of a run: what the engine is told of them when a run
//! is prepared, and the rule that turns a refusal of the store into an [`OpsError`].
//!
//! The rules themselves (approvers, quorum, self-approval, one decision each, expiry, the
//! hash) are enforced by the store in one transaction (`Store::decide_gate`), as for
//! plans; the decision that settles a gate queues its run again there too, and this layer
//! wakes whoever claims queued runs.

use std::collections::BTreeMap;

use rota_engine::confirm::Confirmations;
use rota_engine::run::{GateOutcome, GateState};
use rota_store::{Decision, GateError, GateRecord, GateStatus};

use crate::auth::Role;
use crate::{Ops, OpsError};

impl Ops {
    /// How a run `principal` starts confirms its `confirm:` steps: with `yes`, beforehand
    /// as `principal`, who must be allowed to settle the confirmation gates
    /// (`rota_engine::confirm::rules`); else each waits as a gate.
    pub fn confirmations(
        principal: &crate::auth::Principal,
        job: &rota_core::model::Job,
        namespace: &str,
        yes: bool,
    ) -> Result<Confirmations, OpsError> {
        if !yes {
            return Ok(Confirmations::Gate);
        }
        let rules = rota_engine::confirm::rules(job.approval.as_ref());
        let who = crate::service::plans::approver(principal, namespace);
        if !rota_store::is_approver(&rules, &who) {
            return Err(OpsError::Forbidden {
                needed: Role::Operator,
                scope: format!(
                    "to confirm the steps of job {} beforehand (--yes): one of {}",
                    job.id,
                    rules.approvers.join(", ")
                ),
            });
        }
        Ok(Confirmations::Given {
            by: principal.actor.clone(),
        })
    }

    /// How each gate run `run_id` reached was decided, for the engine.
    pub(crate) async fn gate_states(
        &self,
        run_id: &str,
    ) -> Result<BTreeMap<String, GateState>, OpsError> {
        let gates = self.store.run_gates(run_id).await?;
        Ok(gates
            .into_iter()
            .map(|gate| (gate.step_id.clone(), gate_state(gate)))
            .collect())
    }
}

/// A stored gate as the engine sees it. A cancelled gate belongs to a run that ended, so
/// it never reaches the engine; it reads as still waiting.
fn gate_state(gate: GateRecord) -> GateState {
    let outcome = match gate.status {
        GateStatus::Approved => GateOutcome::Approved {
            by: gate
                .decisions
                .iter()
                .filter(|d| d.decision == Decision::Approve)
                .map(|d| d.actor.clone())
                .collect(),
        },
        GateStatus::Rejected => {
            let rejection = gate
                .decisions
                .iter()
                .find(|d| d.decision == Decision::Reject);
            GateOutcome::Rejected {
                by: rejection.map_or_else(String::new, |d| d.actor.clone()),
                reason: rejection.and_then(|d| d.comment.clone()),
            }
        }
        GateStatus::Skipped => {
            let skip = gate.decisions.iter().find(|d| d.decision == Decision::Skip);
            GateOutcome::Skipped {
                by: skip.map_or_else(String::new, |d| d.actor.clone()),
                reason: skip.and_then(|d| d.comment.clone()),
            }
        }
        GateStatus::Expired => GateOutcome::Expired,
        GateStatus::AwaitingApproval | GateStatus::Cancelled => GateOutcome::Waiting,
    };
    GateState {
        hash: gate.hash,
        outcome,
    }
}

impl Ops {
    /// Refuses (409) a skip of any gate of run `run_id` but a failed step's question
    /// (`on_failure: ask`): the gate `step`, or the one the run waits at. A gate that is
    /// not there, or several waiting, are left to the store, which refuses them as for any
    /// decision and checks the rest (an approver, once, while it waits).
    pub(crate) async fn check_skippable(
        &self,
        run_id: &str,
        step: Option<&str>,
    ) -> Result<(), OpsError> {
        let gates = self.store.run_gates(run_id).await?;
        let mut candidates = gates.into_iter().filter(|g| match step {
            Some(step) => g.step_id == step,
            None => g.status == GateStatus::AwaitingApproval,
        });
        let gate = match (candidates.next(), candidates.next()) {
            (Some(gate), None) => gate.step_id,
            _ => return Ok(()),
        };
        if rota_engine::confirm::is_failure_gate(&gate) {
            return Ok(());
        }
        Err(OpsError::Conflict(format!(
            "gate {gate} of run {run_id} is not a failed step's question: only a step with \
             `on_failure: ask` that failed is skipped (its gate is STEP#failed-N); approve or \
             reject this one"
        )))
    }
}

/// A refusal of the gate rules as an [`OpsError`]: `Forbidden` for a caller who is not an
/// approver, `NotFound` for a run or gate that does not exist, `Conflict` for the rest.
pub(crate) fn gate_error(error: GateError) -> OpsError {
    match error {
        GateError::RunNotFound(id) => OpsError::NotFound(format!("run {id:?}")),
        GateError::NoGate { .. } => OpsError::NotFound(error.to_string()),
        GateError::NotApprover {
            run,
            step,
            approvers,
            ..
        } => OpsError::Forbidden {
            needed: Role::Operator,
            scope: format!("as one of the approvers of the gate {step} of run {run} ({approvers})"),
        },
        GateError::Store(e) => e.into(),
        other => OpsError::Conflict(other.to_string()),
    }
}
