//! Run artifacts: listing a run's (or one step's) and reading one, with the rights of a
//! run read (viewer of the run's namespace). See docs/artifacts.md.

use std::future::Future;

use rota_store::Role;

use super::Session;
use crate::OpsError;
use crate::auth::Scope;
use crate::records::Artifact;

/// A run's artifacts.
pub trait Artifacts {
    /// The artifacts of run `id` (or of its step `step`), by step then path.
    fn list_artifacts(
        &self,
        id: &str,
        step: Option<String>,
    ) -> impl Future<Output = Result<Vec<Artifact>, OpsError>> + Send;

    /// The bytes of the artifact `path` of step `step` of run `id`.
    fn artifact_bytes(
        &self,
        id: &str,
        step: &str,
        path: &str,
    ) -> impl Future<Output = Result<Vec<u8>, OpsError>> + Send;
}

impl Artifacts for Session {
    async fn list_artifacts(
        &self,
        id: &str,
        step: Option<String>,
    ) -> Result<Vec<Artifact>, OpsError> {
        let run = self.readable_run(id).await?;
        Ok(self
            .ops()
            .store()
            .run_artifacts(&run)
            .await?
            .into_iter()
            .filter(|a| step.as_deref().is_none_or(|step| a.step_id == step))
            .map(Artifact::from)
            .collect())
    }

    async fn artifact_bytes(&self, id: &str, step: &str, path: &str) -> Result<Vec<u8>, OpsError> {
        let run = self.readable_run(id).await?;
        match self.ops().artifact_bytes(&run, step, path).await? {
            Kept::Bytes(bytes) => Ok(bytes),
            Kept::NotListed => Err(OpsError::NotFound(format!(
                "artifact {step}/{path} of run {run}"
            ))),
            Kept::BytesMissing => Err(OpsError::NotFound(format!(
                "the bytes of artifact {step}/{path} of run {run}"
            ))),
        }
    }
}

/// What the artifact store holds of an artifact.
pub(crate) enum Kept {
    /// Its bytes.
    Bytes(Vec<u8>),
    /// The run lists no such artifact.
    NotListed,
    /// It is listed, but its bytes are gone from the artifact store.
    BytesMissing,
}

impl crate::Ops {
    /// The bytes of the artifact `path` of step `step` of run `run_id` (no permission
    /// check: callers check theirs). An error when this process has no artifact store or
    /// it cannot be read.
    pub(crate) async fn artifact_bytes(
        &self,
        run_id: &str,
        step: &str,
        path: &str,
    ) -> Result<Kept, OpsError> {
        let Some(found) = self.store().artifact(run_id, step, path).await? else {
            return Ok(Kept::NotListed);
        };
        let artifacts = self.artifacts().ok_or_else(|| {
            OpsError::Unavailable("this process has no artifact store".to_owned())
        })?;
        match artifacts.blobs.get(&found.stored_key).await {
            Ok(bytes) => Ok(Kept::Bytes(bytes)),
            Err(rota_store::BlobError::Missing(_)) => Ok(Kept::BytesMissing),
            Err(other) => Err(OpsError::Internal(other.to_string())),
        }
    }
}

impl Session {
    /// The full id of run `id`, once the caller may read it.
    async fn readable_run(&self, id: &str) -> Result<String, OpsError> {
        let run = self.ops().run(id).await?;
        self.principal()
            .require(Scope::Namespace(&run.namespace), Role::Viewer)?;
        Ok(run.id)
    }
}

impl crate::Ops {
    /// Deletes the bytes of pruned artifacts. A failure is logged and left: the rows are
    /// gone, and a later prune cannot find these keys again, so the operator is told.
    pub(crate) async fn remove_artifact_bytes(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let Some(artifacts) = self.artifacts() else {
            tracing::warn!(
                count = keys.len(),
                "pruned artifacts' bytes left in place: this process has no artifact store"
            );
            return;
        };
        if let Err(error) = artifacts.blobs.delete(keys).await {
            tracing::warn!(%error, "cannot delete pruned artifacts' bytes");
        }
    }
}
