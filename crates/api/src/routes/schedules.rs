//! A job's schedule: its next fire times, its occurrence history, pausing and resuming
//! it, and backfilling a range (`/api/v1/namespaces/{namespace}/jobs/{job}/schedule…`).
//!
//! Pause and resume write the job's pause state to the store, exactly as `rota pause` and
//! `rota resume` do; a running server reads it on its next poll. Fire times and backfill
//! need the scheduler's trigger arithmetic, which lives in `rota-server` (a crate that
//! depends on this one): the server hands it in as a [`ScheduleOps`]
//! ([`ApiState::with_schedules`](crate::ApiState::with_schedules)); without it those two
//! routes answer 503.

use std::future::Future;
use std::pin::Pin;

use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use rota_store::{Role, Store};
use serde::Deserialize;
use utoipa::IntoParams;

use super::page_limit;
use crate::auth::Caller;
use crate::extract::{ClientAddr, Json, OptionalJson, Path, Query};
use crate::{ApiError, ApiState, audited};
use rota_ops::auth::Scope;
use rota_ops::ids::{JobId, Namespace};
use rota_ops::records::{
    Backfill, BackfillResult, BackfilledOccurrence, FireTime, Occurrence, OccurrenceList, Problem,
    ResumeSchedule, ScheduleNext, ScheduleState,
};

/// `?limit=&cursor=` of the history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor`.
    #[param(pattern = "^[0-9]{1,17}\\.([0-9a-f]{2}){1,512}$", max_length = 1042)]
    cursor: Option<String>,
}

/// A history cursor's text: `<scheduled_at in µs>.<trigger key in hex>` (trigger keys hold
/// spaces and `*`). Clients treat it as opaque.
fn encode_history_cursor(occurrence: &Occurrence) -> String {
    format!(
        "{}.{}",
        occurrence.scheduled_at.as_microsecond(),
        hex::encode(&occurrence.trigger)
    )
}

