//! Checking the audit log's hash chain: [`verify_audit`], and the short words a break is
//! shown with ([`short_problem`]).

use rota_store::{
    ArtifactBlobs, AuditBreak, AuditBreakKind, ReportChanged, RunChanged, Store, StoreError,
};

/// Why [`verify_audit`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyAuditError {
    /// The chain is broken at this entry.
    #[error("the audit log was tampered with: {0}")]
    Broken(AuditBreak),
    /// A finished run's steps or logs no longer match the digest recorded when it ended.
    #[error("the run's record was tampered with: {0}")]
    RunChanged(RunChanged),
    /// A run's kept report no longer matches the hash its `run.report` entry recorded, is
    /// gone, or could not be read.
    #[error("the run's kept report was tampered with: {0}")]
    ReportChanged(ReportChanged),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the whole audit chain; names the first entry that was modified, deleted or
/// reordered. Then, the chain holding, checks every finished run still stored against the
/// digest its end recorded, and names the first run whose steps or logs changed; then
/// every kept report against the hash its `run.report` entry recorded, reading the bytes
/// from `blobs` (the artifact store of this process: `None` when it has none, and then a
/// kept report cannot be vouched for and is named too).
pub async fn verify_audit(
    store: &Store,
    blobs: Option<&ArtifactBlobs>,
) -> Result<(), VerifyAuditError> {
    if let Some(broken) = store.check_audit_chain().await? {
        return Err(VerifyAuditError::Broken(broken));
    }
    if let Some(changed) = store.check_run_digests().await? {
        return Err(VerifyAuditError::RunChanged(changed));
    }
    match store.check_run_reports(blobs).await? {
        None => Ok(()),
        Some(changed) => Err(VerifyAuditError::ReportChanged(changed)),
    }
}

/// How a changed run is described: `run R's logs changed after it ended`.
pub fn run_changed_problem(changed: &RunChanged) -> String {
    format!("run {}'s logs changed after it ended", changed.run_id)
}

/// How a changed kept report is described: `run R's kept report report.html changed after
/// it was kept` (or `is missing`, or `could not be checked: …`).
pub fn report_changed_problem(changed: &ReportChanged) -> String {
    format!(
        "run {}'s kept report {} {}",
        changed.run_id, changed.path, changed.what
    )
}

/// The short spelling (`modified`, `deleted`, `out of order`) of a break described in
/// words, as [`crate::records::AuditVerification::problem`] holds it; other text as is.
pub fn short_problem(problem: &str) -> String {
    [
        AuditBreakKind::Modified,
        AuditBreakKind::Deleted,
        AuditBreakKind::OutOfOrder,
    ]
    .into_iter()
    .find(|kind| kind.to_string() == problem)
    .map_or_else(|| problem.to_owned(), short)
}

/// The short spelling of what is wrong at a break.
fn short(kind: AuditBreakKind) -> String {
    match kind {
        AuditBreakKind::Modified => "modified",
        AuditBreakKind::Deleted => "deleted",
        AuditBreakKind::OutOfOrder => "out of order",
        _ => "broken",
    }
    .to_owned()
}
