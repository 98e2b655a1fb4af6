//! Secrets of a namespace, for editors: list (names, versions and dates, never values),
//! set a new version, delete (`/api/v1/namespaces/{namespace}/secrets[/{name}]`).
//!
//! Values are sealed by `rota-secrets` with the server's key before they reach the store,
//! and no response or audit entry ever carries one. Setting and deleting are audited by
//! `rota-secrets` itself (`secret.set`, `secret.delete`); a call refused before that is
//! audited here with the problem it failed with.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use rota_secrets::{SecretKey, SecretValue, SecretsError};
use rota_store::Role;

use serde::Deserialize;
use utoipa::IntoParams;

use super::{cut_page, page_limit};
use crate::auth::Caller;
use crate::extract::{ClientAddr, Json, Path, Query};
use crate::{ApiError, ApiState, audited};
use rota_ops::auth::{Principal, Scope};
use rota_ops::ids::{Namespace, SecretName};
use rota_ops::records::{Problem, PutSecret, Secret, SecretList, StoredSecret};

/// A secret's name from the path, checked in the handler rather than by the extractor so
/// that a call refused for a bad name is still audited.
fn checked_name(name: &str) -> Result<SecretName, ApiError> {
    SecretName::try_from(name.to_owned()).map_err(ApiError::InvalidId)
}

impl From<SecretsError> for ApiError {
    fn from(error: SecretsError) -> Self {
        match error {
            SecretsError::InvalidName(_) => ApiError::InvalidId(error.to_string()),
            SecretsError::Store(e) => ApiError::from(e),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Audits a call that failed before `rota-secrets` audited it; passes success through.
async fn audit_failure<T>(
    state: &ApiState,
    principal: &Principal,
    source: Option<SocketAddr>,
    action: &str,
    target: &str,
    outcome: Result<T, ApiError>,
) -> Result<T, ApiError> {
    match outcome {
        Ok(value) => Ok(value),
        Err(error) => audited(state, principal, source, action, target, Err(error)).await,
    }
}

/// The key that seals secrets, created on first use; 503 without a data directory, or
/// when the configured key is unusable (a malformed `ROTA_SECRET_KEY` or key file, or a key
/// file others may read): that is the server's configuration, which its log explains,
/// not a failure of this request.
async fn key(state: &ApiState) -> Result<SecretKey, ApiError> {
    let home = state
        .secrets_home
        .clone()
        .ok_or_else(|| ApiError::Unavailable("secrets are not configured on this server".into()))?;
    let loaded = tokio::task::spawn_blocking(move || SecretKey::load_or_create(&home))
        .await
        .map_err(|e| ApiError::Internal(format!("loading the secrets key: {e}")))?;
    match loaded {
        Ok(key) => Ok(key),
        Err(
            error @ (SecretsError::BadEnvKey { .. }
            | SecretsError::BadKeyFile { .. }
            | SecretsError::KeyFileExposed { .. }),
        ) => {
            tracing::error!(%error, "the secrets key is unusable");
            Err(ApiError::Unavailable(
                "the server's secrets key is unusable; its log says why".into(),
            ))
        }
        Err(error) => Err(ApiError::from(error)),
    }
}

/// `GET …/secrets` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SecretPageQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor` (opaque).
    cursor: Option<SecretName>,
}

/// The secrets of a namespace by name, a page at a time: versions and dates, never values.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/secrets", operation_id = "listSecrets", tag = "secrets",
    params(("namespace" = Namespace, Path, description = "Namespace"), SecretPageQuery),
    responses((status = 200, body = SecretList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Path(namespace): Path<Namespace>,
    Query(query): Query<SecretPageQuery>,
) -> Result<Json<SecretList>, ApiError> {
    principal.require(Scope::Namespace(namespace.as_str()), Role::Editor)?;
    let limit = page_limit(query.limit)?;
    let secrets = state
        .store
        .list_secrets_page(
            namespace.as_str(),
            query.cursor.as_ref().map(SecretName::as_str),
            limit + 1,
        )
        .await?;
    let (secrets, next_cursor) = cut_page(secrets, limit, |s| s.name.clone());
    Ok(Json(SecretList {
        items: secrets.into_iter().map(Secret::from).collect(),
        next_cursor,
    }))
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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path((namespace, name)): Path<(Namespace, String)>,
    Json(body): Json<PutSecret>,
) -> Result<Json<StoredSecret>, ApiError> {
    let outcome = async {
        principal.require(Scope::Namespace(namespace.as_str()), Role::Editor)?;
        let name = checked_name(&name)?;
        let key = key(&state).await?;
        let value = SecretValue::new(body.value);
        let version = rota_secrets::put(
            &state.store,
            &key,
            namespace.as_str(),
            name.as_str(),
            &value,
            &principal.actor,
        )
        .await?;
        Ok(StoredSecret {
            namespace: namespace.to_string(),
            name: name.to_string(),
            version,
        })
    }
    .await;
    let target = format!("{namespace}/{name}");
    let stored = audit_failure(&state, &principal, addr, "secret.set", &target, outcome).await?;
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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path((namespace, name)): Path<(Namespace, String)>,
) -> Result<StatusCode, ApiError> {
    let outcome = async {
        principal.require(Scope::Namespace(namespace.as_str()), Role::Editor)?;
        let name = checked_name(&name)?;
        let removed = rota_secrets::remove(
            &state.store,
            namespace.as_str(),
            name.as_str(),
            &principal.actor,
        )
        .await?;
        if removed == 0 {
            return Err(ApiError::NotFound(format!("secret {namespace}/{name}")));
        }
        Ok(())
    }
    .await;
    let target = format!("{namespace}/{name}");
    audit_failure(&state, &principal, addr, "secret.delete", &target, outcome).await?;
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
