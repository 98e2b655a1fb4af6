//! Cheap aggregate reads for the `/metrics` endpoint: run counts by namespace and status,
//! and the durations of recently finished step attempts.
//!
//! Both are read on every scrape, so each is a single query. Step durations reach
//! `step_runs` and `step_attempts` through recent runs (the `runs_by_created` index) with a row limit. Run
//! counts pass over every run once: no index covers `(namespace, status)` yet, so a
//! history of millions of runs makes each scrape read them all.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sqlx::Row;

use crate::attempts::CURRENT_ONLY_IN_STEP_RUNS;
use crate::convert::micros;
use crate::{Store, StoreError};

/// How many runs one namespace has in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCount {
    /// The namespace.
    pub namespace: String,
    /// The status, as stored (`queued`, `succeeded`, …).
    pub status: String,
    /// How many runs.
    pub count: u64,
}

/// At most this many step attempts are read per call of [`Store::recent_step_durations`].
pub const STEP_DURATION_LIMIT: i64 = 10_000;

/// Step attempts are looked up through runs created at most this long before the window
/// starts; an attempt of an older run that finished inside the window is not counted.
const RUN_LOOKBACK: SignedDuration = SignedDuration::from_hours(24);

impl Store {
    /// The number of runs per namespace and status, ordered by namespace then status.
    pub async fn run_counts_by_status(&self) -> Result<Vec<RunCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT namespace, status, COUNT(*) AS n FROM runs \
             GROUP BY namespace, status ORDER BY namespace, status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let n: i64 = row.try_get("n")?;
                Ok(RunCount {
                    namespace: row.try_get("namespace")?,
                    status: row.try_get("status")?,
                    count: u64::try_from(n).unwrap_or(0),
                })
            })
            .collect()
    }

    /// How long each step attempt that finished at or after `since` ran (finish minus
    /// start; never negative), for at most [`STEP_DURATION_LIMIT`] attempts. Only attempts
    /// of runs created within a day before `since` are considered, which keeps the query
    /// on the `runs_by_created` index.
    pub async fn recent_step_durations(
        &self,
        since: Timestamp,
    ) -> Result<Vec<Duration>, StoreError> {
        let runs_since = since.checked_sub(RUN_LOOKBACK).unwrap_or(Timestamp::MIN);
        // An attempt is in `step_runs` (a step's latest) or `step_attempts` (an earlier one,
        // or the latest as it ended before a skip; see `crate::attempts`): one query each,
        // so each stays a walk from the recent runs rather than over a union of all history.
        let mut took: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT s.finished_at - s.started_at AS took \
             FROM runs r JOIN step_runs s ON s.run_id = r.id \
             WHERE r.created_at >= $1 AND s.started_at IS NOT NULL \
             AND s.finished_at >= $2 AND {CURRENT_ONLY_IN_STEP_RUNS} LIMIT $3"
        ))
        .bind(micros(runs_since))
        .bind(micros(since))
        .bind(STEP_DURATION_LIMIT)
        .fetch_all(&self.pool)
        .await?;
        let room = STEP_DURATION_LIMIT - i64::try_from(took.len()).unwrap_or(i64::MAX);
        if room > 0 {
            let archived: Vec<i64> = sqlx::query_scalar(
                "SELECT a.finished_at - a.started_at AS took \
                 FROM runs r JOIN step_attempts a ON a.run_id = r.id \
                 WHERE r.created_at >= $1 AND a.started_at IS NOT NULL \
                 AND a.finished_at >= $2 LIMIT $3",
            )
            .bind(micros(runs_since))
            .bind(micros(since))
            .bind(room)
            .fetch_all(&self.pool)
            .await?;
            took.extend(archived);
        }
        Ok(took
            .into_iter()
            .map(|took| Duration::from_micros(u64::try_from(took).unwrap_or(0)))
            .collect())
    }
}
