//! The fleet's rows: step attempts handed to remote workers and their leases, the workers
//! seen, the servers sharing this store, and named leases (the scheduler's).
//!
//! An attempt handed to a worker is a *dispatch*: `pending` until a worker claims it,
//! `leased` while the worker renews its lease, then `done` (the worker reported its end),
//! `abandoned` (the lease expired, or the server gave up on a worker that did not stop) or
//! `withdrawn` (its step stopped before any worker claimed it). Each claim and each expiry
//! bumps the dispatch's `epoch`; every call of a worker carries the epoch of its claim and
//! is refused unless the dispatch is still `leased` at that epoch, so a worker that was cut
//! off and comes back cannot renew, log to or finish an attempt that is no longer its own.
//! Every state change is one conditional `UPDATE`, so two workers can never hold the same
//! attempt.
//!
//! **Claims and renewals without the write lock.** Every worker claims and heartbeats, so on
//! PostgreSQL these two run in transactions that do not take the store's one write lock
//! ([`crate::Store::write_rows`]: plain `BEGIN`; SQLite keeps `BEGIN IMMEDIATE`, its single
//! writer). Their safety rests on row locks instead, and on every other writer of a
//! dispatch row re-checking what it read in its `UPDATE`:
//! - A claim reads the oldest pending candidates without locking them, keeps those whose
//!   labels the worker carries, then locks the oldest of these that is still pending and
//!   current with `FOR UPDATE SKIP LOCKED` ([`crate::Backend::lock_rows`]) and leases it
//!   (`… AND state = 'pending'`). PostgreSQL re-checks a locked row's conditions against its
//!   newest committed version, so the row is pending when locked, and no one else changes
//!   it until the claim commits: two claims never lease one dispatch, and a claim never
//!   waits for another (it takes the next free row, and looks again, a few times, when every
//!   row it wanted was taken meanwhile). Only the chosen row is locked: rows other workers'
//!   labels fit stay free for their claims.
//! - A renewal (and every call of a worker: `hold`) locks its dispatch row `FOR UPDATE`
//!   before it checks state, epoch and holder, so nothing changes the row between the check
//!   and the write that follows.
//! - The writers under the write lock change a dispatch only by conditional `UPDATE`s whose
//!   conditions PostgreSQL re-checks after waiting for a claim's or renewal's row lock:
//!   withdrawing (`state = 'pending'`), abandoning (`state = 'leased'`), requeueing an
//!   unconfirmed claim and abandoning an expired lease (`state = 'leased' AND
//!   lease_expires_at < now`: a lease renewed after the reaper read it is left alone), asking
//!   for a cancel (one flag, whatever the state). A worker's lines and its end go through
//!   `hold`'s row lock too.
//! - Whether the attempt is still its step's current one (`step_runs`) is read, not locked:
//!   a claim that races a resumed run's abandoning of the attempt ends as if it came first,
//!   which the write lock allowed too (the worker is fenced at its first heartbeat).
//! - Neither writes an event or a log line, so the ids of those stay committed in order.
//!   Lock order is the worker's row, then one dispatch row, and the write lock is never
//!   taken while holding a row lock, so they cannot deadlock with the write transactions.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::Row;

use crate::StoreError;
use crate::convert::{flag, micros, ts};
use crate::dialect::Sql;
use crate::events::LogStream;

/// A server row's `last_heartbeat` once the server is taken for dead: older than any real
/// heartbeat, so the row stays stale, and never written by a heartbeat.
const FENCED: i64 = -1;

/// How many pending dispatches a claim looks at for one whose labels the worker carries.
const CLAIM_SCAN: i64 = 64;

/// How many times a claim looks again when every dispatch it wanted was taken meanwhile.
const CLAIM_ROUNDS: usize = 4;

/// Which attempt of which step of which run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptKey {
    /// The run.
    pub run_id: String,
    /// The step.
    pub step_id: String,
    /// The attempt, from 1.
    pub attempt: u32,
}

