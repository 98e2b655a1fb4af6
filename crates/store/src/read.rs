//! Reads: runs with their steps, step attempts, log lines and the event log.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::attempts::{ATTEMPTS_OF_STEP, CURRENT_ONLY_IN_STEP_RUNS};
use crate::dialect::Sql;

use crate::convert::{
    flag, json, micros, opt_i32, opt_ts, outputs, run_status, step_status, ts, u32_col,
};
use crate::{
    EventRecord, LogRecord, LogStream, Owner, RunFilter, RunRecord, StepAttemptRecord,
    StepRunRecord, Store, StoreError,
};

pub(crate) const RUN_COLUMNS: &str = "id, namespace, job_id, job_revision, status, reason, params, \
    CAST(dry_run AS INTEGER) AS dry_run, triggered_by, scheduled_at, created_at, started_at, \
    finished_at, owner_host, owner_pid, owner_start_token, cancel_requested_at, \
    cancel_requested_by, retry_of, resume_step, confirmed_by, started_by, parent_run_id, \
    parent_step_id";

/// A step's latest attempt from `step_runs`, with what its earlier attempts add (they are in
/// `step_attempts`, see [`crate::attempts`]): how many there were and when the first started.
pub(crate) fn step_columns() -> String {
    format!(
        "s.run_id, s.step_id, s.status, s.attempt, s.exit_code, s.reason, \
         s.outputs, s.started_at, s.finished_at, \
         (SELECT COUNT(*) FROM step_attempts a \
          WHERE a.run_id = s.run_id AND a.step_id = s.step_id) + \
         CASE WHEN {CURRENT_ONLY_IN_STEP_RUNS} THEN 1 ELSE 0 END AS attempts, \
         (SELECT MIN(a.started_at) FROM step_attempts a \
          WHERE a.run_id = s.run_id AND a.step_id = s.step_id) AS archived_first_started_at, \
         (SELECT MAX(c.id) FROM runs c \
          WHERE c.parent_run_id = s.run_id AND c.parent_step_id = s.step_id) AS child_run"
    )
}

/// Most candidates an ambiguous prefix reports.
const MAX_CANDIDATES: usize = 10;

/// Most rows one listing returns.
const MAX_LIMIT: u32 = 1000;

impl Store {
    /// A run with its steps (latest attempt of each, in file order).
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let Some(row) = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut run = run_record(&row)?;
        let steps = sqlx::query(&format!(
            "SELECT {} FROM step_runs s WHERE s.run_id = $1 ORDER BY s.position",
            step_columns()
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        run.steps = steps.iter().map(step_record).collect::<Result<_, _>>()?;
        Ok(Some(run))
    }

    /// The run whose id is `id_or_prefix`, or the only run whose id starts with it
    /// (like git's abbreviated hashes).
    pub async fn find_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError> {
        if let Some(run) = self.get_run(id_or_prefix).await? {
            return Ok(run);
        }
        // A range scan over the primary key.
        let upper = prefix_upper_bound(id_or_prefix);
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE id >= $1 AND id < $2 ORDER BY id LIMIT $3",
        )
        .bind(id_or_prefix)
        .bind(&upper)
        .bind(i64::try_from(MAX_CANDIDATES).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        match ids.as_slice() {
            [] => Err(StoreError::RunNotFound(id_or_prefix.to_owned())),
            [id] => self
                .get_run(id)
                .await?
                .ok_or_else(|| StoreError::RunNotFound(id_or_prefix.to_owned())),
            _ => Err(StoreError::Ambiguous {
                prefix: id_or_prefix.to_owned(),
                candidates: ids,
            }),
        }
    }

    /// Runs matching `filter`, newest first (by `created_at`, then id), with their steps.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let mut query = Sql::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1"));
        if let Some(namespace) = &filter.namespace {
            query.push(" AND namespace = ").push_bind(namespace);
        }
        if let Some(job_id) = &filter.job_id {
            query.push(" AND job_id = ").push_bind(job_id);
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(since) = filter.created_since {
            query.push(" AND created_at >= ").push_bind(micros(since));
        }
        if let Some(until) = filter.created_until {
            query.push(" AND created_at < ").push_bind(micros(until));
        }
        if let Some(prefix) = &filter.id_prefix {
            query
                .push(" AND id >= ")
                .push_bind(prefix)
                .push(" AND id < ")
                .push_bind(prefix_upper_bound(prefix));
        }
        if let Some(cursor) = &filter.before {
            // A row value, not `created_at < ? OR (created_at = ? AND id < ?)`: SQLite turns
            // the row value into a range on the (…, created_at, id) indexes, while with bound
            // parameters it plans the OR as a filter over a scan from the newest run, so a
            // page 500,000 runs deep took 0.2–1.6 s (bench/api_latency).
            query
                .push(" AND (created_at, id) < (")
                .push_bind(micros(cursor.created_at))
                .push(", ")
                .push_bind(&cursor.id)
                .push(")");
        }
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.min(MAX_LIMIT)));
        let rows = query.build()?.fetch_all(&self.pool).await?;
        let mut runs = rows.iter().map(run_record).collect::<Result<Vec<_>, _>>()?;
        if runs.is_empty() {
            return Ok(runs);
        }

