//! Stored secrets: sealed values, versioned per namespace and name, and the record of which
//! run used which version.
//!
//! The store never sees a plaintext: the caller (rota-secrets) seals each value with an
//! AEAD whose associated data binds namespace, name and version, and hands over the nonce
//! and ciphertext. [`Store::put_secret`] picks the next version inside the write
//! transaction and asks the caller to seal for exactly that version, so two writers never
//! seal for the same number. Listing returns names and versions only, never ciphertexts.
//! Every use by a run is recorded in `run_secrets` and appended to the audit log.

use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::convert::{micros, ts};
use crate::{NewAuditEntry, Store, StoreError};

/// A value sealed by the caller for one (namespace, name, version).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The AEAD nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext with its authentication tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ciphertexts are not secret, but they are noise in logs; show their sizes.
        f.debug_struct("SealedSecret")
            .field("nonce_len", &self.nonce.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// What [`Store::put_secret`] stores besides the sealed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecret {
    /// The namespace.
    pub namespace: String,
    /// The secret's name.
    pub name: String,
    /// When it was set.
    pub created_at: Timestamp,
    /// Who set it (`local`, a token id…).
    pub created_by: String,
}

/// One stored version of a secret, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// The namespace.
    pub namespace: String,
    /// The secret's name.
    pub name: String,
    /// Its version, from 1.
    pub version: i64,
    /// The sealed value.
    pub sealed: SealedSecret,
    /// When this version was set.
    pub created_at: Timestamp,
    /// Who set it.
    pub created_by: String,
}

/// A secret as listed: its name and versions, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    /// The namespace.
    pub namespace: String,
    /// The secret's name.
    pub name: String,
    /// The latest version.
    pub latest_version: i64,
    /// How many versions exist.
    pub versions: i64,
    /// When the latest version was set.
    pub updated_at: Timestamp,
    /// Who set the latest version.
    pub updated_by: String,
    /// When the first version was set.
    pub created_at: Timestamp,
}

/// One secret a run received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    /// The namespace it was looked up in.
    pub namespace: String,
    /// The secret's name.
    pub name: String,
    /// The stored version, or `None` when the value came from the process environment.
    pub version: Option<i64>,
}

impl SecretUse {
    /// `namespace/name@version`, or `namespace/name@env`: the audit target.
    pub fn target(&self) -> String {
        match self.version {
            Some(version) => format!("{}/{}@{version}", self.namespace, self.name),
            None => format!("{}/{}@env", self.namespace, self.name),
        }
    }
}

impl Store {
    /// Stores a new version of a secret: one more than the highest version ever stored
    /// under that name (deleted ones included), sealed by `seal` for exactly that version,
    /// all in one write transaction. Returns the stored version.
    pub async fn put_secret<F, E>(&self, secret: &NewSecret, seal: F) -> Result<i64, E>
    where
        F: FnOnce(i64) -> Result<SealedSecret, E>,
        E: From<StoreError>,
    {
        let mut tx = self.write().await.map_err(E::from)?;
        let max: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM secrets WHERE namespace = $1 AND name = $2",
        )
        .bind(&secret.namespace)
        .bind(&secret.name)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| E::from(e.into()))?;
        let version = max.unwrap_or(0) + 1;
        let sealed = seal(version)?;
        sqlx::query(
            "INSERT INTO secrets (namespace, name, version, nonce, ciphertext, created_at, \
             created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&secret.namespace)
        .bind(&secret.name)
        .bind(version)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .bind(micros(secret.created_at))
        .bind(&secret.created_by)
        .execute(&mut *tx)
        .await
        .map_err(|e| E::from(e.into()))?;
        tx.commit().await.map_err(|e| E::from(e.into()))?;
        Ok(version)
    }

    /// The latest version of a secret that is not deleted.
    pub async fn latest_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<SecretRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT namespace, name, version, nonce, ciphertext, created_at, created_by \
             FROM secrets WHERE namespace = $1 AND name = $2 AND deleted_at IS NULL \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(secret_record).transpose()
    }

    /// The secrets of a namespace that are not deleted, by name: names, versions and
    /// dates, never values.
    pub async fn list_secrets(&self, namespace: &str) -> Result<Vec<SecretInfo>, StoreError> {
        self.list_secrets_page(namespace, None, u32::MAX).await
    }

    /// Marks every version of a secret deleted; returns how many versions that was (0: no
    /// such secret). Version numbers are not reused by a later [`Store::put_secret`].
    pub async fn delete_secret(
        &self,
        namespace: &str,
        name: &str,
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE secrets SET deleted_at = $1 \
             WHERE namespace = $2 AND name = $3 AND deleted_at IS NULL",
        )
        .bind(micros(at))
        .bind(namespace)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records that run `run_id` received these secrets: one `run_secrets` row each, then
    /// one audit entry each (`secret.use`, actor `engine`, target `namespace/name@version`).
    pub async fn record_secret_use(
        &self,
        run_id: &str,
        uses: &[SecretUse],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for secret_use in uses {
            sqlx::query(
                "INSERT INTO run_secrets (run_id, namespace, name, version, used_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, namespace, name) \
                 DO UPDATE SET version = excluded.version, used_at = excluded.used_at",
            )
            .bind(run_id)
            .bind(&secret_use.namespace)
            .bind(&secret_use.name)
            .bind(secret_use.version)
            .bind(micros(at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for secret_use in uses {
            self.append_audit(&NewAuditEntry {
                at,
                actor: "engine".to_owned(),
                action: "secret.use".to_owned(),
                target: secret_use.target(),
                source: Some(format!("run/{run_id}")),
                result: "ok".to_owned(),
            })
            .await?;
        }
        Ok(())
    }

    /// The secrets a run received, by name.
    pub async fn run_secret_uses(&self, run_id: &str) -> Result<Vec<SecretUse>, StoreError> {
        let rows = sqlx::query(
            "SELECT namespace, name, version FROM run_secrets WHERE run_id = $1 \
             ORDER BY namespace, name",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SecretUse {
                    namespace: row.try_get("namespace")?,
                    name: row.try_get("name")?,
                    version: row.try_get("version")?,
                })
            })
            .collect()
    }
}

fn secret_record(row: &AnyRow) -> Result<SecretRecord, StoreError> {
    Ok(SecretRecord {
        namespace: row.try_get("namespace")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        sealed: SealedSecret {
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
        },
        created_at: ts(row, "created_at")?,
        created_by: row.try_get("created_by")?,
    })
}
