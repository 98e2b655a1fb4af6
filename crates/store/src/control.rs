//! Control from outside the process executing a run: cancel requests, and crash recovery
//! of runs whose owner process is gone.

use jiff::Timestamp;
use rota_core::model::RunStatus;
use serde_json::json;
use sqlx::Row;

use crate::attempts::Archive;
use crate::convert::{append_event, micros, opt_i32, run_status, u32_col};
use crate::{ActiveRun, Owner, RunningStep, Store, StoreError};

impl Store {
    /// Asks the run's owner to cancel it (the engine polls [`Store::cancel_state`]).
    /// Returns `false` if the run has already ended. The first request cancels the run and
    /// lets its cleanup steps (`when: always`) run; a second one, while the run is still
    /// active, forces it: the cleanup steps are stopped too. Later ones change nothing.
    pub async fn request_cancel(&self, run_id: &str, by: &str) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "SELECT status, cancel_requested_at, cancel_forced_at FROM runs WHERE id = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::RunNotFound(run_id.to_owned()))?;
        if run_status(&row, "status")?.is_terminal() {
            return Ok(false);
        }
        let requested: Option<i64> = row.try_get("cancel_requested_at")?;
        let forced: Option<i64> = row.try_get("cancel_forced_at")?;
        let now = Timestamp::now();
        let data = json!({ "by": by });
        match (requested, forced) {
            (None, _) => {
                sqlx::query(
                    "UPDATE runs SET cancel_requested_at = $1, cancel_requested_by = $2 \
                     WHERE id = $3",
                )
                .bind(micros(now))
                .bind(by)
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
                append_event(&mut tx, now, "run.cancel_requested", run_id, None, data).await?;
            }
            (Some(_), None) => {
                sqlx::query("UPDATE runs SET cancel_forced_at = $1 WHERE id = $2")
                    .bind(micros(now))
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
                append_event(&mut tx, now, "run.cancel_forced", run_id, None, data).await?;
            }
            (Some(_), Some(_)) => return Ok(true),
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Whether a cancel was requested for the run.
    pub async fn cancel_requested(&self, run_id: &str) -> Result<bool, StoreError> {
        Ok(self.cancel_state(run_id).await? != CancelState::None)
    }

    /// How far the run's cancellation was asked for.
    pub async fn cancel_state(&self, run_id: &str) -> Result<CancelState, StoreError> {
        let row =
            sqlx::query("SELECT cancel_requested_at, cancel_forced_at FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::RunNotFound(run_id.to_owned()))?;
        cancel_state(&row)
    }

    /// Cancel requests of runs that are still `queued` or `running`, oldest run first. A
    /// server polls this to stop runs cancelled from elsewhere (the API, or `rota cancel`
    /// on its store).
    pub async fn pending_cancels(&self) -> Result<Vec<PendingCancel>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, cancel_requested_by, cancel_requested_at, cancel_forced_at FROM runs \
             WHERE status IN ('queued', 'running') AND cancel_requested_at IS NOT NULL \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let by: Option<String> = row.try_get("cancel_requested_by")?;
                Ok(PendingCancel {
                    run_id: row.try_get("id")?,
                    by: by.unwrap_or_default(),
                    forced: cancel_state(row)? == CancelState::Forced,
                })
            })
            .collect()
    }

    /// Runs still `queued` or `running`, oldest first, with their owner and running steps,
    /// so a starting process can tell which belong to processes that are gone.
    pub async fn active_runs(&self) -> Result<Vec<ActiveRun>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, namespace, job_id, status, owner_host, owner_pid, owner_start_token \
             FROM runs WHERE status IN ('queued', 'running') ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut runs = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let steps = sqlx::query(
                "SELECT step_id, attempt, pgid FROM step_runs \
                 WHERE run_id = $1 AND status = 'running' ORDER BY position",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?;
            let running_steps = steps
                .iter()
                .map(|s| {
                    Ok(RunningStep {
                        step_id: s.try_get("step_id")?,
                        attempt: u32_col(s, "attempt")?,
                        pgid: opt_i32(s, "pgid")?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            runs.push(ActiveRun {
                id,
                namespace: row.try_get("namespace")?,
                job_id: row.try_get("job_id")?,
                status: run_status(row, "status")?,
                owner: Owner {
                    host: row.try_get("owner_host")?,
                    pid: u32_col(row, "owner_pid")?,
                    start_token: row.try_get("owner_start_token")?,
                },
                running_steps,
            });
        }
        Ok(runs)
    }

    /// Records that a run's owner process died: running steps become `abandoned`, pending
    /// ones `skipped`, the run `abandoned`, all with `reason`, with their events and the
    /// `notifications` its end queues, in one transaction. Does nothing (and returns `false`)
    /// if the run has already ended or `owner` no longer owns it: another process recovered
    /// it first, and may already run it again.
    pub async fn mark_abandoned(
        &self,
        run_id: &str,
        owner: &Owner,
        reason: &str,
        at: Timestamp,
        notifications: &[crate::NewNotification],
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        match status_if_owned(&mut tx, run_id, owner).await? {
            Some(status) if !status.is_terminal() => {}
            _ => return Ok(false),
        }
        let steps = sqlx::query(
            "SELECT step_id, status, attempt FROM step_runs \
             WHERE run_id = $1 AND status IN ('running', 'pending') ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(&mut *tx)
        .await?;
        for step in &steps {
            let step_id: String = step.try_get("step_id")?;
            let status: String = step.try_get("status")?;
            let attempt: i64 = step.try_get("attempt")?;
            if status == "running" {
                abandon_running_step(&mut tx, run_id, &step_id, attempt, reason, at).await?;
                continue;
            }
            crate::attempts::archive_current(&mut tx, run_id, &step_id, Archive::Any).await?;
            sqlx::query(
                "UPDATE step_runs SET status = 'skipped', reason = $1, finished_at = $2, \
                 pgid = NULL \
                 WHERE run_id = $3 AND step_id = $4",
            )
            .bind(reason)
            .bind(micros(at))
            .bind(run_id)
            .bind(&step_id)
            .execute(&mut *tx)
            .await?;
            let data = json!({ "status": "skipped", "reason": reason });
            append_event(&mut tx, at, "step.skipped", run_id, Some(&step_id), data).await?;
        }
        sqlx::query("UPDATE runs SET status = $1, reason = $2, finished_at = $3 WHERE id = $4")
            .bind(RunStatus::Abandoned.as_str())
            .bind(reason)
            .bind(micros(at))
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        let data = json!({ "status": RunStatus::Abandoned.as_str(), "reason": reason });
        append_event(&mut tx, at, "run.abandoned", run_id, None, data).await?;
        // The abandoned run's notifications are queued with its end, as a finished run's.
        for n in notifications {
            if crate::notify::insert_in(&mut tx, n).await? {
                let data = json!({ "id": n.id, "rule": n.rule, "event": n.event,
                                   "channel": n.channel });
                append_event(
                    &mut tx,
                    n.created_at,
                    "notification.queued",
                    run_id,
                    None,
                    data,
                )
                .await?;
            }
        }
        withdraw_pending_dispatches(&mut tx, run_id).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// The run's status while `owner` owns it; `None` once another process has claimed it.
/// Recovery acts only through this check, inside its write transaction, so two servers
/// recovering the same dead owner's runs (or one recovering a run another has just claimed
/// again) cannot both act on it.
pub(crate) async fn status_if_owned(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
    owner: &Owner,
) -> Result<Option<RunStatus>, StoreError> {
    let row = sqlx::query(
        "SELECT status, owner_host, owner_pid, owner_start_token FROM runs WHERE id = $1",
    )
    .bind(run_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::RunNotFound(run_id.to_owned()))?;
    let owned = row.try_get::<String, _>("owner_host")? == owner.host
        && u32_col(&row, "owner_pid")? == owner.pid
        && row.try_get::<String, _>("owner_start_token")? == owner.start_token;
    Ok(if owned {
        Some(run_status(&row, "status")?)
    } else {
        None
    })
}

/// Withdraws the run's dispatches no worker has claimed yet: the attempts they stand for
/// were just abandoned, so no worker may start them.
pub(crate) async fn withdraw_pending_dispatches(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE dispatches SET state = 'withdrawn' WHERE run_id = $1 AND state = 'pending'",
    )
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a step whose process died with its runner: the step and its current attempt
/// become `abandoned`, and a `step.finished` event says so. Shared by abandoning a run and by
/// requeueing one for resumption, which differ only in what becomes of the run.
pub(crate) async fn abandon_running_step(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
    step_id: &str,
    attempt: i64,
    reason: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE step_runs SET status = 'abandoned', reason = $1, finished_at = $2 \
         WHERE run_id = $3 AND step_id = $4",
    )
    .bind(reason)
    .bind(micros(at))
    .bind(run_id)
    .bind(step_id)
    .execute(&mut **tx)
    .await?;
    // A copy of the attempt in `step_attempts` (see `crate::attempts`) is abandoned too.
    sqlx::query(
        "UPDATE step_attempts SET status = 'abandoned', reason = $1, finished_at = $2 \
         WHERE run_id = $3 AND step_id = $4 AND attempt = $5",
    )
    .bind(reason)
    .bind(micros(at))
    .bind(run_id)
    .bind(step_id)
    .bind(attempt)
    .execute(&mut **tx)
    .await?;
    let data = json!({ "attempt": attempt, "status": "abandoned", "exit_code": null,
                       "reason": reason, "outputs": {} });
    append_event(tx, at, "step.finished", run_id, Some(step_id), data).await
}

/// How far a run's cancellation was asked for ([`Store::request_cancel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelState {
    /// Nobody asked.
    None,
    /// Cancel it; its cleanup steps still run.
    Requested,
    /// Asked again: stop its cleanup steps too.
    Forced,
}

/// A cancel request of an active run, for the process that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCancel {
    /// The run.
    pub run_id: String,
    /// Who asked first.
    pub by: String,
    /// Whether it was asked again, which stops the cleanup steps too.
    pub forced: bool,
}

fn cancel_state(row: &sqlx::any::AnyRow) -> Result<CancelState, StoreError> {
    let requested: Option<i64> = row.try_get("cancel_requested_at")?;
    let forced: Option<i64> = row.try_get("cancel_forced_at")?;
    Ok(match (requested, forced) {
        (None, _) => CancelState::None,
        (Some(_), None) => CancelState::Requested,
        (Some(_), Some(_)) => CancelState::Forced,
    })
}
