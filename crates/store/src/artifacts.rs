//! Run artifacts: the files each step attempt left in its `$ROTA_ARTIFACTS` directory
//! (migration 0021). The engine stores their bytes in the artifact store
//! ([`crate::ArtifactBlobs`]) first, then records them with
//! [`RunEvent::ArtifactsKept`](crate::RunEvent::ArtifactsKept), so a row always names bytes
//! that exist. One row per (run, step, path): a later attempt's file replaces an earlier
//! one's. Pruning a run deletes its rows and hands back their stored keys
//! (`PruneCounts::artifact_keys`) so the bytes go too.

use jiff::Timestamp;
use sqlx::{AnyConnection, Row};

use crate::convert::{micros, ts};
use crate::{Store, StoreError};

/// One file an attempt left, as the engine records it (its bytes already stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArtifact {
    /// Its path relative to `$ROTA_ARTIFACTS`, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Where its bytes are in the artifact store.
    pub stored_key: String,
}

/// A recorded artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    /// The run.
    pub run_id: String,
    /// The step.
    pub step_id: String,
    /// Its path relative to the step's `$ROTA_ARTIFACTS`.
    pub path: String,
    /// The attempt that left it.
    pub attempt: u32,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Where its bytes are in the artifact store.
    pub stored_key: String,
    /// When it was recorded.
    pub created_at: Timestamp,
}

const COLUMNS: &str = "run_id, step_id, path, attempt, size, sha256, stored_key, created_at";

fn artifact_record(row: &sqlx::any::AnyRow) -> Result<ArtifactRecord, StoreError> {
    let attempt: i64 = row.try_get("attempt")?;
    let size: i64 = row.try_get("size")?;
    Ok(ArtifactRecord {
        run_id: row.try_get("run_id")?,
        step_id: row.try_get("step_id")?,
        path: row.try_get("path")?,
        attempt: u32::try_from(attempt).unwrap_or(0),
        size: u64::try_from(size).unwrap_or(0),
        sha256: row.try_get("sha256")?,
        stored_key: row.try_get("stored_key")?,
        created_at: ts(row, "created_at")?,
    })
}

impl Store {
    /// The artifacts of run `run_id` (its full id), by step then path.
    pub async fn run_artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM artifacts WHERE run_id = $1 ORDER BY step_id, path"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(artifact_record).collect()
    }

    /// One artifact of a run, by step and path.
    pub async fn artifact(
        &self,
        run_id: &str,
        step_id: &str,
        path: &str,
    ) -> Result<Option<ArtifactRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM artifacts WHERE run_id = $1 AND step_id = $2 AND path = $3"
        ))
        .bind(run_id)
        .bind(step_id)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(artifact_record).transpose()
    }
}

/// Records the files an attempt kept, replacing an earlier attempt's rows of the same paths.
pub(crate) async fn record_kept(
    conn: &mut AnyConnection,
    run_id: &str,
    step_id: &str,
    attempt: u32,
    at: Timestamp,
    artifacts: &[NewArtifact],
) -> Result<(), StoreError> {
    for artifact in artifacts {
        sqlx::query(&format!(
            "INSERT INTO artifacts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (run_id, step_id, path) DO UPDATE SET attempt = excluded.attempt, \
             size = excluded.size, sha256 = excluded.sha256, \
             stored_key = excluded.stored_key, created_at = excluded.created_at"
        ))
        .bind(run_id)
        .bind(step_id)
        .bind(&artifact.path)
        .bind(i64::from(attempt))
        .bind(i64::try_from(artifact.size).unwrap_or(i64::MAX))
        .bind(&artifact.sha256)
        .bind(&artifact.stored_key)
        .bind(micros(at))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