/// Where a dispatch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchState {
    /// Waiting for a worker.
    Pending,
    /// Held by a worker under a lease.
    Leased,
    /// The worker reported the attempt's end.
    Done,
    /// The lease expired, or the server stopped waiting for the worker.
    Abandoned,
    /// Its step stopped before a worker claimed it.
    Withdrawn,
}

impl DispatchState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DispatchState::Pending => "pending",
            DispatchState::Leased => "leased",
            DispatchState::Done => "done",
            DispatchState::Abandoned => "abandoned",
            DispatchState::Withdrawn => "withdrawn",
        }
    }

    fn parse(text: &str) -> Result<DispatchState, StoreError> {
        [
            DispatchState::Pending,
            DispatchState::Leased,
            DispatchState::Done,
            DispatchState::Abandoned,
            DispatchState::Withdrawn,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt {
            what: "dispatch state",
            detail: format!("unknown state {text:?}"),
        })
    }
}

/// An attempt to hand to a worker.
#[derive(Debug, Clone)]
pub struct NewDispatch {
    /// The attempt.
    pub key: AttemptKey,
    /// The run's namespace.
    pub namespace: String,
    /// Labels a worker must carry (each with this value) to claim it.
    pub runs_on: BTreeMap<String, String>,
    /// The sealed attempt's nonce.
    pub nonce: Vec<u8>,
    /// The sealed attempt.
    pub payload: Vec<u8>,
    /// When it was handed over.
    pub created_at: Timestamp,
}

/// A dispatch as stored.
#[derive(Debug, Clone)]
pub struct DispatchRecord {
    /// The attempt.
    pub key: AttemptKey,
    /// The run's namespace.
    pub namespace: String,
    /// Labels a worker must carry.
    pub runs_on: BTreeMap<String, String>,
    /// Where it stands.
    pub state: DispatchState,
    /// The lease's fencing epoch (0 before the first claim).
    pub epoch: i64,
    /// The worker holding (or that last held) it.
    pub worker_id: Option<String>,
    /// When the current lease ends unless renewed.
    pub lease_expires_at: Option<Timestamp>,
    /// Whether the server asked the worker to stop it.
    pub cancel_requested: bool,
    /// The end the worker reported (or the reason it was abandoned), as JSON text.
    pub result: Option<String>,
    /// The sealed attempt's nonce.
    pub nonce: Vec<u8>,
    /// The sealed attempt.
    pub payload: Vec<u8>,
}

/// A worker as it introduces itself with each claim and heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerInfo {
    /// Its id, unique per `rota worker` process.
    pub id: String,
    /// A human name (its host, or `--name`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// How many attempts it runs at once.
    pub slots: u32,
    /// How many it runs now.
    pub busy: u32,
}

/// A worker as last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRecord {
    /// What it said of itself.
    pub info: WorkerInfo,
    /// When it first introduced itself.
    pub started_at: Timestamp,
    /// Its last claim or heartbeat.
    pub last_heartbeat: Timestamp,
    /// How many leases it holds.
    pub leases: u32,
}

/// A server sharing this store.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRecord {
    /// Its id, unique per `rota serve` process.
    pub id: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The address it listens on.
    pub listen: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Its last heartbeat.
    pub last_heartbeat: Timestamp,
}

/// What [`crate::Store::expire_leases`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    /// Unconfirmed claims put back to `pending`.
    pub requeued: u64,
    /// Confirmed attempts abandoned.
    pub abandoned: Vec<AttemptKey>,
}

/// Why a worker's call about an attempt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    /// No such dispatch.
    #[error("no attempt {0:?} was handed to a worker")]
    Unknown(String),
    /// The dispatch moved on: another claim, an expiry, or its end.
    #[error("the lease on this attempt is no longer yours (it is {state} at epoch {epoch})")]
    Lost {
        /// The dispatch's state now.
        state: &'static str,
        /// Its epoch now.
        epoch: i64,
    },
}

/// What a worker learns when it renews a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    /// The server wants the attempt stopped.
    pub cancel_requested: bool,
}

