//! The retention operations of [`rota_ops::Rota`] over `/api/v1`.

use reqwest::Method;
use rota_ops::OpsError;
use rota_ops::records::{NamespaceRetention, PruneReport, PruneRequest, SetRetention};
use rota_ops::service::Retention;

use super::{Remote, seg};

impl Retention for Remote {
    async fn prune(&self, request: PruneRequest) -> Result<PruneReport, OpsError> {
        Ok(self.send(Method::POST, "/api/v1/prune", &request).await?)
    }

    async fn set_retention(
        &self,
        namespace: &str,
        setting: SetRetention,
    ) -> Result<NamespaceRetention, OpsError> {
        let path = format!("/api/v1/namespaces/{}/retention", seg(namespace));
        Ok(self.send(Method::PUT, &path, &setting).await?)
    }
}
