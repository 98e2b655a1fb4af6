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

/// A live job whose latest revision was loaded from a file (`rota serve --jobs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileJobHead {
    /// Its namespace.
    pub namespace: String,
    /// Its id.
    pub job_id: String,
    /// Its latest revision.
    pub revision: i64,
    /// The file that revision was loaded from, as the server recorded it.
    pub source_path: String,
}

/// Writes the deletion row and its `job.deleted` event inside `tx`.
async fn mark_deleted(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    namespace: &str,
    job_id: &str,
    revision: i64,
    by: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO deleted_jobs (namespace, job_id, revision, deleted_at, deleted_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, job_id) DO UPDATE SET \
             revision = excluded.revision, deleted_at = excluded.deleted_at, \
             deleted_by = excluded.deleted_by",
    )
    .bind(namespace)
    .bind(job_id)
    .bind(revision)
    .bind(micros(at))
    .bind(by)
    .execute(&mut **tx)
    .await?;
    crate::changes::stamp_deletion(tx, namespace, job_id).await?;
    let data = json!({
        "namespace": namespace, "job_id": job_id, "revision": revision, "by": by,
    });
    sqlx::query("INSERT INTO events (at, kind, data) VALUES ($1, 'job.deleted', $2)")
        .bind(micros(at))
        .bind(data.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

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
             WHERE namespace = $1 AND job_id = $2 AND {LIVE_JOB} \
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
        mark_deleted(&mut tx, namespace, job_id, revision, by, at).await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// The live jobs whose latest revision came from a file, for a server to compare with
    /// its job directory.
    pub async fn file_job_heads(&self) -> Result<Vec<FileJobHead>, StoreError> {
        let rows: Vec<(String, String, i64, String)> = sqlx::query_as(&format!(
            "SELECT namespace, job_id, revision, source_path FROM job_revisions j \
             WHERE revision = (SELECT MAX(revision) FROM job_revisions k \
                               WHERE k.namespace = j.namespace AND k.job_id = j.job_id) \
             AND source_path IS NOT NULL AND {LIVE_JOB} ORDER BY namespace, job_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(namespace, job_id, revision, source_path)| FileJobHead {
                namespace,
                job_id,
                revision,
                source_path,
            })
            .collect())
    }

    /// Deletes a job whose file left a server's job directory (or no longer defines it),
    /// as [`delete_job`](Store::delete_job) deletes one saved through the API: it leaves
    /// listings, cannot be started, is no longer scheduled; its history stays, and the file
    /// coming back (a new revision) revives it. Only when its latest live revision still
    /// comes from `source_path` (a job that moved to another file, or was saved through the
    /// API since, stays); returns the revision deleted, if any.
    pub async fn delete_file_job(
        &self,
        namespace: &str,
        job_id: &str,
        source_path: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.write().await?;
        let latest: Option<(i64, Option<String>)> = sqlx::query_as(&format!(
            "SELECT revision, source_path FROM job_revisions j \
             WHERE namespace = $1 AND job_id = $2 AND {LIVE_JOB} \
             ORDER BY revision DESC LIMIT 1"
        ))
        .bind(namespace)
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((revision, Some(path))) = latest else {
            return Ok(None);
        };
        if path != source_path {
            return Ok(None);
        }
        mark_deleted(&mut tx, namespace, job_id, revision, by, at).await?;
        tx.commit().await?;
        Ok(Some(revision))
    }

    /// Whether the job was deleted (and not saved again since). A job that never had a
    /// revision is not "deleted".
    pub async fn job_deleted(&self, namespace: &str, job_id: &str) -> Result<bool, StoreError> {
        let deleted: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM deleted_jobs d WHERE d.namespace = $1 AND d.job_id = $2 \
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

    use crate::Backend;
    use crate::testing::{both, fresh};
    use crate::{NewJobRevision, StoreError};

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

    both!(a_deleted_job_is_hidden_until_saved_again);
    async fn a_deleted_job_is_hidden_until_saved_again(
        backend: Backend,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (_db, store) = fresh(backend).await?;
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
