//! `approval:` gates in the middle of a run: opening one when the run reaches it, the
//! decisions of its approvers under its rules, its expiry, and the run's way back to
//! `queued` once a gate it waits at is decided.
//!
//! A run that reached a gate and has nothing else to do is `awaiting_approval`: no process
//! owns it and no server executes it. The decision that settles a gate (the quorum'th
//! approval, a rejection, the expiry) queues the run again in the same transaction, and
//! whoever claims it resumes it: the gate step then succeeds or fails with the decision.

use std::str::FromStr;

use jiff::Timestamp;
use rota_core::model::Approval;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::convert::{append_event, micros, opt_ts, run_status, ts};
use crate::plans::{Approver, Decision, is_approver};
use crate::{Store, StoreError};

/// Where a gate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GateStatus {
    /// Open for decisions.
    AwaitingApproval,
    /// Its quorum approved it.
    Approved,
    /// An approver rejected it.
    Rejected,
    /// An approver skipped the failed step it held (`on_failure: ask`).
    Skipped,
    /// Its `expires` passed before the quorum approved it.
    Expired,
    /// The run was cancelled while it waited.
    Cancelled,
}

impl GateStatus {
    /// Every status.
    pub const ALL: [GateStatus; 6] = [
        GateStatus::AwaitingApproval,
        GateStatus::Approved,
        GateStatus::Rejected,
        GateStatus::Skipped,
        GateStatus::Expired,
        GateStatus::Cancelled,
    ];

    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GateStatus::AwaitingApproval => "awaiting_approval",
            GateStatus::Approved => "approved",
            GateStatus::Rejected => "rejected",
            GateStatus::Skipped => "skipped",
            GateStatus::Expired => "expired",
            GateStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for GateStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<GateStatus, String> {
        GateStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("unknown gate status {text:?}"))
    }
}

/// A gate a run reached, with its decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRecord {
    /// The run.
    pub run_id: String,
    /// The gate step.
    pub step_id: String,
    /// What decisions bind to.
    pub hash: String,
    /// Who may decide, how many must, self-approval, expiry.
    pub rules: Approval,
    /// What the approvers are asked.
    pub message: Option<String>,
    /// Where it stands.
    pub status: GateStatus,
    /// When the run reached it.
    pub opened_at: Timestamp,
    /// When it expires, if it does.
    pub expires_at: Option<Timestamp>,
    /// When it was settled (approved, rejected, skipped, expired, cancelled).
    pub decided_at: Option<Timestamp>,
    /// Its decisions, oldest first.
    pub decisions: Vec<GateDecisionRecord>,
}

impl GateRecord {
    /// How many approvals it has.
    pub fn approvals(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.decision == Decision::Approve)
            .count()
    }
}

/// One approver's decision on a gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateDecisionRecord {
    /// Who.
    pub actor: String,
    /// When.
    pub at: Timestamp,
    /// What.
    pub decision: Decision,
    /// Their comment (a rejection's reason).
    pub comment: Option<String>,
}

/// A decision on a gate, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct GateDecided {
    /// The gate after the decision.
    pub gate: GateRecord,
    /// Whether the decision settled it and queued the run again.
    pub run_queued: bool,
}

