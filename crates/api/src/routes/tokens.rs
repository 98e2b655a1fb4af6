//! Tokens: create, list and revoke (`/api/v1/tokens`), for admins of every namespace.

use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use rota_store::Role;

use crate::auth::{Principal, Scope, issue_token};
use crate::extract::{ClientAddr, Json, Path};
use crate::ids::TokenId;
use crate::wire::{CreateToken, CreatedToken, Problem, Token, TokenGrant, TokenList};
use crate::{ApiError, ApiState, audited};

/// Creates a token; the response holds its text, shown this once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let outcome = async {
        principal.require(Scope::Global, Role::Admin)?;
        if body.name.trim().is_empty() || body.grants.is_empty() {
            return Err(ApiError::InvalidBody(
                "a token needs a non-empty `name` and at least one grant".into(),
            ));
        }
        let grants = body
            .grants
            .iter()
            .map(TokenGrant::to_grant)
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::InvalidBody)?;
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

/// Lists every token (never their text), revoked ones included.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    principal: Principal,
) -> Result<Json<TokenList>, ApiError> {
    principal.require(Scope::Global, Role::Admin)?;
    let tokens = state.store.list_tokens().await?;
    Ok(Json(TokenList {
        items: tokens.into_iter().map(Token::from).collect(),
    }))
}

/// Revokes a token; it authenticates nobody from then on.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"),
              (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<TokenId>,
) -> Result<StatusCode, ApiError> {
    let outcome = async {
        principal.require(Scope::Global, Role::Admin)?;
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
