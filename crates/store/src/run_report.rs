//! A run's kept report: when a run whose job says `report: html|md` ends, `rota-ops`
//! renders its report, stores the bytes in the artifact store ([`crate::ArtifactBlobs`])
//! and records it with [`Store::record_run_report`]: an `artifacts` row of the run-level
//! step [`RUN_STEP`] and a `run.report` audit entry holding the report's SHA-256 and path,
//! in one transaction. [`Store::check_run_reports`] re-reads each kept report's bytes for
//! `rota audit verify` and names the first run whose report changed or went missing.
//!
//! The hash checked is the audit entry's, not the artifact row's: the chain protects the
//! entry, while the row is as editable as the bytes.

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::artifacts::record_kept;
use crate::audit::{NewAuditEntry, append_audit_in, run_entries_after};
use crate::convert::run_status;
use crate::{ArtifactBlobs, BlobError, NewArtifact, Store, StoreError};

/// The action of the audit entry that records a run's kept report; its `result` is
/// `sha256:<hex> <path>`.
pub const RUN_REPORT: &str = "run.report";

/// The step id a run's own artifacts (its kept report) are recorded under. Step ids are
/// `[a-z0-9_-]`, so no step of any job can have it, and the artifacts table's key (run,
/// step, path) cannot collide with a step's `report.html` (a notebook step keeps one).
/// It is a plain character in URLs, object keys and file names alike.
pub const RUN_STEP: &str = "@run";

/// A kept report that no longer matches the hash its `run.report` entry recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run {run_id}'s kept report {path} {what} (audit entry {entry_id})")]
pub struct ReportChanged {
    /// The run.
    pub run_id: String,
    /// The report's path among the run's artifacts (`report.html`, `report.md`).
    pub path: String,
    /// The `run.report` entry that no longer matches.
    pub entry_id: i64,
    /// What is wrong.
    pub what: ReportProblem,
}

/// What is wrong with a kept report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportProblem {
    /// Its bytes are not those the audit entry hashed.
    #[error("changed after it was kept")]
    Changed,
    /// Its artifact row or its bytes are gone.
    #[error("is missing")]
    Missing,
    /// Its bytes could not be read, so it could not be checked.
    #[error("could not be checked: {0}")]
    Unchecked(String),
}

impl Store {
    /// Records the report kept for run `run_id`, which has ended, its bytes already in the
    /// artifact store: its artifact row (step [`RUN_STEP`], attempt 0: no attempt made it)
    /// and the `run.report` audit entry (actor `engine`, result `sha256:<hex> <path>`), in
    /// one transaction, so a report is listed exactly when the chain vouches for it.
    ///
    /// Errors: [`StoreError::RunNotFound`], and [`StoreError::RunNotEnded`] for a run
    /// that has not ended (a report must show the run's end).
    pub async fn record_run_report(
        &self,
        run_id: &str,
        report: &NewArtifact,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT status FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::RunNotFound(run_id.to_owned()))?;
        let status = run_status(&row, "status")?;
        if !status.is_terminal() {
            return Err(StoreError::RunNotEnded {
                run_id: run_id.to_owned(),
                status: status.as_str().to_owned(),
            });
        }
        record_kept(
            &mut tx,
            run_id,
            RUN_STEP,
            0,
            at,
            std::slice::from_ref(report),
        )
        .await?;
        let entry = NewAuditEntry {
            at,
            actor: "engine".to_owned(),
            action: RUN_REPORT.to_owned(),
            target: format!("run/{run_id}"),
            source: None,
            result: format!("sha256:{} {}", report.sha256, report.path),
        };
        append_audit_in(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Re-reads the bytes of every kept report of a run still stored, from `blobs` (the
    /// artifact store this process knows; `None` when it has none, and then any kept
    /// report is [`ReportProblem::Unchecked`]), and returns the first whose SHA-256 is not
    /// the one its `run.report` entry recorded, or whose row or bytes are gone. Runs
    /// removed by retention are skipped: their reports went with them.
    pub async fn check_run_reports(
        &self,
        blobs: Option<&ArtifactBlobs>,
    ) -> Result<Option<ReportChanged>, StoreError> {
        let mut after_id = 0_i64;
        loop {
            let entries = {
                let mut conn = self.pool.acquire().await?;
                run_entries_after(&mut conn, [RUN_REPORT, RUN_REPORT], after_id).await?
            };
            let Some(last) = entries.last() else {
                return Ok(None);
            };
            after_id = last.id;
            for entry in entries {
                let (sha256, path) = parse_result(&entry.result);
                let problem = self
                    .check_report(blobs, &entry.run_id, sha256, path)
                    .await?;
                if let Some(what) = problem {
                    return Ok(Some(ReportChanged {
                        run_id: entry.run_id.clone(),
                        path: path.to_owned(),
                        entry_id: entry.id,
                        what,
                    }));
                }
            }
        }
    }

    /// What is wrong with run `run_id`'s kept report `path`, expected to hash to `sha256`.
    async fn check_report(
        &self,
        blobs: Option<&ArtifactBlobs>,
        run_id: &str,
        sha256: &str,
        path: &str,
    ) -> Result<Option<ReportProblem>, StoreError> {
        let Some(row) = self.artifact(run_id, RUN_STEP, path).await? else {
            return Ok(Some(ReportProblem::Missing));
        };
        let Some(blobs) = blobs else {
            return Ok(Some(ReportProblem::Unchecked(
                "this process has no artifact store".to_owned(),
            )));
        };
        let bytes = match blobs.get(&row.stored_key).await {
            Ok(bytes) => bytes,
            Err(BlobError::Missing(_)) => return Ok(Some(ReportProblem::Missing)),
            Err(other) => return Ok(Some(ReportProblem::Unchecked(other.to_string()))),
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        Ok((actual != sha256).then_some(ReportProblem::Changed))
    }
}

/// The hash and path of a `run.report` entry's result, `sha256:<hex> <path>`. A result of
/// another shape gives an empty hash, which no report has: it is reported, never passed.
fn parse_result(result: &str) -> (&str, &str) {
    let (hash, path) = result.split_once(' ').unwrap_or((result, ""));
    (hash.strip_prefix("sha256:").unwrap_or(""), path)
}

#[cfg(test)]
mod tests {
    use super::parse_result;

    #[test]
    fn a_result_names_the_hash_then_the_path() {
        assert_eq!(
            parse_result("sha256:ab12 report.html"),
            ("ab12", "report.html")
        );
        assert_eq!(parse_result("ok"), ("", ""));
        assert_eq!(parse_result("md5:ab report.md"), ("", "report.md"));
    }
}
