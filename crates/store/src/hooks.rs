//! Webhook deliveries, kept so that a delivery sent again is refused (replay protection).
//!
//! [`Store::record_hook_occurrence`] records a delivery's keys in the same transaction as
//! the occurrence and run it makes, so a delivery either made its run and is remembered, or
//! neither; keys older than the caller's window are pruned in that transaction too.

use jiff::Timestamp;
use sqlx::Row;

use crate::convert::{micros, ts};
use crate::schedule::{NewOccurrence, record_occurrence_in};
use crate::{NewRun, Store, StoreError};

/// A delivery seen before, within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenDelivery {
    /// The key that matched (`id:…` or `body:…`).
    pub key: String,
    /// When it was first accepted.
    pub received_at: Timestamp,
    /// The run it made, if it made one.
    pub run_id: Option<String>,
}

/// What [`Store::record_hook_occurrence`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookRecord {
    /// The occurrence, its run and the delivery's keys were recorded.
    Recorded,
    /// The occurrence was recorded already (nothing written).
    OccurrenceExists,
    /// One of the delivery's keys was seen within the window: nothing written.
    Replay(SeenDelivery),
}

impl Store {
    /// The first of `keys` that job `namespace/job_id` accepted at or after `since`.
    pub async fn webhook_delivery_seen(
        &self,
        namespace: &str,
        job_id: &str,
        keys: &[String],
        since: Timestamp,
    ) -> Result<Option<SeenDelivery>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        seen_in(&mut conn, namespace, job_id, keys, since).await
    }

    /// Records a webhook's occurrence (and its queued run) with the delivery's `keys`, in
    /// one transaction, after pruning keys accepted before `since`. Refuses (writes nothing)
    /// when a key was accepted at or after `since`.
    pub async fn record_hook_occurrence(
        &self,
        occurrence: &NewOccurrence,
        run: Option<&NewRun>,
        keys: &[String],
        since: Timestamp,
    ) -> Result<HookRecord, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(micros(since))
            .execute(&mut *tx)
            .await?;
        let (namespace, job_id) = (&occurrence.namespace, &occurrence.job_id);
        if let Some(seen) = seen_in(&mut tx, namespace, job_id, keys, since).await? {
            return Ok(HookRecord::Replay(seen));
        }
        if !record_occurrence_in(&mut tx, occurrence, run).await? {
            return Ok(HookRecord::OccurrenceExists);
        }
        for key in keys {
            sqlx::query(
                "INSERT INTO webhook_deliveries \
                 (namespace, job_id, delivery_key, received_at, run_id) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(namespace)
            .bind(job_id)
            .bind(key)
            .bind(micros(occurrence.recorded_at))
            .bind(run.map(|r| r.id.as_str()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(HookRecord::Recorded)
    }
}

async fn seen_in(
    conn: &mut sqlx::AnyConnection,
    namespace: &str,
    job_id: &str,
    keys: &[String],
    since: Timestamp,
) -> Result<Option<SeenDelivery>, StoreError> {
    for key in keys {
        let row = sqlx::query(
            "SELECT delivery_key, received_at, run_id FROM webhook_deliveries \
             WHERE namespace = $1 AND job_id = $2 AND delivery_key = $3 AND received_at >= $4",
        )
        .bind(namespace)
        .bind(job_id)
        .bind(key)
        .bind(micros(since))
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            return Ok(Some(SeenDelivery {
                key: row.try_get("delivery_key")?,
                received_at: ts(&row, "received_at")?,
                run_id: row.try_get("run_id")?,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};

    use crate::Backend;
    use crate::testing::{both, fresh};
    use crate::{HookRecord, NewOccurrence, OccurrenceKind};

    fn occurrence(at: Timestamp) -> NewOccurrence {
        NewOccurrence {
            namespace: "ops".to_owned(),
            job_id: "deploy".to_owned(),
            trigger_key: "webhook".to_owned(),
            scheduled_at: at,
            recorded_at: at,
            kind: OccurrenceKind::Skipped,
            reason: Some("test".to_owned()),
        }
    }

    both!(a_delivery_is_refused_within_the_window_and_forgotten_after_it);
    async fn a_delivery_is_refused_within_the_window_and_forgotten_after_it(
        backend: Backend,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (_db, store) = fresh(backend).await?;
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse()?;
        let window = SignedDuration::from_hours(24 * 7);
        let keys = vec!["id:abc".to_owned(), "body:123".to_owned()];
        let first = store
            .record_hook_occurrence(&occurrence(t0), None, &keys, t0 - window)
            .await?;
        assert_eq!(first, HookRecord::Recorded);
        // The same id with another body, a day later: a replay.
        let t1 = t0 + SignedDuration::from_hours(24);
        let again = store
            .record_hook_occurrence(&occurrence(t1), None, &keys[..1], t1 - window)
            .await?;
        assert!(
            matches!(&again, HookRecord::Replay(seen) if seen.key == "id:abc" && seen.received_at == t0),
            "{again:?}"
        );
        assert_eq!(store.occurrences("ops", "deploy", 10).await?.len(), 1);
        // Eight days later the key is pruned and accepted again.
        let t8 = t0 + SignedDuration::from_hours(24 * 8);
        let later = store
            .record_hook_occurrence(&occurrence(t8), None, &keys, t8 - window)
            .await?;
        assert_eq!(later, HookRecord::Recorded);
        Ok(())
    }
}
