//! The scheduler daemon's state: occurrences (each schedule firing and what became of it),
//! per-trigger cursors for catch-up, paused jobs, claims of queued runs, and job files that
//! failed to load.
//!
//! [`Store::record_occurrence`] is the exactly-once point: an occurrence and its queued run
//! are inserted in one transaction, and the occurrence's primary key (namespace, job,
//! trigger, scheduled instant) refuses a second insert, so an occurrence runs at most once
//! even when the server crashes between deciding and starting.

use jiff::Timestamp;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::dialect::Sql;

use crate::convert::{append_event, flag, micros, opt_ts, ts};
use crate::write::{Rows, create_run};
use crate::{NewRun, Owner, Store, StoreError};

/// What became of an occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OccurrenceKind {
    /// A run was queued for it.
    Run,
    /// It was due but a policy decided not to run it (overlap, paused, …).
    Skipped,
    /// It fell due while nothing could run it, and catch-up did not run it.
    Missed,
}

impl OccurrenceKind {
    /// The stored spelling: `run`, `skipped`, `missed`.
    pub fn as_str(self) -> &'static str {
        match self {
            OccurrenceKind::Run => "run",
            OccurrenceKind::Skipped => "skipped",
            OccurrenceKind::Missed => "missed",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<OccurrenceKind> {
        [
            OccurrenceKind::Run,
            OccurrenceKind::Skipped,
            OccurrenceKind::Missed,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// An occurrence to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOccurrence {
    /// Namespace of the job.
    pub namespace: String,
    /// Job id.
    pub job_id: String,
    /// Stable text naming the trigger (e.g. `cron:0 * * * *@UTC`).
    pub trigger_key: String,
    /// When the occurrence was due.
    pub scheduled_at: Timestamp,
    /// When the decision was taken.
    pub recorded_at: Timestamp,
    /// What became of it; with [`OccurrenceKind::Run`] a run is passed alongside.
    pub kind: OccurrenceKind,
    /// Why, for `skipped` and `missed`.
    pub reason: Option<String>,
}

/// A recorded occurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct OccurrenceRecord {
    /// Namespace of the job.
    pub namespace: String,
    /// Job id.
    pub job_id: String,
    /// The trigger.
    pub trigger_key: String,
    /// When it was due.
    pub scheduled_at: Timestamp,
    /// When it was decided.
    pub recorded_at: Timestamp,
    /// What became of it.
    pub kind: OccurrenceKind,
    /// The run queued for it.
    pub run_id: Option<String>,
    /// Why it did not run.
    pub reason: Option<String>,
}

/// A trigger's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerState {
    /// Origin of a start-anchored interval's grid (when the trigger was first seen).
    pub origin: Timestamp,
    /// Every occurrence at or before this instant has been decided.
    pub evaluated_until: Timestamp,
}

/// A job's pause state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    /// Namespace of the job.
    pub namespace: String,
    /// Job id.
    pub job_id: String,
    /// Whether the job's schedule is paused.
    pub paused: bool,
    /// When not paused: occurrences before this instant are skipped as paused.
    pub resume_from: Option<Timestamp>,
    /// When the state last changed.
    pub updated_at: Timestamp,
}

/// A job file the server could not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLoadError {
    /// The file.
    pub path: String,
    /// What is wrong with it (diagnostics, one per line).
    pub message: String,
    /// When it was last seen broken.
    pub updated_at: Timestamp,
}

const OCCURRENCE_COLUMNS: &str =
    "namespace, job_id, trigger_key, scheduled_at, recorded_at, outcome, run_id, reason";

