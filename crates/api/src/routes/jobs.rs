//! Jobs of a namespace: `GET /api/v1/namespaces/{namespace}/jobs[/{job}[/revisions]]`,
//! validating a job file (`POST …/jobs/validate`) and saving one as the job's next
//! revision (`PUT …/jobs/{job}`), and deleting a job (`DELETE …/jobs/{job}`): its
//! revisions and runs stay as history, and a new `PUT` revives it.

use axum::extract::State;
use axum::http::StatusCode;
use rota_store::Role;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{cut_page, page_limit};
use crate::auth::Caller;
use crate::extract::{ClientAddr, Json, Path, Query};
use crate::{ApiError, ApiState, audited};
use rota_ops::auth::Scope;
use rota_ops::ids::{JobId, Namespace};
use rota_ops::records::{
    Job, JobList, JobSubmission, JobSummary, Problem, ProblemItem, ValidatedJob, Validation,
};

/// How diagnostics name a job file sent to the API.
const ORIGIN: &str = "<api>";

/// Parses and validates a submitted job file; its jobs must not name a namespace other than
/// `namespace`. Every problem is a [`ProblemItem`] of one 422 problem.
fn parse_submission(
    body: &JobSubmission,
    namespace: &Namespace,
) -> Result<Vec<rota_core::model::Job>, ApiError> {
    let jobs = rota_core::parse::parse_str(&body.source, ORIGIN, body.format.to_core()).map_err(
        |diagnostics| {
            let problems: Vec<ProblemItem> = diagnostics
                .0
                .into_iter()
                .map(|d| ProblemItem {
                    line: Some(d.line),
                    column: Some(d.col),
                    param: None,
                    message: d.message,
                })
                .collect();
            ApiError::InvalidJob {
                detail: format!("the job file has {} problem(s)", problems.len()),
                problems,
            }
        },
    )?;
    let elsewhere: Vec<ProblemItem> = jobs
        .iter()
        .filter(|j| {
            j.namespace
                .as_deref()
                .is_some_and(|ns| ns != namespace.as_str())
        })
        .map(|j| ProblemItem {
            line: None,
            column: None,
            param: None,
            message: format!(
                "job {:?} names namespace {:?}, not {:?}",
                j.id,
                j.namespace.as_deref().unwrap_or_default(),
                namespace.as_str()
            ),
        })
        .collect();
    if !elsewhere.is_empty() {
        return Err(ApiError::InvalidJob {
            detail: format!(
                "the job file belongs to another namespace than {:?}",
                namespace.as_str()
            ),
            problems: elsewhere,
        });
    }
    Ok(jobs)
}

/// Checks a job file without saving anything: 200 with the jobs it defines, or a 422
/// problem listing every problem with its line and column.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/jobs/validate", operation_id = "validateJob", tag = "jobs",
    params(("namespace" = Namespace, Path, description = "Namespace")),
    request_body = JobSubmission,
    responses((status = 200, body = Validation),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn validate(
    Caller(principal): Caller,
    Path(namespace): Path<Namespace>,
    Json(body): Json<JobSubmission>,
) -> Result<Json<Validation>, ApiError> {
    principal.require(Scope::Namespace(namespace.as_str()), Role::Viewer)?;
    let jobs = parse_submission(&body, &namespace)?;
    Ok(Json(Validation {
        valid: true,
        jobs: jobs
            .into_iter()
            .map(|j| ValidatedJob {
                params: j.params.iter().map(|p| p.name.clone()).collect(),
                steps: j.steps.iter().map(|s| s.id.clone()).collect(),
                triggers: j.triggers.len(),
                id: j.id,
                namespace: j.namespace,
            })
            .collect(),
    }))
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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Json(body): Json<JobSubmission>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let outcome = async {
        principal.require(Scope::Namespace(namespace.as_str()), Role::Editor)?;
        let mut jobs = parse_submission(&body, &namespace)?;
        let parsed = match (jobs.pop(), jobs.is_empty()) {
            (Some(parsed), true) => parsed,
            _ => {
                return Err(ApiError::InvalidJob {
                    detail: "the job file must define exactly one job".into(),
                    problems: Vec::new(),
                });
            }
        };
        if parsed.id != job.as_str() {
            return Err(ApiError::InvalidJob {
                detail: format!(
                    "the file defines job {:?}, not {:?}",
                    parsed.id,
                    job.as_str()
                ),
                problems: Vec::new(),
            });
        }
        let saved = state
            .ops
            .put_job(namespace.as_str(), &parsed, body.source.as_str())
            .await?;
        Ok((saved.unchanged, saved.revision))
    }
    .await;
    let target = format!("job/{namespace}/{job}");
    let (unchanged, saved) = audited(&state, &principal, addr, "job.put", &target, outcome).await?;
    let status = if unchanged {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(Job::from(saved))))
}

