//! Listings for the API: namespaces in use and the revision history of a job.

use sqlx::Row;

use crate::convert::{json, ts};
use crate::{JobRevision, Store, StoreError};

/// The namespace that always exists.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A namespace and how much it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRecord {
    /// Its name.
    pub name: String,
    /// How many jobs have a revision in it.
    pub jobs: u64,
    /// How many runs it has.
    pub runs: u64,
}

impl Store {
    /// Every namespace that has a job or a run, plus `default`, by name.
    pub async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, \
               (SELECT COUNT(DISTINCT job_id) FROM job_revisions j WHERE j.namespace = n.name) \
                 AS jobs, \
               (SELECT COUNT(*) FROM runs r WHERE r.namespace = n.name) AS runs \
             FROM (SELECT ? AS name \
                   UNION SELECT namespace FROM job_revisions \
                   UNION SELECT namespace FROM runs) n \
             ORDER BY name",
        )
        .bind(DEFAULT_NAMESPACE)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let jobs: i64 = row.try_get("jobs")?;
                let runs: i64 = row.try_get("runs")?;
                Ok(NamespaceRecord {
                    name: row.try_get("name")?,
                    jobs: u64::try_from(jobs).unwrap_or(0),
                    runs: u64::try_from(runs).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Every revision of a job, newest first (empty if the job is unknown).
    pub async fn list_job_revisions(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<Vec<JobRevision>, StoreError> {
        let rows = sqlx::query(
            "SELECT namespace, job_id, revision, hash, source, source_path, definition, \
             created_at FROM job_revisions WHERE namespace = ? AND job_id = ? \
             ORDER BY revision DESC",
        )
        .bind(namespace)
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(JobRevision {
                    namespace: row.try_get("namespace")?,
                    job_id: row.try_get("job_id")?,
                    revision: row.try_get("revision")?,
                    hash: row.try_get("hash")?,
                    source: row.try_get("source")?,
                    source_path: row.try_get("source_path")?,
                    definition: json(row, "definition")?,
                    created_at: ts(row, "created_at")?,
                })
            })
            .collect()
    }
}
