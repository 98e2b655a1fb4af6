//! The engine's single write path: a batch of [`RunEvent`]s applied in one transaction.
//!
//! Each event updates the current-state tables (`runs`, `step_runs`, `step_attempts`) and,
//! except for log lines, appends one row to `events`. An event naming an unknown run or
//! step fails the whole batch, so a batch is applied entirely or not at all.
//!
//! Event-log rows and log lines are collected while the batch is applied and written at
//! its end with multi-row inserts, in batch order: every statement is a round trip to
//! SQLite's connection thread, and these two tables take most of a busy run's rows.

use jiff::Timestamp;
use serde_json::json;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::LogStream;
use crate::convert::{micros, outputs_text};
use crate::{NewRun, RunEvent, Store, StoreError};

impl Store {
    /// Applies `batch` in order, in one transaction.
    pub async fn record(&self, batch: &[RunEvent]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let mut rows = Rows::default();
        for event in batch {
            apply(&mut tx, event, &mut rows).await?;
        }
        rows.flush(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn apply<'a>(
    conn: &mut SqliteConnection,
    event: &'a RunEvent,
    rows: &mut Rows<'a>,
) -> Result<(), StoreError> {
    match event {
        RunEvent::RunCreated { run } => create_run(conn, run, rows).await,
        RunEvent::RunStarted { run_id, at } => {
            let done =
                sqlx::query("UPDATE runs SET status = 'running', started_at = ? WHERE id = ?")
                    .bind(micros(*at))
                    .bind(run_id)
                    .execute(&mut *conn)
                    .await?;
            expect_run(done.rows_affected(), run_id)?;
            rows.event(*at, "run.started", run_id, None, json!({}));
            Ok(())
        }
        RunEvent::RunFinished {
            run_id,
            status,
            reason,
            at,
        } => {
            let done =
                sqlx::query("UPDATE runs SET status = ?, reason = ?, finished_at = ? WHERE id = ?")
                    .bind(status.as_str())
                    .bind(reason)
                    .bind(micros(*at))
                    .bind(run_id)
                    .execute(&mut *conn)
                    .await?;
            expect_run(done.rows_affected(), run_id)?;
            let data = json!({ "status": status.as_str(), "reason": reason });
            rows.event(*at, "run.finished", run_id, None, data);
            Ok(())
        }
        RunEvent::StepStarted {
            run_id,
            step_id,
            attempt,
            at,
            pgid,
        } => {
            let done = sqlx::query(
                "UPDATE step_runs SET status = 'running', attempt = ?, exit_code = NULL, \
                 reason = NULL, outputs = '{}', started_at = ?, finished_at = NULL, pgid = ? \
                 WHERE run_id = ? AND step_id = ?",
            )
            .bind(i64::from(*attempt))
            .bind(micros(*at))
            .bind(pgid)
            .bind(run_id)
            .bind(step_id)
            .execute(&mut *conn)
            .await?;
            expect_step(done.rows_affected(), run_id, step_id)?;
            sqlx::query(
                "INSERT INTO step_attempts \
                 (run_id, step_id, attempt, status, outputs, started_at, pgid) \
                 VALUES (?, ?, ?, 'running', '{}', ?, ?) \
                 ON CONFLICT (run_id, step_id, attempt) DO UPDATE SET \
                 status = 'running', started_at = excluded.started_at, pgid = excluded.pgid",
            )
            .bind(run_id)
            .bind(step_id)
            .bind(i64::from(*attempt))
            .bind(micros(*at))
            .bind(pgid)
            .execute(&mut *conn)
            .await?;
            let data = json!({ "attempt": attempt, "pgid": pgid });
            rows.event(*at, "step.started", run_id, Some(step_id), data);
            Ok(())
        }
        RunEvent::StepFinished {
            run_id,
            step_id,
            attempt,
            status,
            exit_code,
            reason,
            outputs,
            at,
        } => {
            let outputs_json = outputs_text(outputs);
            // An older attempt finishing late must not overwrite a newer one's state.
            let done = sqlx::query(
                "UPDATE step_runs SET status = ?, attempt = ?, exit_code = ?, reason = ?, \
                 outputs = ?, finished_at = ?, pgid = NULL \
                 WHERE run_id = ? AND step_id = ? AND attempt <= ?",
            )
            .bind(status.as_str())
            .bind(i64::from(*attempt))
            .bind(exit_code)
            .bind(reason)
            .bind(&outputs_json)
            .bind(micros(*at))
            .bind(run_id)
            .bind(step_id)
            .bind(i64::from(*attempt))
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                step_exists(conn, run_id, step_id).await?;
            }
            sqlx::query(
                "INSERT INTO step_attempts \
                 (run_id, step_id, attempt, status, exit_code, reason, outputs, finished_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (run_id, step_id, attempt) DO UPDATE SET \
                 status = excluded.status, exit_code = excluded.exit_code, \
                 reason = excluded.reason, outputs = excluded.outputs, \
                 finished_at = excluded.finished_at",
            )
            .bind(run_id)
            .bind(step_id)
            .bind(i64::from(*attempt))
            .bind(status.as_str())
            .bind(exit_code)
            .bind(reason)
            .bind(&outputs_json)
            .bind(micros(*at))
            .execute(&mut *conn)
            .await?;
            let data = json!({
                "attempt": attempt,
                "status": status.as_str(),
                "exit_code": exit_code,
                "reason": reason,
                "outputs": outputs,
            });
            rows.event(*at, "step.finished", run_id, Some(step_id), data);
            Ok(())
        }
        RunEvent::StepSkipped {
            run_id,
            step_id,
            status,
            reason,
            at,
        } => {
            let done = sqlx::query(
                "UPDATE step_runs SET status = ?, reason = ?, finished_at = ?, pgid = NULL \
                 WHERE run_id = ? AND step_id = ?",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(micros(*at))
            .bind(run_id)
            .bind(step_id)
            .execute(&mut *conn)
            .await?;
            expect_step(done.rows_affected(), run_id, step_id)?;
            let data = json!({ "status": status.as_str(), "reason": reason });
            rows.event(*at, "step.skipped", run_id, Some(step_id), data);
            Ok(())
        }
        RunEvent::Log {
            run_id,
            step_id,
            attempt,
            ts,
            stream,
            text,
        } => {
            rows.logs.push(LogRow {
                run_id,
                step_id,
                attempt: *attempt,
                ts: *ts,
                stream: *stream,
                text,
            });
            Ok(())
        }
    }
}

pub(crate) async fn create_run<'a>(
    conn: &mut SqliteConnection,
    run: &'a NewRun,
    rows: &mut Rows<'a>,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO runs (id, namespace, job_id, job_revision, status, params, dry_run, \
         triggered_by, scheduled_at, created_at, owner_host, owner_pid, owner_start_token) \
         VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&run.id)
    .bind(&run.namespace)
    .bind(&run.job_id)
    .bind(run.job_revision)
    .bind(run.params.to_string())
    .bind(run.dry_run)
    .bind(&run.trigger)
    .bind(run.scheduled_at.map(micros))
    .bind(micros(run.created_at))
    .bind(&run.owner.host)
    .bind(i64::from(run.owner.pid))
    .bind(&run.owner.start_token)
    .execute(&mut *conn)
    .await;
    if let Err(e) = inserted {
        if let Some(db) = e.as_database_error()
            && db.is_unique_violation()
        {
            return Err(StoreError::DuplicateRun(run.id.clone()));
        }
        if is_foreign_key_violation(&e) {
            return Err(StoreError::UnknownJobRevision {
                namespace: run.namespace.clone(),
                job_id: run.job_id.clone(),
                revision: run.job_revision,
            });
        }
        return Err(e.into());
    }
    for (position, step_id) in run.steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO step_runs (run_id, step_id, position, status, attempt, outputs) \
             VALUES (?, ?, ?, 'pending', 0, '{}')",
        )
        .bind(&run.id)
        .bind(step_id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    }
    let data = json!({
        "namespace": run.namespace,
        "job_id": run.job_id,
        "job_revision": run.job_revision,
        "trigger": run.trigger,
        "dry_run": run.dry_run,
        "scheduled_at": run.scheduled_at.map(|t| t.to_string()),
        "steps": run.steps,
    });
    rows.event(run.created_at, "run.created", &run.id, None, data);
    Ok(())
}