/// `GET …/jobs` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobPageQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor` (opaque).
    cursor: Option<JobId>,
}

/// Lists the jobs of a namespace (latest revision of each), by id, a page at a time.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs", operation_id = "listJobs", tag = "jobs",
    params(("namespace" = Namespace, Path, description = "Namespace"), JobPageQuery),
    responses((status = 200, body = JobList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Path(namespace): Path<Namespace>,
    Query(query): Query<JobPageQuery>,
) -> Result<Json<JobList>, ApiError> {
    principal.require(Scope::Namespace(namespace.as_str()), Role::Viewer)?;
    let limit = page_limit(query.limit)?;
    let jobs = state
        .store
        .list_jobs_page(
            namespace.as_str(),
            query.cursor.as_ref().map(JobId::as_str),
            limit + 1,
        )
        .await?;
    let (jobs, next_cursor) = cut_page(jobs, limit, |j| j.job_id.clone());
    Ok(Json(JobList {
        items: jobs.into_iter().map(JobSummary::from).collect(),
        next_cursor,
    }))
}

/// The latest revision of a job, with its source and definition.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs/{job}", operation_id = "getJob", tag = "jobs",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    responses((status = 200, body = Job),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<ApiState>,
    Caller(principal): Caller,
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

/// `GET …/revisions` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RevisionPageQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor` (opaque).
    #[param(pattern = "^[1-9][0-9]{0,17}$", max_length = 18)]
    cursor: Option<String>,
}

/// Every revision of a job, newest first, a page at a time (404 if the job has none).
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs/{job}/revisions", operation_id = "listJobRevisions", tag = "jobs",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id"), RevisionPageQuery),
    responses((status = 200, body = JobList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn revisions(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Query(query): Query<RevisionPageQuery>,
) -> Result<Json<JobList>, ApiError> {
    principal.require(Scope::Namespace(namespace.as_str()), Role::Viewer)?;
    let limit = page_limit(query.limit)?;
    let before = query
        .cursor
        .as_deref()
        .map(|text| {
            text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::InvalidQuery(format!("{text:?} is not a cursor from this API"))
            })
        })
        .transpose()?;
    let revisions = state
        .store
        .list_job_revisions_page(namespace.as_str(), job.as_str(), before, limit + 1)
        .await?;
    // An empty first page means no such job; a later page may be empty after a cursor.
    if revisions.is_empty()
        && state
            .store
            .latest_job_revision(namespace.as_str(), job.as_str())
            .await?
            .is_none()
    {
        return Err(ApiError::NotFound(format!("job {namespace}/{job}")));
    }
    let (revisions, next_cursor) = cut_page(revisions, limit, |r| r.revision.to_string());
    Ok(Json(JobList {
        items: revisions.into_iter().map(JobSummary::from).collect(),
        next_cursor,
    }))
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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path((namespace, job)): Path<(Namespace, JobId)>,
) -> Result<StatusCode, ApiError> {
    let outcome = async {
        principal.require(Scope::Namespace(namespace.as_str()), Role::Editor)?;
        state
            .ops
            .delete_job(&principal.actor(None), namespace.as_str(), job.as_str())
            .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    let target = format!("job/{namespace}/{job}");
    audited(&state, &principal, addr, "job.delete", &target, outcome).await?;
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
