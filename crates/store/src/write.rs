//! The engine's single write path: a batch of [`RunEvent`]s applied in one transaction.
//!
//! Each event updates the current-state tables (`runs`, `step_runs`, and `step_attempts`
//! for attempts a step no longer holds, see [`crate::attempts`]) and, except for log lines,
//! appends one row to `events`. An event naming an unknown run or
//! step fails the whole batch, so a batch is applied entirely or not at all.
//!
//! Event-log rows and log lines are collected while the batch is applied and written at
//! its end with multi-row inserts, in batch order: every statement is a round trip to
//! SQLite's connection thread, and these two tables take most of a busy run's rows.
//! For the same reason an attempt that starts and finishes within one batch (a short step,
//! as the engine's recorder batches events) has its `step_runs` row written once, with the
//! state the two events leave it in (its two event-log rows stay), and when nothing later in
//! the batch changes that step, together with every other such attempt in multi-row
//! statements at the batch's end.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use serde_json::json;
use sqlx::{AnyConnection, Executor as _};

use crate::attempts::{Archive, archive_current, drop_archived};
use crate::dialect::{Backend, Sql};

use crate::LogStream;
use crate::convert::{micros, outputs_text};
use crate::{NewRun, Owner, RunEvent, Store, StoreError};

impl Store {
    /// Applies `batch` in order, in one transaction.
    pub async fn record(&self, batch: &[RunEvent]) -> Result<(), StoreError> {
        self.record_batch(None, batch).await
    }

    /// Like [`Store::record`] for the process that runs the batch's runs: refused with
    /// [`StoreError::NotOwner`], writing nothing, when any run the batch does not create is
    /// no longer `owner`'s. A server taken for dead whose runs another server resumed (it
    /// was cut off, or stopped, and came back) cannot write over what the other records.
    pub async fn record_as(&self, owner: &Owner, batch: &[RunEvent]) -> Result<(), StoreError> {
        self.record_batch(Some(owner), batch).await
    }

