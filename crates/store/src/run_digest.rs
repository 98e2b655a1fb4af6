//! Tamper evidence for what a run recorded: when a run ends, its `run.finished` audit entry
//! also holds the SHA-256 of its steps (every attempt's status, exit code, reason and
//! outputs) and of every log line, in a stable order: its result is `<status>
//! sha256:<hex>`. [`Store::check_run_digests`] recomputes each and names the first run
//! whose record changed after it ended. (Stores written before the digest moved into the
//! run's end have it in an entry of its own, [`RUN_DIGEST`], checked the same way.)

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::audit::{NewAuditEntry, append_audit_in, run_entries_after};
use crate::{Store, StoreError};

/// The action of the audit entry that held a finished run's digest (in its `result`) in
/// stores written before it moved into the `run.finished` entry; still verified.
pub const RUN_DIGEST: &str = "run.digest";

/// The audit action of a run's end, whose result carries the run's digest.
const RUN_FINISHED: &str = "run.finished";

/// The digest's token in an audit entry's result.
const DIGEST_PREFIX: &str = "sha256:";

/// A finished run whose steps or logs no longer match the digest recorded when it ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run {run_id}'s logs changed after it ended (audit entry {entry_id})")]
pub struct RunChanged {
    /// The run.
    pub run_id: String,
    /// The `run.digest` entry that no longer matches.
    pub entry_id: i64,
}

/// Appends a run's state change to the audit chain; when it is the run's end, its result
/// also carries the digest of what the run recorded (read inside the same transaction, so
/// it covers the logs and steps written with the end): one entry per end, not two.
pub(crate) async fn append_run_change_in(
    conn: &mut AnyConnection,
    entry: &NewAuditEntry,
) -> Result<(), StoreError> {
    let run_id = entry.target.strip_prefix("run/");
    let (Some(run_id), RUN_FINISHED) = (run_id, entry.action.as_str()) else {
        return append_audit_in(conn, entry).await.map(drop);
    };
    let digest = run_digest_in(conn, run_id).await?;
    let with_digest = NewAuditEntry {
        result: format!("{} {DIGEST_PREFIX}{digest}", entry.result),
        ..entry.clone()
    };
    append_audit_in(conn, &with_digest).await.map(drop)
}

/// The digest an audit entry's result carries (its `sha256:` token), if any: a
/// `run.finished` entry written before digests were kept has none.
fn recorded_digest(result: &str) -> Option<&str> {
    result
        .split_whitespace()
        .find_map(|token| token.strip_prefix(DIGEST_PREFIX))
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
            let entries =
                run_entries_after(&mut conn, [RUN_FINISHED, RUN_DIGEST], after_id).await?;
            let Some(last) = entries.last() else {
                return Ok(None);
            };
            after_id = last.id;
            for entry in entries {
                let Some(recorded) = recorded_digest(&entry.result) else {
                    continue;
                };
                let digest = run_digest_in(&mut conn, &entry.run_id).await?;
                if recorded != digest {
                    return Ok(Some(RunChanged {
                        run_id: entry.run_id,
                        entry_id: entry.id,
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use rota_core::model::RunStatus;
    use serde_json::json;

    use super::*;
    use crate::testing::{both, fresh};
    use crate::{Backend, NewJobRevision, NewRun, Owner, RunEvent};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A store with run `r`, ended.
    async fn ended_run(
        backend: Backend,
    ) -> Result<(crate::testing::TestDb, Store), Box<dyn std::error::Error>> {
        let (db, store) = fresh(backend).await?;
        let now = Timestamp::now();
        store
            .save_job_revision(&NewJobRevision::new(
                "ns",
                "job",
                "id: job\n",
                json!({}),
                now,
            ))
            .await?;
        let run = NewRun {
            id: "r".into(),
            namespace: "ns".into(),
            job_id: "job".into(),
            job_revision: 1,
            params: json!({}),
            dry_run: false,
            trigger: "api".into(),
            started_by: None,
            parent: None,
            scheduled_at: None,
            created_at: now,
            owner: Owner::nobody(),
            steps: vec!["s".into()],
        };
        store
            .record(&[
                RunEvent::RunCreated { run },
                RunEvent::RunFinished {
                    run_id: "r".into(),
                    status: RunStatus::Succeeded,
                    reason: None,
                    at: now,
                },
            ])
            .await?;
        Ok((db, store))
    }

    both!(an_earlier_store_s_separate_digest_entry_is_still_checked);
    async fn an_earlier_store_s_separate_digest_entry_is_still_checked(
        backend: Backend,
    ) -> TestResult {
        let (_db, store) = ended_run(backend).await?;
        assert_eq!(store.check_run_digests().await?, None);
        let entry = |result: String| NewAuditEntry {
            at: Timestamp::now(),
            actor: "engine".to_owned(),
            action: RUN_DIGEST.to_owned(),
            target: "run/r".to_owned(),
            source: None,
            result,
        };
        let mut tx = store.write().await?;
        let digest = run_digest_in(&mut tx, "r").await?;
        append_audit_in(&mut tx, &entry(format!("{DIGEST_PREFIX}{digest}"))).await?;
        tx.commit().await?;
        assert_eq!(
            store.check_run_digests().await?,
            None,
            "a matching old entry"
        );
        let mut tx = store.write().await?;
        append_audit_in(
            &mut tx,
            &entry(format!("{DIGEST_PREFIX}{}", "0".repeat(64))),
        )
        .await?;
        tx.commit().await?;
        let changed = store.check_run_digests().await?.ok_or("not detected")?;
        assert_eq!(changed.run_id, "r");
        Ok(())
    }
}
