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
    /// or reordered since it was appended.
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
        let blobs = self.ops().artifacts().map(|a| &a.blobs);
        Ok(
            match crate::audit::verify_audit(self.ops().store(), blobs).await {
                Ok(()) => AuditVerification {
                    intact: true,
                    broken_entry: None,
                    problem: None,
                },
                Err(crate::audit::VerifyAuditError::Broken(broken)) => AuditVerification {
                    intact: false,
                    broken_entry: Some(broken.entry_id),
                    problem: Some(broken.what.to_string()),
                },
                Err(crate::audit::VerifyAuditError::RunChanged(changed)) => AuditVerification {
                    intact: false,
                    broken_entry: Some(changed.entry_id),
                    problem: Some(crate::audit::run_changed_problem(&changed)),
                },
                Err(crate::audit::VerifyAuditError::ReportChanged(changed)) => AuditVerification {
                    intact: false,
                    broken_entry: Some(changed.entry_id),
                    problem: Some(crate::audit::report_changed_problem(&changed)),
                },
                Err(crate::audit::VerifyAuditError::Store(error)) => return Err(error.into()),
            },
        )
    }
}
