//! The tokens operations of [`crate::Rota`]: list, create and revoke API bearer tokens,
//! for admins of every namespace. A token's text exists only in the answer to its
//! creation; the store keeps its SHA-256.

use std::future::Future;

use jiff::Timestamp;

use super::Session;
use super::page::{cut_page, page_limit};
use crate::OpsError;
use crate::auth::{Grant, Role, Scope, issue_token};
use crate::ids::TokenId;
use crate::records::{CreateToken, CreatedToken, Token, TokenGrant, TokenList, TokenPageQuery};

/// Longest token name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// The tokens operations.
pub trait Tokens {
    /// Every token (never their text), revoked ones included, oldest first, a page at a
    /// time.
    fn list_tokens(
        &self,
        query: TokenPageQuery,
    ) -> impl Future<Output = Result<TokenList, OpsError>> + Send;

    /// Creates a token; the answer holds its text, shown this once.
    fn create_token(
        &self,
        token: CreateToken,
    ) -> impl Future<Output = Result<CreatedToken, OpsError>> + Send;

    /// Revokes a live token; it authenticates nobody from then on. A token cannot revoke
    /// itself ([`OpsError::Conflict`]): that would lock its holder out by accident.
    fn revoke_token(&self, id: &str) -> impl Future<Output = Result<(), OpsError>> + Send;
}

/// The grants of a new token, checked; a namespace named twice keeps the stronger role
/// (roles include the weaker ones, so that is what both grants together mean).
fn checked_grants(grants: &[TokenGrant]) -> Result<Vec<Grant>, OpsError> {
    let mut merged: Vec<Grant> = Vec::with_capacity(grants.len());
    for grant in grants {
        let grant = grant.to_grant().map_err(OpsError::Invalid)?;
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

/// A token cursor's text: `<created_at in µs>.<token id>`. Clients treat it as opaque.
fn encode_cursor(token: &Token) -> String {
    format!("{}.{}", token.created_at.as_microsecond(), token.id)
}

fn decode_cursor(text: &str) -> Result<(Timestamp, TokenId), OpsError> {
    let bad = || OpsError::InvalidQuery(format!("{text:?} is not a cursor from this API"));
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = Timestamp::from_microsecond(micros).map_err(|_| bad())?;
    let id = TokenId::try_from(id.to_owned()).map_err(|_| bad())?;
    Ok((at, id))
}

impl Session {
    async fn issue(&self, token: CreateToken) -> Result<CreatedToken, OpsError> {
        self.principal().require(Scope::Global, Role::Admin)?;
        if !is_token_name(&token.name) || token.grants.is_empty() {
            return Err(OpsError::Invalid(format!(
                "a token needs a `name` of 1–{MAX_NAME_CHARS} characters that is not only \
                 spaces, and at least one grant"
            )));
        }
        let grants = checked_grants(&token.grants)?;
        let (record, secret) = issue_token(self.ops().store(), &token.name, grants).await?;
        Ok(CreatedToken {
            token: Token::from(record),
            secret,
        })
    }

    async fn revoke(&self, id: &str) -> Result<(), OpsError> {
        self.principal().require(Scope::Global, Role::Admin)?;
        if self.principal().token_id.as_deref() == Some(id) {
            return Err(OpsError::Conflict(
                "a token cannot revoke itself; revoke it with another admin token".into(),
            ));
        }
        if !self
            .ops()
            .store()
            .revoke_token(id, Timestamp::now())
            .await?
        {
            return Err(OpsError::NotFound(format!("live token {id:?}")));
        }
        Ok(())
    }
}

impl Tokens for Session {
    async fn list_tokens(&self, query: TokenPageQuery) -> Result<TokenList, OpsError> {
        self.principal().require(Scope::Global, Role::Admin)?;
        let limit = page_limit(query.limit)?;
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let tokens = self
            .ops()
            .store()
            .list_tokens_page(after.as_ref().map(|(at, id)| (*at, id.as_str())), limit + 1)
            .await?;
        let tokens: Vec<Token> = tokens.into_iter().map(Token::from).collect();
        let (items, next_cursor) = cut_page(tokens, limit, encode_cursor);
        Ok(TokenList { items, next_cursor })
    }

    async fn create_token(&self, token: CreateToken) -> Result<CreatedToken, OpsError> {
        let outcome = self.issue(token).await;
        let target = match &outcome {
            Ok(created) => format!("token/{}", created.token.id),
            Err(_) => "token".to_owned(),
        };
        self.audited("token.create", &target, outcome).await
    }

    async fn revoke_token(&self, id: &str) -> Result<(), OpsError> {
        let outcome = self.revoke(id).await;
        self.audited("token.revoke", &format!("token/{id}"), outcome)
            .await
    }
}
