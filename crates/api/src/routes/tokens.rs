//! Tokens: create, list and revoke (`/api/v1/tokens`), for admins of every namespace.

use axum::http::StatusCode;

use crate::ApiError;
use crate::auth::Asking;
use crate::extract::{Json, Path, Query};
use rota_ops::ids::TokenId;
use rota_ops::records::{CreateToken, CreatedToken, Problem, TokenList, TokenPageQuery};
use rota_ops::service::Tokens as _;

/// Creates a token; the response holds its text, shown this once.
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "createToken", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn create(
    Asking(session): Asking,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let created = session.create_token(body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Lists every token (never their text), revoked ones included, oldest first, a page at a
/// time.
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "listTokens", tag = "tokens", params(TokenPageQuery),
    responses((status = 200, body = TokenList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    Asking(session): Asking,
    Query(query): Query<TokenPageQuery>,
) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(session.list_tokens(query).await?))
}

/// Revokes a token; it authenticates nobody from then on. A token cannot revoke itself
/// (409): that would lock its holder out by accident; revoke it with another admin token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", operation_id = "revokeToken", tag = "tokens",
    params(("id" = TokenId, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "The token is the caller's own"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn revoke(
    Asking(session): Asking,
    Path(id): Path<TokenId>,
) -> Result<StatusCode, ApiError> {
    session.revoke_token(id.as_str()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<crate::ApiState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}
