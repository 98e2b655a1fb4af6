//! Secrets of a namespace, for editors: list (names, versions and dates, never values),
//! set a new version, delete (`/api/v1/namespaces/{namespace}/secrets[/{name}]`).
//!
//! Values are sealed by `rota-secrets` with the server's key before they reach the store,
//! and no response or audit entry ever carries one (`rota_ops::service::Secrets` says who
//! audits what).

use axum::http::StatusCode;

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, Path, Query};
use rota_ops::ids::{Namespace, SecretName};
use rota_ops::records::{Problem, PutSecret, SecretList, SecretPageQuery, StoredSecret};
use rota_ops::service::Secrets as _;

/// The secrets of a namespace by name, a page at a time: versions and dates, never values.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/secrets", operation_id = "listSecrets", tag = "secrets",
    params(("namespace" = Namespace, Path, description = "Namespace"), SecretPageQuery),
    responses((status = 200, body = SecretList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    Asking(session): Asking,
    Path(namespace): Path<Namespace>,
    Query(query): Query<SecretPageQuery>,
) -> Result<Json<SecretList>, ApiError> {
    Ok(Json(session.list_secrets(namespace.as_str(), query).await?))
}

/// Stores a new version of a secret (encrypted); the answer names the version, never the
/// value. 503 when the server has no secrets key location.
#[utoipa::path(put, path = "/api/v1/namespaces/{namespace}/secrets/{name}", operation_id = "putSecret", tag = "secrets",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("name" = SecretName, Path, description = "Secret name")),
    request_body = PutSecret,
    responses((status = 200, body = StoredSecret),
              (status = "4XX", body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn put(
    Asking(session): Asking,
    Path((namespace, name)): Path<(Namespace, String)>,
    Json(body): Json<PutSecret>,
) -> Result<Json<StoredSecret>, ApiError> {
    let stored = session.set_secret(namespace.as_str(), &name, body).await?;
    Ok(Json(stored))
}

/// Deletes every version of a secret.
#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}/secrets/{name}", operation_id = "deleteSecret", tag = "secrets",
    params(("namespace" = Namespace, Path, description = "Namespace"),
           ("name" = SecretName, Path, description = "Secret name")),
    responses((status = 204, description = "Deleted"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn remove(
    Asking(session): Asking,
    Path((namespace, name)): Path<(Namespace, String)>,
) -> Result<StatusCode, ApiError> {
    session.remove_secret(namespace.as_str(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(put, remove))
}
