//! The audit operations of [`crate::Rota`]: read the hash-chained audit log and check its
//! chain, for admins of every namespace.

use std::future::Future;

use super::Session;
use super::page::page_limit;
use crate::OpsError;
use crate::auth::{Role, Scope};
use crate::records::{AfterQuery, AuditEntry, AuditPage, AuditVerification};

/// The audit operations.
pub trait Audit {
    /// Audit entries after a position, oldest first.
    fn list_audit(
        &self,
        query: AfterQuery,
    ) -> impl Future<Output = Result<AuditPage, OpsError>> + Send;

    /// Checks the whole hash chain: intact, or the first entry that was modified, deleted
    /// or reordered since it was appended; then each ended run's steps and logs and each
    /// kept report against the entries that recorded them.
    fn verify_audit(&self) -> impl Future<Output = Result<AuditVerification, OpsError>> + Send;
}

impl Audit for Session {
    async fn list_audit(&self, query: AfterQuery) -> Result<AuditPage, OpsError> {
        self.principal().require(Scope::Global, Role::Admin)?;
        let after = query.after.unwrap_or(0);
        if after < 0 {
            return Err(OpsError::InvalidQuery(
                "`after` must not be negative".into(),
            ));
        }
        let limit = page_limit(query.limit)?;
        let entries = self.ops().store().list_audit(after, limit).await?;
        Ok(AuditPage {
            next_after: entries.last().map_or(after, |e| e.id),
            items: entries.into_iter().map(AuditEntry::from).collect(),
        })
    }

    async fn verify_audit(&self) -> Result<AuditVerification, OpsError> {
        self.principal().require(Scope::Global, Role::Admin)?;
        // Kept reports are read from this process's artifact store.
        let blobs = self.ops().artifacts().map(|a| &a.blobs);
        verification(crate::audit::verify_audit(self.ops().store(), blobs).await)
    }
}

/// The record of a verification's outcome: intact, or the entry where it fails and why.
fn verification(
    outcome: Result<(), crate::audit::VerifyAuditError>,
) -> Result<AuditVerification, OpsError> {
    use crate::audit::{VerifyAuditError, report_changed_problem, run_changed_problem};
    let (entry, problem) = match outcome {
        Ok(()) => {
            return Ok(AuditVerification {
                intact: true,
                broken_entry: None,
                problem: None,
            });
        }
        Err(VerifyAuditError::Broken(broken)) => (broken.entry_id, broken.what.to_string()),
        Err(VerifyAuditError::RunChanged(changed)) => {
            (changed.entry_id, run_changed_problem(&changed))
        }
        Err(VerifyAuditError::ReportChanged(changed)) => {
            (changed.entry_id, report_changed_problem(&changed))
        }
        Err(VerifyAuditError::Store(error)) => return Err(error.into()),
    };
    Ok(AuditVerification {
        intact: false,
        broken_entry: Some(entry),
        problem: Some(problem),
    })
}
