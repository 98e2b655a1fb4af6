//! Plans: make one from a job (`POST /api/v1/namespaces/{namespace}/jobs/{job}/plans`),
//! list and read them, approve or reject them, and apply an approved one.
//!
//! The rules (approvers, quorum, self-approval, expiry, one apply, drift) live in
//! `rota_ops::service::Plans`; their refusals become problems: 403 for a caller who is not
//! an approver, 409 for self-approval, a second decision, an expired or decided plan,
//! missing approvals and drift (naming what changed). Applying queues the run, like
//! `POST …/runs`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, OptionalJson, Path, Query};
use rota_ops::ids::{JobId, Namespace, RunId};
use rota_ops::records::{CreatePlan, DecidePlan, Plan, PlanPage, PlanQuery, Problem, Run};
use rota_ops::service::Plans as _;
use rota_ops::service::plans::Verdict;

/// An answer with a body and a `Location`.
fn located<T: serde::Serialize>(
    status: StatusCode,
    location: String,
    body: T,
) -> Result<Response, ApiError> {
    let location = HeaderValue::try_from(location)
        .map_err(|e| ApiError::Internal(format!("id is not a header value: {e}")))?;
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// Makes a plan of the job's latest revision with the given parameters: every step
/// resolved, secrets by name and version, and its hash. Under approval rules it awaits
/// approval, else it is approved at once. With `dry_run`, a dry run of it is queued too.
/// 201 with the plan.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/jobs/{job}/plans", operation_id = "createPlan", tag = "plans",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    request_body = CreatePlan,
    responses((status = 201, body = Plan, headers(("location" = String, description = "The plan"))),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn create(
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Json(body): Json<CreatePlan>,
) -> Result<Response, ApiError> {
    let plan = session
        .create_plan(namespace.as_str(), job.as_str(), body)
        .await?;
    located(
        StatusCode::CREATED,
        format!("/api/v1/plans/{}", plan.id),
        plan,
    )
}

/// Lists plans, newest first, a page at a time (without their decisions).
#[utoipa::path(get, path = "/api/v1/plans", operation_id = "listPlans", tag = "plans", params(PlanQuery),
    responses((status = 200, body = PlanPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    Asking(session): Asking,
    Query(query): Query<PlanQuery>,
) -> Result<Json<PlanPage>, ApiError> {
    Ok(Json(session.list_plans(query).await?))
}

/// One plan with its decisions.
#[utoipa::path(get, path = "/api/v1/plans/{id}", operation_id = "getPlan", tag = "plans",
    params(("id" = RunId, Path, description = "Plan id")),
    responses((status = 200, body = Plan),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    Asking(session): Asking,
    Path(id): Path<RunId>,
) -> Result<Json<Plan>, ApiError> {
    Ok(Json(session.get_plan(id.as_str()).await?))
}

/// Approves a plan: the caller must be one of its approvers with at least `operator` in
/// its namespace (403 otherwise), not its creator unless the rules allow it, and not have
/// decided before (409). The quorum'th approval makes it `approved`.
#[utoipa::path(post, path = "/api/v1/plans/{id}/approve", operation_id = "approvePlan", tag = "plans",
    params(("id" = RunId, Path, description = "Plan id")),
    request_body(content = Option<DecidePlan>, description = "Optional"),
    responses((status = 200, body = Plan),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "Self-approval, a second decision, or the plan is expired or decided"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn approve(
    Asking(session): Asking,
    Path(id): Path<RunId>,
    OptionalJson(body): OptionalJson<DecidePlan>,
) -> Result<Json<Plan>, ApiError> {
    let verdict = Verdict::Approve;
    Ok(Json(session.decide_plan(id.as_str(), verdict, body).await?))
}

/// Rejects a plan (same rules as approving); one rejection ends it.
#[utoipa::path(post, path = "/api/v1/plans/{id}/reject", operation_id = "rejectPlan", tag = "plans",
    params(("id" = RunId, Path, description = "Plan id")),
    request_body(content = Option<DecidePlan>, description = "Optional"),
    responses((status = 200, body = Plan),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "Self-rejection, a second decision, or the plan is expired or decided"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn reject(
    Asking(session): Asking,
    Path(id): Path<RunId>,
    OptionalJson(body): OptionalJson<DecidePlan>,
) -> Result<Json<Plan>, ApiError> {
    let verdict = Verdict::Reject;
    Ok(Json(session.decide_plan(id.as_str(), verdict, body).await?))
}

/// Applies an approved plan: resolves it again from the job's latest revision, the plan's
/// parameters and the secrets' current versions, and refuses (409, naming each change) if
/// the hash differs; otherwise queues its run and marks the plan applied, once. 202 with
/// the run.
#[utoipa::path(post, path = "/api/v1/plans/{id}/apply", operation_id = "applyPlan", tag = "plans",
    params(("id" = RunId, Path, description = "Plan id")),
    responses((status = 202, body = Run, headers(("location" = String, description = "The run"))),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "Not approved, expired, already applied, or the job changed"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn apply(
    Asking(session): Asking,
    Path(id): Path<RunId>,
) -> Result<Response, ApiError> {
    let run = session.apply_plan(id.as_str()).await?;
    located(
        StatusCode::ACCEPTED,
        format!("/api/v1/runs/{}", run.id),
        run,
    )
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(apply))
}