/// Why a decision on a gate was refused.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// No run has this id.
    #[error("no run {0:?}")]
    RunNotFound(String),
    /// The run has no gate waiting (none named `step`, or none at all).
    #[error("run {run} has no approval gate waiting{}", step.as_ref().map(|s| format!(" at step {s}")).unwrap_or_default())]
    NoGate {
        /// The run.
        run: String,
        /// The step asked for.
        step: Option<String>,
    },
    /// The run has ended: its gates take no decisions.
    #[error("run {run} has ended ({status}): its gates take no more decisions")]
    RunEnded {
        /// The run.
        run: String,
        /// Its status.
        status: &'static str,
    },
    /// Several gates wait and none was named.
    #[error("run {run} waits at several gates ({}); name one with --step", steps.join(", "))]
    SeveralGates {
        /// The run.
        run: String,
        /// The waiting gates.
        steps: Vec<String>,
    },
    /// The gate was settled already.
    #[error("the gate {step} of run {run} is {status}, not awaiting approval")]
    NotAwaiting {
        /// The run.
        run: String,
        /// The gate.
        step: String,
        /// Its status.
        status: &'static str,
    },
    /// The caller is not one of the gate's approvers, or lacks the `operator` role.
    #[error(
        "{actor} may not decide the gate {step} of run {run}: approvers are {approvers} (with at least the operator role)"
    )]
    NotApprover {
        /// The run.
        run: String,
        /// The gate.
        step: String,
        /// The caller.
        actor: String,
        /// The approvers as the step lists them.
        approvers: String,
    },
    /// The caller started the run and the rules do not allow self-approval.
    #[error(
        "{actor} started run {run} and may not approve its gate {step} (the step sets allow_self: false)"
    )]
    SelfApproval {
        /// The run.
        run: String,
        /// The gate.
        step: String,
        /// The caller.
        actor: String,
    },
    /// The caller already decided on this gate.
    #[error("{actor} already decided on the gate {step} of run {run}")]
    AlreadyDecided {
        /// The run.
        run: String,
        /// The gate.
        step: String,
        /// The caller.
        actor: String,
    },
    /// The caller decided on another content than the gate's.
    #[error("the gate {step} of run {run} has hash {actual}, not {given}")]
    HashMismatch {
        /// The run.
        run: String,
        /// The gate.
        step: String,
        /// The hash given.
        given: String,
        /// The gate's.
        actual: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for GateError {
    fn from(error: sqlx::Error) -> GateError {
        GateError::Store(error.into())
    }
}

/// Opens the gate `step_id` of `run_id` (its `expires` counted from `at`); `false` when it
/// was open already (the run came back to it after another gate was decided).
pub(crate) async fn open(
    conn: &mut AnyConnection,
    run_id: &str,
    step_id: &str,
    hash: &str,
    rules: &Approval,
    message: Option<&str>,
    at: Timestamp,
) -> Result<bool, StoreError> {
    let expires_at = rules
        .expires
        .and_then(|d| jiff::SignedDuration::try_from(d).ok())
        .and_then(|d| at.checked_add(d).ok())
        .map(micros);
    let rules = serde_json::to_string(rules).map_err(|e| StoreError::Corrupt {
        what: "gate rules",
        detail: e.to_string(),
    })?;
    let done = sqlx::query(
        "INSERT INTO run_gates (run_id, step_id, hash, rules, message, status, opened_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, 'awaiting_approval', $6, $7) \
         ON CONFLICT (run_id, step_id) DO NOTHING",
    )
    .bind(run_id)
    .bind(step_id)
    .bind(hash)
    .bind(rules)
    .bind(message)
    .bind(micros(at))
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The run's status as it stops at its gates: `awaiting_approval`, or `queued` when one of
/// the gates it stops at was settled while it still ran (its decision queued nothing then,
/// since the run was running).
pub(crate) const PARKED_STATUS: &str = "CASE WHEN EXISTS (SELECT 1 FROM run_gates g \
     JOIN step_runs s ON s.run_id = g.run_id AND s.step_id = g.step_id \
     WHERE g.run_id = runs.id AND g.status <> 'awaiting_approval' \
     AND s.status = 'awaiting_approval') THEN 'queued' ELSE 'awaiting_approval' END";

const COLUMNS: &str =
    "run_id, step_id, hash, rules, message, status, opened_at, expires_at, decided_at";

async fn load_gates(conn: &mut AnyConnection, run_id: &str) -> Result<Vec<GateRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM run_gates WHERE run_id = $1 ORDER BY opened_at, step_id"
    ))
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut gates = rows
        .iter()
        .map(gate_record)
        .collect::<Result<Vec<_>, _>>()?;
    let decisions = sqlx::query(
        "SELECT step_id, actor, at, decision, comment FROM gate_decisions \
         WHERE run_id = $1 ORDER BY at, actor",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in &decisions {
        let step_id: String = row.try_get("step_id")?;
        let decision: String = row.try_get("decision")?;
        let decision = match decision.as_str() {
            "approve" => Decision::Approve,
            "reject" => Decision::Reject,
            "skip" => Decision::Skip,
            other => return Err(corrupt("gate decision", other)),
        };
        if let Some(gate) = gates.iter_mut().find(|g| g.step_id == step_id) {
            gate.decisions.push(GateDecisionRecord {
                actor: row.try_get("actor")?,
                at: ts(row, "at")?,
                decision,
                comment: row.try_get("comment")?,
            });
        }
    }
    Ok(gates)
}

