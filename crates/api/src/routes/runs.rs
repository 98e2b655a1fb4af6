//! Runs: list with filters and cursor pagination, get one with its steps, its log lines
//! (paged, or followed live over SSE), cancel, retry, and start one (`POST /api/v1/namespaces/{namespace}/jobs/{job}/runs`).
//!
//! Starting a run records it as `queued` against the job's latest revision, with no owner;
//! `rota serve` adopts queued runs from the store, claims them and executes them, exactly
//! as it does for runs queued by `rota backfill`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use rota_core::model::RunStatus;
use rota_store::{Role, RunCursor, RunFilter, RunRecord};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AfterQuery, page_limit};
use crate::auth::Caller;
use crate::extract::{ClientAddr, Json, OptionalJson, Path, Query};
use crate::{ApiError, ApiState, audited};
use rota_ops::auth::Scope;
use rota_ops::ids::{JobId, Namespace, RunId};
use rota_ops::records::{
    CancelAccepted, CreateRun, LogLine, LogPage, Problem, RetryRun, Run, RunPage,
};

/// `GET /api/v1/runs` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunQuery {
    /// Only this namespace (without it, the caller needs a role in every namespace).
    namespace: Option<Namespace>,
    /// Only this job.
    job: Option<JobId>,
    /// Only this status.
    #[param(schema_with = rota_ops::records::schema::run_status_schema)]
    status: Option<String>,
    /// Only runs created at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<Timestamp>,
    /// Only runs created before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<Timestamp>,
    /// Only runs whose id starts with this (to resolve an abbreviated id).
    id_prefix: Option<RunId>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor`.
    #[param(pattern = "^[0-9]{1,17}\\.[a-z0-9]{1,64}$", max_length = 82)]
    cursor: Option<String>,
}

impl RunQuery {
    fn scope(&self) -> Scope<'_> {
        self.namespace
            .as_ref()
            .map_or(Scope::Global, |ns| Scope::Namespace(ns.as_str()))
    }

    /// The store filter; asks for one run more than the page, to know if another follows.
    fn filter(&self) -> Result<RunFilter, ApiError> {
        let status = self
            .status
            .as_deref()
            .map(|s| {
                RunStatus::parse(s)
                    .ok_or_else(|| ApiError::InvalidQuery(format!("unknown run status {s:?}")))
            })
            .transpose()?;
        Ok(RunFilter {
            namespace: self.namespace.as_ref().map(|n| n.to_string()),
            job_id: self.job.as_ref().map(|j| j.to_string()),
            status,
            created_since: self.since,
            created_until: self.until,
            id_prefix: self.id_prefix.as_ref().map(|id| id.to_string()),
            limit: page_limit(self.limit)? + 1,
            before: self.cursor.as_deref().map(decode_cursor).transpose()?,
        })
    }
}

/// A cursor's text: `<created_at in µs>.<run id>`. Clients treat it as opaque.
fn encode_cursor(cursor: &RunCursor) -> String {
    format!("{}.{}", cursor.created_at.as_microsecond(), cursor.id)
}

fn decode_cursor(text: &str) -> Result<RunCursor, ApiError> {
    let bad = || ApiError::InvalidQuery(format!("{text:?} is not a cursor from this API"));
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok(RunCursor {
        created_at: Timestamp::from_microsecond(micros).map_err(|_| bad())?,
        id: RunId::try_from(id.to_owned())
            .map_err(|_| bad())?
            .to_string(),
    })
}

/// Lists runs, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/runs", operation_id = "listRuns", tag = "runs", params(RunQuery),
    responses((status = 200, body = RunPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Query(query): Query<RunQuery>,
) -> Result<Json<RunPage>, ApiError> {
    principal.require(query.scope(), Role::Viewer)?;
    let filter = query.filter()?;
    let mut runs = state.store.list_runs(&filter).await?;
    let page_size = (filter.limit - 1) as usize;
    let next_cursor = (runs.len() > page_size).then(|| {
        runs.truncate(page_size);
        runs.last().map(|r| encode_cursor(&r.cursor()))
    });
    Ok(Json(RunPage {
        items: runs.into_iter().map(Run::from).collect(),
        next_cursor: next_cursor.flatten(),
    }))
}

/// The run, or a 404 problem.
async fn find(state: &ApiState, id: &RunId) -> Result<RunRecord, ApiError> {
    state
        .store
        .get_run(id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run {id:?}", id = id.as_str())))
}

/// A run with the latest state of each step.
#[utoipa::path(get, path = "/api/v1/runs/{id}", operation_id = "getRun", tag = "runs",
    params(("id" = RunId, Path, description = "Run id")),
    responses((status = 200, body = Run),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Path(id): Path<RunId>,
) -> Result<Json<Run>, ApiError> {
    let run = find(&state, &id).await?;
    principal.require(Scope::Namespace(&run.namespace), Role::Viewer)?;
    Ok(Json(Run::from(run)))
}

/// `GET /api/v1/runs/{id}/logs` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// Only lines with a larger `seq`; 0 or absent for the start.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Only this step's lines.
    step: Option<String>,
}

/// A run's log lines (or one step's) in order, a page at a time.
#[utoipa::path(get, path = "/api/v1/runs/{id}/logs", operation_id = "listRunLogs", tag = "runs",
    params(("id" = RunId, Path, description = "Run id"), LogQuery),
    responses((status = 200, body = LogPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn logs(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Path(id): Path<RunId>,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let run = find(&state, &id).await?;
    principal.require(Scope::Namespace(&run.namespace), Role::Viewer)?;
    let (after, limit) = AfterQuery {
        after: query.after,
        limit: query.limit,
    }
    .checked()?;
    let lines = state
        .store
        .logs(id.as_str(), query.step.as_deref(), after, limit)
        .await?;
    Ok(Json(LogPage {
        next_after: lines.last().map_or(after, |l| l.seq),
        items: lines.into_iter().map(LogLine::from).collect(),
    }))
}

/// Asks the process running the run to cancel it (`409` if it has already ended). Its
/// cleanup steps (`when: always`) still run; asking again while it is still active stops
/// those too.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", operation_id = "cancelRun", tag = "runs",
    params(("id" = RunId, Path, description = "Run id")),
    responses((status = 202, body = CancelAccepted),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "The run has already ended"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn cancel(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<RunId>,
) -> Result<(StatusCode, Json<CancelAccepted>), ApiError> {
    let outcome = async {
        let run = find(&state, &id).await?;
        principal.require(Scope::Namespace(&run.namespace), Role::Operator)?;
        let run = state
            .ops
            .cancel_run(&principal.actor(None), &run.id)
            .await?;
        Ok(CancelAccepted {
            run_id: run.id,
            cancel_requested: true,
        })
    }
    .await;
    let target = format!("run/{id}");
    let accepted = audited(&state, &principal, addr, "run.cancel", &target, outcome).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// Queues a run of the job's latest revision with these parameters: 202 with the run
/// (`queued`) and its `Location`; a server executes it. Parameters that do not fit the
/// job's declarations are a 422 problem naming each one.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/jobs/{job}/runs", operation_id = "createRun", tag = "runs",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("job" = JobId, Path, description = "Job id")),
    request_body = CreateRun,
    responses((status = 202, body = Run, headers(("location" = String, description = "The run"))),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Json(body): Json<CreateRun>,
) -> Result<Response, ApiError> {
    let outcome = async {
        principal.require(Scope::Namespace(namespace.as_str()), Role::Operator)?;
        let given = body.params.into_iter().collect();
        let run = state
            .ops
            .queue_run(namespace.as_str(), job.as_str(), given, body.dry_run, "api")
            .await?;
        Ok::<_, ApiError>(run)
    }
    .await;
    let target = match &outcome {
        Ok(run) => format!("run/{}", run.id),
        Err(_) => format!("job/{namespace}/{job}"),
    };
    let run = audited(&state, &principal, addr, "run.create", &target, outcome).await?;
    queued(run)
}

/// Queues a retry of an ended run: a new run of the same job revision with the same
/// parameters (`retry_of` names the original). With `from`, that step and every step
/// downstream of it run again and the others keep the original's results (outputs
/// included); without it every step runs again. 202 with the new run and its `Location`;
/// 409 while the run is still active; 422 for a `from` the job does not have.
#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", operation_id = "retryRun", tag = "runs",
    params(("id" = RunId, Path, description = "Run id")),
    request_body(content = Option<RetryRun>, description = "Optional"),
    responses((status = 202, body = Run, headers(("location" = String, description = "The new run"))),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "The run is still active"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn retry(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<RunId>,
    OptionalJson(body): OptionalJson<RetryRun>,
) -> Result<Response, ApiError> {
    let outcome = async {
        let original = find(&state, &id).await?;
        principal.require(Scope::Namespace(&original.namespace), Role::Operator)?;
        let retry = state
            .ops
            .queue_retry(&principal.actor(None), id.as_str(), body.from.as_deref())
            .await?;
        Ok::<_, ApiError>(retry)
    }
    .await;
    let target = format!("run/{id}");
    let run = audited(&state, &principal, addr, "run.retry", &target, outcome).await?;
    queued(run)
}

/// How often a log stream looks for new lines when it has caught up.
const LOG_POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Log lines read per query while streaming.
const LOG_STREAM_BATCH: u32 = 200;

/// `GET /api/v1/runs/{id}/logs/stream` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogStreamQuery {
    /// Start after this line (`seq`; default 0, the beginning); a `Last-Event-ID` header,
    /// sent by a reconnecting client, takes precedence.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Only this step's lines.
    step: Option<String>,
}

/// Where a log stream is.
struct LogFollow {
    store: rota_store::Store,
    run_id: String,
    step: Option<String>,
    after: i64,
    pending: std::collections::VecDeque<LogLine>,
    done: bool,
}

/// Follows a run's log (or one step's) live as server-sent events: one event per line
/// (`id` is the line's `seq`, `data` the `LogLine` as JSON), then, once the run has ended
/// and every line was sent, one `end` event whose data is `{"status", "reason"}` of the
/// run, and the stream closes. A client that reconnects with `Last-Event-ID` resumes
/// exactly after the last line it saw.
#[utoipa::path(get, path = "/api/v1/runs/{id}/logs/stream", operation_id = "streamRunLogs", tag = "runs",
    params(("id" = RunId, Path, description = "Run id"), LogStreamQuery),
    responses((status = 200, description = "Server-sent events: `LogLine`s, then `end`",
               content_type = "text/event-stream", body = crate::openapi::LogFrame),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn logs_stream(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    headers: axum::http::HeaderMap,
    Path(id): Path<RunId>,
    Query(query): Query<LogStreamQuery>,
) -> Result<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    let run = find(&state, &id).await?;
    principal.require(Scope::Namespace(&run.namespace), Role::Viewer)?;
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| ApiError::InvalidQuery("`Last-Event-ID` must be a line seq".into()))?,
        None => match query.after {
            Some(n) if n < 0 => {
                return Err(ApiError::InvalidQuery("`after` must be at least 0".into()));
            }
            other => other.unwrap_or(0),
        },
    };
    let follow = LogFollow {
        store: state.store,
        run_id: run.id,
        step: query.step,
        after,
        pending: std::collections::VecDeque::new(),
        done: false,
    };
    let events = futures_util::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(line) = f.pending.pop_front() {
                let event = axum::response::sse::Event::default().id(line.seq.to_string());
                // A `LogLine` always serialises; the fallback keeps the stream going.
                let event = event
                    .json_data(&line)
                    .unwrap_or_else(|_| axum::response::sse::Event::default().data("{}"));
                return Some((Ok(event), f));
            }
            if f.done {
                return None;
            }
            // The run's state is read before its lines: a run seen ended has committed
            // every line, so the read that follows sees them all.
            let run = match f.store.get_run(&f.run_id).await {
                Ok(Some(run)) => run,
                Ok(None) => return None,
                Err(error) => {
                    tracing::error!(%error, run = %f.run_id, "log stream stopped");
                    return None;
                }
            };
            match f
                .store
                .logs(&f.run_id, f.step.as_deref(), f.after, LOG_STREAM_BATCH)
                .await
            {
                Ok(batch) if !batch.is_empty() => {
                    f.after = batch.last().map_or(f.after, |l| l.seq);
                    f.pending.extend(batch.into_iter().map(LogLine::from));
                }
                Ok(_) if run.status.is_terminal() => {
                    f.done = true;
                    let end = serde_json::json!({
                        "status": run.status.as_str(),
                        "reason": run.reason,
                    });
                    let event = axum::response::sse::Event::default()
                        .event("end")
                        .data(end.to_string());
                    return Some((Ok(event), f));
                }
                Ok(_) => tokio::time::sleep(LOG_POLL_EVERY).await,
                Err(error) => {
                    // The client reconnects with `Last-Event-ID` and resumes.
                    tracing::error!(%error, run = %f.run_id, "log stream stopped");
                    return None;
                }
            }
        }
    });
    Ok(axum::response::sse::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default()))
}

/// The answer to a call that queued a run: 202 with the run and its `Location`.
fn queued(run: RunRecord) -> Result<Response, ApiError> {
    let location = HeaderValue::try_from(format!("/api/v1/runs/{}", run.id))
        .map_err(|e| ApiError::Internal(format!("run id is not a header value: {e}")))?;
    let mut response = (StatusCode::ACCEPTED, Json(Run::from(run))).into_response();
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(logs))
        .routes(routes!(logs_stream))
        .routes(routes!(cancel))
        .routes(routes!(retry))
}
