//! Deleting jobs. A job's revisions and runs are history and stay; a deletion is a row in
//! `deleted_jobs` naming the revision that was latest when it happened.
//!
//! A job is deleted while that row's revision is still its latest one: saving a new
//! revision (a `PUT` through the API) revives it without touching the row, and every
//! listing hides a deleted job with one `NOT EXISTS` on the row's primary key
//! ([`LIVE_JOB`]).

use jiff::Timestamp;
use serde_json::json;

use crate::convert::micros;
use crate::{Store, StoreError};

/// A SQL condition true when the job revision row aliased `j` is not deleted; for
/// listings of latest revisions (`… FROM job_revisions j WHERE … AND {LIVE_JOB}`).
pub(crate) const LIVE_JOB: &str = "NOT EXISTS (SELECT 1 FROM deleted_jobs d \
    WHERE d.namespace = j.namespace AND d.job_id = j.job_id AND d.revision >= j.revision)";

impl Store {
    /// Deletes a job: it disappears from job listings and
    /// [`latest_job_revision`](Store::latest_job_revision), so it cannot be started and a
    /// server stops scheduling it; its revisions and runs stay. Saving a new revision
    /// revives it. Returns the revision that was latest.
    ///
    /// Errors: [`StoreError::JobNotFound`] if the job has no revision or is already
    /// deleted; [`StoreError::JobDefinedByFile`] if its latest revision was loaded from a
    /// file by a server's job directory (the file would bring it back: remove the file).
    pub async fn delete_job(
        &self,
        namespace: &str,
        job_id: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let latest: Option<(i64, Option<String>)> = sqlx::query_as(&format!(
            "SELECT revision, source_path FROM job_revisions j \
             WHERE namespace = ? AND job_id = ? AND {LIVE_JOB} \
             ORDER BY revision DESC LIMIT 1"
        ))
        .bind(namespace)
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        let not_found = || StoreError::JobNotFound {
            namespace: namespace.to_owned(),
            job_id: job_id.to_owned(),
        };
        let (revision, source_path) = latest.ok_or_else(not_found)?;
        // Only the latest revision of a job can be live, so the row above is it unless a
        // newer, deleted one exists — impossible, as deletion covers every older revision.
        if let Some(path) = source_path {
            return Err(StoreError::JobDefinedByFile {
                namespace: namespace.to_owned(),
                job_id: job_id.to_owned(),
                path,
            });
        }
        sqlx::query(
            "INSERT INTO deleted_jobs (namespace, job_id, revision, deleted_at, deleted_by) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, job_id) DO UPDATE SET \
             revision = excluded.revision, deleted_at = excluded.deleted_at, \
             deleted_by = excluded.deleted_by",
        )
        .bind(namespace)
        .bind(job_id)
        .bind(revision)
        .bind(micros(at))
        .bind(by)
        .execute(&mut *tx)
        .await?;
        let data = json!({
            "namespace": namespace, "job_id": job_id, "revision": revision, "by": by,
        });
        sqlx::query("INSERT INTO events (at, kind, data) VALUES (?, 'job.deleted', ?)")
            .bind(micros(at))
            .bind(data.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// Whether the job was deleted (and not saved again since). A job that never had a
    /// revision is not "deleted".
    pub async fn job_deleted(&self, namespace: &str, job_id: &str) -> Result<bool, StoreError> {
        let deleted: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM deleted_jobs d WHERE d.namespace = ? AND d.job_id = ? \
             AND d.revision >= (SELECT MAX(revision) FROM job_revisions \
                                WHERE namespace = d.namespace AND job_id = d.job_id)",
        )
        .bind(namespace)
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(deleted.is_some())
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use crate::{NewJobRevision, Store, StoreError};

    fn revision(source: &str, path: Option<&str>) -> NewJobRevision {
        let mut rev = NewJobRevision::new(
            "ops",
            "deploy",
            source,
            serde_json::json!({"id": "deploy"}),
            Timestamp::now(),
        );
        rev.source_path = path.map(str::to_owned);
        rev
    }

    #[tokio::test]
    async fn a_deleted_job_is_hidden_until_saved_again() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path()).await?;
        let missing = store
            .delete_job("ops", "deploy", "me", Timestamp::now())
            .await;
        assert!(
            matches!(missing, Err(StoreError::JobNotFound { .. })),
            "{missing:?}"
        );

        store
            .save_job_revision(&revision("id: deploy\n", None))
            .await?;
        assert!(!store.job_deleted("ops", "deploy").await?);
        assert_eq!(
            store
                .delete_job("ops", "deploy", "me", Timestamp::now())
                .await?,
            1
        );
        assert!(store.job_deleted("ops", "deploy").await?);
        assert!(store.latest_job_revision("ops", "deploy").await?.is_none());
        assert!(store.list_jobs(Some("ops")).await?.is_empty());
        assert!(
            store.job_revision("ops", "deploy", 1).await?.is_some(),
            "history stays"
        );
        let again = store
            .delete_job("ops", "deploy", "me", Timestamp::now())
            .await;
        assert!(
            matches!(again, Err(StoreError::JobNotFound { .. })),
            "{again:?}"
        );

        // The same text again is a new revision: it revives the job.
        let revived = store
            .save_job_revision(&revision("id: deploy\n", None))
            .await?;
        assert_eq!(revived.revision, 2);
        assert!(!store.job_deleted("ops", "deploy").await?);
        assert_eq!(store.list_jobs(Some("ops")).await?.len(), 1);

        store
            .save_job_revision(&revision("id: deploy # file\n", Some("/jobs/deploy.yaml")))
            .await?;
        let refused = store
            .delete_job("ops", "deploy", "me", Timestamp::now())
            .await;
        assert!(
            matches!(&refused, Err(StoreError::JobDefinedByFile { path, .. }) if path == "/jobs/deploy.yaml"),
            "{refused:?}"
        );
        assert!(!store.job_deleted("ops", "deploy").await?);
        Ok(())
    }
}
