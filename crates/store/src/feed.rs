//! The event feed's window: `events` is a change feed (`/api/v1/events`, its SSE stream,
//! `rota` commands following runs), not the record of runs, which `runs` and `step_runs`
//! hold. `rota serve` drops events older than the window (24 hours by default) with its
//! retention pass, so a finished run's events cost nothing once it is past.
//!
//! The feed is cut at the front only: everything from the oldest event at or after the
//! cut-off on is kept, so the kept part has no holes a cursor could fall into unawares.
//! The id of the last event dropped is recorded (`event_feed.pruned_through`), and a
//! cursor older than it is answered [`StoreError::EventsPruned`] rather than skipped ahead.

use std::time::Duration;

use jiff::Timestamp;
use sqlx::AnyConnection;

use crate::convert::micros;
use crate::{Store, StoreError};

/// How long the event feed keeps an event unless told otherwise.
pub const EVENT_FEED_KEEP: Duration = Duration::from_secs(24 * 60 * 60);

/// Events deleted per transaction, so a first pass over a long feed never holds SQLite's
/// write lock for long.
const FEED_BATCH: i64 = 5_000;

impl Store {
    /// Drops the events of the feed older than `before` (from the front, see the module
    /// docs) and returns how many went.
    pub async fn prune_event_feed(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut dropped = 0;
        loop {
            let mut tx = self.write().await?;
            let Some(through) = next_batch_end(&mut tx, before).await? else {
                return Ok(dropped);
            };
            let done = sqlx::query("DELETE FROM events WHERE id <= $1")
                .bind(through)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO event_feed (one, pruned_through) VALUES (1, $1) \
                 ON CONFLICT (one) DO UPDATE SET pruned_through = excluded.pruned_through",
            )
            .bind(through)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            dropped += done.rows_affected();
        }
    }

    /// The id of the last event dropped from the feed by age (0 when none was).
    pub async fn event_feed_pruned_through(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        pruned_through(&mut conn).await
    }
}

/// The last id of the next batch to drop: up to [`FEED_BATCH`] ids from the oldest event,
/// and never the oldest event at or after `before` or any after it. `None`: nothing to drop.
async fn next_batch_end(
    conn: &mut AnyConnection,
    before: Timestamp,
) -> Result<Option<i64>, StoreError> {
    // A walk along the primary key from the front: the events there are the ones to drop.
    let first_kept: Option<i64> =
        sqlx::query_scalar("SELECT id FROM events WHERE at >= $1 ORDER BY id LIMIT 1")
            .bind(micros(before))
            .fetch_optional(&mut *conn)
            .await?;
    let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(id) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    let Some(oldest) = oldest else {
        return Ok(None);
    };
    let last_old = match first_kept {
        Some(kept) if kept <= oldest => return Ok(None),
        Some(kept) => kept - 1,
        None => {
            sqlx::query_scalar("SELECT MAX(id) FROM events")
                .fetch_one(&mut *conn)
                .await?
        }
    };
    Ok(Some(last_old.min(oldest.saturating_add(FEED_BATCH - 1))))
}

/// See [`Store::event_feed_pruned_through`].
pub(crate) async fn pruned_through(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let through: Option<i64> =
        sqlx::query_scalar("SELECT pruned_through FROM event_feed WHERE one = 1")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(through.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testing::{both, fresh};
    use crate::{Backend, NewJobRevision, NewRun, Owner, RunEvent, StoreError};

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("in range")
    }

    /// A run of one step, created at `secs` and finished a second later: three events.
    fn run(id: &str, secs: i64) -> Vec<RunEvent> {
        vec![
            RunEvent::RunCreated {
                run: NewRun {
                    id: id.into(),
                    namespace: "ns".into(),
                    job_id: "job".into(),
                    job_revision: 1,
                    params: json!({}),
                    dry_run: false,
                    trigger: "cli".into(),
                    started_by: None,
                    scheduled_at: None,
                    created_at: at(secs),
                    owner: Owner {
                        host: "h".into(),
                        pid: 1,
                        start_token: "t".into(),
                    },
                    steps: vec!["a".into()],
                    parent: None,
                },
            },
            RunEvent::RunStarted {
                run_id: id.into(),
                at: at(secs),
            },
            RunEvent::RunFinished {
                run_id: id.into(),
                status: rota_core::model::RunStatus::Succeeded,
                reason: None,
                at: at(secs + 1),
            },
        ]
    }

    both!(the_feed_loses_its_old_events_and_says_so_to_a_cursor_among_them);
    async fn the_feed_loses_its_old_events_and_says_so_to_a_cursor_among_them(
        backend: Backend,
    ) -> TestResult {
        let (_db, store) = fresh(backend).await?;
        let rev = NewJobRevision::new("ns", "job", "id: job\n", json!({}), at(0));
        store.save_job_revision(&rev).await?;
        for (id, secs) in [("old-1", 0), ("old-2", 10), ("new-1", 100)] {
            store.record(&run(id, secs)).await?;
        }
        let all = store.events_after(0, 100).await?;
        assert_eq!(all.len(), 9);

        assert_eq!(store.prune_event_feed(at(50)).await?, 6);
        // Nothing more to drop at the same cut-off.
        assert_eq!(store.prune_event_feed(at(50)).await?, 0);
        let kept = store.events_after(0, 100).await?;
        let kept_ids: Vec<i64> = kept.iter().map(|e| e.id).collect();
        let expected: Vec<i64> = all[6..].iter().map(|e| e.id).collect();
        assert_eq!(kept_ids, expected);
        let last_dropped = all[5].id;
        assert_eq!(store.event_feed_pruned_through().await?, last_dropped);
        // A cursor before the cut is told; one at it reads on.
        let refused = store.events_after(all[2].id, 100).await;
        assert!(
            matches!(refused, Err(StoreError::EventsPruned { after, pruned_through })
                if after == all[2].id && pruned_through == last_dropped),
            "{refused:?}"
        );
        assert_eq!(store.events_after(last_dropped, 100).await?.len(), 3);
        // The runs themselves are whole.
        let old = store.get_run("old-1").await?.ok_or("old-1 is gone")?;
        assert_eq!(old.status, rota_core::model::RunStatus::Succeeded);
        assert_eq!(old.steps.len(), 1);
        Ok(())
    }

    both!(an_empty_or_recent_feed_loses_nothing);
    async fn an_empty_or_recent_feed_loses_nothing(backend: Backend) -> TestResult {
        let (_db, store) = fresh(backend).await?;
        assert_eq!(store.prune_event_feed(at(50)).await?, 0);
        let rev = NewJobRevision::new("ns", "job", "id: job\n", json!({}), at(0));
        store.save_job_revision(&rev).await?;
        store.record(&run("r", 100)).await?;
        assert_eq!(store.prune_event_feed(at(50)).await?, 0);
        assert_eq!(store.event_feed_pruned_through().await?, 0);
        assert_eq!(store.events_after(1, 100).await?.len(), 2);
        Ok(())
    }
}
