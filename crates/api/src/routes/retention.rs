//! Retention, for admins: prune finished runs older than a duration (`POST /api/v1/prune`)
//! and set how long a namespace keeps them (`PUT /api/v1/namespaces/{namespace}/retention`),
//! which `rota serve` applies at start and hourly.

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, Path};
use rota_ops::ids::Namespace;
use rota_ops::records::{NamespaceRetention, Problem, PruneReport, PruneRequest, SetRetention};
use rota_ops::service::Retention as _;

/// Deletes runs that finished longer ago than `older_than` (in one namespace, or all) with
/// their steps, attempts, logs, events and notifications; with `dry_run`, only counts them.
/// Admin of the namespace, or of every namespace without one (and for `audit`).
#[utoipa::path(post, path = "/api/v1/prune", operation_id = "pruneRuns", tag = "retention",
    request_body = PruneRequest,
    responses((status = 200, body = PruneReport),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn prune(
    Asking(session): Asking,
    Json(body): Json<PruneRequest>,
) -> Result<Json<PruneReport>, ApiError> {
    Ok(Json(session.prune(body).await?))
}

/// Sets how long the namespace keeps finished runs (`null`: forever); `rota serve` prunes
/// older ones at start and hourly.
#[utoipa::path(put, path = "/api/v1/namespaces/{namespace}/retention", operation_id = "setNamespaceRetention", tag = "retention",
    params(("namespace" = Namespace, Path, description = "Namespace")),
    request_body = SetRetention,
    responses((status = 200, body = NamespaceRetention),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn set(
    Asking(session): Asking,
    Path(namespace): Path<Namespace>,
    Json(body): Json<SetRetention>,
) -> Result<Json<NamespaceRetention>, ApiError> {
    Ok(Json(session.set_retention(namespace.as_str(), body).await?))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(prune))
        .routes(routes!(set))
}
