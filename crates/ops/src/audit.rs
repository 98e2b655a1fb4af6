//! Checking the audit log's hash chain: [`verify_audit`], and the short words a break is
//! shown with ([`short_problem`]).

use rota_store::{AuditBreak, AuditBreakKind, Store, StoreError};

/// Why [`verify_audit`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyAuditError {
    /// The chain is broken at this entry.
    #[error("the audit log was tampered with: {0}")]
    Broken(AuditBreak),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the whole audit chain; names the first entry that was modified, deleted or
/// reordered.
pub async fn verify_audit(store: &Store) -> Result<(), VerifyAuditError> {
    match store.check_audit_chain().await? {
        None => Ok(()),
        Some(broken) => Err(VerifyAuditError::Broken(broken)),
    }
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