        let mut steps = Sql::new(format!(
            "SELECT {} FROM step_runs s WHERE s.run_id IN (",
            step_columns()
        ));
        steps.push_list(&runs, |sql, run| {
            sql.push_bind(run.id.as_str());
        });
        steps.push(") ORDER BY s.run_id, s.position");
        let rows = steps.build()?.fetch_all(&self.pool).await?;
        let mut by_run: HashMap<String, Vec<StepRunRecord>> = HashMap::new();
        for row in &rows {
            let run_id: String = row.try_get("run_id")?;
            by_run.entry(run_id).or_default().push(step_record(row)?);
        }
        for run in &mut runs {
            run.steps = by_run.remove(&run.id).unwrap_or_default();
        }
        Ok(runs)
    }

    /// Every attempt of one step, oldest first.
    pub async fn step_attempts(
        &self,
        run_id: &str,
        step_id: &str,
    ) -> Result<Vec<StepAttemptRecord>, StoreError> {
        let rows = sqlx::query(ATTEMPTS_OF_STEP)
            .bind(run_id)
            .bind(step_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StepAttemptRecord {
                    attempt: u32_col(row, "attempt")?,
                    status: step_status(row, "status")?,
                    exit_code: opt_i32(row, "exit_code")?,
                    reason: row.try_get("reason")?,
                    outputs: outputs(row, "outputs")?,
                    started_at: opt_ts(row, "started_at")?,
                    finished_at: opt_ts(row, "finished_at")?,
                    pgid: opt_i32(row, "pgid")?,
                })
            })
            .collect()
    }

    /// Log lines of a run (or of one of its steps) with `seq > after_seq`, in order, at
    /// most `limit` (capped at 1,000). Pass the last `seq` seen to follow a live run.
    pub async fn logs(
        &self,
        run_id: &str,
        step_id: Option<&str>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let mut query = Sql::new(
            "SELECT seq, run_id, step_id, attempt, ts, stream, text FROM logs WHERE run_id = ",
        );
        query.push_bind(run_id);
        if let Some(step_id) = step_id {
            query.push(" AND step_id = ").push_bind(step_id);
        }
        query
            .push(" AND seq > ")
            .push_bind(after_seq)
            .push(" ORDER BY seq LIMIT ")
            .push_bind(i64::from(limit.min(MAX_LIMIT)));
        let rows = query.build()?.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let stream: String = row.try_get("stream")?;
                Ok(LogRecord {
                    seq: row.try_get("seq")?,
                    run_id: row.try_get("run_id")?,
                    step_id: row.try_get("step_id")?,
                    attempt: u32_col(row, "attempt")?,
                    ts: ts(row, "ts")?,
                    stream: LogStream::parse(&stream).ok_or(StoreError::Corrupt {
                        what: "stream",
                        detail: format!("unknown log stream {stream:?}"),
                    })?,
                    text: row.try_get("text")?,
                })
            })
            .collect()
    }

    /// Events with `id > after_id`, oldest first, at most `limit` (capped at 1,000).
    /// `after_id` 0 reads from the oldest event the feed keeps; a later position whose next
    /// events were dropped by age ([`Store::prune_event_feed`]) is refused with
    /// [`StoreError::EventsPruned`].
    pub async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        if after_id > 0 {
            let pruned_through = self.event_feed_pruned_through().await?;
            if after_id < pruned_through {
                return Err(StoreError::EventsPruned {
                    after: after_id,
                    pruned_through,
                });
            }
        }
        let rows = sqlx::query(
            "SELECT id, at, kind, run_id, step_id, data FROM events \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(i64::from(limit.min(MAX_LIMIT)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EventRecord {
                    id: row.try_get("id")?,
                    at: ts(row, "at")?,
                    kind: row.try_get("kind")?,
                    run_id: row.try_get("run_id")?,
                    step_id: row.try_get("step_id")?,
                    data: json(row, "data")?,
                })
            })
            .collect()
    }
}

