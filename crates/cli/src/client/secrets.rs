//! The secrets operations of [`rota_ops::Rota`] over `/api/v1`; a value travels only in
//! the body of `PUT …/secrets/{name}`.

use reqwest::Method;
use rota_ops::OpsError;
use rota_ops::records::{PutSecret, SecretList, SecretPageQuery, StoredSecret};
use rota_ops::service::Secrets;

use super::{Remote, seg};

/// `/api/v1/namespaces/{namespace}/secrets`.
fn secrets_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{}/secrets", seg(namespace))
}

impl Secrets for Remote {
    async fn list_secrets(
        &self,
        namespace: &str,
        page: SecretPageQuery,
    ) -> Result<SecretList, OpsError> {
        Ok(self.get_query(&secrets_path(namespace), &page).await?)
    }

    async fn set_secret(
        &self,
        namespace: &str,
        name: &str,
        value: PutSecret,
    ) -> Result<StoredSecret, OpsError> {
        let path = format!("{}/{}", secrets_path(namespace), seg(name));
        Ok(self.send(Method::PUT, &path, &value).await?)
    }

    async fn remove_secret(&self, namespace: &str, name: &str) -> Result<(), OpsError> {
        let path = format!("{}/{}", secrets_path(namespace), seg(name));
        Ok(self.delete(&path).await?)
    }
}
