//! The workers' operations of [`crate::Rota`]: claim a step attempt, renew its lease, send
//! its lines and report its end (a `worker` token's only rights), and the cluster's status.
//! The rules of leases and fencing are in [`crate::fleet`].

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rota_core::model::StepStatus;
use rota_store::{AttemptKey, Fenced, LogStream, WorkerInfo, WorkerLine};

use super::Session;
use crate::OpsError;
use crate::auth::Role;
use crate::fleet::{LEASE, StoredEnd};
use crate::records::{
    AttemptFinish, AttemptLogs, Claim, ClaimAttempt, ClusterStatus, LeaseCall, LeaseRenewed,
    MAX_CLAIM_WAIT_MS, MAX_LINES_PER_CALL, ServerStatus, WorkerHello, WorkerStatus,
};

/// The name of the scheduler's lease.
pub const SCHEDULER_LEASE: &str = "scheduler";

/// Servers and workers silent for longer are left out of the cluster's status.
const SEEN_WITHIN: SignedDuration = SignedDuration::from_secs(60);

/// Most labels a worker may carry.
const MAX_LABELS: usize = 32;

/// Longest line a worker may send, in characters (the engine splits lines at 64 KiB).
const MAX_LINE_CHARS: usize = 64 * 1024;

/// The workers' operations.
pub trait Workers {
    /// Claims one step attempt whose `runs_on` labels the worker carries, waiting up to
    /// `wait_ms` for one; the answer holds what to run and the lease's epoch.
    fn claim_attempt(
        &self,
        claim: ClaimAttempt,
    ) -> impl Future<Output = Result<Claim, OpsError>> + Send;

    /// Renews the lease on an attempt; [`OpsError::Conflict`] if the lease is no longer the
    /// caller's (the worker must then kill the attempt's process).
    fn renew_lease(
        &self,
        key: &AttemptKey,
        call: LeaseCall,
    ) -> impl Future<Output = Result<LeaseRenewed, OpsError>> + Send;

