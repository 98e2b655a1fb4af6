//! Runs: list with filters and cursor pagination, get one with its steps, its log lines
//! (paged, or followed live over SSE), cancel, retry, decide the `approval:` gate it waits
//! at, and start one (`POST /api/v1/namespaces/{namespace}/jobs/{job}/runs`).
//!
//! Starting a run records it as `queued` against the job's latest revision, with no owner;
//! `rota serve` adopts queued runs from the store, claims them and executes them, exactly
//! as it does for runs queued by `rota backfill`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rota_ops::service::Runs as _;
use rota_ops::service::runs::Followed;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, OptionalJson, Path, Query};
use rota_ops::ids::{JobId, Namespace, RunId};
use rota_ops::records::{
    CancelAccepted, CreateRun, DecideGate, LogPage, LogQuery, Problem, RetryRun, Run, RunPage,
    RunQuery,
};
use rota_ops::reports::ReportQuery;
use rota_ops::service::plans::Verdict;

/// Lists runs, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/runs", operation_id = "listRuns", tag = "runs", params(RunQuery),
    responses((status = 200, body = RunPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    Asking(session): Asking,
    Query(query): Query<RunQuery>,
) -> Result<Json<RunPage>, ApiError> {
    Ok(Json(session.list_runs(query).await?))
}

/// A run with the latest state of each step.
#[utoipa::path(get, path = "/api/v1/runs/{id}", operation_id = "getRun", tag = "runs",
    params(("id" = RunId, Path, description = "Run id")),
    responses((status = 200, body = Run),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    Asking(session): Asking,
    Path(id): Path<RunId>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(session.get_run(id.as_str()).await?))
}

