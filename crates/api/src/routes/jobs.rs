//! Jobs of a namespace: `GET /api/v1/namespaces/{namespace}/jobs[/{job}[/revisions]]`.

use axum::extract::State;
use rota_store::Role;

use crate::auth::{Principal, Scope};
use crate::extract::{Json, Path};
use crate::ids::{JobId, Namespace};
use crate::wire::{Job, JobList, JobSummary, Problem};
use crate::{ApiError, ApiState};

/// Lists the jobs of a namespace (latest revision of each), by id.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs", tag = "jobs",
    params(("namespace" = String, Path, description = "Namespace")),
    responses((status = 200, body = JobList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    Path(namespace): Path<Namespace>,
) -> Result<Json<JobList>, ApiError> {
    principal.require(Scope::Namespace(namespace.as_str()), Role::Viewer)?;
    let jobs = state.store.list_jobs(Some(namespace.as_str())).await?;
    Ok(Json(JobList {
        items: jobs.into_iter().map(JobSummary::from).collect(),
    }))
}

/// The latest revision of a job, with its source and definition.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs/{job}", tag = "jobs",
    params(("namespace" = String, Path, description = "Namespace"),
           ("job" = String, Path, description = "Job id")),
    responses((status = 200, body = Job),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<ApiState>,
    principal: Principal,
    Path((namespace, job)): Path<(Namespace, JobId)>,
) -> Result<Json<Job>, ApiError> {
    principal.require(Scope::Namespace(namespace.as_str()), Role::Viewer)?;
    let revision = state
        .store
        .latest_job_revision(namespace.as_str(), job.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {namespace}/{job}")))?;
    Ok(Json(Job::from(revision)))
}

/// Every revision of a job, newest first.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs/{job}/revisions", tag = "jobs",
    params(("namespace" = String, Path, description = "Namespace"),
           ("job" = String, Path, description = "Job id")),
    responses((status = 200, body = JobList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn revisions(
    State(state): State<ApiState>,
    principal: Principal,
    Path((namespace, job)): Path<(Namespace, JobId)>,
) -> Result<Json<JobList>, ApiError> {
    principal.require(Scope::Namespace(namespace.as_str()), Role::Viewer)?;
    let revisions = state
        .store
        .list_job_revisions(namespace.as_str(), job.as_str())
        .await?;
    if revisions.is_empty() {
        return Err(ApiError::NotFound(format!("job {namespace}/{job}")));
    }
    Ok(Json(JobList {
        items: revisions.into_iter().map(JobSummary::from).collect(),
    }))
}
