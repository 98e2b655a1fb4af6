//! The event log: `GET /api/v1/events` (paged) and `GET /api/v1/events/stream` (SSE).

use std::convert::Infallible;

use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use rota_ops::records::{Event, EventPage, Problem};
use rota_ops::service::Runs as _;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, Query};
use rota_ops::records::AfterQuery;

/// Events after a position, oldest first. The event log spans namespaces, so this needs
/// the viewer role in every namespace.
#[utoipa::path(get, path = "/api/v1/events", operation_id = "listEvents", tag = "events", params(AfterQuery),
    responses((status = 200, body = EventPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    Asking(session): Asking,
    Query(query): Query<AfterQuery>,
) -> Result<Json<EventPage>, ApiError> {
    Ok(Json(session.list_events(query.after, query.limit).await?))
}

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
    Asking(session): Asking,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|id| *id >= 0)
            .ok_or_else(|| {
                ApiError::InvalidQuery("`Last-Event-ID` must be an event id".to_owned())
            }),
        None => Ok(query.after.unwrap_or(0).max(0)),
    };
    // Authorization comes first; a bad `Last-Event-ID` is reported after it (the follow
    // started meanwhile stops as its receiver is dropped).
    let events = session.follow_events(*after.as_ref().unwrap_or(&0)).await?;
    after?;
    let events = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        Some((Ok(sse_event(event)), events))
    });
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