fn expect_run(rows: u64, run_id: &str) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::RunNotFound(run_id.to_owned()));
    }
    Ok(())
}

fn expect_step(rows: u64, run_id: &str, step_id: &str) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::UnknownStep {
            run_id: run_id.to_owned(),
            step_id: step_id.to_owned(),
        });
    }
    Ok(())
}

async fn step_exists(
    conn: &mut SqliteConnection,
    run_id: &str,
    step_id: &str,
) -> Result<(), StoreError> {
    let found = sqlx::query("SELECT 1 FROM step_runs WHERE run_id = ? AND step_id = ?")
        .bind(run_id)
        .bind(step_id)
        .fetch_optional(conn)
        .await?;
    expect_step(u64::from(found.is_some()), run_id, step_id)
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|db| db.is_foreign_key_violation())
}

/// Rows collected while a batch is applied, written by [`Rows::flush`].
#[derive(Default)]
pub(crate) struct Rows<'a> {
    events: Vec<EventRow<'a>>,
    logs: Vec<LogRow<'a>>,
}

struct EventRow<'a> {
    at: Timestamp,
    kind: &'static str,
    run_id: &'a str,
    step_id: Option<&'a str>,
    data: String,
}

struct LogRow<'a> {
    run_id: &'a str,
    step_id: &'a str,
    attempt: u32,
    ts: Timestamp,
    stream: LogStream,
    text: &'a str,
}