/// One line a worker sends for an attempt it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerLine {
    /// When the worker read it.
    pub ts: Timestamp,
    /// Which stream.
    pub stream: LogStream,
    /// The text, already redacted by the worker.
    pub text: String,
}

fn key_text(key: &AttemptKey) -> String {
    format!("{}/{}/{}", key.run_id, key.step_id, key.attempt)
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

fn labels_of(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: "labels",
        detail: e.to_string(),
    })
}

/// Whether a worker carrying `labels` may take an attempt asking for `wanted`.
pub fn labels_match(wanted: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The write transaction of this store's backend.
type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A row of this store's backend.
type BackendRow = sqlx::any::AnyRow;

fn dispatch_of(row: &BackendRow) -> Result<DispatchRecord, StoreError> {
    let attempt: i64 = row.try_get("attempt")?;
    let state: String = row.try_get("state")?;
    let runs_on: String = row.try_get("runs_on")?;
    let expires: Option<i64> = row.try_get("lease_expires_at")?;
    Ok(DispatchRecord {
        key: AttemptKey {
            run_id: row.try_get("run_id")?,
            step_id: row.try_get("step_id")?,
            attempt: u32::try_from(attempt).map_err(|_| StoreError::Corrupt {
                what: "attempt",
                detail: attempt.to_string(),
            })?,
        },
        namespace: row.try_get("namespace")?,
        runs_on: labels_of(&runs_on)?,
        state: DispatchState::parse(&state)?,
        epoch: row.try_get("epoch")?,
        worker_id: row.try_get("worker_id")?,
        lease_expires_at: expires
            .map(|at| {
                Timestamp::from_microsecond(at).map_err(|e| StoreError::Corrupt {
                    what: "lease_expires_at",
                    detail: e.to_string(),
                })
            })
            .transpose()?,
        cancel_requested: flag(row, "cancel_requested")?,
        result: row.try_get("result")?,
        nonce: row.try_get("nonce")?,
        payload: row.try_get("payload")?,
    })
}

/// Whether a dispatch is still its step's current attempt, running: a run resumed after its
/// server died records that attempt abandoned and starts the next, so a stale dispatch is
/// neither claimed nor renewed.
const CURRENT_ATTEMPT: &str = "EXISTS (SELECT 1 FROM step_runs s \
     WHERE s.run_id = dispatches.run_id AND s.step_id = dispatches.step_id \
     AND s.attempt = dispatches.attempt AND s.status = 'running')";

const DISPATCH_COLUMNS: &str = "run_id, step_id, attempt, namespace, runs_on, state, epoch, \
     worker_id, lease_expires_at, CAST(cancel_requested AS INTEGER) AS cancel_requested, \
     result, nonce, payload";

fn lease_end(now: Timestamp, lease: Duration) -> i64 {
    micros(now).saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
}

/// Appends the condition that picks the dispatch of `key`, binding its three values.
fn push_key<'a>(sql: &mut Sql<'a>, key: &'a AttemptKey) {
    sql.push("run_id = ")
        .push_bind(key.run_id.as_str())
        .push(" AND step_id = ")
        .push_bind(key.step_id.as_str())
        .push(" AND attempt = ")
        .push_bind(i64::from(key.attempt));
}

