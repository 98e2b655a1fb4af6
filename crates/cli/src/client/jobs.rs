//! The jobs operations of [`rota_ops::Rota`] over `/api/v1`.

use reqwest::{Method, StatusCode};
use rota_ops::OpsError;
use rota_ops::records::{
    Job, JobList, JobLoadProblem, JobPageQuery, JobSubmission, NamespaceList, NamespaceQuery,
    RevisionPageQuery, Validation,
};
use rota_ops::service::Jobs;
use rota_ops::service::jobs::PutJob;

use super::{Remote, seg};

/// `?limit=&cursor=` of a page request.
pub(super) fn page(limit: Option<u32>, cursor: Option<String>) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(limit) = limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(cursor) = cursor {
        query.push(("cursor", cursor));
    }
    query
}

/// `/api/v1/namespaces/{namespace}/jobs[/{job}]`.
fn jobs_path(namespace: &str, job: Option<&str>) -> String {
    let base = format!("/api/v1/namespaces/{}/jobs", seg(namespace));
    match job {
        Some(job) => format!("{base}/{}", seg(job)),
        None => base,
    }
}

impl Jobs for Remote {
    async fn list_namespaces(&self, query: NamespaceQuery) -> Result<NamespaceList, OpsError> {
        let cursor = query.cursor.map(|c| c.to_string());
        let query = page(query.limit, cursor);
        Ok(self.get("/api/v1/namespaces", &query).await?)
    }

    async fn list_jobs(&self, namespace: &str, query: JobPageQuery) -> Result<JobList, OpsError> {
        let cursor = query.cursor.map(|c| c.to_string());
        let query = page(query.limit, cursor);
        Ok(self.get(&jobs_path(namespace, None), &query).await?)
    }

    async fn job_revisions(
        &self,
        namespace: &str,
        job: &str,
        query: RevisionPageQuery,
    ) -> Result<JobList, OpsError> {
        let query = page(query.limit, query.cursor);
        let path = format!("{}/revisions", jobs_path(namespace, Some(job)));
        Ok(self.get(&path, &query).await?)
    }

    async fn get_job(&self, namespace: &str, job: &str) -> Result<Job, OpsError> {
        Ok(self.get(&jobs_path(namespace, Some(job)), &[]).await?)
    }

    async fn put_job(
        &self,
        namespace: &str,
        job: &str,
        file: JobSubmission,
    ) -> Result<PutJob, OpsError> {
        let request = self
            .request(Method::PUT, &jobs_path(namespace, Some(job)))
            .json(&file);
        let response = self.call(request).await?;
        // 200 answers an unchanged file with the latest revision, 201 a new one.
        let unchanged = response.status() == StatusCode::OK;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| OpsError::from(self.unreachable(e)))?;
        let job: Job = serde_json::from_slice(&bytes).map_err(|e| OpsError::Remote {
            status: None,
            message: format!("the server answered with JSON this rota does not understand: {e}"),
        })?;
        Ok(PutJob { job, unchanged })
    }

    async fn delete_job(&self, namespace: &str, job: &str) -> Result<(), OpsError> {
        Ok(self.delete(&jobs_path(namespace, Some(job))).await?)
    }

    async fn validate_job(
        &self,
        namespace: &str,
        file: JobSubmission,
    ) -> Result<Validation, OpsError> {
        let path = format!("{}/validate", jobs_path(namespace, None));
        Ok(self.send(Method::POST, &path, &file).await?)
    }

    async fn job_load_problems(&self) -> Result<Vec<JobLoadProblem>, OpsError> {
        // A server reports its job directory's broken files in its own log.
        Ok(Vec::new())
    }
}
