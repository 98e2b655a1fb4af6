//! Crash recovery of server runs that can continue: the attempt that died with its owner is
//! recorded as `abandoned` and the run goes back to `queued`, so a server claims it again.

use jiff::Timestamp;
use serde_json::json;
use sqlx::Row;

use rota_core::model::RunStatus;

use crate::control::{status_if_owned, withdraw_pending_dispatches};
use crate::convert::append_event;
use crate::{Owner, Store, StoreError};

impl Store {
    /// Records that a run's owner died and that the run will continue: its running steps'
    /// attempts become `abandoned` with `reason` (the steps keep their other state, so a
    /// resumed run sees what finished before), and the run is `queued` again for a server
    /// to claim, with the events, in one transaction.
    ///
    /// Returns `false` (and changes nothing) unless the run is `running` and `owner` (the
    /// process that died) still owns it.
    pub async fn requeue_for_resume(
        &self,
        run_id: &str,
        owner: &Owner,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        if status_if_owned(&mut tx, run_id, owner).await? != Some(RunStatus::Running) {
            return Ok(false);
        }
        let steps = sqlx::query(
            "SELECT step_id, attempt FROM step_runs \
             WHERE run_id = $1 AND status = 'running' ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(&mut *tx)
        .await?;
        for step in &steps {
            let step_id: String = step.try_get("step_id")?;
            let attempt: i64 = step.try_get("attempt")?;
            crate::control::abandon_running_step(&mut tx, run_id, &step_id, attempt, reason, at)
                .await?;
        }
        withdraw_pending_dispatches(&mut tx, run_id).await?;
        sqlx::query("UPDATE runs SET status = 'queued' WHERE id = $1")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        let data = json!({ "status": "queued", "reason": reason });
        append_event(&mut tx, at, "run.requeued", run_id, None, data).await?;
        tx.commit().await?;
        Ok(true)
    }
}
