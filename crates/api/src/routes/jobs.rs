//! Jobs of a namespace: `GET /api/v1/namespaces/{namespace}/jobs[/{job}[/revisions]]`,
//! validating a job file (`POST …/jobs/validate`) and saving one as the job's next
//! revision (`PUT …/jobs/{job}`), and deleting a job (`DELETE …/jobs/{job}`): its
//! revisions and runs stay as history, and a new `PUT` revives it.

use axum::http::StatusCode;

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, Path, Query};
use rota_ops::ids::{JobId, Namespace};
use rota_ops::records::{
    Job, JobList, JobPageQuery, JobSubmission, Problem, RevisionPageQuery, Validation,
};
use rota_ops::service::Jobs as _;

/// Checks a job file without saving anything: 200 with the jobs it defines, or a 422
/// problem listing every problem with its line and column.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/jobs/validate", operation_id = "validateJob", tag = "jobs",
    params(("namespace" = Namespace, Path, description = "Namespace")),
    request_body = JobSubmission,
    responses((status = 200, body = Validation),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn validate(
    Asking(session): Asking,
    Path(namespace): Path<Namespace>,
    Json(body): Json<JobSubmission>,
) -> Result<Json<Validation>, ApiError> {
    Ok(Json(session.validate_job(namespace.as_str(), body).await?))
}

/// Saves a job file as the job's next revision: 201 with the new revision, or 200 with
/// the latest one when the text is unchanged. The file must define exactly this job.
#[utoipa::path(put, path = "/api/v1/namespaces/{namespace}/jobs/{job}", operation_id = "putJob", tag = "jobs",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    request_body = JobSubmission,
    responses((status = 201, body = Job, description = "A new revision was saved"),
              (status = 200, body = Job, description = "Unchanged: the latest revision"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn put(
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Json(body): Json<JobSubmission>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let saved = session
        .put_job(namespace.as_str(), job.as_str(), body)
        .await?;
    let status = if saved.unchanged {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(saved.job)))
}

/// Lists the jobs of a namespace (latest revision of each), by id, a page at a time.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs", operation_id = "listJobs", tag = "jobs",
    params(("namespace" = Namespace, Path, description = "Namespace"), JobPageQuery),
    responses((status = 200, body = JobList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    Asking(session): Asking,
    Path(namespace): Path<Namespace>,
    Query(query): Query<JobPageQuery>,
) -> Result<Json<JobList>, ApiError> {
    Ok(Json(session.list_jobs(namespace.as_str(), query).await?))
}

/// The latest revision of a job, with its source and definition.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs/{job}", operation_id = "getJob", tag = "jobs",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    responses((status = 200, body = Job),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(
        session.get_job(namespace.as_str(), job.as_str()).await?,
    ))
}

/// Every revision of a job, newest first, a page at a time (404 if the job has none).
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs/{job}/revisions", operation_id = "listJobRevisions", tag = "jobs",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id"), RevisionPageQuery),
    responses((status = 200, body = JobList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn revisions(
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Query(query): Query<RevisionPageQuery>,
) -> Result<Json<JobList>, ApiError> {
    let revisions = session
        .job_revisions(namespace.as_str(), job.as_str(), query)
        .await?;
    Ok(Json(revisions))
}

/// Deletes a job: it leaves job listings, cannot be started and is no longer scheduled;
/// its revisions and runs stay. A later `PUT` revives it as a new revision. A job loaded
/// from a file of the server's job directory cannot be deleted here (409): remove the file.
#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}/jobs/{job}", operation_id = "deleteJob", tag = "jobs",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    responses((status = 204, description = "Deleted"),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "The job is defined by a file of the server's job directory"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn remove(
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
) -> Result<StatusCode, ApiError> {
    session.delete_job(namespace.as_str(), job.as_str()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(validate))
        .routes(routes!(get, put, remove))
        .routes(routes!(revisions))
}