/// `UPDATE dispatches SET … WHERE <the row of key>`: `set` writes the SET clause, binding
/// its values; more conditions (or a `RETURNING`) may be pushed after.
fn update_dispatch<'a>(key: &'a AttemptKey, set: impl FnOnce(&mut Sql<'a>)) -> Sql<'a> {
    let mut sql = Sql::new("UPDATE dispatches SET ");
    set(&mut sql);
    sql.push(" WHERE ");
    push_key(&mut sql, key);
    sql
}

/// Abandons the lease on `key` (`reason`: JSON text of the attempt's end), bumping the epoch;
/// with `expired`, only if the lease ended before `now`. Whether it did.
async fn abandon_in(
    tx: &mut Tx,
    key: &AttemptKey,
    reason: &str,
    now: Timestamp,
    expired: bool,
) -> Result<bool, StoreError> {
    let mut sql = update_dispatch(key, |sql| {
        sql.push("state = 'abandoned', epoch = epoch + 1, result = ")
            .push_bind(reason)
            .push(", finished_at = ")
            .push_bind(micros(now))
            .push(", lease_expires_at = NULL");
    });
    sql.push(" AND state = 'leased'");
    if expired {
        sql.push(" AND lease_expires_at < ").push_bind(micros(now));
    }
    Ok(sql.build()?.execute(&mut **tx).await?.rows_affected() == 1)
}

impl crate::Store {
    /// Hands an attempt to the workers: a `pending` dispatch at epoch 0.
    pub async fn insert_dispatch(&self, new: &NewDispatch) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO dispatches (run_id, step_id, attempt, namespace, runs_on, nonce, \
             payload, state, epoch, cancel_requested, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, FALSE, $8)",
        )
        .bind(&new.key.run_id)
        .bind(&new.key.step_id)
        .bind(i64::from(new.key.attempt))
        .bind(&new.namespace)
        .bind(labels_text(&new.runs_on))
        .bind(&new.nonce)
        .bind(&new.payload)
        .bind(micros(new.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The dispatch of `key`, if the attempt was handed to workers.
    pub async fn dispatch(&self, key: &AttemptKey) -> Result<Option<DispatchRecord>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {DISPATCH_COLUMNS} FROM dispatches WHERE "));
        push_key(&mut sql, key);
        let row = sql.build()?.fetch_optional(&self.pool).await?;
        row.as_ref().map(dispatch_of).transpose()
    }

    /// Whether any dispatch is waiting for a worker (a cheap check before a claim).
    pub async fn has_pending_dispatch(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM dispatches WHERE state = 'pending' LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Leases the oldest pending dispatch whose labels `worker` carries, for `lease`, and
    /// records the worker as seen at `now`. The claim bumps the epoch; only the claimant's
    /// calls at that epoch are accepted from then on.
    pub async fn claim_dispatch(
        &self,
        worker: &WorkerInfo,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<DispatchRecord>, StoreError> {
        let mut tx = self.write_rows().await?;
        upsert_worker(&mut tx, worker, now).await?;
        let mut chosen = None;
        for _ in 0..CLAIM_ROUNDS {
            let rows = sqlx::query(&format!(
                "SELECT run_id, step_id, attempt, runs_on FROM dispatches \
                 WHERE state = 'pending' AND {CURRENT_ATTEMPT} \
                 ORDER BY created_at, run_id, step_id, attempt LIMIT $1"
            ))
            .bind(CLAIM_SCAN)
            .fetch_all(&mut *tx)
            .await?;
            let mut wanted = Vec::new();
            for row in &rows {
                let runs_on: String = row.try_get("runs_on")?;
                if labels_match(&labels_of(&runs_on)?, &worker.labels) {
                    let attempt: i64 = row.try_get("attempt")?;
                    wanted.push(AttemptKey {
                        run_id: row.try_get("run_id")?,
                        step_id: row.try_get("step_id")?,
                        attempt: u32::try_from(attempt).unwrap_or(0),
                    });
                }
            }
            if wanted.is_empty() {
                break;
            }
            let mut sql = Sql::new(format!(
                "SELECT {DISPATCH_COLUMNS} FROM dispatches WHERE state = 'pending' \
                 AND {CURRENT_ATTEMPT} AND ("
            ));
            for (index, key) in wanted.iter().enumerate() {
                sql.push(if index == 0 { "(" } else { " OR (" });
                push_key(&mut sql, key);
                sql.push(")");
            }
            sql.push(") ORDER BY created_at, run_id, step_id, attempt LIMIT 1")
                .push(self.backend.lock_rows(true));
            if let Some(row) = sql.build()?.fetch_optional(&mut *tx).await? {
                chosen = Some(dispatch_of(&row)?);
                break;
            }
            // Every one that fits was claimed (or is being claimed) meanwhile: look past it.
        }
        let Some(mut dispatch) = chosen else {
            tx.commit().await?;
            return Ok(None);
        };
        let expires = lease_end(now, lease);
        let mut sql = update_dispatch(&dispatch.key, |sql| {
            sql.push("state = 'leased', epoch = epoch + 1, worker_id = ")
                .push_bind(worker.id.as_str())
                .push(", lease_expires_at = ")
                .push_bind(expires)
                .push(", claimed_at = ")
                .push_bind(micros(now));
        });
        sql.push(" AND state = 'pending'");
        let done = sql.build()?.execute(&mut *tx).await?;
        if done.rows_affected() != 1 {
            tx.commit().await?;
            return Ok(None);
        }
        tx.commit().await?;
        dispatch.state = DispatchState::Leased;
        dispatch.epoch += 1;
        dispatch.worker_id = Some(worker.id.clone());
        dispatch.lease_expires_at = Timestamp::from_microsecond(expires).ok();
        Ok(Some(dispatch))
    }

    /// Renews `worker`'s lease on `key` at `epoch` until `now + lease`; refused unless the
    /// dispatch is still leased to it at that epoch.
    pub async fn renew_lease(
        &self,
        key: &AttemptKey,
        epoch: i64,
        worker: &WorkerInfo,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Result<Renewed, Fenced>, StoreError> {
        let mut tx = self.write_rows().await?;
        upsert_worker(&mut tx, worker, now).await?;
        if let Err(fenced) = hold(&mut tx, self.backend, key, epoch, &worker.id).await? {
            tx.commit().await?;
            return Ok(Err(fenced));
        }
        let mut sql = update_dispatch(key, |sql| {
            sql.push("lease_expires_at = ")
                .push_bind(lease_end(now, lease))
                .push(", confirmed_at = COALESCE(confirmed_at, ")
                .push_bind(micros(now))
                .push(")");
        });
        sql.push(" RETURNING CAST(cancel_requested AS INTEGER) AS cancel_requested");
        let row = sql.build()?.fetch_one(&mut *tx).await?;
        let cancel_requested = flag(&row, "cancel_requested")?;
        tx.commit().await?;
        Ok(Ok(Renewed { cancel_requested }))
    }

    /// Appends lines a worker sent for `key`, if it still holds the lease at `epoch`.
    pub async fn append_worker_lines(
        &self,
        key: &AttemptKey,
        epoch: i64,
        worker_id: &str,
        lines: &[WorkerLine],
    ) -> Result<Result<(), Fenced>, StoreError> {
        let mut tx = self.write().await?;
        if let Err(fenced) = hold(&mut tx, self.backend, key, epoch, worker_id).await? {
            tx.commit().await?;
            return Ok(Err(fenced));
        }
        for line in lines {
            sqlx::query(
                "INSERT INTO logs (run_id, step_id, attempt, ts, stream, text) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.run_id)
            .bind(&key.step_id)
            .bind(i64::from(key.attempt))
            .bind(micros(line.ts))
            .bind(line.stream.as_str())
            .bind(&line.text)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Records the end a worker reports for `key` (`result`: JSON text), if it still holds
    /// the lease at `epoch`.
    pub async fn finish_dispatch(
        &self,
        key: &AttemptKey,
        epoch: i64,
        worker_id: &str,
        result: &str,
        now: Timestamp,
    ) -> Result<Result<(), Fenced>, StoreError> {
        let mut tx = self.write().await?;
        if let Err(fenced) = hold(&mut tx, self.backend, key, epoch, worker_id).await? {
            tx.commit().await?;
            return Ok(Err(fenced));
        }
        update_dispatch(key, |sql| {
            sql.push("state = 'done', result = ")
                .push_bind(result)
                .push(", finished_at = ")
                .push_bind(micros(now))
                .push(", lease_expires_at = NULL");
        })
        .build()?
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Asks the worker holding `key` to stop it (it learns so at its next heartbeat).
    pub async fn request_dispatch_cancel(&self, key: &AttemptKey) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        update_dispatch(key, |sql| {
            sql.push("cancel_requested = TRUE");
        })
        .build()?
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes back a dispatch no worker claimed yet; `false` if one already did.
    pub async fn withdraw_dispatch(
        &self,
        key: &AttemptKey,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let mut sql = update_dispatch(key, |sql| {
            sql.push("state = 'withdrawn', finished_at = ")
                .push_bind(micros(now));
        });
        sql.push(" AND state = 'pending'");
        let done = sql.build()?.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a lease the server no longer waits for (`reason`: JSON text of the attempt's
    /// end), bumping the epoch so the worker's later calls are refused; `false` if the
    /// dispatch was not leased.
    pub async fn abandon_dispatch(
        &self,
        key: &AttemptKey,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = abandon_in(&mut tx, key, reason, now, false).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Ends every lease that expired before `now`: a claim its worker never confirmed (the
    /// answer to the claim was lost, or the worker died before starting anything) goes back
    /// to `pending` for another worker; a confirmed one is abandoned, with `reason` given
    /// the worker's name. Both bump the epoch.
    pub async fn expire_leases(
        &self,
        now: Timestamp,
        reason: impl Fn(&str) -> String,
    ) -> Result<Expired, StoreError> {
        let mut tx = self.write().await?;
        let requeued = sqlx::query(
            "UPDATE dispatches SET state = 'pending', epoch = epoch + 1, worker_id = NULL, \
             lease_expires_at = NULL, claimed_at = NULL \
             WHERE state = 'leased' AND lease_expires_at < $1 AND confirmed_at IS NULL",
        )
        .bind(micros(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let rows = sqlx::query(
            "SELECT d.run_id, d.step_id, d.attempt, COALESCE(w.name, d.worker_id) AS worker \
             FROM dispatches d LEFT JOIN workers w ON w.id = d.worker_id \
             WHERE d.state = 'leased' AND d.lease_expires_at < $1",
        )
        .bind(micros(now))
        .fetch_all(&mut *tx)
        .await?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in &rows {
            let attempt: i64 = row.try_get("attempt")?;
            let worker: Option<String> = row.try_get("worker")?;
            let key = AttemptKey {
                run_id: row.try_get("run_id")?,
                step_id: row.try_get("step_id")?,
                attempt: u32::try_from(attempt).unwrap_or(0),
            };
            let reason = reason(worker.as_deref().unwrap_or("?"));
            // Renewed since it was read (renewals do not take the write lock): left alone.
            if abandon_in(&mut tx, &key, &reason, now, true).await? {
                expired.push(key);
            }
        }
        tx.commit().await?;
        Ok(Expired {
            requeued,
            abandoned: expired,
        })
    }

    /// The name of the worker that held each attempt of `run_id` handed to workers.
    pub async fn attempt_workers(
        &self,
        run_id: &str,
    ) -> Result<BTreeMap<(String, u32), String>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.step_id, d.attempt, COALESCE(w.name, d.worker_id) AS worker \
             FROM dispatches d LEFT JOIN workers w ON w.id = d.worker_id \
             WHERE d.run_id = $1 AND d.worker_id IS NOT NULL",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let mut workers = BTreeMap::new();
        for row in &rows {
            let attempt: i64 = row.try_get("attempt")?;
            let worker: Option<String> = row.try_get("worker")?;
            if let (Ok(attempt), Some(worker)) = (u32::try_from(attempt), worker) {
                workers.insert((row.try_get("step_id")?, attempt), worker);
            }
        }
        Ok(workers)
    }

    /// Workers seen since `since`, with the leases each holds, most recently seen first.
    pub async fn list_workers(&self, since: Timestamp) -> Result<Vec<WorkerRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT w.id, w.name, w.labels, w.slots, w.busy, w.started_at, w.last_heartbeat, \
             (SELECT COUNT(*) FROM dispatches d WHERE d.worker_id = w.id \
              AND d.state = 'leased') AS leases \
             FROM workers w WHERE w.last_heartbeat >= $1 ORDER BY w.last_heartbeat DESC, w.id",
        )
        .bind(micros(since))
        .fetch_all(&self.pool)
        .await?;
        let mut workers = Vec::with_capacity(rows.len());
        for row in &rows {
            let labels: String = row.try_get("labels")?;
            let slots: i64 = row.try_get("slots")?;
            let busy: i64 = row.try_get("busy")?;
            let leases: i64 = row.try_get("leases")?;
            workers.push(WorkerRecord {
                info: WorkerInfo {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    labels: labels_of(&labels)?,
                    slots: u32::try_from(slots).unwrap_or(0),
                    busy: u32::try_from(busy).unwrap_or(0),
                },
                started_at: ts(row, "started_at")?,
                last_heartbeat: ts(row, "last_heartbeat")?,
                leases: u32::try_from(leases).unwrap_or(0),
            });
        }
        Ok(workers)
    }

    /// Adds server `server` to the servers sharing this store, alive at its
    /// `last_heartbeat`.
    pub async fn register_server(&self, server: &ServerRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO servers (id, host, pid, listen, started_at, last_heartbeat) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat",
        )
        .bind(&server.id)
        .bind(&server.host)
        .bind(i64::from(server.pid))
        .bind(&server.listen)
        .bind(micros(server.started_at))
        .bind(micros(server.last_heartbeat))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that server `id` is alive at `now`. Returns `false` when its row is gone: the
    /// other servers took it for dead ([`Store::fence_server`]) and its runs over, so it
    /// must stop running them.
    ///
    /// One statement outside the store's serialized write transactions: a heartbeat must not
    /// wait behind a long one (a prune batch), or its server would take itself for dead.
    pub async fn server_heartbeat(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE servers SET last_heartbeat = $1 WHERE id = $2 AND last_heartbeat <> $3",
        )
        .bind(micros(now))
        .bind(id)
        .bind(FENCED)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Servers whose last heartbeat is before `before`, oldest first.
    pub async fn stale_servers(&self, before: Timestamp) -> Result<Vec<ServerRecord>, StoreError> {
        self.servers_where("last_heartbeat < $1", before).await
    }

    /// Takes server `id` for dead, unless it renewed its heartbeat at or after `before`
    /// meanwhile: from then on its heartbeats are refused ([`Store::server_heartbeat`]), the
    /// leases it held are released, and its runs are for others to recover. Returns whether
    /// it is taken for dead (again `true` for one already taken). Its row stays, marked,
    /// until its runs are recovered and [`Store::server_gone`] removes it: a recoverer that
    /// dies halfway leaves it for the next, so no run is left without an owner to recover.
    pub async fn fence_server(&self, id: &str, before: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE servers SET last_heartbeat = $1 WHERE id = $2 AND last_heartbeat < $3",
        )
        .bind(FENCED)
        .bind(id)
        .bind(micros(before))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM leases WHERE holder = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a server's row (it is shutting down).
    pub async fn server_gone(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM leases WHERE holder = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Servers whose last heartbeat is at or after `since`, oldest first.
    pub async fn list_servers(&self, since: Timestamp) -> Result<Vec<ServerRecord>, StoreError> {
        self.servers_where("last_heartbeat >= $1", since).await
    }

    async fn servers_where(
        &self,
        condition: &str,
        at: Timestamp,
    ) -> Result<Vec<ServerRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT id, host, pid, listen, started_at, last_heartbeat FROM servers \
             WHERE {condition} ORDER BY started_at, id"
        ))
        .bind(micros(at))
        .fetch_all(&self.pool)
        .await?;
        let mut servers = Vec::with_capacity(rows.len());
        for row in &rows {
            let pid: i64 = row.try_get("pid")?;
            servers.push(ServerRecord {
                id: row.try_get("id")?,
                host: row.try_get("host")?,
                pid: u32::try_from(pid).unwrap_or(0),
                listen: row.try_get("listen")?,
                started_at: ts(row, "started_at")?,
                last_heartbeat: ts(row, "last_heartbeat")?,
            });
        }
        Ok(servers)
    }

    /// Takes or renews the lease `name` for `holder` until `now + ttl`: granted when no one
    /// holds it, it expired, or `holder` already holds it. Returns whether `holder` holds it.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let until = lease_end(now, ttl);
        sqlx::query(
            "INSERT INTO leases (name, holder, expires_at, since) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET \
             since = CASE WHEN leases.holder = excluded.holder THEN leases.since \
                     ELSE excluded.since END, \
             holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT holder FROM leases WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        let held: String = row.try_get("holder")?;
        tx.commit().await?;
        Ok(held == holder)
    }

    /// Hands lease `name` from `old` (a holder known to be gone) to `new` until `now + ttl`;
    /// whether it did (`false` if someone else took it meanwhile).
    pub async fn replace_lease_holder(
        &self,
        name: &str,
        old: &str,
        new: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE leases SET holder = $1, expires_at = $2, since = $3 \
             WHERE name = $4 AND holder = $5",
        )
        .bind(new)
        .bind(lease_end(now, ttl))
        .bind(micros(now))
        .bind(name)
        .bind(old)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Who holds lease `name` at `now`, and since when.
    pub async fn lease_holder(
        &self,
        name: &str,
        now: Timestamp,
    ) -> Result<Option<(String, Timestamp)>, StoreError> {
        let row =
            sqlx::query("SELECT holder, since FROM leases WHERE name = $1 AND expires_at >= $2")
                .bind(name)
                .bind(micros(now))
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(row) => Ok(Some((row.try_get("holder")?, ts(&row, "since")?))),
            None => Ok(None),
        }
    }
}

/// `Ok` if `worker_id` holds `key` at `epoch`, else why not. The row stays locked until `tx`
/// ends, so what was checked holds for the writes that follow.
async fn hold(
    tx: &mut Tx,
    backend: crate::Backend,
    key: &AttemptKey,
    epoch: i64,
    worker_id: &str,
) -> Result<Result<(), Fenced>, StoreError> {
    let mut sql = Sql::new(format!(
        "SELECT state, epoch, worker_id, \
         CASE WHEN {CURRENT_ATTEMPT} THEN 1 ELSE 0 END AS current FROM dispatches WHERE "
    ));
    push_key(&mut sql, key);
    sql.push(backend.lock_rows(false));
    let row = sql.build()?.fetch_optional(&mut **tx).await?;
    let Some(row) = row else {
        return Ok(Err(Fenced::Unknown(key_text(key))));
    };
    let state: String = row.try_get("state")?;
    let held_epoch: i64 = row.try_get("epoch")?;
    let holder: Option<String> = row.try_get("worker_id")?;
    let current: i64 = row.try_get("current")?;
    let state = DispatchState::parse(&state)?;
    if state == DispatchState::Leased && held_epoch == epoch && holder.as_deref() == Some(worker_id)
    {
        if current == 1 {
            return Ok(Ok(()));
        }
        // The run moved on without this attempt (its server died and a resumed run
        // abandoned it): the lease ends here, so its worker stops it.
        update_dispatch(key, |sql| {
            sql.push("state = 'abandoned', epoch = epoch + 1, lease_expires_at = NULL");
        })
        .build()?
        .execute(&mut **tx)
        .await?;
        return Ok(Err(Fenced::Lost {
            state: DispatchState::Abandoned.as_str(),
            epoch: held_epoch + 1,
        }));
    }
    Ok(Err(Fenced::Lost {
        state: state.as_str(),
        epoch: held_epoch,
    }))
}

async fn upsert_worker(tx: &mut Tx, worker: &WorkerInfo, now: Timestamp) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workers (id, name, labels, slots, busy, started_at, last_heartbeat) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, labels = excluded.labels, \
         slots = excluded.slots, busy = excluded.busy, last_heartbeat = excluded.last_heartbeat",
    )
    .bind(&worker.id)
    .bind(&worker.name)
    .bind(labels_text(&worker.labels))
    .bind(i64::from(worker.slots))
    .bind(i64::from(worker.busy))
    .bind(micros(now))
    .bind(micros(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
