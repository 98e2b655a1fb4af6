//! The tokens operations of [`rota_ops::Rota`] over `/api/v1`.

use reqwest::Method;
use rota_ops::OpsError;
use rota_ops::records::{CreateToken, CreatedToken, TokenList, TokenPageQuery};
use rota_ops::service::Tokens;

use super::{Remote, seg};

impl Tokens for Remote {
    async fn list_tokens(&self, page: TokenPageQuery) -> Result<TokenList, OpsError> {
        Ok(self.get_query("/api/v1/tokens", &page).await?)
    }

    async fn create_token(&self, token: CreateToken) -> Result<CreatedToken, OpsError> {
        Ok(self.send(Method::POST, "/api/v1/tokens", &token).await?)
    }

    async fn revoke_token(&self, id: &str) -> Result<(), OpsError> {
        Ok(self.delete(&format!("/api/v1/tokens/{}", seg(id))).await?)
    }
}
