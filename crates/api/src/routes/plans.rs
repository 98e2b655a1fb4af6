//! Plans: make one from a job (`POST /api/v1/namespaces/{namespace}/jobs/{job}/plans`),
//! list and read them, approve or reject them, and apply an approved one.
//!
//! The rules (approvers, quorum, self-approval, expiry, one apply, drift) live in
//! `rota_store::Store::decide_plan` and `apply_plan`; this module maps the caller onto an
//! approver (the name after `token:<id>:` of its actor, and its role in the plan's
//! namespace) and the refusals onto problems: 403 for a caller who is not an approver,
//! 409 for self-approval, a second decision, an expired or decided plan, missing approvals
//! and drift (naming what changed). Applying queues the run, like `POST …/runs`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use rota_store::{Approver, Decision, PlanError, PlanFilter, PlanRecord, PlanStatus, Role};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{latest_job, page_limit, resolve_params};
use crate::auth::Caller;
use crate::extract::{ClientAddr, Json, OptionalJson, Path, Query};
use crate::{ApiError, ApiState, audited};
use rota_ops::auth::{Principal, Scope};
use rota_ops::ids::{JobId, Namespace, RunId};
use rota_ops::records::{CreatePlan, DecidePlan, Plan, PlanPage, Problem, Run};

/// `GET /api/v1/plans` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PlanQuery {
    /// Only this namespace (without it, the caller needs a role in every namespace).
    namespace: Option<Namespace>,
    /// Only this status.
    #[param(schema_with = rota_ops::records::schema::plan_status_schema)]
    status: Option<String>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor`.
    #[param(pattern = "^[0-9]{1,17}\\.[a-z0-9]{1,64}$", max_length = 82)]
    cursor: Option<String>,
}

fn decode_cursor(text: &str) -> Result<(Timestamp, String), ApiError> {
    let bad = || ApiError::InvalidQuery(format!("{text:?} is not a cursor from this API"));
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = Timestamp::from_microsecond(micros).map_err(|_| bad())?;
    let id = RunId::try_from(id.to_owned()).map_err(|_| bad())?;
    Ok((at, id.to_string()))
}

/// A store refusal as a problem.
fn problem(error: PlanError) -> ApiError {
    match error {
        PlanError::NotFound(id) => ApiError::NotFound(format!("plan {id:?}")),
        PlanError::NotApprover { id, approvers, .. } => ApiError::Forbidden {
            needed: Role::Operator,
            scope: format!("as one of the approvers of plan {id} ({approvers})"),
        },
        PlanError::Store(e) => e.into(),
        other => ApiError::Conflict(other.to_string()),
    }
}

/// The plan, or a 404 problem, after checking that the caller may see its namespace
/// with `role`.
async fn find(
    state: &ApiState,
    principal: &Principal,
    id: &RunId,
    role: Role,
) -> Result<PlanRecord, ApiError> {
    let plan = state.store.find_plan(id.as_str()).await.map_err(problem)?;
    principal.require(Scope::Namespace(&plan.content.namespace), role)?;
    Ok(plan)
}

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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Json(body): Json<CreatePlan>,
) -> Result<Response, ApiError> {
    let outcome = async {
        principal.require(Scope::Namespace(namespace.as_str()), Role::Operator)?;
        let (revision, definition) = latest_job(&state, namespace.as_str(), job.as_str()).await?;
        let params = resolve_params(&definition, body.params)?;
        let plan = state
            .ops
            .create_plan(
                &principal.actor(None),
                namespace.as_str(),
                &definition,
                revision,
                &params,
                body.dry_run,
            )
            .await?;
        Ok::<_, ApiError>(plan)
    }
    .await;
    let target = match &outcome {
        Ok(plan) => format!("plan/{}", plan.id),
        Err(_) => format!("job/{namespace}/{job}"),
    };
    let plan = audited(&state, &principal, addr, "plan.create", &target, outcome).await?;
    located(
        StatusCode::CREATED,
        format!("/api/v1/plans/{}", plan.id),
        Plan::from(plan),
    )
}

/// Lists plans, newest first, a page at a time (without their decisions).
#[utoipa::path(get, path = "/api/v1/plans", operation_id = "listPlans", tag = "plans", params(PlanQuery),
    responses((status = 200, body = PlanPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Query(query): Query<PlanQuery>,
) -> Result<Json<PlanPage>, ApiError> {
    let scope = query
        .namespace
        .as_ref()
        .map_or(Scope::Global, |ns| Scope::Namespace(ns.as_str()));
    principal.require(scope, Role::Viewer)?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<PlanStatus>()
                .map_err(|_| ApiError::InvalidQuery(format!("unknown plan status {s:?}")))
        })
        .transpose()?;
    let limit = page_limit(query.limit)?;
    let filter = PlanFilter {
        namespace: query.namespace.as_ref().map(|n| n.to_string()),
        status,
        limit: limit + 1,
        before: query.cursor.as_deref().map(decode_cursor).transpose()?,
    };
    let mut plans = state.store.list_plans(&filter).await?;
    let next_cursor = (plans.len() > limit as usize).then(|| {
        plans.truncate(limit as usize);
        plans
            .last()
            .map(|p| format!("{}.{}", p.created_at.as_microsecond(), p.id))
    });
    let mut items = Vec::with_capacity(plans.len());
    for plan in plans {
        items.push(Plan::with_drift(&state.store, plan).await?);
    }
    Ok(Json(PlanPage {
        items,
        next_cursor: next_cursor.flatten(),
    }))
}

/// One plan with its decisions.
#[utoipa::path(get, path = "/api/v1/plans/{id}", operation_id = "getPlan", tag = "plans",
    params(("id" = RunId, Path, description = "Plan id")),
    responses((status = 200, body = Plan),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Path(id): Path<RunId>,
) -> Result<Json<Plan>, ApiError> {
    let plan = find(&state, &principal, &id, Role::Viewer).await?;
    Ok(Json(Plan::with_drift(&state.store, plan).await?))
}

/// The caller as the approval rules see it.
fn approver(principal: &Principal, namespace: &str) -> Approver {
    // Token actors are `token:<id>:<name>`; approvers are listed by token name.
    let name = principal
        .actor
        .splitn(3, ':')
        .nth(2)
        .unwrap_or(&principal.actor)
        .to_owned();
    Approver {
        actor: principal.actor.clone(),
        name,
        role: principal.role_in(Scope::Namespace(namespace)),
    }
}

async fn decide(
    state: ApiState,
    principal: Principal,
    addr: Option<std::net::SocketAddr>,
    id: RunId,
    body: DecidePlan,
    decision: Decision,
) -> Result<Json<Plan>, ApiError> {
    let outcome = async {
        if body
            .comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > 2000)
        {
            return Err(ApiError::InvalidBody(
                "`comment` must be at most 2000 characters".into(),
            ));
        }
        let plan = find(&state, &principal, &id, Role::Operator).await?;
        let who = approver(&principal, &plan.content.namespace);
        state
            .store
            .decide_plan(
                &plan.id,
                &who,
                decision,
                body.comment.as_deref(),
                body.hash.as_deref(),
                Timestamp::now(),
            )
            .await
            .map_err(problem)
    }
    .await;
    let action = match decision {
        Decision::Approve => "plan.approve",
        Decision::Reject => "plan.reject",
    };
    let plan = audited(
        &state,
        &principal,
        addr,
        action,
        &format!("plan/{id}"),
        outcome,
    )
    .await?;
    Ok(Json(Plan::from(plan)))
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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<RunId>,
    OptionalJson(body): OptionalJson<DecidePlan>,
) -> Result<Json<Plan>, ApiError> {
    decide(state, principal, addr, id, body, Decision::Approve).await
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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<RunId>,
    OptionalJson(body): OptionalJson<DecidePlan>,
) -> Result<Json<Plan>, ApiError> {
    decide(state, principal, addr, id, body, Decision::Reject).await
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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<RunId>,
) -> Result<Response, ApiError> {
    let outcome = async {
        let plan = find(&state, &principal, &id, Role::Operator).await?;
        let run_id = state
            .ops
            .apply_plan(&principal.actor(None), &plan.id)
            .await
            .map_err(problem)?;
        state
            .store
            .get_run(&run_id)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("run {run_id} vanished after apply")))
    }
    .await;
    let run = audited(
        &state,
        &principal,
        addr,
        "plan.apply",
        &format!("plan/{id}"),
        outcome,
    )
    .await?;
    located(
        StatusCode::ACCEPTED,
        format!("/api/v1/runs/{}", run.id),
        Run::from(run),
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