fn decode_history_cursor(text: &str) -> Result<(Timestamp, String), ApiError> {
    let bad = || ApiError::InvalidQuery(format!("{text:?} is not a cursor from this API"));
    let (micros, key) = text.split_once('.').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(|m| Timestamp::from_microsecond(m).ok())
        .ok_or_else(bad)?;
    // Any text positions the page: a key no trigger has only starts it between two.
    let key = hex::decode(key).map_err(|_| bad())?;
    Ok((at, String::from_utf8_lossy(&key).into_owned()))
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
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/history", operation_id = "listScheduleHistory",
    tag = "schedules",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id"), HistoryQuery),
    responses((status = 200, body = OccurrenceList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn history(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<OccurrenceList>, ApiError> {
    principal.require(Scope::Namespace(namespace.as_str()), Role::Viewer)?;
    let limit = page_limit(query.limit)?;
    let before = query
        .cursor
        .as_deref()
        .map(decode_history_cursor)
        .transpose()?;
    require_job(&state, &namespace, &job).await?;
    let rows = state
        .store
        .occurrences_page(
            namespace.as_str(),
            job.as_str(),
            before.as_ref().map(|(at, key)| (*at, key.as_str())),
            limit + 1,
        )
        .await?;
    let items: Vec<Occurrence> = rows.into_iter().map(Occurrence::from).collect();
    let (items, next_cursor) = super::cut_page(items, limit, encode_history_cursor);
    Ok(Json(OccurrenceList { items, next_cursor }))
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
    State(state): State<ApiState>,
    Caller(principal): Caller,
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
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/resume", operation_id = "resumeSchedule",
    tag = "schedules",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    request_body(content = Option<ResumeSchedule>, description = "Optional"),
    responses((status = 200, body = ScheduleState),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn resume(
    State(state): State<ApiState>,
    Caller(principal): Caller,
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

/// A boxed future answering `T` or a problem, as [`ScheduleOps`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// The keys of a job's time triggers, and its next fire times as (instant, trigger key) in
/// time order.
pub type NextFires = (Vec<String>, Vec<(Timestamp, String)>);

/// The scheduler's trigger arithmetic, as the schedule routes need it; `rota-server`
/// implements it over its own trigger code, so the API and `rota schedule next` /
/// `rota backfill` compute the same instants.
pub trait ScheduleOps: Send + Sync + std::fmt::Debug {
    /// The job's time trigger keys and its next `count` fire times after `now`; a
    /// `NotFound` problem when the job has no (live) revision.
    fn next<'a>(
        &'a self,
        store: &'a Store,
        namespace: &'a str,
        job: &'a str,
        now: Timestamp,
        count: usize,
    ) -> BoxFuture<'a, NextFires>;

    /// Queues one run per occurrence of the job's time triggers in `[from, to]` (an
    /// occurrence already recorded gets none): (instant, trigger key, queued run) in time
    /// order. A range with too many occurrences is refused whole (422).
    fn backfill<'a>(
        &'a self,
        store: &'a Store,
        namespace: &'a str,
        job: &'a str,
        from: Timestamp,
        to: Timestamp,
    ) -> BoxFuture<'a, Vec<(Timestamp, String, Option<String>)>>;
}

/// The installed [`ScheduleOps`], or a 503 problem.
fn schedule_ops(state: &ApiState) -> Result<&dyn ScheduleOps, ApiError> {
    state.schedules.as_deref().ok_or_else(|| {
        ApiError::Unavailable("fire times and backfill are computed by `rota serve`".into())
    })
}

/// `?count=` of the next fire times.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct NextQuery {
    /// How many fire times (1–100, default 5).
    #[param(minimum = 1, maximum = 100)]
    count: Option<u32>,
}

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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Query(query): Query<NextQuery>,
) -> Result<Json<ScheduleNext>, ApiError> {
    principal.require(Scope::Namespace(namespace.as_str()), Role::Viewer)?;
    let count = match query.count.unwrap_or(5) {
        n @ 1..=100 => n as usize,
        _ => return Err(ApiError::InvalidQuery("`count` must be 1 to 100".into())),
    };
    let ops = schedule_ops(&state)?;
    let now = Timestamp::now();
    let (triggers, times) = ops
        .next(&state.store, namespace.as_str(), job.as_str(), now, count)
        .await?;
    let pause = state
        .store
        .schedule_states()
        .await?
        .into_iter()
        .find(|s| s.namespace == namespace.as_str() && s.job_id == job.as_str());
    Ok(Json(ScheduleNext {
        namespace: namespace.to_string(),
        job: job.to_string(),
        paused: pause.as_ref().is_some_and(|p| p.paused),
        resume_from: pause.and_then(|p| p.resume_from),
        triggers,
        next: times
            .into_iter()
            .map(|(at, trigger)| FireTime { at, trigger })
            .collect(),
    }))
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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Json(body): Json<Backfill>,
) -> Result<(StatusCode, Json<BackfillResult>), ApiError> {
    let outcome = async {
        principal.require(Scope::Namespace(namespace.as_str()), Role::Editor)?;
        let instant = |name: &str, text: &str| {
            text.parse::<Timestamp>().map_err(|_| {
                ApiError::InvalidBody(format!("`{name}` {text:?} is not an RFC 3339 instant"))
            })
        };
        let (from, to) = (instant("from", &body.from)?, instant("to", &body.to)?);
        let ops = schedule_ops(&state)?;
        ops.backfill(&state.store, namespace.as_str(), job.as_str(), from, to)
            .await
    }
    .await;
    let target = format!("job/{namespace}/{job}");
    let done = audited(
        &state,
        &principal,
        addr,
        "schedule.backfill",
        &target,
        outcome,
    )
    .await?;
    let items: Vec<BackfilledOccurrence> = done
        .into_iter()
        .map(|(scheduled_at, trigger, run_id)| BackfilledOccurrence {
            scheduled_at,
            trigger,
            run_id,
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(BackfillResult {
            queued: items.iter().filter(|i| i.run_id.is_some()).count(),
            items,
        }),
    ))
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
