//! `GET /api/v1/namespaces`.

use axum::extract::State;
use rota_store::Role;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{cut_page, page_limit};
use crate::auth::Caller;
use crate::extract::{Json, Query};
use crate::{ApiError, ApiState};
use rota_ops::auth::Scope;
use rota_ops::ids;
use rota_ops::records::{Namespace, NamespaceList, Problem};

/// `GET /api/v1/namespaces` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct NamespaceQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor` (opaque).
    cursor: Option<ids::Namespace>,
}

/// Lists the namespaces the caller may view, by name, a page at a time.
#[utoipa::path(get, path = "/api/v1/namespaces", operation_id = "listNamespaces", tag = "namespaces", params(NamespaceQuery),
    responses((status = 200, body = NamespaceList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Query(query): Query<NamespaceQuery>,
) -> Result<Json<NamespaceList>, ApiError> {
    principal.require_somewhere(Role::Viewer)?;
    let limit = page_limit(query.limit)?;
    // Without a role everywhere, the caller sees the namespaces it holds a grant in; the
    // store filters, so that every page but the last is full.
    let only: Option<Vec<String>> = (!principal.can(Scope::Global, Role::Viewer)).then(|| {
        principal
            .grants
            .iter()
            .filter_map(|g| g.namespace.clone())
            .collect()
    });
    let rows = state
        .store
        .list_namespaces_page(
            query.cursor.as_ref().map(ids::Namespace::as_str),
            only.as_deref(),
            limit + 1,
        )
        .await?;
    let (rows, next_cursor) = cut_page(rows, limit, |ns| ns.name.clone());
    Ok(Json(NamespaceList {
        items: rows.into_iter().map(Namespace::from).collect(),
        next_cursor,
    }))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new().routes(routes!(list))
}
