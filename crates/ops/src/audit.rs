//! Checking the audit log's hash chain: [`verify_audit`], and the short words a break is
//! shown with ([`short_problem`]).

use rota_store::{AuditBreak, AuditBreakKind, RunChanged, Store, StoreError};

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
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the whole audit chain; names the first entry that was modified, deleted or
/// reordered. Then, the chain holding, checks every finished run still stored against the
/// digest its end recorded, and names the first run whose steps or logs changed.
pub async fn verify_audit(store: &Store) -> Result<(), VerifyAuditError> {
    if let Some(broken) = store.check_audit_chain().await? {
        return Err(VerifyAuditError::Broken(broken));
    }
    match store.check_run_digests().await? {
        None => Ok(()),
        Some(changed) => Err(VerifyAuditError::RunChanged(changed)),
    }
}

/// How a changed run is described: `run R's logs changed after it ended`.
pub fn run_changed_problem(changed: &RunChanged) -> String {
    format!("run {}'s logs changed after it ended", changed.run_id)
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
