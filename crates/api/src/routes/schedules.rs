//! A job's schedule: its next fire times, its occurrence history, pausing and resuming
//! it, and backfilling a range (`/api/v1/namespaces/{namespace}/jobs/{job}/schedule…`).
//!
//! Pause and resume write the job's pause state to the store, exactly as `rota pause` and
//! `rota resume` do; a running server reads it on its next poll. Fire times and backfill
//! need the scheduler's trigger arithmetic, which lives in `rota-server` (a crate that
//! depends on this one): the server hands it to the application layer
//! (`rota_ops::Ops::with_schedules`); without it those two routes answer 503.

use axum::http::StatusCode;

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, OptionalJson, Path, Query};
use rota_ops::ids::{JobId, Namespace};
use rota_ops::records::{
    Backfill, BackfillResult, HistoryQuery, NextQuery, OccurrenceList, Problem, ResumeSchedule,
    ScheduleNext, ScheduleState,
};
use rota_ops::service::Schedules as _;

/// The job's schedule occurrences (run, skipped or missed), newest first.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/history", operation_id = "listScheduleHistory",
    tag = "schedules",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id"), HistoryQuery),
    responses((status = 200, body = OccurrenceList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn history(
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<OccurrenceList>, ApiError> {
    let list = session
        .schedule_history(namespace.as_str(), job.as_str(), query)
        .await?;
    Ok(Json(list))
}

/// Pauses the job's schedule: its occurrences are skipped until it is resumed.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/pause", operation_id = "pauseSchedule",
    tag = "schedules",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    responses((status = 200, body = ScheduleState),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn pause(
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
) -> Result<Json<ScheduleState>, ApiError> {
    let paused = session
        .pause_schedule(namespace.as_str(), job.as_str())
        .await?;
    Ok(Json(paused))
}

/// Resumes the job's schedule. Occurrences before `from` (default: now) are skipped as
/// paused; an earlier `from` lets the server catch up on those since then.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/resume", operation_id = "resumeSchedule",
    tag = "schedules",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    request_body(content = Option<ResumeSchedule>, description = "Optional"),
    responses((status = 200, body = ScheduleState),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn resume(
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    OptionalJson(body): OptionalJson<ResumeSchedule>,
) -> Result<Json<ScheduleState>, ApiError> {
    let resumed = session
        .resume_schedule(namespace.as_str(), job.as_str(), body)
        .await?;
    Ok(Json(resumed))
}

/// Most fire times one call of the API computes.
const MAX_COUNT: u32 = 100;

/// The job's time triggers, its next fire times (merged in time order) and whether its
/// schedule is paused.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs/{job}/schedule", operation_id = "getSchedule",
    tag = "schedules",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id"), NextQuery),
    responses((status = 200, body = ScheduleNext),
              (status = "4XX", body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn next(
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Query(query): Query<NextQuery>,
) -> Result<Json<ScheduleNext>, ApiError> {
    // The API computes at most 100 (its documented range); the CLI's local mode more.
    if query.count.is_some_and(|n| !(1..=MAX_COUNT).contains(&n)) {
        return Err(ApiError::InvalidQuery(format!(
            "`count` must be 1 to {MAX_COUNT}"
        )));
    }
    let next = session
        .schedule_next(namespace.as_str(), job.as_str(), query)
        .await?;
    Ok(Json(next))
}

/// Queues one run per occurrence of the job's time triggers from `from` to `to`
/// (inclusive), like `rota backfill`: 201 with each occurrence and its run (none when the
/// occurrence was already recorded). More than 1,000 occurrences is a 422 problem and
/// queues nothing.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/backfill", operation_id = "backfillSchedule",
    tag = "schedules",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    request_body = Backfill,
    responses((status = 201, body = BackfillResult),
              (status = "4XX", body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn backfill(
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Json(body): Json<Backfill>,
) -> Result<(StatusCode, Json<BackfillResult>), ApiError> {
    let done = session
        .backfill_schedule(namespace.as_str(), job.as_str(), body)
        .await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(next))
        .routes(routes!(backfill))
        .routes(routes!(history))
        .routes(routes!(pause))
        .routes(routes!(resume))
}