/// A run's log lines (or one step's) in order, a page at a time.
#[utoipa::path(get, path = "/api/v1/runs/{id}/logs", operation_id = "listRunLogs", tag = "runs",
    params(("id" = RunId, Path, description = "Run id"), LogQuery),
    responses((status = 200, body = LogPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn logs(
    Asking(session): Asking,
    Path(id): Path<RunId>,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    Ok(Json(session.run_logs(id.as_str(), query).await?))
}

/// The run's report: one self-contained HTML page (inline CSS, no scripts, no external
/// references) or a Markdown document with its parameters, plan, gates, steps, redacted
/// logs and executed notebooks.
#[utoipa::path(get, path = "/api/v1/runs/{id}/report", operation_id = "getRunReport", tag = "runs",
    params(("id" = RunId, Path, description = "Run id"), ReportQuery),
    responses((status = 200, description = "The report: HTML, or Markdown with `format=md`",
               content((String = "text/html"), (String = "text/markdown"))),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn report(
    Asking(session): Asking,
    Path(id): Path<RunId>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    use rota_ops::service::Reports as _;
    let format = query.format.unwrap_or_default();
    let text = session.run_report(id.as_str(), format).await?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    Ok(response)
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
    Asking(session): Asking,
    Path(id): Path<RunId>,
) -> Result<(StatusCode, Json<CancelAccepted>), ApiError> {
    let accepted = session.cancel_run(id.as_str()).await?;
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
    Asking(session): Asking,
    Path((namespace, job)): Path<(Namespace, JobId)>,
    Json(body): Json<CreateRun>,
) -> Result<Response, ApiError> {
    let run = session
        .start_run(namespace.as_str(), job.as_str(), body)
        .await?;
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
    Asking(session): Asking,
    Path(id): Path<RunId>,
    OptionalJson(body): OptionalJson<RetryRun>,
) -> Result<Response, ApiError> {
    queued(session.retry_run(id.as_str(), body).await?)
}

/// Approves the `approval:` gate a run waits at (`step`, or its one waiting gate): the
/// caller must be one of the gate's approvers with at least `operator` in its namespace
/// (403 otherwise), not the run's starter unless the gate allows it, and not have decided
/// before (409). The quorum'th approval settles the gate and queues the run again.
#[utoipa::path(post, path = "/api/v1/runs/{id}/approve", operation_id = "approveRunGate", tag = "runs",
    params(("id" = RunId, Path, description = "Run id")),
    request_body(content = Option<DecideGate>, description = "Optional"),
    responses((status = 200, body = Run),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "Self-approval, a second decision, several gates waiting, or the gate is decided or expired"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn approve(
    Asking(session): Asking,
    Path(id): Path<RunId>,
    OptionalJson(body): OptionalJson<DecideGate>,
) -> Result<Json<Run>, ApiError> {
    let verdict = Verdict::Approve;
    Ok(Json(session.decide_gate(id.as_str(), verdict, body).await?))
}

/// Rejects the `approval:` gate a run waits at (same rules as approving; `comment` is the
/// reason): the gate fails, and the run is queued again to run its `when: failure` steps.
#[utoipa::path(post, path = "/api/v1/runs/{id}/reject", operation_id = "rejectRunGate", tag = "runs",
    params(("id" = RunId, Path, description = "Run id")),
    request_body(content = Option<DecideGate>, description = "Optional"),
    responses((status = 200, body = Run),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "A second decision, several gates waiting, or the gate is decided or expired"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn reject(
    Asking(session): Asking,
    Path(id): Path<RunId>,
    OptionalJson(body): OptionalJson<DecideGate>,
) -> Result<Json<Run>, ApiError> {
    let verdict = Verdict::Reject;
    Ok(Json(session.decide_gate(id.as_str(), verdict, body).await?))
}

/// Skips the failed step whose question a run waits at (a step with `on_failure: ask`; its
/// gate is `STEP#failed-N`; same rules as approving; `comment` is the reason): the step
/// ends `skipped` and the run is queued again, so the steps that need it run as after any
/// skip. Any other gate is approved or rejected, not skipped (409).
#[utoipa::path(post, path = "/api/v1/runs/{id}/skip", operation_id = "skipRunGate", tag = "runs",
    params(("id" = RunId, Path, description = "Run id")),
    request_body(content = Option<DecideGate>, description = "Optional"),
    responses((status = 200, body = Run),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "Not a failed step's question, a second decision, several gates waiting, or the gate is decided or expired"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn skip(
    Asking(session): Asking,
    Path(id): Path<RunId>,
    OptionalJson(body): OptionalJson<DecideGate>,
) -> Result<Json<Run>, ApiError> {
    let verdict = Verdict::Skip;
    Ok(Json(session.decide_gate(id.as_str(), verdict, body).await?))
}

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
    Asking(session): Asking,
    headers: axum::http::HeaderMap,
    Path(id): Path<RunId>,
    Query(query): Query<LogStreamQuery>,
) -> Result<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    let run = session.get_run(id.as_str()).await?;
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
    let (to, lines) = tokio::sync::mpsc::channel(rota_ops::service::runs::FOLLOW_BUFFER);
    // The follow stops when the client goes away (the receiver is dropped) or on an
    // error; either way the stream ends and the client reconnects with `Last-Event-ID`.
    tokio::spawn(async move {
        if let Err(error) = session.follow_logs(&run.id, query.step, after, to).await {
            tracing::error!(%error, run = %run.id, "log stream stopped");
        }
    });
    let events = futures_util::stream::unfold(lines, |mut lines| async move {
        let event = match lines.recv().await? {
            Followed::Line(line) => {
                let event = axum::response::sse::Event::default().id(line.seq.to_string());
                // A `LogLine` always serialises; the fallback keeps the stream going.
                event
                    .json_data(&line)
                    .unwrap_or_else(|_| axum::response::sse::Event::default().data("{}"))
            }
            Followed::End { status, reason } => {
                let end = serde_json::json!({ "status": status, "reason": reason });
                axum::response::sse::Event::default()
                    .event("end")
                    .data(end.to_string())
            }
        };
        Some((Ok(event), lines))
    });
    Ok(axum::response::sse::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default()))
}

/// The answer to a call that queued a run: 202 with the run and its `Location`.
fn queued(run: Run) -> Result<Response, ApiError> {
    let location = HeaderValue::try_from(format!("/api/v1/runs/{}", run.id))
        .map_err(|e| ApiError::Internal(format!("run id is not a header value: {e}")))?;
    let mut response = (StatusCode::ACCEPTED, Json(run)).into_response();
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
        .routes(routes!(report))
        .routes(routes!(cancel))
        .routes(routes!(retry))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(skip))
}
