//! Tamper evidence for what a run recorded: when a run ends, a `run.digest` audit entry
//! holds the SHA-256 of its steps (every attempt's status, exit code, reason and outputs)
//! and of every log line, in a stable order. [`Store::check_run_digests`] recomputes each
//! and names the first run whose record changed after it ended.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::audit::{NewAuditEntry, append_audit_in};
use crate::{Store, StoreError};

/// The action of the audit entry that holds a finished run's digest (in its `result`).
pub const RUN_DIGEST: &str = "run.digest";

/// Digest entries checked per page while verifying.
const VERIFY_PAGE: i64 = 200;

/// A finished run whose steps or logs no longer match the digest recorded when it ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run {run_id}'s logs changed after it ended (audit entry {entry_id})")]
pub struct RunChanged {
    /// The run.
    pub run_id: String,
    /// The `run.digest` entry that no longer matches.
    pub entry_id: i64,
}

/// Appends a run's state change to the audit chain and, when it is the run's end, the
/// digest of what the run recorded (read inside the same transaction, so it covers the
/// logs and steps written with the end).
pub(crate) async fn append_run_change_in(
    conn: &mut AnyConnection,
    entry: &NewAuditEntry,
) -> Result<(), StoreError> {
    append_audit_in(conn, entry).await?;
    if entry.action != "run.finished" {
        return Ok(());
    }
    let Some(run_id) = entry.target.strip_prefix("run/") else {
        return Ok(());
    };
    let digest = run_digest_in(conn, run_id).await?;
    let digest_entry = NewAuditEntry {
        at: entry.at,
        actor: "engine".to_owned(),
        action: RUN_DIGEST.to_owned(),
        target: entry.target.clone(),
        source: None,
        result: format!("sha256:{digest}"),
    };
    append_audit_in(conn, &digest_entry).await?;
    Ok(())
}

/// The SHA-256 (hex) of a run's steps, their earlier attempts and its log lines, each row
/// a JSON array on its own line, in key order (logs in the order they were written).
pub(crate) async fn run_digest_in(
    conn: &mut AnyConnection,
    run_id: &str,
) -> Result<String, StoreError> {
    let mut hasher = Sha256::new();
    let steps = sqlx::query(
        "SELECT step_id, attempt, status, exit_code, reason, outputs FROM step_runs \
         WHERE run_id = $1 ORDER BY step_id",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let earlier = sqlx::query(
        "SELECT step_id, attempt, status, exit_code, reason, outputs FROM step_attempts \
         WHERE run_id = $1 ORDER BY step_id, attempt",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    for (table, row) in steps
        .iter()
        .map(|r| ("step", r))
        .chain(earlier.iter().map(|r| ("attempt", r)))
    {
        let line = serde_json::json!([
            table,
            row.try_get::<String, _>("step_id")?,
            row.try_get::<i64, _>("attempt")?,
            row.try_get::<String, _>("status")?,
            row.try_get::<Option<i64>, _>("exit_code")?,
            row.try_get::<Option<String>, _>("reason")?,
            row.try_get::<String, _>("outputs")?,
        ]);
        hasher.update(line.to_string().as_bytes());
        hasher.update(b"\n");
    }
    let mut after_seq = 0_i64;
    loop {
        let logs = sqlx::query(
            "SELECT seq, step_id, attempt, ts, stream, text FROM logs \
             WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT 2000",
        )
        .bind(run_id)
        .bind(after_seq)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = logs.last() else { break };
        after_seq = last.try_get("seq")?;
        for row in &logs {
            let line = serde_json::json!([
                "log",
                row.try_get::<String, _>("step_id")?,
                row.try_get::<i64, _>("attempt")?,
                row.try_get::<i64, _>("ts")?,
                row.try_get::<String, _>("stream")?,
                row.try_get::<String, _>("text")?,
            ]);
            hasher.update(line.to_string().as_bytes());
            hasher.update(b"\n");
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

impl Store {
    /// Recomputes the digest of every finished run still stored and returns the first whose
    /// steps or logs changed after it ended. Runs removed by retention are skipped: there is
    /// nothing left to check.
    pub async fn check_run_digests(&self) -> Result<Option<RunChanged>, StoreError> {
        let mut after_id = 0_i64;
        let mut conn = self.pool.acquire().await?;
        loop {
            let entries = sqlx::query(
                "SELECT a.id, a.target, a.result FROM audit a \
                 JOIN runs r ON a.target = 'run/' || r.id \
                 WHERE a.action = $1 AND a.id > $2 ORDER BY a.id LIMIT $3",
            )
            .bind(RUN_DIGEST)
            .bind(after_id)
            .bind(VERIFY_PAGE)
            .fetch_all(&mut *conn)
            .await?;
            let Some(last) = entries.last() else {
                return Ok(None);
            };
            after_id = last.try_get("id")?;
            for entry in &entries {
                let target: String = entry.try_get("target")?;
                let recorded: String = entry.try_get("result")?;
                let run_id = target.strip_prefix("run/").unwrap_or(&target);
                let digest = run_digest_in(&mut conn, run_id).await?;
                if recorded != format!("sha256:{digest}") {
                    return Ok(Some(RunChanged {
                        run_id: run_id.to_owned(),
                        entry_id: entry.try_get("id")?,
                    }));
                }
            }
        }
    }
}