fn gate_record(row: &AnyRow) -> Result<GateRecord, StoreError> {
    let rules: String = row.try_get("rules")?;
    let status: String = row.try_get("status")?;
    Ok(GateRecord {
        run_id: row.try_get("run_id")?,
        step_id: row.try_get("step_id")?,
        hash: row.try_get("hash")?,
        rules: serde_json::from_str(&rules).map_err(|e| corrupt("gate rules", e))?,
        message: row.try_get("message")?,
        status: status.parse().map_err(|e| corrupt("gate status", e))?,
        opened_at: ts(row, "opened_at")?,
        expires_at: opt_ts(row, "expires_at")?,
        decided_at: opt_ts(row, "decided_at")?,
        decisions: Vec::new(),
    })
}

fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

/// Settles `gate` as `status` at `at`, and queues its run again if the run waits for it.
async fn settle(
    conn: &mut AnyConnection,
    gate: &mut GateRecord,
    status: GateStatus,
    at: Timestamp,
) -> Result<bool, StoreError> {
    sqlx::query(
        "UPDATE run_gates SET status = $1, decided_at = $2 WHERE run_id = $3 AND step_id = $4",
    )
    .bind(status.as_str())
    .bind(micros(at))
    .bind(&gate.run_id)
    .bind(&gate.step_id)
    .execute(&mut *conn)
    .await?;
    gate.status = status;
    gate.decided_at = Some(at);
    let kind = format!("gate.{}", status.as_str());
    let data = json!({ "hash": gate.hash, "approvals": gate.approvals() });
    append_event(conn, at, &kind, &gate.run_id, Some(&gate.step_id), data).await?;
    let queued = sqlx::query(
        "UPDATE runs SET status = 'queued', reason = NULL \
         WHERE id = $1 AND status = 'awaiting_approval'",
    )
    .bind(&gate.run_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if queued {
        let data = json!({ "status": "queued", "reason": format!("gate {} {}", gate.step_id, status.as_str()) });
        append_event(conn, at, "run.requeued", &gate.run_id, None, data).await?;
    }
    Ok(queued)
}

/// Expires `gate` if its time passed by `now`; whether it did, and whether that queued its
/// run.
async fn expire_if_due(
    conn: &mut AnyConnection,
    gate: &mut GateRecord,
    now: Timestamp,
) -> Result<Option<bool>, StoreError> {
    if gate.status != GateStatus::AwaitingApproval || gate.expires_at.is_none_or(|at| at > now) {
        return Ok(None);
    }
    settle(conn, gate, GateStatus::Expired, now).await.map(Some)
}

impl Store {
    /// The gates run `run_id` reached, with their decisions, in the order it reached them.
    pub async fn run_gates(&self, run_id: &str) -> Result<Vec<GateRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_gates(&mut conn, run_id).await
    }

    /// Records `who`'s decision on the gate `step` of run `run_id` (or its one waiting
    /// gate), in one transaction under the gate's rules: an approver with at least the
    /// operator role, not the run's starter unless `allow_self`, once per approver, on the
    /// gate's hash when `hash` is given. The quorum'th approval or a rejection settles the
    /// gate and queues the run again. A gate past its expiry expires instead (and the
    /// decision is refused as not awaiting).
    #[allow(clippy::too_many_arguments)]
    pub async fn decide_gate(
        &self,
        run_id: &str,
        step: Option<&str>,
        who: &Approver,
        decision: Decision,
        comment: Option<&str>,
        hash: Option<&str>,
        at: Timestamp,
    ) -> Result<GateDecided, GateError> {
        let mut tx = self.write().await?;
        let run = sqlx::query("SELECT status, started_by FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| GateError::RunNotFound(run_id.to_owned()))?;
        let started_by: Option<String> = run.try_get("started_by")?;
        let status = run_status(&run, "status")?;
        if status.is_terminal() {
            return Err(GateError::RunEnded {
                run: run_id.to_owned(),
                status: status.as_str(),
            });
        }
        let gates = load_gates(&mut tx, run_id).await?;
        let mut gate = pick_gate(run_id, step, gates)?;
        if expire_if_due(&mut tx, &mut gate, at).await?.is_some() {
            // The expiry stands (and may have queued the run) though the decision does not.
            tx.commit().await?;
            return Err(GateError::NotAwaiting {
                run: run_id.to_owned(),
                step: gate.step_id,
                status: GateStatus::Expired.as_str(),
            });
        }
        check_decider(&gate, who, started_by.as_deref(), hash)?;
        sqlx::query(
            "INSERT INTO gate_decisions (run_id, step_id, actor, at, hash, decision, comment) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(run_id)
        .bind(&gate.step_id)
        .bind(&who.actor)
        .bind(micros(at))
        .bind(&gate.hash)
        .bind(decision.as_str())
        .bind(comment)
        .execute(&mut *tx)
        .await?;
        gate.decisions.push(GateDecisionRecord {
            actor: who.actor.clone(),
            at,
            decision,
            comment: comment.map(str::to_owned),
        });
        let kind = match decision {
            Decision::Approve => "gate.approval",
            Decision::Reject => "gate.rejection",
            Decision::Skip => "gate.skip",
        };
        let data = json!({ "by": who.actor, "hash": gate.hash, "approvals": gate.approvals(),
                           "quorum": gate.rules.quorum });
        append_event(&mut tx, at, kind, run_id, Some(&gate.step_id), data).await?;
        let settled = match decision {
            Decision::Reject => Some(GateStatus::Rejected),
            Decision::Skip => Some(GateStatus::Skipped),
            Decision::Approve if gate.approvals() >= gate.rules.quorum as usize => {
                Some(GateStatus::Approved)
            }
            Decision::Approve => None,
        };
        let run_queued = match settled {
            Some(status) => settle(&mut tx, &mut gate, status, at).await?,
            None => false,
        };
        tx.commit().await?;
        Ok(GateDecided { gate, run_queued })
    }

    /// Expires every open gate whose time passed by `now`, queuing the runs that waited
    /// for them; returns those runs' ids.
    pub async fn expire_due_gates(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT run_id FROM run_gates \
             WHERE status = 'awaiting_approval' AND expires_at <= $1",
        )
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        let mut queued = Vec::new();
        for run_id in due {
            let mut tx = self.write().await?;
            for mut gate in load_gates(&mut tx, &run_id).await? {
                if expire_if_due(&mut tx, &mut gate, now).await? == Some(true) {
                    queued.push(run_id.clone());
                }
            }
            tx.commit().await?;
        }
        Ok(queued)
    }

    /// Ends run `run_id` as cancelled if it waits at its gates (`awaiting_approval`): its
    /// waiting and pending steps `cancelled`, its open gates `cancelled`, in one
    /// transaction. `false` when the run does not wait (it is executing, queued or ended).
    pub async fn cancel_waiting_run(
        &self,
        run_id: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let reason = format!("cancelled by {by} while awaiting approval");
        let done = sqlx::query(
            "UPDATE runs SET status = 'cancelled', reason = $1, finished_at = $2 \
             WHERE id = $3 AND status = 'awaiting_approval'",
        )
        .bind(&reason)
        .bind(micros(at))
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let step_reason = "the run was cancelled while it waited for approval";
        let steps: Vec<String> = sqlx::query_scalar(
            "SELECT step_id FROM step_runs WHERE run_id = $1 \
             AND status IN ('pending', 'awaiting_approval') ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(&mut *tx)
        .await?;
        for step_id in &steps {
            sqlx::query(
                "UPDATE step_runs SET status = 'cancelled', reason = $1, finished_at = $2, \
                 pgid = NULL WHERE run_id = $3 AND step_id = $4",
            )
            .bind(step_reason)
            .bind(micros(at))
            .bind(run_id)
            .bind(step_id)
            .execute(&mut *tx)
            .await?;
            let data = json!({ "status": "cancelled", "reason": step_reason });
            append_event(&mut tx, at, "step.skipped", run_id, Some(step_id), data).await?;
        }
        sqlx::query(
            "UPDATE run_gates SET status = 'cancelled', decided_at = $1 \
             WHERE run_id = $2 AND status = 'awaiting_approval'",
        )
        .bind(micros(at))
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        let data = json!({ "status": "cancelled", "reason": reason });
        append_event(&mut tx, at, "run.finished", run_id, None, data).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// The gate a decision is about: the one named `step`, or the run's one waiting gate.
fn pick_gate(
    run_id: &str,
    step: Option<&str>,
    gates: Vec<GateRecord>,
) -> Result<GateRecord, GateError> {
    let no_gate = || GateError::NoGate {
        run: run_id.to_owned(),
        step: step.map(str::to_owned),
    };
    let gate = match step {
        Some(step) => gates.into_iter().find(|g| g.step_id == step),
        None => {
            let mut waiting: Vec<GateRecord> = gates
                .into_iter()
                .filter(|g| g.status == GateStatus::AwaitingApproval)
                .collect();
            if waiting.len() > 1 {
                return Err(GateError::SeveralGates {
                    run: run_id.to_owned(),
                    steps: waiting.into_iter().map(|g| g.step_id).collect(),
                });
            }
            waiting.pop()
        }
    };
    gate.ok_or_else(no_gate)
}

/// Refuses a decision the gate's rules do not allow `who` to make.
fn check_decider(
    gate: &GateRecord,
    who: &Approver,
    started_by: Option<&str>,
    hash: Option<&str>,
) -> Result<(), GateError> {
    let (run, step) = (gate.run_id.clone(), gate.step_id.clone());
    if gate.status != GateStatus::AwaitingApproval {
        return Err(GateError::NotAwaiting {
            run,
            step,
            status: gate.status.as_str(),
        });
    }
    if !is_approver(&gate.rules, who) {
        return Err(GateError::NotApprover {
            run,
            step,
            actor: who.actor.clone(),
            approvers: gate.rules.approvers.join(", "),
        });
    }
    if started_by == Some(who.actor.as_str()) && !gate.rules.allow_self {
        return Err(GateError::SelfApproval {
            run,
            step,
            actor: who.actor.clone(),
        });
    }
    if gate.decisions.iter().any(|d| d.actor == who.actor) {
        return Err(GateError::AlreadyDecided {
            run,
            step,
            actor: who.actor.clone(),
        });
    }
    if let Some(given) = hash
        && given != gate.hash
    {
        return Err(GateError::HashMismatch {
            run,
            step,
            given: given.to_owned(),
            actual: gate.hash.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rota_core::model::{Approval, RunStatus, StepStatus};
    use serde_json::json;

    use crate::testing::{both, fresh};
    use crate::{Backend, NewJobRevision, NewRun, Owner, RunEvent};

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("in range")
    }

    fn approver(name: &str) -> Approver {
        Approver {
            actor: format!("token:{name}"),
            name: name.to_owned(),
            role: Some(crate::Role::Operator),
        }
    }

    /// Run `r` of one gate step `g` (approvers alice and bob, quorum 1, expiring after
    /// 60 s), started by `token:carol`, stopped at its gate but still `running`.
    async fn run_at_its_gate(store: &Store) -> TestResult {
        let rev = NewJobRevision::new("ns", "job", "id: job\n", json!({}), at(0));
        store.save_job_revision(&rev).await?;
        let run = NewRun {
            id: "r".into(),
            namespace: "ns".into(),
            job_id: "job".into(),
            job_revision: 1,
            params: json!({}),
            dry_run: false,
            trigger: "api".into(),
            started_by: Some("token:carol".into()),
            parent: None,
            scheduled_at: None,
            created_at: at(0),
            owner: Owner::nobody(),
            steps: vec!["g".into()],
        };
        let rules = Approval {
            approvers: vec!["alice".into(), "bob".into(), "carol".into()],
            quorum: 1,
            allow_self: false,
            expires: Some(std::time::Duration::from_secs(60)),
        };
        store
            .record(&[
                RunEvent::RunCreated { run },
                RunEvent::RunStarted {
                    run_id: "r".into(),
                    at: at(1),
                },
                RunEvent::StepFinished {
                    run_id: "r".into(),
                    step_id: "g".into(),
                    attempt: 1,
                    status: StepStatus::AwaitingApproval,
                    exit_code: None,
                    reason: None,
                    outputs: Default::default(),
                    at: at(2),
                },
                RunEvent::GateOpened {
                    run_id: "r".into(),
                    step_id: "g".into(),
                    hash: "h".into(),
                    rules,
                    message: None,
                    at: at(2),
                },
            ])
            .await?;
        Ok(())
    }

    fn waits(run_id: &str) -> RunEvent {
        RunEvent::RunAwaitingApproval {
            run_id: run_id.into(),
            reason: "waiting".into(),
            at: at(3),
        }
    }

    async fn status(store: &Store) -> Result<RunStatus, Box<dyn std::error::Error>> {
        Ok(store.get_run("r").await?.ok_or("no run r")?.status)
    }

    both!(a_decision_queues_a_waiting_run_and_a_decision_before_it_waits_is_not_lost);
    async fn a_decision_queues_a_waiting_run_and_a_decision_before_it_waits_is_not_lost(
        backend: Backend,
    ) -> TestResult {
        let (_db, store) = fresh(backend).await?;
        run_at_its_gate(&store).await?;
        // Decided while the run still runs (another branch of it, say): nothing to queue yet.
        let decided = store
            .decide_gate(
                "r",
                None,
                &approver("alice"),
                Decision::Approve,
                None,
                None,
                at(2),
            )
            .await?;
        assert_eq!(decided.gate.status, GateStatus::Approved);
        assert!(!decided.run_queued);
        // When the run then stops at the gate, it is queued instead of left waiting.
        store.record(&[waits("r")]).await?;
        assert_eq!(status(&store).await?, RunStatus::Queued);
        Ok(())
    }

    both!(the_rules_of_a_gate_hold_and_a_rejection_queues_the_run);
    async fn the_rules_of_a_gate_hold_and_a_rejection_queues_the_run(
        backend: Backend,
    ) -> TestResult {
        let (_db, store) = fresh(backend).await?;
        run_at_its_gate(&store).await?;
        store.record(&[waits("r")]).await?;
        assert_eq!(status(&store).await?, RunStatus::AwaitingApproval);
        let decide = |who: &str, hash: Option<&'static str>| {
            let who = approver(who);
            let store = store.clone();
            async move {
                store
                    .decide_gate(
                        "r",
                        Some("g"),
                        &who,
                        Decision::Reject,
                        Some("no"),
                        hash,
                        at(4),
                    )
                    .await
            }
        };
        assert!(matches!(
            decide("mallory", None).await,
            Err(GateError::NotApprover { .. })
        ));
        assert!(matches!(
            decide("carol", None).await,
            Err(GateError::SelfApproval { .. })
        ));
        assert!(matches!(
            decide("bob", Some("other")).await,
            Err(GateError::HashMismatch { .. })
        ));
        let decided = decide("bob", Some("h")).await?;
        assert_eq!(decided.gate.status, GateStatus::Rejected);
        assert!(decided.run_queued);
        assert_eq!(status(&store).await?, RunStatus::Queued);
        assert!(matches!(
            decide("alice", None).await,
            Err(GateError::NotAwaiting { .. })
        ));
        Ok(())
    }

    both!(a_skip_settles_the_gate_as_skipped_with_its_reason_and_queues_the_run);
    async fn a_skip_settles_the_gate_as_skipped_with_its_reason_and_queues_the_run(
        backend: Backend,
    ) -> TestResult {
        let (_db, store) = fresh(backend).await?;
        run_at_its_gate(&store).await?;
        store.record(&[waits("r")]).await?;
        let decided = store
            .decide_gate(
                "r",
                Some("g"),
                &approver("bob"),
                Decision::Skip,
                Some("done by hand"),
                None,
                at(4),
            )
            .await?;
        assert_eq!(decided.gate.status, GateStatus::Skipped);
        assert!(decided.run_queued);
        // As read back: the decision and its reason, for the engine to skip the step.
        let gate = store.run_gates("r").await?.remove(0);
        assert_eq!(gate.status, GateStatus::Skipped);
        assert_eq!(gate.decisions[0].decision, Decision::Skip);
        assert_eq!(gate.decisions[0].comment.as_deref(), Some("done by hand"));
        assert_eq!(status(&store).await?, RunStatus::Queued);
        Ok(())
    }

    both!(a_run_stopped_while_its_gate_waits_closes_the_gate);
    async fn a_run_stopped_while_its_gate_waits_closes_the_gate(backend: Backend) -> TestResult {
        let (_db, store) = fresh(backend).await?;
        run_at_its_gate(&store).await?;
        store
            .record(&[RunEvent::RunFinished {
                run_id: "r".into(),
                status: RunStatus::Cancelled,
                reason: Some("cancelled by SIGINT".into()),
                at: at(3),
            }])
            .await?;
        assert_eq!(store.run_gates("r").await?[0].status, GateStatus::Cancelled);
        let late = store
            .decide_gate(
                "r",
                Some("g"),
                &approver("alice"),
                Decision::Approve,
                None,
                None,
                at(4),
            )
            .await;
        assert!(matches!(late, Err(GateError::RunEnded { .. })), "{late:?}");
        Ok(())
    }

    both!(an_unattended_gate_expires_and_queues_its_run_once);
    async fn an_unattended_gate_expires_and_queues_its_run_once(backend: Backend) -> TestResult {
        let (_db, store) = fresh(backend).await?;
        run_at_its_gate(&store).await?;
        store.record(&[waits("r")]).await?;
        assert!(
            store.expire_due_gates(at(61)).await?.is_empty(),
            "not due yet"
        );
        assert_eq!(store.expire_due_gates(at(62)).await?, ["r"]);
        assert!(
            store.expire_due_gates(at(63)).await?.is_empty(),
            "expired once"
        );
        assert_eq!(status(&store).await?, RunStatus::Queued);
        let gates = store.run_gates("r").await?;
        assert_eq!(gates[0].status, GateStatus::Expired);
        Ok(())
    }
}