    /// Appends lines of an attempt the caller holds.
    fn send_attempt_logs(
        &self,
        key: &AttemptKey,
        logs: AttemptLogs,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;

    /// Reports the end of an attempt the caller holds.
    fn finish_attempt(
        &self,
        key: &AttemptKey,
        end: AttemptFinish,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;

    /// The servers sharing the store, which one schedules, and the workers seen lately.
    fn cluster_status(&self) -> impl Future<Output = Result<ClusterStatus, OpsError>> + Send;
}

/// A worker's introduction, checked and bounded.
fn worker_info(hello: &WorkerHello) -> Result<WorkerInfo, OpsError> {
    let id_ok = (1..=100).contains(&hello.id.len())
        && hello
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !id_ok {
        return Err(OpsError::Invalid(
            "a worker `id` is 1–100 letters, digits, `-`, `_` and `.`".into(),
        ));
    }
    if hello.name.is_empty() || hello.name.chars().count() > 200 {
        return Err(OpsError::Invalid(
            "a worker `name` is 1–200 characters".into(),
        ));
    }
    if hello.labels.len() > MAX_LABELS {
        return Err(OpsError::Invalid(format!(
            "a worker carries at most {MAX_LABELS} labels"
        )));
    }
    for (name, value) in &hello.labels {
        if !rota_core::model::is_label(name) || value.chars().count() > 200 {
            return Err(OpsError::Invalid(format!(
                "invalid label {name:?}: names are 1–63 letters, digits, `_`, `-` and `.`, \
                 values at most 200 characters"
            )));
        }
    }
    if !(1..=1024).contains(&hello.slots) {
        return Err(OpsError::Invalid("a worker has 1–1024 `slots`".into()));
    }
    Ok(WorkerInfo {
        id: hello.id.clone(),
        name: hello.name.clone(),
        labels: hello.labels.clone(),
        slots: hello.slots,
        busy: hello.busy.min(hello.slots),
    })
}

/// A refusal of a worker's call about an attempt.
fn fenced(fenced: Fenced) -> OpsError {
    match fenced {
        Fenced::Unknown(what) => OpsError::NotFound(what),
        lost @ Fenced::Lost { .. } => OpsError::Conflict(lost.to_string()),
    }
}

impl Session {
    async fn claim(&self, claim: ClaimAttempt) -> Result<Claim, OpsError> {
        self.principal().require_worker()?;
        let worker = worker_info(&claim.worker)?;
        if claim.wait_ms > MAX_CLAIM_WAIT_MS {
            return Err(OpsError::Invalid(format!(
                "`wait_ms` is at most {MAX_CLAIM_WAIT_MS}"
            )));
        }
        let wait = Duration::from_millis(claim.wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        let ops = self.ops();
        loop {
            let handed_over = ops.hub().work().notified();
            tokio::pin!(handed_over);
            handed_over.as_mut().enable();
            if let Some(dispatch) = ops
                .store()
                .claim_dispatch(&worker, Timestamp::now(), LEASE)
                .await?
            {
                match ops.open_claimed(&dispatch) {
                    Ok(attempt) => {
                        return Ok(Claim {
                            attempt: Some(attempt),
                        });
                    }
                    Err(error) => {
                        // No worker can run what no server can open: end it, say why.
                        tracing::error!(%error, run = %dispatch.key.run_id,
                            "a dispatched attempt cannot be opened");
                        let end = StoredEnd {
                            status: StepStatus::Failed.as_str().to_owned(),
                            exit_code: None,
                            reason: Some(error.to_string()),
                            outputs: BTreeMap::new(),
                        };
                        let text = serde_json::to_string(&end).unwrap_or_default();
                        ops.store()
                            .finish_dispatch(
                                &dispatch.key,
                                dispatch.epoch,
                                &worker.id,
                                &text,
                                Timestamp::now(),
                            )
                            .await?
                            .map_err(fenced)?;
                        ops.hub().attempt_ended();
                        continue;
                    }
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Claim { attempt: None });
            }
            tokio::select! {
                () = &mut handed_over => {}
                () = tokio::time::sleep(ops.hub().poll_every().min(deadline - now)) => {}
            }
        }
    }

    async fn renew(&self, key: &AttemptKey, call: LeaseCall) -> Result<LeaseRenewed, OpsError> {
        self.principal().require_worker()?;
        let worker = worker_info(&call.worker)?;
        let renewed = self
            .ops()
            .store()
            .renew_lease(key, call.epoch, &worker, Timestamp::now(), LEASE)
            .await?
            .map_err(fenced)?;
        Ok(LeaseRenewed {
            cancel: renewed.cancel_requested,
            lease_ms: u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX),
        })
    }

    async fn logs(&self, key: &AttemptKey, logs: AttemptLogs) -> Result<(), OpsError> {
        self.principal().require_worker()?;
        worker_info(&logs.lease.worker)?;
        if logs.lines.len() > MAX_LINES_PER_CALL {
            return Err(OpsError::Invalid(format!(
                "at most {MAX_LINES_PER_CALL} lines per call"
            )));
        }
        let mut lines = Vec::with_capacity(logs.lines.len());
        for line in logs.lines {
            let stream = LogStream::parse(&line.stream).ok_or_else(|| {
                OpsError::Invalid(format!(
                    "unknown stream {:?}: expected stdout, stderr or system",
                    line.stream
                ))
            })?;
            if line.text.chars().count() > MAX_LINE_CHARS {
                return Err(OpsError::Invalid(format!(
                    "a line is at most {MAX_LINE_CHARS} characters"
                )));
            }
            lines.push(WorkerLine {
                ts: line.ts,
                stream,
                text: line.text,
            });
        }
        self.ops()
            .store()
            .append_worker_lines(key, logs.lease.epoch, &logs.lease.worker.id, &lines)
            .await?
            .map_err(fenced)
    }

    async fn finish(&self, key: &AttemptKey, end: AttemptFinish) -> Result<(), OpsError> {
        self.principal().require_worker()?;
        worker_info(&end.lease.worker)?;
        let status = StepStatus::parse(&end.status)
            .filter(|s| {
                matches!(
                    s,
                    StepStatus::Succeeded
                        | StepStatus::Failed
                        | StepStatus::TimedOut
                        | StepStatus::Cancelled
                        | StepStatus::Abandoned
                )
            })
            .ok_or_else(|| {
                OpsError::Invalid(format!(
                    "unknown end {:?}: expected succeeded, failed, timed_out, cancelled or \
                     abandoned (handed back)",
                    end.status
                ))
            })?;
        let stored = StoredEnd {
            status: status.as_str().to_owned(),
            exit_code: end.exit_code,
            reason: end.reason,
            outputs: end.outputs,
        };
        let text = serde_json::to_string(&stored)
            .map_err(|e| OpsError::Internal(format!("cannot encode an attempt's end: {e}")))?;
        self.ops()
            .store()
            .finish_dispatch(
                key,
                end.lease.epoch,
                &end.lease.worker.id,
                &text,
                Timestamp::now(),
            )
            .await?
            .map_err(fenced)?;
        self.ops().hub().attempt_ended();
        Ok(())
    }
}

impl Workers for Session {
    async fn claim_attempt(&self, claim: ClaimAttempt) -> Result<Claim, OpsError> {
        self.claim(claim).await
    }

    async fn renew_lease(
        &self,
        key: &AttemptKey,
        call: LeaseCall,
    ) -> Result<LeaseRenewed, OpsError> {
        self.renew(key, call).await
    }

    async fn send_attempt_logs(&self, key: &AttemptKey, logs: AttemptLogs) -> Result<(), OpsError> {
        self.logs(key, logs).await
    }

    async fn finish_attempt(&self, key: &AttemptKey, end: AttemptFinish) -> Result<(), OpsError> {
        self.finish(key, end).await
    }

    async fn cluster_status(&self) -> Result<ClusterStatus, OpsError> {
        self.principal().require_somewhere(Role::Viewer)?;
        let store = self.ops().store();
        let now = Timestamp::now();
        let since = now - SEEN_WITHIN;
        let scheduler = store
            .lease_holder(SCHEDULER_LEASE, now)
            .await?
            .map(|(holder, _)| holder);
        let servers = store
            .list_servers(since)
            .await?
            .into_iter()
            .map(|s| ServerStatus {
                scheduler: scheduler.as_deref() == Some(s.id.as_str()),
                id: s.id,
                host: s.host,
                pid: s.pid,
                listen: s.listen,
                started_at: s.started_at,
                last_heartbeat: s.last_heartbeat,
            })
            .collect();
        let workers = store
            .list_workers(since)
            .await?
            .into_iter()
            .map(|w| WorkerStatus {
                id: w.info.id,
                name: w.info.name,
                labels: w.info.labels,
                slots: w.info.slots,
                busy: w.info.busy,
                leases: w.leases,
                last_heartbeat: w.last_heartbeat,
            })
            .collect();
        Ok(ClusterStatus {
            scheduler,
            servers,
            workers,
        })
    }
}