impl Store {
    /// Records an occurrence and, for [`OccurrenceKind::Run`], its queued `run`, in one
    /// transaction, and advances the trigger's cursor to it. Returns `false` (and writes
    /// nothing) when this occurrence was already recorded.
    pub async fn record_occurrence(
        &self,
        occurrence: &NewOccurrence,
        run: Option<&NewRun>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        if !record_occurrence_in(&mut tx, occurrence, run).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The occurrences of a job, newest first, at most `limit` (capped at 1,000).
    pub async fn occurrences(
        &self,
        namespace: &str,
        job_id: &str,
        limit: u32,
    ) -> Result<Vec<OccurrenceRecord>, StoreError> {
        self.occurrences_page(namespace, job_id, None, limit).await
    }

    /// A page of [`Store::occurrences`]: up to `limit` occurrences that come after
    /// `before` (an occurrence's `(scheduled_at, trigger_key)`) in the same order, newest
    /// first, then by trigger key descending.
    pub async fn occurrences_page(
        &self,
        namespace: &str,
        job_id: &str,
        before: Option<(Timestamp, &str)>,
        limit: u32,
    ) -> Result<Vec<OccurrenceRecord>, StoreError> {
        let mut query = Sql::new(format!(
            "SELECT {OCCURRENCE_COLUMNS} FROM occurrences WHERE namespace = "
        ));
        query
            .push_bind(namespace)
            .push(" AND job_id = ")
            .push_bind(job_id);
        if let Some((at, key)) = before {
            query
                .push(" AND (scheduled_at, trigger_key) < (")
                .push_bind(micros(at))
                .push(", ")
                .push_bind(key)
                .push(")");
        }
        query
            .push(" ORDER BY scheduled_at DESC, trigger_key DESC LIMIT ")
            .push_bind(i64::from(limit.min(1000)));
        let rows = query.build()?.fetch_all(&self.pool).await?;
        rows.iter().map(occurrence_record).collect()
    }

    /// The cursor of a trigger, created at `now` (origin and cursor both `now`) the first
    /// time the trigger is seen.
    pub async fn ensure_trigger_state(
        &self,
        namespace: &str,
        job_id: &str,
        trigger_key: &str,
        now: Timestamp,
    ) -> Result<TriggerState, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO trigger_state (namespace, job_id, trigger_key, origin, evaluated_until) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(namespace)
        .bind(job_id)
        .bind(trigger_key)
        .bind(micros(now))
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT origin, evaluated_until FROM trigger_state \
             WHERE namespace = $1 AND job_id = $2 AND trigger_key = $3",
        )
        .bind(namespace)
        .bind(job_id)
        .bind(trigger_key)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TriggerState {
            origin: ts(&row, "origin")?,
            evaluated_until: ts(&row, "evaluated_until")?,
        })
    }

    /// Pauses or resumes a job's schedule. Resuming with `resume_from` skips (as paused)
    /// the occurrences before that instant.
    pub async fn set_paused(
        &self,
        namespace: &str,
        job_id: &str,
        paused: bool,
        resume_from: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO schedule_state (namespace, job_id, paused, resume_from, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, job_id) DO UPDATE SET \
             paused = excluded.paused, resume_from = excluded.resume_from, \
             updated_at = excluded.updated_at",
        )
        .bind(namespace)
        .bind(job_id)
        .bind(paused)
        .bind(resume_from.map(micros))
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        crate::changes::bump(&mut tx, crate::changes::SCHEDULE_STATE).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every job's pause state (jobs never paused have none).
    pub async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        let rows = sqlx::query(
            "SELECT namespace, job_id, CAST(paused AS INTEGER) AS paused, resume_from, \
             updated_at FROM schedule_state \
             ORDER BY namespace, job_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ScheduleState {
                    namespace: row.try_get("namespace")?,
                    job_id: row.try_get("job_id")?,
                    paused: flag(row, "paused")?,
                    resume_from: opt_ts(row, "resume_from")?,
                    updated_at: ts(row, "updated_at")?,
                })
            })
            .collect()
    }

    /// Ids of the runs waiting in `queued`, oldest first.
    pub async fn queued_run_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM runs WHERE status = 'queued' ORDER BY created_at, id LIMIT 10000",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
    }

    /// Takes a queued run for execution by `owner`: it becomes `running`, owned by `owner`.
    /// Returns `false` when the run is no longer queued (someone else took it, or it ended),
    /// or, for a run queued again after its server died, while a worker may still run one of
    /// its abandoned attempts: its dispatch stays `leased` until the worker's lease ends
    /// (the worker is fenced out and kills that attempt by then), and the run is claimed
    /// after, so no attempt of it runs twice at once. With `max_active`, also while that many
    /// runs of its job are `running`, wherever they run: servers sharing the store each see
    /// only their own runs, and this is where the job's `max_active_runs` holds across them.
    pub async fn claim_queued_run(
        &self,
        run_id: &str,
        owner: &Owner,
        at: Timestamp,
        max_active: Option<u32>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE runs SET status = 'running', started_at = $1, owner_host = $2, \
             owner_pid = $3, owner_start_token = $4 WHERE id = $5 AND status = 'queued' \
             AND NOT EXISTS (SELECT 1 FROM dispatches d \
             WHERE d.run_id = runs.id AND d.state = 'leased') \
             AND (SELECT count(*) FROM runs other WHERE other.namespace = runs.namespace \
             AND other.job_id = runs.job_id AND other.status = 'running') < $6",
        )
        .bind(micros(at))
        .bind(&owner.host)
        .bind(i64::from(owner.pid))
        .bind(&owner.start_token)
        .bind(run_id)
        .bind(max_active.map_or(i64::MAX, i64::from))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let data = json!({ "owner_host": owner.host, "owner_pid": owner.pid });
        append_event(&mut tx, at, "run.started", run_id, None, data).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that a job file could not be loaded (replacing an older report).
    pub async fn set_job_load_error(
        &self,
        path: &str,
        message: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO job_load_errors (path, message, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (path) DO UPDATE SET message = excluded.message, \
             updated_at = excluded.updated_at",
        )
        .bind(path)
        .bind(message)
        .bind(micros(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the load error of a file (it loads again, or it was removed).
    pub async fn clear_job_load_error(&self, path: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM job_load_errors WHERE path = $1")
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Job files that currently fail to load, by path.
    pub async fn job_load_errors(&self) -> Result<Vec<JobLoadError>, StoreError> {
        let rows =
            sqlx::query("SELECT path, message, updated_at FROM job_load_errors ORDER BY path")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(JobLoadError {
                    path: row.try_get("path")?,
                    message: row.try_get("message")?,
                    updated_at: ts(row, "updated_at")?,
                })
            })
            .collect()
    }
}

fn occurrence_record(row: &AnyRow) -> Result<OccurrenceRecord, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    Ok(OccurrenceRecord {
        namespace: row.try_get("namespace")?,
        job_id: row.try_get("job_id")?,
        trigger_key: row.try_get("trigger_key")?,
        scheduled_at: ts(row, "scheduled_at")?,
        recorded_at: ts(row, "recorded_at")?,
        kind: OccurrenceKind::parse(&outcome).ok_or(StoreError::Corrupt {
            what: "outcome",
            detail: format!("unknown occurrence outcome {outcome:?}"),
        })?,
        run_id: row.try_get("run_id")?,
        reason: row.try_get("reason")?,
    })
}

