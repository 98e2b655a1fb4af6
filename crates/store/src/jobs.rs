//! Job revisions: every distinct version of a job file that was run or registered.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::dialect::Sql;

use crate::convert::{flag, json, micros, ts, u32_col};
use crate::job_delete::LIVE_JOB;
use crate::{JobRevision, NewJobRevision, Store, StoreError};

pub(crate) const COLUMNS: &str = "namespace, job_id, revision, hash, source, source_path, \
     definition, definition_version, created_at";

impl Store {
    /// Saves a job revision. If the job's latest revision has the same hash, that revision
    /// is returned and nothing is written; otherwise the next revision number is taken.
    ///
    /// Only the latest revision is compared: after A → B → A the third save is a new
    /// revision 3, so "the latest revision" is always what was saved last. Saving a
    /// deleted job ([`Store::delete_job`]) always takes a new revision, which revives it.
    pub async fn save_job_revision(&self, rev: &NewJobRevision) -> Result<JobRevision, StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, {LIVE_JOB} AS live FROM job_revisions j \
             WHERE namespace = $1 AND job_id = $2 ORDER BY revision DESC LIMIT 1"
        ))
        .bind(&rev.namespace)
        .bind(&rev.job_id)
        .fetch_optional(&mut *tx)
        .await?;
        let live = row
            .as_ref()
            .map(|row| flag(row, "live"))
            .transpose()?
            .unwrap_or(true);
        let latest = row.map(|row| job_revision(&row)).transpose()?;
        // A deleted job is revived by a new revision, even of the same text.
        if let Some(latest) = &latest
            && latest.hash == rev.hash
            && live
        {
            return Ok(latest.clone());
        }
        let revision = latest.map_or(1, |l| l.revision + 1);
        sqlx::query(&format!(
            "INSERT INTO job_revisions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&rev.namespace)
        .bind(&rev.job_id)
        .bind(revision)
        .bind(&rev.hash)
        .bind(&rev.source)
        .bind(&rev.source_path)
        .bind(rev.definition.to_string())
        .bind(i64::from(rev.definition_version))
        .bind(micros(rev.created_at))
        .execute(&mut *tx)
        .await?;
        crate::changes::stamp_revision(&mut tx, &rev.namespace, &rev.job_id, revision).await?;
        tx.commit().await?;
        Ok(JobRevision {
            namespace: rev.namespace.clone(),
            job_id: rev.job_id.clone(),
            revision,
            hash: rev.hash.clone(),
            source: rev.source.clone(),
            source_path: rev.source_path.clone(),
            definition: rev.definition.clone(),
            definition_version: rev.definition_version,
            created_at: rev.created_at,
        })
    }

    /// The latest revision of a job, if it has any and is not deleted
    /// ([`Store::delete_job`]).
    pub async fn latest_job_revision(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<Option<JobRevision>, StoreError> {
        // Filtered after the `LIMIT 1`: only the latest revision decides.
        sqlx::query(&format!(
            "SELECT * FROM (SELECT {COLUMNS} FROM job_revisions \
             WHERE namespace = $1 AND job_id = $2 ORDER BY revision DESC LIMIT 1) j \
             WHERE {LIVE_JOB}"
        ))
        .bind(namespace)
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| job_revision(&row))
        .transpose()
    }

    /// A specific revision of a job.
    pub async fn job_revision(
        &self,
        namespace: &str,
        job_id: &str,
        revision: i64,
    ) -> Result<Option<JobRevision>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM job_revisions \
             WHERE namespace = $1 AND job_id = $2 AND revision = $3"
        ))
        .bind(namespace)
        .bind(job_id)
        .bind(revision)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| job_revision(&row))
        .transpose()
    }

    /// The latest revision of every job (of one namespace, or all), by namespace and id;
    /// deleted jobs ([`Store::delete_job`]) are left out.
    pub async fn list_jobs(&self, namespace: Option<&str>) -> Result<Vec<JobRevision>, StoreError> {
        let mut query = Sql::new(format!(
            "SELECT {COLUMNS} FROM job_revisions j WHERE revision = \
             (SELECT MAX(revision) FROM job_revisions k \
              WHERE k.namespace = j.namespace AND k.job_id = j.job_id) AND {LIVE_JOB}"
        ));
        if let Some(namespace) = namespace {
            query.push(" AND namespace = ").push_bind(namespace);
        }
        query.push(" ORDER BY namespace, job_id");
        let rows = query.build()?.fetch_all(&self.pool).await?;
        rows.iter().map(job_revision).collect()
    }

    /// The latest revision number of every live job saved without a source file (through
    /// the API or `rota jobs put`), by namespace and id: what a server polls to follow them
    /// without reading their definitions each time.
    pub async fn stored_job_heads(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT namespace, job_id, revision FROM job_revisions j WHERE revision = \
             (SELECT MAX(revision) FROM job_revisions k \
              WHERE k.namespace = j.namespace AND k.job_id = j.job_id) \
             AND source_path IS NULL AND {LIVE_JOB} ORDER BY namespace, job_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("namespace")?,
                    row.try_get("job_id")?,
                    row.try_get("revision")?,
                ))
            })
            .collect()
    }
}

pub(crate) fn job_revision(row: &AnyRow) -> Result<JobRevision, StoreError> {
    Ok(JobRevision {
        namespace: row.try_get("namespace")?,
        job_id: row.try_get("job_id")?,
        revision: row.try_get("revision")?,
        hash: row.try_get("hash")?,
        source: row.try_get("source")?,
        source_path: row.try_get("source_path")?,
        definition: json(row, "definition")?,
        definition_version: u32_col(row, "definition_version")?,
        created_at: ts(row, "created_at")?,
    })
}
