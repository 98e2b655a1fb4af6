//! Listings for the API: namespaces in use, the revision history of a job, and pages of
//! namespaces, jobs, revisions and secrets.
//!
//! Pages are keyset pages: each continues strictly after the last key of the previous one
//! (`name > ?`, `revision < ?`), never with `OFFSET`, so a deep page costs what the first
//! does and rows added meanwhile neither repeat nor vanish. Each page function returns at
//! most `limit` rows; callers that want to know whether more follow ask for one more.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::dialect::Sql;

use crate::convert::ts;
use crate::job_delete::LIVE_JOB;
use crate::jobs::{COLUMNS, job_revision};
use crate::{JobRevision, SecretInfo, Store, StoreError};

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
        self.list_namespaces_page(None, None, u32::MAX).await
    }

    /// A page of [`Store::list_namespaces`]: up to `limit` namespaces named after `after`,
    /// by name; with `only`, just those of these names. `jobs` counts the jobs a listing
    /// shows (deleted ones are left out); `runs` every run.
    pub async fn list_namespaces_page(
        &self,
        after: Option<&str>,
        only: Option<&[String]>,
        limit: u32,
    ) -> Result<Vec<NamespaceRecord>, StoreError> {
        let mut query = Sql::new(format!(
            "SELECT name, \
               (SELECT COUNT(*) FROM job_revisions j WHERE j.namespace = n.name \
                  AND j.revision = (SELECT MAX(revision) FROM job_revisions k \
                                    WHERE k.namespace = j.namespace AND k.job_id = j.job_id) \
                  AND {LIVE_JOB}) AS jobs, \
               (SELECT COUNT(*) FROM runs r WHERE r.namespace = n.name) AS runs \
             FROM (SELECT "
        ));
        query.push_bind(DEFAULT_NAMESPACE).push(
            " AS name UNION SELECT namespace FROM job_revisions \
                 UNION SELECT namespace FROM runs) n WHERE 1 = 1",
        );
        if let Some(after) = after {
            query.push(" AND name > ").push_bind(after);
        }
        if let Some(only) = only {
            query.push(" AND name IN (SELECT NULL");
            for name in only {
                query.push(" UNION SELECT ").push_bind(name.as_str());
            }
            query.push(")");
        }
        query
            .push(" ORDER BY name LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build()?.fetch_all(&self.pool).await?;
        rows.iter().map(namespace_record).collect()
    }

    /// A page of the jobs of a namespace (the latest revision of each, deleted jobs left
    /// out, as [`Store::list_jobs`]): up to `limit` jobs whose id sorts after `after`, by id.
    pub async fn list_jobs_page(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRevision>, StoreError> {
        let mut query = Sql::new(format!(
            "SELECT {COLUMNS} FROM job_revisions j WHERE namespace = "
        ));
        query.push_bind(namespace).push(format!(
            " AND revision = (SELECT MAX(revision) FROM job_revisions k \
              WHERE k.namespace = j.namespace AND k.job_id = j.job_id) AND {LIVE_JOB}"
        ));
        if let Some(after) = after {
            query.push(" AND job_id > ").push_bind(after);
        }
        query
            .push(" ORDER BY job_id LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build()?.fetch_all(&self.pool).await?;
        rows.iter().map(job_revision).collect()
    }

    /// A page of a job's revisions, newest first: up to `limit` revisions numbered below
    /// `before` (all of them without it).
    pub async fn list_job_revisions_page(
        &self,
        namespace: &str,
        job_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JobRevision>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM job_revisions WHERE namespace = $1 AND job_id = $2 \
             AND revision < $3 ORDER BY revision DESC LIMIT $4"
        ))
        .bind(namespace)
        .bind(job_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_revision).collect()
    }

    /// A page of [`Store::list_secrets`]: up to `limit` secrets of a namespace named after
    /// `after`, by name; names, versions and dates, never values.
    pub async fn list_secrets_page(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SecretInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.namespace, s.name, s.version AS latest_version, s.created_at AS updated_at, \
             s.created_by AS updated_by, \
             (SELECT COUNT(*) FROM secrets c WHERE c.namespace = s.namespace AND c.name = s.name \
              AND c.deleted_at IS NULL) AS versions, \
             (SELECT MIN(f.created_at) FROM secrets f WHERE f.namespace = s.namespace \
              AND f.name = s.name AND f.deleted_at IS NULL) AS created_at \
             FROM secrets s WHERE s.namespace = $1 AND s.name > $2 AND s.deleted_at IS NULL \
             AND s.version = (SELECT MAX(m.version) FROM secrets m WHERE m.namespace = s.namespace \
              AND m.name = s.name AND m.deleted_at IS NULL) \
             ORDER BY s.name LIMIT $3",
        )
        .bind(namespace)
        // Every name sorts after the empty string.
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SecretInfo {
                    namespace: row.try_get("namespace")?,
                    name: row.try_get("name")?,
                    latest_version: row.try_get("latest_version")?,
                    versions: row.try_get("versions")?,
                    updated_at: ts(row, "updated_at")?,
                    updated_by: row.try_get("updated_by")?,
                    created_at: ts(row, "created_at")?,
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
        self.list_job_revisions_page(namespace, job_id, None, u32::MAX)
            .await
    }
}

fn namespace_record(row: &AnyRow) -> Result<NamespaceRecord, StoreError> {
    let jobs: i64 = row.try_get("jobs")?;
    let runs: i64 = row.try_get("runs")?;
    Ok(NamespaceRecord {
        name: row.try_get("name")?,
        jobs: u64::try_from(jobs).unwrap_or(0),
        runs: u64::try_from(runs).unwrap_or(0),
    })
}
