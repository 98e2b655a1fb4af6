//! Workers (`rota worker`): claim step attempts, renew their leases, send their lines and
//! report their ends, with a `worker` token; and the cluster's status (`/api/v1/cluster`).

use axum::http::StatusCode;

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, Path};
use rota_ops::ids::{AttemptNo, RunId, StepId};
use rota_ops::records::{
    AttemptFinish, AttemptKey, AttemptLogs, Claim, ClaimAttempt, ClusterStatus, LeaseCall,
    LeaseRenewed, Problem,
};
use rota_ops::service::Workers as _;

/// Claims one step attempt whose `runs_on` labels the worker carries, waiting up to
/// `wait_ms` (at most 30 s) for one: an idle worker costs one open request. The answer
/// holds what to run, the secret values the step references, and the lease's epoch.
#[utoipa::path(post, path = "/api/v1/workers/claim", operation_id = "claimAttempt", tag = "workers",
    request_body = ClaimAttempt,
    responses((status = 200, body = Claim),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn claim(
    Asking(session): Asking,
    Json(body): Json<ClaimAttempt>,
) -> Result<Json<Claim>, ApiError> {
    Ok(Json(session.claim_attempt(body).await?))
}

fn key(run: RunId, step: StepId, attempt: AttemptNo) -> AttemptKey {
    AttemptKey {
        run_id: run.as_str().to_owned(),
        step_id: step.as_str().to_owned(),
        attempt: attempt.number(),
    }
}

/// Renews the caller's lease on an attempt. 409 when the lease is no longer the caller's
/// (it expired, and the attempt went to another worker or ended): the worker must stop
/// the attempt's processes.
#[utoipa::path(post, path = "/api/v1/attempts/{run}/{step}/{attempt}/heartbeat",
    operation_id = "renewLease", tag = "workers", request_body = LeaseCall,
    params(("run" = RunId, Path, description = "Run id"),
           ("step" = StepId, Path, description = "Step id"),
           ("attempt" = AttemptNo, Path, description = "Attempt number")),
    responses((status = 200, body = LeaseRenewed),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "The lease is no longer the caller's"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn heartbeat(
    Asking(session): Asking,
    Path((run, step, attempt)): Path<(RunId, StepId, AttemptNo)>,
    Json(body): Json<LeaseCall>,
) -> Result<Json<LeaseRenewed>, ApiError> {
    Ok(Json(
        session.renew_lease(&key(run, step, attempt), body).await?,
    ))
}

/// Appends lines of an attempt the caller holds (at most 1000 per call). 409 when the
/// lease is no longer the caller's.
#[utoipa::path(post, path = "/api/v1/attempts/{run}/{step}/{attempt}/logs",
    operation_id = "sendAttemptLogs", tag = "workers", request_body = AttemptLogs,
    params(("run" = RunId, Path, description = "Run id"),
           ("step" = StepId, Path, description = "Step id"),
           ("attempt" = AttemptNo, Path, description = "Attempt number")),
    responses((status = 204, description = "Appended"),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "The lease is no longer the caller's"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn logs(
    Asking(session): Asking,
    Path((run, step, attempt)): Path<(RunId, StepId, AttemptNo)>,
    Json(body): Json<AttemptLogs>,
) -> Result<StatusCode, ApiError> {
    session
        .send_attempt_logs(&key(run, step, attempt), body)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reports the end of an attempt the caller holds. 409 when the lease is no longer the
/// caller's: a late result is refused.
#[utoipa::path(post, path = "/api/v1/attempts/{run}/{step}/{attempt}/finish",
    operation_id = "finishAttempt", tag = "workers", request_body = AttemptFinish,
    params(("run" = RunId, Path, description = "Run id"),
           ("step" = StepId, Path, description = "Step id"),
           ("attempt" = AttemptNo, Path, description = "Attempt number")),
    responses((status = 204, description = "Recorded"),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "The lease is no longer the caller's"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn finish(
    Asking(session): Asking,
    Path((run, step, attempt)): Path<(RunId, StepId, AttemptNo)>,
    Json(body): Json<AttemptFinish>,
) -> Result<StatusCode, ApiError> {
    session
        .finish_attempt(&key(run, step, attempt), body)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The servers sharing the store, which one schedules, and the workers seen in the last
/// minute with their labels, slots, leases and last heartbeat.
#[utoipa::path(get, path = "/api/v1/cluster", operation_id = "getCluster", tag = "workers",
    responses((status = 200, body = ClusterStatus),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn cluster(Asking(session): Asking) -> Result<Json<ClusterStatus>, ApiError> {
    Ok(Json(session.cluster_status().await?))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(claim))
        .routes(routes!(heartbeat))
        .routes(routes!(logs))
        .routes(routes!(finish))
        .routes(routes!(cluster))
}
