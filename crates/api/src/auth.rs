//! Bearer-token authentication: the [`Caller`] of every authenticated route, found from its
//! `Authorization: Bearer …` header by [`rota_ops::Ops::authenticate`]. What each caller may
//! do is decided in `rota-ops` ([`Principal::require`]), the same for the CLI's local mode.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use rota_ops::Session;
use rota_ops::auth::Principal;

use crate::extract::ClientAddr;
use crate::{ApiError, ApiState};

/// How the API authenticates callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every call needs a bearer token; roles are checked.
    Tokens,
    /// No authentication: every caller is an admin everywhere. For a single user on their
    /// own machine only; the server must say loudly that it is on.
    None,
}

/// The caller of an authenticated route.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller(pub Principal);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        if state.auth == AuthMode::None {
            return Ok(Caller(Principal::admin("local")));
        }
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("send `Authorization: Bearer <token>`".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header is not `Bearer <token>`".into())
            })?;
        Ok(Caller(state.ops.authenticate(token).await?))
    }
}

/// The application layer acting for the caller of a route ([`Caller`]), calling from its
/// client address (for the audit log): what every handler asks.
#[derive(Debug, Clone)]
pub struct Asking(pub Session);

impl FromRequestParts<ApiState> for Asking {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        let Ok(ClientAddr(addr)) = ClientAddr::from_request_parts(parts, state).await;
        Ok(Asking(
            state.ops.session(principal, addr.map(|a| a.to_string())),
        ))
    }
}
