//! A job's schedule: its occurrence history, pausing and resuming it
//! (`/api/v1/namespaces/{namespace}/jobs/{job}/schedule/…`).
//!
//! Pause and resume write the job's pause state to the store, exactly as `rota pause` and
//! `rota resume` do; a running server reads it on its next poll.

use axum::extract::State;
use jiff::Timestamp;
use rota_store::Role;
use serde::Deserialize;
use utoipa::IntoParams;

use super::page_limit;
use crate::auth::{Principal, Scope};
use crate::extract::{ClientAddr, Json, OptionalJson, Path, Query};
use crate::ids::{JobId, Namespace};
use crate::wire::{Occurrence, OccurrenceList, Problem, ResumeSchedule, ScheduleState};
use crate::{ApiError, ApiState, audited};

/// `?limit=` of the history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// A 404 problem unless the job has a stored revision.
async fn require_job(state: &ApiState, namespace: &Namespace, job: &JobId) -> Result<(), ApiError> {
    state
        .store
        .latest_job_revision(namespace.as_str(), job.as_str())
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("job {namespace}/{job}")))
}

/// The job's schedule occurrences (run, skipped or missed), newest first.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/history",
    tag = "schedules",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id"), HistoryQuery),
    responses((status = 200, body = OccurrenceList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn history(
    State(state): State<ApiState>,
    principal: Principal,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<OccurrenceList>, ApiError> {
    principal.require(Scope::Namespace(namespace.as_str()), Role::Viewer)?;
    let limit = page_limit(query.limit)?;
    require_job(&state, &namespace, &job).await?;
    let items = state
        .store
        .occurrences(namespace.as_str(), job.as_str(), limit)
        .await?;
    Ok(Json(OccurrenceList {
        items: items.into_iter().map(Occurrence::from).collect(),
    }))
}

/// Pauses the job's schedule: its occurrences are skipped until it is resumed.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/pause",
    tag = "schedules",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    responses((status = 200, body = ScheduleState),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn pause(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(addr): ClientAddr,
    Path((namespace, job)): Path<(Namespace, JobId)>,
) -> Result<Json<ScheduleState>, ApiError> {
    let outcome = async {
        principal.require(Scope::Namespace(namespace.as_str()), Role::Editor)?;
        require_job(&state, &namespace, &job).await?;
        state
            .store
            .set_paused(
                namespace.as_str(),
                job.as_str(),
                true,
                None,
                Timestamp::now(),
            )
            .await?;
        Ok(ScheduleState {
            namespace: namespace.to_string(),
            job: job.to_string(),
            paused: true,
            resume_from: None,
        })
    }
    .await;
    let target = format!("job/{namespace}/{job}");
    let paused = audited(&state, &principal, addr, "schedule.pause", &target, outcome).await?;
    Ok(Json(paused))
}

/// Resumes the job's schedule. Occurrences before `from` (default: now) are skipped as
/// paused; an earlier `from` lets the server catch up on those since then.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/resume",
    tag = "schedules",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    request_body(content = Option<ResumeSchedule>, description = "Optional"),
    responses((status = 200, body = ScheduleState),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn resume(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(addr): ClientAddr,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    OptionalJson(body): OptionalJson<ResumeSchedule>,
) -> Result<Json<ScheduleState>, ApiError> {
    let outcome = async {
        principal.require(Scope::Namespace(namespace.as_str()), Role::Editor)?;
        let now = Timestamp::now();
        let from = match body.from.as_deref() {
            None | Some("now") => now,
            Some(text) => text.parse::<Timestamp>().map_err(|_| {
                ApiError::InvalidBody(format!(
                    "`from` {text:?} is neither `now` nor an RFC 3339 instant"
                ))
            })?,
        };
        require_job(&state, &namespace, &job).await?;
        state
            .store
            .set_paused(namespace.as_str(), job.as_str(), false, Some(from), now)
            .await?;
        Ok(ScheduleState {
            namespace: namespace.to_string(),
            job: job.to_string(),
            paused: false,
            resume_from: Some(from),
        })
    }
    .await;
    let target = format!("job/{namespace}/{job}");
    let resumed = audited(
        &state,
        &principal,
        addr,
        "schedule.resume",
        &target,
        outcome,
    )
    .await?;
    Ok(Json(resumed))
}
