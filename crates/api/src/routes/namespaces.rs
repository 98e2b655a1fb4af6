//! `GET /api/v1/namespaces`.

use axum::extract::State;
use rota_store::Role;

use crate::auth::{Principal, Scope};
use crate::extract::Json;
use crate::wire::{Namespace, NamespaceList, Problem};
use crate::{ApiError, ApiState};

/// Lists the namespaces the caller may view.
#[utoipa::path(get, path = "/api/v1/namespaces", tag = "namespaces",
    responses((status = 200, body = NamespaceList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    principal: Principal,
) -> Result<Json<NamespaceList>, ApiError> {
    principal.require_somewhere(Role::Viewer)?;
    let items = state
        .store
        .list_namespaces()
        .await?
        .into_iter()
        .filter(|ns| principal.can(Scope::Namespace(&ns.name), Role::Viewer))
        .map(Namespace::from)
        .collect();
    Ok(Json(NamespaceList { items }))
}
