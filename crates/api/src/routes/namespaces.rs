//! `GET /api/v1/namespaces`.

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, Query};
use rota_ops::records::{NamespaceList, NamespaceQuery, Problem};
use rota_ops::service::Jobs as _;

/// Lists the namespaces the caller may view, by name, a page at a time.
#[utoipa::path(get, path = "/api/v1/namespaces", operation_id = "listNamespaces", tag = "namespaces", params(NamespaceQuery),
    responses((status = 200, body = NamespaceList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    Asking(session): Asking,
    Query(query): Query<NamespaceQuery>,
) -> Result<Json<NamespaceList>, ApiError> {
    Ok(Json(session.list_namespaces(query).await?))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new().routes(routes!(list))
}
