//! The event log: `GET /api/v1/events` (paged) and `GET /api/v1/events/stream` (SSE).

use axum::extract::State;
use rota_store::Role;

use super::AfterQuery;
use crate::auth::{Principal, Scope};
use crate::extract::{Json, Query};
use crate::wire::{Event, EventPage, Problem};
use crate::{ApiError, ApiState};

/// Events after a position, oldest first. The event log spans namespaces, so this needs
/// the viewer role in every namespace.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(AfterQuery),
    responses((status = 200, body = EventPage),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    principal: Principal,
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