    async fn record_batch(
        &self,
        owner: Option<&Owner>,
        batch: &[RunEvent],
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let folds = fold_attempts(batch);
        let mut tx = self.write().await?;
        if let Some(owner) = owner {
            check_owner(&mut tx, owner, batch).await?;
        }
        let mut rows = Rows::default();
        for (event, fold) in batch.iter().zip(folds) {
            apply(&mut tx, event, fold, &mut rows).await?;
        }
        rows.flush(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Refuses the batch unless `owner` owns every run it names but does not create.
async fn check_owner(
    conn: &mut AnyConnection,
    owner: &Owner,
    batch: &[RunEvent],
) -> Result<(), StoreError> {
    let created: HashSet<&str> = batch
        .iter()
        .filter_map(|event| match event {
            RunEvent::RunCreated { run } => Some(run.id.as_str()),
            _ => None,
        })
        .collect();
    let mut checked = HashSet::new();
    for event in batch {
        let run_id = event.run_id();
        if created.contains(run_id) || !checked.insert(run_id) {
            continue;
        }
        let owned = sqlx::query(
            "SELECT 1 AS owned FROM runs WHERE id = $1 AND owner_host = $2 AND owner_pid = $3 \
             AND owner_start_token = $4",
        )
        .bind(run_id)
        .bind(&owner.host)
        .bind(i64::from(owner.pid))
        .bind(&owner.start_token)
        .fetch_optional(&mut *conn)
        .await?;
        if owned.is_none() {
            return Err(StoreError::NotOwner {
                run: run_id.to_owned(),
            });
        }
    }
    Ok(())
}

/// How one event of a batch is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fold {
    /// On its own.
    Alone,
    /// An attempt's start whose finish comes later in the batch: only its event-log row now;
    /// the finish writes the attempt's rows.
    StartLater,
    /// An attempt's finish whose start came earlier in the batch (with that start's time and
    /// process group): writes the rows as both events together leave them.
    WithStart(Timestamp, Option<i32>),
    /// Like [`Fold::WithStart`], for the last event of the batch that changes its step: its
    /// rows are written with the batch's other such attempts, at the end.
    Together(Timestamp, Option<i32>),
}

/// Pairs each attempt's start with its finish when both are in `batch` and no other event
/// changes the same step between them; every other event is applied [`Fold::Alone`].
fn fold_attempts(batch: &[RunEvent]) -> Vec<Fold> {
    let mut folds = vec![Fold::Alone; batch.len()];
    // The last event per (run, step) that changed the step's rows.
    let mut last: HashMap<(&str, &str), usize> = HashMap::new();
    for (index, event) in batch.iter().enumerate() {
        let key = match event {
            RunEvent::StepStarted {
                run_id, step_id, ..
            }
            | RunEvent::StepFinished {
                run_id, step_id, ..
            }
            | RunEvent::StepSkipped {
                run_id, step_id, ..
            } => (run_id.as_str(), step_id.as_str()),
            // A start sent before its run was created must fail where it stands, not be
            // carried past the run's creation.
            RunEvent::RunCreated { .. } => {
                last.clear();
                continue;
            }
            _ => continue,
        };
        if let RunEvent::StepFinished { attempt, .. } = event
            && let Some(&start) = last.get(&key)
            && let RunEvent::StepStarted {
                attempt: started,
                at,
                pgid,
                ..
            } = &batch[start]
            && started == attempt
        {
            folds[start] = Fold::StartLater;
            folds[index] = Fold::WithStart(*at, *pgid);
        }
        last.insert(key, index);
    }
    for &index in last.values() {
        if let Fold::WithStart(at, pgid) = folds[index] {
            folds[index] = Fold::Together(at, pgid);
        }
    }
    folds
}

async fn apply<'a>(
    conn: &mut AnyConnection,
    event: &'a RunEvent,
    fold: Fold,
    rows: &mut Rows<'a>,
) -> Result<(), StoreError> {
    match event {
        RunEvent::RunCreated { run } => create_run(conn, run, rows).await,
        RunEvent::RunConfirmed { run_id, by } => {
            let done = sqlx::query("UPDATE runs SET confirmed_by = $1 WHERE id = $2")
                .bind(by)
                .bind(run_id)
                .execute(&mut *conn)
                .await?;
            expect_run(done.rows_affected(), run_id)
        }
        RunEvent::RunStarted { run_id, at } => {
            let done =
                sqlx::query("UPDATE runs SET status = 'running', started_at = $1 WHERE id = $2")
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
            let done = sqlx::query(
                "UPDATE runs SET status = $1, reason = $2, finished_at = $3 WHERE id = $4",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(micros(*at))
            .bind(run_id)
            .execute(&mut *conn)
            .await?;
            expect_run(done.rows_affected(), run_id)?;
            // A gate the run still waited at when it was stopped takes no more decisions.
            sqlx::query(
                "UPDATE run_gates SET status = 'cancelled', decided_at = $1 \
                 WHERE run_id = $2 AND status = 'awaiting_approval'",
            )
            .bind(micros(*at))
            .bind(run_id)
            .execute(&mut *conn)
            .await?;
            let data = json!({ "status": status.as_str(), "reason": reason });
            rows.event(*at, "run.finished", run_id, None, data);
            Ok(())
        }
        RunEvent::GateOpened {
            run_id,
            step_id,
            hash,
            rules,
            message,
            at,
        } => {
            if crate::gates::open(conn, run_id, step_id, hash, rules, message.as_deref(), *at)
                .await?
            {
                let data = json!({ "hash": hash, "approvers": rules.approvers,
                                   "quorum": rules.quorum });
                rows.event(*at, "gate.opened", run_id, Some(step_id), data);
            }
            Ok(())
        }
        RunEvent::RunAwaitingApproval { run_id, reason, at } => {
            let done = sqlx::query(&format!(
                "UPDATE runs SET status = {}, reason = $1 WHERE id = $2",
                crate::gates::PARKED_STATUS
            ))
            .bind(reason)
            .bind(run_id)
            .execute(&mut *conn)
            .await?;
            expect_run(done.rows_affected(), run_id)?;
            let data = json!({ "status": "awaiting_approval", "reason": reason });
            rows.event(*at, "run.awaiting_approval", run_id, None, data);
            Ok(())
        }
        RunEvent::NotificationQueued { notification: n } => {
            if crate::notify::insert_in(conn, n).await? {
                let data = json!({ "id": n.id, "rule": n.rule, "event": n.event,
                                   "channel": n.channel });
                rows.event(n.created_at, "notification.queued", &n.run_id, None, data);
            }
            Ok(())
        }
        RunEvent::StepStarted {
            run_id,
            step_id,
            attempt,
            at,
            pgid,
        } if fold == Fold::StartLater => {
            let data = json!({ "attempt": attempt, "pgid": pgid });
            rows.event(*at, "step.started", run_id, Some(step_id), data);
            Ok(())
        }
        RunEvent::StepStarted {
            run_id,
            step_id,
            attempt,
            at,
            pgid,
        } => {
            let attempt_no = i64::from(*attempt);
            archive_current(conn, run_id, step_id, Archive::OtherThan(attempt_no)).await?;
            let done = sqlx::query(
                "UPDATE step_runs SET status = 'running', attempt = $1, exit_code = NULL, \
                 reason = NULL, outputs = '{}', started_at = $2, finished_at = NULL, pgid = $3 \
                 WHERE run_id = $4 AND step_id = $5",
            )
            .bind(attempt_no)
            .bind(micros(*at))
            .bind(pgid)
            .bind(run_id)
            .bind(step_id)
            .execute(&mut *conn)
            .await?;
            expect_step(done.rows_affected(), run_id, step_id)?;
            drop_archived(conn, run_id, step_id, attempt_no).await?;
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
            let data = json!({
                "attempt": attempt,
                "status": status.as_str(),
                "exit_code": exit_code,
                "reason": reason,
                "outputs": outputs,
            });
            if let Fold::Together(started_at, pgid) = fold {
                rows.attempts.push(AttemptRow {
                    run_id,
                    step_id,
                    attempt: i64::from(*attempt),
                    status: status.as_str(),
                    exit_code: *exit_code,
                    reason: reason.as_deref(),
                    outputs: outputs_json,
                    started_at: micros(started_at),
                    finished_at: micros(*at),
                    pgid,
                });
                rows.event(*at, "step.finished", run_id, Some(step_id), data);
                return Ok(());
            }
            let finish = Finish {
                run_id,
                step_id,
                attempt: i64::from(*attempt),
                status: status.as_str(),
                exit_code: *exit_code,
                reason: reason.as_deref(),
                outputs: &outputs_json,
                at: micros(*at),
            };
            match fold {
                Fold::WithStart(started_at, pgid) => {
                    write_whole_attempt(conn, &finish, micros(started_at), pgid).await?;
                }
                _ => write_finish(conn, &finish).await?,
            }
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
            // The skip overwrites the step's status; an attempt it had keeps how it ended.
            archive_current(conn, run_id, step_id, Archive::Any).await?;
            let done = sqlx::query(
                "UPDATE step_runs SET status = $1, reason = $2, finished_at = $3, pgid = NULL \
                 WHERE run_id = $4 AND step_id = $5",
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
        RunEvent::ArtifactsKept {
            run_id,
            step_id,
            attempt,
            at,
            artifacts,
        } => crate::artifacts::record_kept(conn, run_id, step_id, *attempt, *at, artifacts).await,
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

/// The columns an attempt's finish writes.
struct Finish<'a> {
    run_id: &'a str,
    step_id: &'a str,
    attempt: i64,
    status: &'a str,
    exit_code: Option<i32>,
    reason: Option<&'a str>,
    outputs: &'a str,
    at: i64,
}

/// Records the end of an attempt whose start was recorded before.
async fn write_finish(conn: &mut AnyConnection, f: &Finish<'_>) -> Result<(), StoreError> {
    archive_current(conn, f.run_id, f.step_id, Archive::OlderThan(f.attempt)).await?;
    // An older attempt finishing late must not overwrite a newer one's state: it is
    // recorded in `step_attempts`, where the newer one's start put it.
    let done = sqlx::query(
        "UPDATE step_runs SET status = $1, attempt = $2, exit_code = $3, reason = $4, \
         outputs = $5, finished_at = $6 \
         WHERE run_id = $7 AND step_id = $8 AND attempt <= $9",
    )
    .bind(f.status)
    .bind(f.attempt)
    .bind(f.exit_code)
    .bind(f.reason)
    .bind(f.outputs)
    .bind(f.at)
    .bind(f.run_id)
    .bind(f.step_id)
    .bind(f.attempt)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        return drop_archived(conn, f.run_id, f.step_id, f.attempt).await;
    }
    step_exists(conn, f.run_id, f.step_id).await?;
    sqlx::query(
        "INSERT INTO step_attempts \
         (run_id, step_id, attempt, status, exit_code, reason, outputs, finished_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (run_id, step_id, attempt) DO UPDATE SET \
         status = excluded.status, exit_code = excluded.exit_code, \
         reason = excluded.reason, outputs = excluded.outputs, \
         finished_at = excluded.finished_at",
    )
    .bind(f.run_id)
    .bind(f.step_id)
    .bind(f.attempt)
    .bind(f.status)
    .bind(f.exit_code)
    .bind(f.reason)
    .bind(f.outputs)
    .bind(f.at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records an attempt that started and finished in the same batch: the rows its start
/// followed by its finish would leave (the start makes it the step's current attempt, so
/// the finish's guard against older attempts always passes), in two statements, not four.
async fn write_whole_attempt(
    conn: &mut AnyConnection,
    f: &Finish<'_>,
    started_at: i64,
    pgid: Option<i32>,
) -> Result<(), StoreError> {
    archive_current(conn, f.run_id, f.step_id, Archive::OtherThan(f.attempt)).await?;
    let done = sqlx::query(
        "UPDATE step_runs SET status = $1, attempt = $2, exit_code = $3, reason = $4, \
         outputs = $5, started_at = $6, finished_at = $7, pgid = $8 \
         WHERE run_id = $9 AND step_id = $10",
    )
    .bind(f.status)
    .bind(f.attempt)
    .bind(f.exit_code)
    .bind(f.reason)
    .bind(f.outputs)
    .bind(started_at)
    .bind(f.at)
    .bind(pgid)
    .bind(f.run_id)
    .bind(f.step_id)
    .execute(&mut *conn)
    .await?;
    expect_step(done.rows_affected(), f.run_id, f.step_id)?;
    drop_archived(conn, f.run_id, f.step_id, f.attempt).await
}

pub(crate) async fn create_run<'a>(
    conn: &mut AnyConnection,
    run: &'a NewRun,
    rows: &mut Rows<'a>,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO runs (id, namespace, job_id, job_revision, status, params, dry_run, \
         triggered_by, scheduled_at, created_at, owner_host, owner_pid, owner_start_token, \
         started_by, parent_run_id, parent_step_id) \
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
    .bind(&run.started_by)
    .bind(run.parent.as_ref().map(|p| p.run_id.as_str()))
    .bind(run.parent.as_ref().map(|p| p.step_id.as_str()))
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
             VALUES ($1, $2, $3, 'pending', 0, '{}')",
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
        "parent": run.parent.as_ref().map(|p| json!({"run": p.run_id, "step": p.step_id})),
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
    conn: &mut AnyConnection,
    run_id: &str,
    step_id: &str,
) -> Result<(), StoreError> {
    let found = sqlx::query("SELECT 1 FROM step_runs WHERE run_id = $1 AND step_id = $2")
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
    attempts: Vec<AttemptRow<'a>>,
    events: Vec<EventRow<'a>>,
    logs: Vec<LogRow<'a>>,
    /// The audit entries of the batch's run state changes, in order.
    audits: Vec<crate::NewAuditEntry>,
}

/// An attempt that started and finished in the batch ([`Fold::Together`]).
struct AttemptRow<'a> {
    run_id: &'a str,
    step_id: &'a str,
    attempt: i64,
    status: &'static str,
    exit_code: Option<i32>,
    reason: Option<&'a str>,
    outputs: String,
    started_at: i64,
    finished_at: i64,
    pgid: Option<i32>,
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
        self.audits
            .extend(crate::audit::run_change_entry(at, kind, run_id, &data));
        self.events.push(EventRow {
            at,
            kind,
            run_id,
            step_id,
            data: data.to_string(),
        });
    }

    pub(crate) async fn flush(self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        for chunk in self.attempts.chunks(ATTEMPT_CHUNK) {
            write_attempts(conn, chunk).await?;
        }
        for chunk in self.events.chunks(CHUNK) {
            let mut insert = Sql::new("INSERT INTO events (at, kind, run_id, step_id, data) ");
            insert.push_values(chunk, |row, e| {
                row.sep(micros(e.at))
                    .sep(e.kind)
                    .sep(e.run_id)
                    .sep(e.step_id)
                    .sep(&e.data);
            });
            // Chunk sizes vary, so these statements are not worth caching.
            insert
                .build()?
                .persistent(false)
                .execute(&mut *conn)
                .await?;
        }
        let backend = Backend::of_conn(conn);
        if !self.logs.is_empty()
            && let Some(savepoint) = backend.savepoint()
        {
            conn.execute(savepoint).await?;
        }
        for chunk in self.logs.chunks(CHUNK) {
            let mut insert =
                Sql::new("INSERT INTO logs (run_id, step_id, attempt, ts, stream, text) ");
            insert.push_values(chunk, |row, l| {
                row.sep(l.run_id)
                    .sep(l.step_id)
                    .sep(i64::from(l.attempt))
                    .sep(micros(l.ts))
                    .sep(l.stream.as_str());
                match backend.text(l.text) {
                    Cow::Borrowed(text) => row.sep(text),
                    Cow::Owned(text) => row.sep(text),
                };
            });
            let inserted = insert.build()?.persistent(false).execute(&mut *conn).await;
            if let Err(e) = inserted {
                if is_foreign_key_violation(&e) {
                    if let Some(rollback) = backend.after_failure() {
                        conn.execute(rollback).await?;
                    }
                    return Err(missing_run(conn, chunk).await);
                }
                return Err(e.into());
            }
        }
        for entry in &self.audits {
            crate::run_digest::append_run_change_in(conn, entry).await?;
        }
        Ok(())
    }
}

/// Attempts per multi-row statement (ten parameters each).
const ATTEMPT_CHUNK: usize = 100;

/// Writes attempts that started and finished in the batch, and are the last change of their
/// step in it (so each step appears once): the rows their start and finish would leave.
async fn write_attempts(
    conn: &mut AnyConnection,
    chunk: &[AttemptRow<'_>],
) -> Result<(), StoreError> {
    // The attempts the steps held before (a retry's earlier attempt) are kept first.
    let mut archive = Sql::new("WITH v (run_id, step_id, attempt) AS (");
    archive.push_values(chunk, |row, a| {
        row.sep(a.run_id).sep(a.step_id).sep(a.attempt);
    });
    archive.push(
        ") INSERT INTO step_attempts (run_id, step_id, attempt, status, exit_code, reason, \
         outputs, started_at, finished_at, pgid) \
         SELECT s.run_id, s.step_id, s.attempt, s.status, s.exit_code, s.reason, s.outputs, \
         s.started_at, s.finished_at, s.pgid FROM step_runs s, v \
         WHERE s.run_id = v.run_id AND s.step_id = v.step_id AND s.attempt >= 1 \
         AND s.attempt <> v.attempt \
         ON CONFLICT (run_id, step_id, attempt) DO NOTHING",
    );
    archive
        .build()?
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    let mut update = Sql::new(
        "WITH v (run_id, step_id, status, attempt, exit_code, reason, outputs, started_at, \
         finished_at, pgid) AS (",
    );
    update.push_values(chunk, |row, a| {
        row.sep(a.run_id)
            .sep(a.step_id)
            .sep(a.status)
            .sep(a.attempt)
            .sep(a.exit_code)
            .sep(a.reason)
            .sep(&a.outputs)
            .sep(a.started_at)
            .sep(a.finished_at)
            .sep(a.pgid);
    });
    update.push(
        ") UPDATE step_runs SET status = v.status, attempt = v.attempt, \
         exit_code = v.exit_code, reason = v.reason, outputs = v.outputs, \
         started_at = v.started_at, finished_at = v.finished_at, pgid = v.pgid \
         FROM v WHERE step_runs.run_id = v.run_id AND step_runs.step_id = v.step_id",
    );
    let done = update
        .build()?
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() < chunk.len() as u64 {
        for a in chunk {
            step_exists(conn, a.run_id, a.step_id).await?;
        }
    }
    // And a copy of an attempt the step now holds again is dropped (see `crate::attempts`).
    let mut dropped_copies = Sql::new("WITH v (run_id, step_id, attempt) AS (");
    dropped_copies.push_values(chunk, |row, a| {
        row.sep(a.run_id).sep(a.step_id).sep(a.attempt);
    });
    dropped_copies.push(
        ") DELETE FROM step_attempts WHERE EXISTS (SELECT 1 FROM v \
         WHERE v.run_id = step_attempts.run_id AND v.step_id = step_attempts.step_id \
         AND v.attempt = step_attempts.attempt)",
    );
    dropped_copies
        .build()?
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The error for a chunk of log lines of which some name a run that does not exist.
async fn missing_run(conn: &mut AnyConnection, chunk: &[LogRow<'_>]) -> StoreError {
    for line in chunk {
        let found = sqlx::query("SELECT 1 FROM runs WHERE id = $1")
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

#[cfg(test)]
mod tests {
    //! Folding an attempt's start and finish must leave exactly the rows that applying the
    //! two events one by one leaves; these tests compare both on real SQLite files.

    use std::collections::BTreeMap;

    use rota_core::model::StepStatus;
    use serde_json::json;

    use super::*;
    use crate::Backend;
    use crate::testing::{TestDb, both, fresh};
    use crate::{NewJobRevision, Owner};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_microsecond(1_700_000_000_000_000 + ms * 1000).expect("in range")
    }

    async fn store_with_run(
        backend: Backend,
        steps: &[&str],
    ) -> Result<(TestDb, Store), Box<dyn std::error::Error>> {
        let (db, store) = fresh(backend).await?;
        let rev = NewJobRevision::new("ns", "job", "id: job\n", json!({}), at(0));
        store.save_job_revision(&rev).await?;
        store
            .record(&[RunEvent::RunCreated { run: run(steps) }])
            .await?;
        Ok((db, store))
    }

    fn run(steps: &[&str]) -> NewRun {
        NewRun {
            id: "r1".into(),
            namespace: "ns".into(),
            job_id: "job".into(),
            job_revision: 1,
            params: json!({}),
            dry_run: false,
            trigger: "cli".into(),
            started_by: None,
            scheduled_at: None,
            created_at: at(0),
            owner: Owner {
                host: "h".into(),
                pid: 1,
                start_token: "t".into(),
            },
            steps: steps.iter().map(|s| s.to_string()).collect(),
            parent: None,
        }
    }

    fn start(step: &str, attempt: u32, ms: i64) -> RunEvent {
        RunEvent::StepStarted {
            run_id: "r1".into(),
            step_id: step.into(),
            attempt,
            at: at(ms),
            pgid: Some(100 + i32::try_from(ms).unwrap_or(0)),
        }
    }

    fn finish(step: &str, attempt: u32, ms: i64, code: i32) -> RunEvent {
        let status = if code == 0 {
            StepStatus::Succeeded
        } else {
            StepStatus::Failed
        };
        RunEvent::StepFinished {
            run_id: "r1".into(),
            step_id: step.into(),
            attempt,
            status,
            exit_code: Some(code),
            reason: (code != 0).then(|| format!("exited with code {code}")),
            outputs: BTreeMap::from([("n".to_owned(), ms.to_string())]),
            at: at(ms),
        }
    }

    fn line(step: &str, ms: i64) -> RunEvent {
        RunEvent::Log {
            run_id: "r1".into(),
            step_id: step.into(),
            attempt: 1,
            ts: at(ms),
            stream: crate::LogStream::Stdout,
            text: format!("line {ms}"),
        }
    }

    /// Every row an event can touch, as text, in a stable order.
    async fn dump(store: &Store) -> Result<Vec<String>, sqlx::Error> {
        let queries = [
            "SELECT 'step_runs', step_id, status, attempt, exit_code, reason, outputs, \
             started_at, finished_at, pgid FROM step_runs ORDER BY step_id",
            "SELECT 'step_attempts', step_id || '#' || attempt, status, attempt, exit_code, \
             reason, outputs, started_at, finished_at, pgid FROM step_attempts \
             ORDER BY step_id, attempt",
            "SELECT 'events', kind, coalesce(step_id, '-'), id, NULL, NULL, data, at, NULL, NULL \
             FROM events ORDER BY id",
            "SELECT 'logs', step_id, text, attempt, NULL, NULL, stream, ts, NULL, NULL \
             FROM logs ORDER BY seq",
        ];
        let mut rows = Vec::new();
        for query in queries {
            type Row = (
                String,
                String,
                String,
                i64,
                Option<i64>,
                Option<String>,
                String,
                Option<i64>,
                Option<i64>,
                Option<i64>,
            );
            let found: Vec<Row> = sqlx::query_as(query).fetch_all(&store.pool).await?;
            rows.extend(found.into_iter().map(|row| format!("{row:?}")));
        }
        Ok(rows)
    }

    /// Applies `events` once one by one and once as a single batch, and compares.
    async fn check_same_rows(
        backend: Backend,
        steps: &[&str],
        events: Vec<RunEvent>,
    ) -> TestResult {
        let (_one_db, one_by_one) = store_with_run(backend, steps).await?;
        for event in &events {
            one_by_one.record(std::slice::from_ref(event)).await?;
        }
        let (_batch_db, batched) = store_with_run(backend, steps).await?;
        batched.record(&events).await?;
        let (expected, got) = (dump(&one_by_one).await?, dump(&batched).await?);
        assert!(expected.len() > events.len(), "{expected:#?}");
        assert_eq!(got, expected);
        Ok(())
    }

    #[test]
    fn starts_are_folded_only_into_the_same_attempts_finish() {
        let events = vec![
            start("a", 1, 1),
            start("b", 1, 2),
            finish("a", 1, 3, 0),
            start("b", 2, 4),
            finish("b", 1, 5, 1),
            RunEvent::StepSkipped {
                run_id: "r1".into(),
                step_id: "c".into(),
                status: StepStatus::Skipped,
                reason: "no".into(),
                at: at(6),
            },
            finish("c", 1, 7, 0),
        ];
        let folds = fold_attempts(&events);
        assert_eq!(
            folds,
            [
                Fold::StartLater,
                Fold::Alone,
                Fold::Together(at(1), Some(101)),
                Fold::Alone,
                Fold::Alone,
                Fold::Alone,
                Fold::Alone,
            ]
        );
    }

    both!(a_folded_batch_leaves_the_rows_of_its_events_applied_one_by_one);
    async fn a_folded_batch_leaves_the_rows_of_its_events_applied_one_by_one(
        backend: Backend,
    ) -> TestResult {
        check_same_rows(
            backend,
            &["a", "b", "c"],
            vec![
                start("a", 1, 1),
                start("b", 1, 2),
                line("a", 3),
                finish("a", 1, 4, 0),
                finish("b", 1, 5, 2),
                start("b", 2, 6),
                finish("b", 2, 7, 0),
                start("c", 1, 8),
            ],
        )
        .await
    }

    #[test]
    fn only_the_last_attempt_of_a_step_in_a_batch_is_written_with_the_others() {
        let events = vec![
            start("a", 1, 1),
            finish("a", 1, 2, 1),
            start("a", 2, 3),
            finish("a", 2, 4, 0),
        ];
        assert_eq!(
            fold_attempts(&events),
            [
                Fold::StartLater,
                Fold::WithStart(at(1), Some(101)),
                Fold::StartLater,
                Fold::Together(at(3), Some(103)),
            ]
        );
    }

    both!(more_attempts_than_one_statement_takes_are_written_in_chunks);
    async fn more_attempts_than_one_statement_takes_are_written_in_chunks(
        backend: Backend,
    ) -> TestResult {
        let names: Vec<String> = (0..ATTEMPT_CHUNK + 50).map(|i| format!("s{i}")).collect();
        let steps: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut events = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ms = i64::try_from(i).unwrap_or(0) * 10;
            events.push(start(name, 1, ms + 1));
            events.push(finish(name, 1, ms + 2, i32::from(i % 7 == 0)));
        }
        check_same_rows(backend, &steps, events).await
    }

    both!(a_late_finish_of_an_older_attempt_is_not_folded_over_a_newer_start);
    async fn a_late_finish_of_an_older_attempt_is_not_folded_over_a_newer_start(
        backend: Backend,
    ) -> TestResult {
        check_same_rows(
            backend,
            &["a"],
            vec![
                start("a", 1, 1),
                start("a", 2, 2),
                finish("a", 1, 3, 1),
                finish("a", 2, 4, 0),
            ],
        )
        .await
    }

    both!(a_folded_attempt_of_an_unknown_step_fails_the_whole_batch);
    async fn a_folded_attempt_of_an_unknown_step_fails_the_whole_batch(
        backend: Backend,
    ) -> TestResult {
        let (_db, store) = store_with_run(backend, &["a"]).await?;
        let before = dump(&store).await?;
        let result = store
            .record(&[
                start("a", 1, 1),
                start("ghost", 1, 2),
                finish("ghost", 1, 3, 0),
            ])
            .await;
        assert!(
            matches!(&result, Err(StoreError::UnknownStep { step_id, .. }) if step_id == "ghost"),
            "{result:?}"
        );
        assert_eq!(dump(&store).await?, before);
        Ok(())
    }
}