/// Rows per multi-row insert: well under SQLite's limit of 32,766 bound parameters.
const CHUNK: usize = 200;

impl<'a> Rows<'a> {
    fn event(
        &mut self,
        at: Timestamp,
        kind: &'static str,
        run_id: &'a str,
        step_id: Option<&'a str>,
        data: serde_json::Value,
    ) {
        self.events.push(EventRow {
            at,
            kind,
            run_id,
            step_id,
            data: data.to_string(),
        });
    }

    pub(crate) async fn flush(self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        for chunk in self.events.chunks(CHUNK) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (at, kind, run_id, step_id, data) ",
            );
            insert.push_values(chunk, |mut row, e| {
                row.push_bind(micros(e.at))
                    .push_bind(e.kind)
                    .push_bind(e.run_id)
                    .push_bind(e.step_id)
                    .push_bind(&e.data);
            });
            // Chunk sizes vary, so these statements are not worth caching.
            insert.build().persistent(false).execute(&mut *conn).await?;
        }
        for chunk in self.logs.chunks(CHUNK) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO logs (run_id, step_id, attempt, ts, stream, text) ",
            );
            insert.push_values(chunk, |mut row, l| {
                row.push_bind(l.run_id)
                    .push_bind(l.step_id)
                    .push_bind(i64::from(l.attempt))
                    .push_bind(micros(l.ts))
                    .push_bind(l.stream.as_str())
                    .push_bind(l.text);
            });
            let inserted = insert.build().persistent(false).execute(&mut *conn).await;
            if let Err(e) = inserted {
                if is_foreign_key_violation(&e) {
                    return Err(missing_run(conn, chunk).await);
                }
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// The error for a chunk of log lines of which some name a run that does not exist.
async fn missing_run(conn: &mut SqliteConnection, chunk: &[LogRow<'_>]) -> StoreError {
    for line in chunk {
        let found = sqlx::query("SELECT 1 FROM runs WHERE id = ?")
            .bind(line.run_id)
            .fetch_optional(&mut *conn)
            .await;
        match found {
            Ok(Some(_)) => continue,
            Ok(None) => return StoreError::RunNotFound(line.run_id.to_owned()),
            Err(e) => return e.into(),
        }
    }
    StoreError::RunNotFound(String::new())
}
