//! The audit operations of [`rota_ops::Rota`] over `/api/v1`.

use rota_ops::OpsError;
use rota_ops::records::{AfterQuery, AuditPage, AuditVerification};
use rota_ops::service::Audit;

use super::Remote;

impl Audit for Remote {
    async fn list_audit(&self, page: AfterQuery) -> Result<AuditPage, OpsError> {
        Ok(self.get_query("/api/v1/audit", &page).await?)
    }

    async fn verify_audit(&self) -> Result<AuditVerification, OpsError> {
        Ok(self.get("/api/v1/audit/verify", &[]).await?)
    }
}