/// A run row, without its steps.
pub(crate) fn run_record(row: &AnyRow) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: row.try_get("id")?,
        namespace: row.try_get("namespace")?,
        job_id: row.try_get("job_id")?,
        job_revision: row.try_get("job_revision")?,
        status: run_status(row, "status")?,
        reason: row.try_get("reason")?,
        params: json(row, "params")?,
        dry_run: flag(row, "dry_run")?,
        trigger: row.try_get("triggered_by")?,
        scheduled_at: opt_ts(row, "scheduled_at")?,
        created_at: ts(row, "created_at")?,
        started_at: opt_ts(row, "started_at")?,
        finished_at: opt_ts(row, "finished_at")?,
        owner: Owner {
            host: row.try_get("owner_host")?,
            pid: u32_col(row, "owner_pid")?,
            start_token: row.try_get("owner_start_token")?,
        },
        cancel_requested: opt_ts(row, "cancel_requested_at")?.is_some(),
        cancel_requested_by: row.try_get("cancel_requested_by")?,
        retry_of: row.try_get("retry_of")?,
        resume_step: row.try_get("resume_step")?,
        confirmed_by: row.try_get("confirmed_by")?,
        started_by: row.try_get("started_by")?,
        parent: match (
            row.try_get::<Option<String>, _>("parent_run_id")?,
            row.try_get::<Option<String>, _>("parent_step_id")?,
        ) {
            (Some(run_id), Some(step_id)) => Some(crate::RunParent { run_id, step_id }),
            _ => None,
        },
        steps: Vec::new(),
    })
}

pub(crate) fn step_record(row: &AnyRow) -> Result<StepRunRecord, StoreError> {
    let attempt = u32_col(row, "attempt")?;
    let started_at = opt_ts(row, "started_at")?;
    // The first start of all attempts: the earliest archived one, or the step's own.
    let current_start = started_at.filter(|_| attempt >= 1);
    let first_started_at = match (opt_ts(row, "archived_first_started_at")?, current_start) {
        (Some(archived), Some(current)) => Some(archived.min(current)),
        (archived, current) => archived.or(current),
    };
    Ok(StepRunRecord {
        step_id: row.try_get("step_id")?,
        status: step_status(row, "status")?,
        attempt,
        attempts: u32_col(row, "attempts")?,
        exit_code: opt_i32(row, "exit_code")?,
        reason: row.try_get("reason")?,
        outputs: outputs(row, "outputs")?,
        started_at,
        finished_at: opt_ts(row, "finished_at")?,
        first_started_at,
        child_run: row.try_get("child_run")?,
    })
}

/// The end (exclusive) of the id range that starts with `prefix`: every id starting with
/// the prefix sorts at or after it and before the prefix followed by the largest code point.
fn prefix_upper_bound(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}
