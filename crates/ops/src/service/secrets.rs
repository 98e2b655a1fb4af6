//! The secrets operations of [`crate::Rota`]: list (names, versions and dates, never
//! values), set a new version, remove every version; for editors of the namespace.
//!
//! Values are sealed by `rota-secrets` with the key of [`crate::Ops::with_secrets_home`]
//! before they reach the store, and no answer, audit entry or log line carries one.
//! Setting and removing are audited by `rota-secrets` itself (`secret.set`,
//! `secret.delete`, in the same transaction as the change); a call refused before that is
//! audited here with the error it failed with.

use std::future::Future;

use rota_secrets::SecretValue;

use super::Session;
use super::page::{cut_page, page_limit};
use crate::OpsError;
use crate::auth::{Role, Scope};
use crate::ids::SecretName;
use crate::records::{PutSecret, Secret, SecretList, SecretPageQuery, StoredSecret};
use crate::secrets::secrets_error;

/// The secrets operations.
pub trait Secrets {
    /// The secrets of a namespace by name, a page at a time.
    fn list_secrets(
        &self,
        namespace: &str,
        query: SecretPageQuery,
    ) -> impl Future<Output = Result<SecretList, OpsError>> + Send;

    /// Stores a new version of a secret (sealed); answers its version, never the value.
    fn set_secret(
        &self,
        namespace: &str,
        name: &str,
        value: PutSecret,
    ) -> impl Future<Output = Result<StoredSecret, OpsError>> + Send;

    /// Removes every version of a secret; [`OpsError::NotFound`] when there is none.
    fn remove_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;
}

/// A secret's name, checked in the operation so that a call refused for a bad name is
/// still audited.
fn checked_name(name: &str) -> Result<SecretName, OpsError> {
    SecretName::try_from(name.to_owned()).map_err(OpsError::InvalidId)
}

impl Session {
    /// Audits a call that failed before `rota-secrets` audited it; passes success through.
    async fn audit_failure<T>(
        &self,
        action: &str,
        target: &str,
        outcome: Result<T, OpsError>,
    ) -> Result<T, OpsError> {
        match outcome {
            Ok(value) => Ok(value),
            Err(error) => self.audited(action, target, Err(error)).await,
        }
    }

    async fn put_secret(
        &self,
        namespace: &str,
        name: &str,
        value: PutSecret,
    ) -> Result<StoredSecret, OpsError> {
        self.principal()
            .require(Scope::Namespace(namespace), Role::Editor)?;
        let name = checked_name(name)?;
        let key = self.ops().sealing_key()?;
        let value = SecretValue::new(value.value);
        let version = rota_secrets::put(
            self.ops().store(),
            &key,
            namespace,
            name.as_str(),
            &value,
            &self.principal().actor,
        )
        .await
        .map_err(secrets_error)?;
        Ok(StoredSecret {
            namespace: namespace.to_owned(),
            name: name.to_string(),
            version,
        })
    }

    async fn delete_secret(&self, namespace: &str, name: &str) -> Result<(), OpsError> {
        self.principal()
            .require(Scope::Namespace(namespace), Role::Editor)?;
        let name = checked_name(name)?;
        let removed = rota_secrets::remove(
            self.ops().store(),
            namespace,
            name.as_str(),
            &self.principal().actor,
        )
        .await
        .map_err(secrets_error)?;
        if removed == 0 {
            return Err(OpsError::NotFound(format!("secret {namespace}/{name}")));
        }
        Ok(())
    }
}

impl Secrets for Session {
    async fn list_secrets(
        &self,
        namespace: &str,
        query: SecretPageQuery,
    ) -> Result<SecretList, OpsError> {
        self.principal()
            .require(Scope::Namespace(namespace), Role::Editor)?;
        let limit = page_limit(query.limit)?;
        let after = query
            .cursor
            .map(|c| SecretName::try_from(c).map_err(OpsError::InvalidQuery))
            .transpose()?;
        let secrets = self
            .ops()
            .store()
            .list_secrets_page(namespace, after.as_ref().map(SecretName::as_str), limit + 1)
            .await?;
        let (secrets, next_cursor) = cut_page(secrets, limit, |s| s.name.clone());
        Ok(SecretList {
            items: secrets.into_iter().map(Secret::from).collect(),
            next_cursor,
        })
    }

    async fn set_secret(
        &self,
        namespace: &str,
        name: &str,
        value: PutSecret,
    ) -> Result<StoredSecret, OpsError> {
        let outcome = self.put_secret(namespace, name, value).await;
        self.audit_failure("secret.set", &format!("{namespace}/{name}"), outcome)
            .await
    }

    async fn remove_secret(&self, namespace: &str, name: &str) -> Result<(), OpsError> {
        let outcome = self.delete_secret(namespace, name).await;
        self.audit_failure("secret.delete", &format!("{namespace}/{name}"), outcome)
            .await
    }
}
