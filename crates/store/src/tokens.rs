//! API bearer tokens and their roles.
//!
//! The store keeps only each token's SHA-256 (the caller hashes); the token text never
//! reaches the database. A token holds one [`Role`] per namespace, or one role everywhere
//! (a grant whose namespace is `None`, stored as `*`).

use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::convert::{micros, opt_ts, ts};
use crate::{Store, StoreError};

/// The stored namespace of a grant that covers every namespace.
const ALL_NAMESPACES: &str = "*";

/// What a token may do in a namespace; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Only what a `rota worker` does: claim step attempts, renew their leases, send their
    /// lines and report their ends. Weakest, so it grants nothing else; the worker routes
    /// ask for it by name (`Principal::require_worker`).
    Worker,
    /// Read jobs, runs, logs and events.
    Viewer,
    /// Also start, cancel and retry runs, and approve plans.
    Operator,
    /// Also change jobs, schedules and secrets.
    Editor,
    /// Also manage tokens and namespaces and read the audit log.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 5] = [
        Role::Worker,
        Role::Viewer,
        Role::Operator,
        Role::Editor,
        Role::Admin,
    ];

    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// Parses the stored and wire spelling.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// One role of a token, in one namespace or everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The namespace, or `None` for every namespace.
    pub namespace: Option<String>,
    /// The role held there.
    pub role: Role,
}

/// A token to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewToken {
    /// Unique id (not secret; used to list and revoke).
    pub id: String,
    /// A human name, e.g. who or what uses it.
    pub name: String,
    /// SHA-256 (hex) of the token text.
    pub hash: String,
    /// Its roles.
    pub grants: Vec<Grant>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A stored token (without its text, which is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// Unique id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// SHA-256 (hex) of the token text.
    pub hash: String,
    /// Its roles, by namespace (`None`, every namespace, first).
    pub grants: Vec<Grant>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last used, to the minute or so.
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked token authenticates nobody.
    pub revoked_at: Option<Timestamp>,
}

impl Store {
    /// Stores a new token with its grants.
    pub async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO tokens (id, name, hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&token.id)
            .bind(&token.name)
            .bind(&token.hash)
            .bind(micros(token.created_at))
            .execute(&mut *tx)
            .await?;
        for grant in &token.grants {
            sqlx::query("INSERT INTO token_grants (token_id, namespace, role) VALUES ($1, $2, $3)")
                .bind(&token.id)
                .bind(grant.namespace.as_deref().unwrap_or(ALL_NAMESPACES))
                .bind(grant.role.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.token(&token.id).await?.ok_or(StoreError::Corrupt {
            what: "tokens",
            detail: format!("token {} vanished after insert", token.id),
        })
    }

    /// The token with this id, revoked or not.
    pub async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, hash, created_at, last_used_at, revoked_at FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.token_record(&row).await?)),
            None => Ok(None),
        }
    }

    /// The token whose text hashes to `hash`, revoked or not.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, hash, created_at, last_used_at, revoked_at FROM tokens \
             WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.token_record(&row).await?)),
            None => Ok(None),
        }
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.list_tokens_page(None, u32::MAX).await
    }

    /// A page of [`Store::list_tokens`]: up to `limit` tokens created after `after` (a
    /// previous page's last `(created_at, id)`), oldest first. A keyset condition on the
    /// same order, so deep pages cost what the first does.
    pub async fn list_tokens_page(
        &self,
        after: Option<(Timestamp, &str)>,
        limit: u32,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        // Before every stored token: no timestamp is below jiff's minimum.
        let (at, id) = after.map_or((i64::MIN, ""), |(at, id)| (micros(at), id));
        let rows = sqlx::query(
            "SELECT id, name, hash, created_at, last_used_at, revoked_at FROM tokens \
             WHERE (created_at, id) > ($1, $2) ORDER BY created_at, id LIMIT $3",
        )
        .bind(at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut tokens = Vec::with_capacity(rows.len());
        for row in &rows {
            tokens.push(self.token_record(row).await?);
        }
        Ok(tokens)
    }

    /// How many tokens are live (not revoked).
    pub async fn count_live_tokens(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Revokes a token. Returns `false` if no live token has this id.
    pub async fn revoke_token(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(micros(at))
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that a token was used at `at`.
    pub async fn touch_token(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(micros(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn token_record(&self, row: &AnyRow) -> Result<TokenRecord, StoreError> {
        let id: String = row.try_get("id")?;
        let grants = sqlx::query(
            "SELECT namespace, role FROM token_grants WHERE token_id = $1 \
             ORDER BY namespace != '*', namespace",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|g| {
            let namespace: String = g.try_get("namespace")?;
            let role: String = g.try_get("role")?;
            Ok(Grant {
                namespace: (namespace != ALL_NAMESPACES).then_some(namespace),
                role: Role::parse(&role).ok_or(StoreError::Corrupt {
                    what: "role",
                    detail: format!("unknown role {role:?}"),
                })?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
        Ok(TokenRecord {
            id,
            name: row.try_get("name")?,
            hash: row.try_get("hash")?,
            grants,
            created_at: ts(row, "created_at")?,
            last_used_at: opt_ts(row, "last_used_at")?,
            revoked_at: opt_ts(row, "revoked_at")?,
        })
    }
}