/// The run of a trigger's latest occurrence that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerRunRecord {
    /// The run.
    pub run_id: String,
    /// When it ended; `None` while it is queued or running.
    pub finished_at: Option<Timestamp>,
}

impl Store {
    /// The run queued for the latest occurrence of a trigger that ran, if any.
    pub async fn last_trigger_run(
        &self,
        namespace: &str,
        job_id: &str,
        trigger_key: &str,
    ) -> Result<Option<TriggerRunRecord>, StoreError> {
        last_trigger_run_with(&self.pool, namespace, job_id, trigger_key).await
    }

    /// Every trigger cursor of a job, by trigger key (read-only, for `rota schedule next`).
    pub async fn trigger_states(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<Vec<(String, TriggerState)>, StoreError> {
        let rows = sqlx::query(
            "SELECT trigger_key, origin, evaluated_until FROM trigger_state \
             WHERE namespace = $1 AND job_id = $2 ORDER BY trigger_key",
        )
        .bind(namespace)
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("trigger_key")?,
                    TriggerState {
                        origin: ts(row, "origin")?,
                        evaluated_until: ts(row, "evaluated_until")?,
                    },
                ))
            })
            .collect()
    }
}

/// Inserts an occurrence (and its queued run) inside `tx` and advances the trigger's cursor;
/// `false` (nothing written) when the occurrence was already recorded.
pub(crate) async fn record_occurrence_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    occurrence: &NewOccurrence,
    run: Option<&NewRun>,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(&format!(
        "INSERT INTO occurrences ({OCCURRENCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT DO NOTHING"
    ))
    .bind(&occurrence.namespace)
    .bind(&occurrence.job_id)
    .bind(&occurrence.trigger_key)
    .bind(micros(occurrence.scheduled_at))
    .bind(micros(occurrence.recorded_at))
    .bind(occurrence.kind.as_str())
    .bind(run.map(|r| r.id.as_str()))
    .bind(&occurrence.reason)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(run) = run {
        let mut rows = Rows::default();
        create_run(tx, run, &mut rows).await?;
        rows.flush(tx).await?;
    }
    sqlx::query(
        "UPDATE trigger_state SET evaluated_until = \
             CASE WHEN evaluated_until > $1 THEN evaluated_until ELSE $1 END \
             WHERE namespace = $2 AND job_id = $3 AND trigger_key = $4",
    )
    .bind(micros(occurrence.scheduled_at))
    .bind(&occurrence.namespace)
    .bind(&occurrence.job_id)
    .bind(&occurrence.trigger_key)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// [`Store::last_trigger_run`] through `executor`: the pool, or a transaction.
pub(crate) async fn last_trigger_run_with<'c, E>(
    executor: E,
    namespace: &str,
    job_id: &str,
    trigger_key: &str,
) -> Result<Option<TriggerRunRecord>, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    // The occurrences' primary key starts with these columns, so this reads one index
    // range from its newest end.
    let row = sqlx::query(
        "SELECT r.id, r.finished_at FROM occurrences o JOIN runs r ON r.id = o.run_id \
         WHERE o.namespace = $1 AND o.job_id = $2 AND o.trigger_key = $3 \
         ORDER BY o.scheduled_at DESC LIMIT 1",
    )
    .bind(namespace)
    .bind(job_id)
    .bind(trigger_key)
    .fetch_optional(executor)
    .await?;
    row.map(|row| {
        Ok(TriggerRunRecord {
            run_id: row.try_get("id")?,
            finished_at: opt_ts(&row, "finished_at")?,
        })
    })
    .transpose()
}
