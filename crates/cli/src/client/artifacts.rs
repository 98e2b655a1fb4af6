//! The artifacts operations of [`rota_ops::Rota`] over `/api/v1/runs/{id}/artifacts`.

use reqwest::Method;
use rota_ops::OpsError;
use rota_ops::records::Artifact;
use rota_ops::service::Artifacts;

use super::{Remote, seg};

impl Artifacts for Remote {
    async fn list_artifacts(
        &self,
        id: &str,
        step: Option<String>,
    ) -> Result<Vec<Artifact>, OpsError> {
        let query: Vec<(&str, String)> = step.into_iter().map(|s| ("step", s)).collect();
        let path = format!("/api/v1/runs/{}/artifacts", seg(id));
        Ok(self.get(&path, &query).await?)
    }

    async fn artifact_bytes(&self, id: &str, step: &str, path: &str) -> Result<Vec<u8>, OpsError> {
        // Each segment of the artifact's path is escaped on its own; its `/`s stay.
        let path = path.split('/').map(seg).collect::<Vec<_>>().join("/");
        let url = format!("/api/v1/runs/{}/artifacts/{}/{path}", seg(id), seg(step));
        let response = self.call(self.request(Method::GET, &url)).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| OpsError::from(self.unreachable(e)))?;
        Ok(bytes.to_vec())
    }
}
