//! The event log: `GET /api/v1/events` (paged) and `GET /api/v1/events/stream` (SSE).

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use rota_store::Role;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AfterQuery;
use crate::auth::Caller;
use crate::extract::{Json, Query};
use crate::{ApiError, ApiState};
use rota_ops::auth::Scope;
use rota_ops::records::{Event, EventPage, Problem};

/// Events after a position, oldest first. The event log spans namespaces, so this needs
/// the viewer role in every namespace.
#[utoipa::path(get, path = "/api/v1/events", operation_id = "listEvents", tag = "events", params(AfterQuery),
    responses((status = 200, body = EventPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Query(query): Query<AfterQuery>,
) -> Result<Json<EventPage>, ApiError> {
    principal.require(Scope::Global, Role::Viewer)?;
    let (after, limit) = query.checked()?;
    let events = state.store.events_after(after, limit).await?;
    Ok(Json(EventPage {
        next_after: events.last().map_or(after, |e| e.id),
        items: events.into_iter().map(Event::from).collect(),
    }))
}

/// How often the stream looks for new events when it has caught up.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Events read per query while streaming.
const STREAM_BATCH: u32 = 100;

/// `GET /api/v1/events/stream` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamQuery {
    /// Start after this event id (default 0, the beginning); a `Last-Event-ID` header,
    /// sent by a reconnecting client, takes precedence. A negative value means 0.
    after: Option<i64>,
}

/// Streams the event log as server-sent events (`id` is the event id, `event` its kind,
/// `data` the event as JSON), from a position on, following new events as they come.
/// A client that reconnects with `Last-Event-ID` resumes exactly after the last event it
/// saw.
#[utoipa::path(get, path = "/api/v1/events/stream", operation_id = "streamEvents", tag = "events", params(StreamQuery),
    responses((status = 200, description = "Server-sent events, each one `Event` as data",
               content_type = "text/event-stream", body = crate::openapi::EventFrame),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn stream(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    principal.require(Scope::Global, Role::Viewer)?;
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|id| *id >= 0)
            .ok_or_else(|| {
                ApiError::InvalidQuery("`Last-Event-ID` must be an event id".to_owned())
            })?,
        None => query.after.unwrap_or(0).max(0),
    };
    let events = futures_util::stream::unfold(
        (state.store, after, VecDeque::new()),
        |(store, mut after, mut pending)| async move {
            loop {
                if let Some(event) = pending.pop_front() {
                    let sse = sse_event(event);
                    return Some((Ok(sse), (store, after, pending)));
                }
                match store.events_after(after, STREAM_BATCH).await {
                    Ok(batch) if batch.is_empty() => tokio::time::sleep(POLL_EVERY).await,
                    Ok(batch) => {
                        after = batch.last().map_or(after, |e| e.id);
                        pending.extend(batch.into_iter().map(Event::from));
                    }
                    Err(error) => {
                        // The client reconnects with `Last-Event-ID` and resumes.
                        tracing::error!(%error, "event stream stopped");
                        return None;
                    }
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn sse_event(event: Event) -> SseEvent {
    let sse = SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind.clone());
    // An `Event` always serialises; the fallback keeps the stream going regardless.
    sse.json_data(&event)
        .unwrap_or_else(|_| SseEvent::default().id(event.id.to_string()).data("{}"))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stream))
}
