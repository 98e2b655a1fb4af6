//! Tokens: create, list and revoke (`/api/v1/tokens`), for admins of every namespace.

use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use rota_store::{Grant, Role};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{cut_page, page_limit};
use crate::auth::Caller;
use crate::extract::{ClientAddr, Json, Path, Query};
use crate::{ApiError, ApiState, audited};
use rota_ops::auth::{Scope, issue_token};
use rota_ops::ids::TokenId;
use rota_ops::records::{CreateToken, CreatedToken, Problem, Token, TokenGrant, TokenList};

/// Longest token name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// The grants of a new token, checked; a namespace named twice keeps the stronger role
/// (roles include the weaker ones, so that is what both grants together mean).
fn checked_grants(grants: &[TokenGrant]) -> Result<Vec<Grant>, ApiError> {
    let mut merged: Vec<Grant> = Vec::with_capacity(grants.len());
    for grant in grants {
        let grant = grant.to_grant().map_err(ApiError::InvalidBody)?;
        match merged.iter_mut().find(|g| g.namespace == grant.namespace) {
            Some(held) => held.role = held.role.max(grant.role),
            None => merged.push(grant),
        }
    }
    Ok(merged)
}

/// Whether `name` is an acceptable token name: 1–200 characters, not only spaces, tabs and
/// line breaks (the `pattern` the OpenAPI document states).
fn is_token_name(name: &str) -> bool {
    name.chars().count() <= MAX_NAME_CHARS
        && name.chars().any(|c| !matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// Creates a token; the response holds its text, shown this once.
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "createToken", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let outcome = async {
        principal.require(Scope::Global, Role::Admin)?;
        if !is_token_name(&body.name) || body.grants.is_empty() {
            return Err(ApiError::InvalidBody(format!(
                "a token needs a `name` of 1–{MAX_NAME_CHARS} characters that is not only \
                 spaces, and at least one grant"
            )));
        }
        let grants = checked_grants(&body.grants)?;
        let (record, secret) = issue_token(&state.store, &body.name, grants).await?;
        Ok(CreatedToken {
            token: Token::from(record),
            secret,
        })
    }
    .await;
    let target = match &outcome {
        Ok(created) => format!("token/{}", created.token.id),
        Err(_) => "token".to_owned(),
    };
    let created = audited(&state, &principal, addr, "token.create", &target, outcome).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /api/v1/tokens` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TokenPageQuery {
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Continue after this page: a previous page's `next_cursor` (opaque).
    #[param(pattern = "^[0-9]{1,17}\\.[a-z0-9]{1,64}$", max_length = 82)]
    cursor: Option<String>,
}

/// A token cursor's text: `<created_at in µs>.<token id>`. Clients treat it as opaque.
fn encode_cursor(token: &Token) -> String {
    format!("{}.{}", token.created_at.as_microsecond(), token.id)
}

fn decode_cursor(text: &str) -> Result<(Timestamp, TokenId), ApiError> {
    let bad = || ApiError::InvalidQuery(format!("{text:?} is not a cursor from this API"));
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = Timestamp::from_microsecond(micros).map_err(|_| bad())?;
    let id = TokenId::try_from(id.to_owned()).map_err(|_| bad())?;
    Ok((at, id))
}

/// Lists every token (never their text), revoked ones included, oldest first, a page at a
/// time.
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "listTokens", tag = "tokens", params(TokenPageQuery),
    responses((status = 200, body = TokenList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    Query(query): Query<TokenPageQuery>,
) -> Result<Json<TokenList>, ApiError> {
    principal.require(Scope::Global, Role::Admin)?;
    let limit = page_limit(query.limit)?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let tokens = state
        .store
        .list_tokens_page(after.as_ref().map(|(at, id)| (*at, id.as_str())), limit + 1)
        .await?;
    let tokens: Vec<Token> = tokens.into_iter().map(Token::from).collect();
    let (items, next_cursor) = cut_page(tokens, limit, encode_cursor);
    Ok(Json(TokenList { items, next_cursor }))
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
    State(state): State<ApiState>,
    Caller(principal): Caller,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<TokenId>,
) -> Result<StatusCode, ApiError> {
    let outcome = async {
        principal.require(Scope::Global, Role::Admin)?;
        if principal.token_id.as_deref() == Some(id.as_str()) {
            return Err(ApiError::Conflict(
                "a token cannot revoke itself; revoke it with another admin token".into(),
            ));
        }
        if !state
            .store
            .revoke_token(id.as_str(), Timestamp::now())
            .await?
        {
            return Err(ApiError::NotFound(format!(
                "live token {id:?}",
                id = id.as_str()
            )));
        }
        Ok(())
    }
    .await;
    let target = format!("token/{id}");
    audited(&state, &principal, addr, "token.revoke", &target, outcome).await?;
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
