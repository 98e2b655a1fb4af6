//! Who may do what: tokens, roles and the checks every operation makes.
//!
//! A token is `rota_` followed by 64 hex digits of randomness; the store keeps only its
//! SHA-256 ([`Ops::authenticate`] finds the [`Principal`] a token's text names). Every
//! operation of [`crate::Rota`] states what it needs with [`Principal::require`]: a [`Role`]
//! in one namespace, or in every namespace for listings that span them. Roles include the
//! weaker ones (`admin` ⊃ `editor` ⊃ `operator` ⊃ `viewer`), and a grant without a namespace
//! applies to all of them. The CLI's local mode acts as [`Principal::local`], an admin
//! everywhere, so local and remote mode differ only in who asks, never in the rule.

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use rand::Rng as _;
pub use rota_store::{Grant, Role};
use rota_store::{NewToken, Store, StoreError, TokenRecord};
use sha2::{Digest, Sha256};

use crate::{Actor, Ops, OpsError};

/// The file in `$ROTA_HOME` the first admin token is written to.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The prefix of every token's text, so a leaked token is recognisable (e.g. by scanners).
const TOKEN_PREFIX: &str = "rota_";

/// How stale `last_used_at` may get before a request updates it; writing on every read
/// would make each API call a write transaction.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// Where a role is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// In one namespace.
    Namespace(&'a str),
    /// In every namespace (listings across namespaces, tokens, the audit log).
    Global,
}

/// Who is calling, and what they may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// How the audit log names them: `token:<id>:<name>`, `local` for a server without
    /// authentication, `local:<user>` for the CLI's local mode.
    pub actor: String,
    /// The id of the token they authenticated with (`None` without auth).
    pub token_id: Option<String>,
    /// Their grants.
    pub grants: Vec<Grant>,
}

impl Principal {
    /// The caller as the audit log names them, calling from `source` (a client address).
    pub fn actor(&self, source: Option<String>) -> Actor {
        Actor {
            name: self.actor.clone(),
            source,
        }
    }

    /// An admin everywhere, named `name` in the audit log: a server without
    /// authentication (`local`), or the user of the CLI's local mode.
    pub fn admin(name: impl Into<String>) -> Principal {
        Principal {
            actor: name.into(),
            token_id: None,
            grants: vec![Grant {
                namespace: None,
                role: Role::Admin,
            }],
        }
    }

    /// The user running this process, as the CLI's local mode acts: an admin everywhere,
    /// named `local:<user>` (whoever can open the store file can do anything to it anyway).
    pub fn local() -> Principal {
        Principal::admin(Actor::local().name)
    }

    /// The strongest role held in `scope`.
    pub fn role_in(&self, scope: Scope<'_>) -> Option<Role> {
        self.grants
            .iter()
            .filter(|g| match (&g.namespace, scope) {
                (None, _) => true,
                (Some(ns), Scope::Namespace(wanted)) => ns == wanted,
                (Some(_), Scope::Global) => false,
            })
            .map(|g| g.role)
            .max()
    }

    /// Whether the caller holds `role` (or a stronger one) in `scope`.
    pub fn can(&self, scope: Scope<'_>, role: Role) -> bool {
        self.role_in(scope).is_some_and(|held| held >= role)
    }

    /// `Ok` if the caller holds `role` in `scope`, else [`OpsError::Forbidden`].
    pub fn require(&self, scope: Scope<'_>, role: Role) -> Result<(), OpsError> {
        if self.can(scope, role) {
            return Ok(());
        }
        Err(OpsError::Forbidden {
            needed: role,
            scope: match scope {
                Scope::Namespace(ns) => format!("in namespace {ns:?}"),
                Scope::Global => "in every namespace".to_owned(),
            },
        })
    }
}

impl Principal {
    /// `Ok` if the caller may act as a worker: a `worker` token (its grant in every
    /// namespace), or an admin everywhere (a server without authentication); else
    /// [`OpsError::Forbidden`]. Not a rank among the others: a viewer is no worker.
    pub fn require_worker(&self) -> Result<(), OpsError> {
        let may = self
            .grants
            .iter()
            .any(|g| g.namespace.is_none() && matches!(g.role, Role::Worker | Role::Admin));
        if may {
            return Ok(());
        }
        Err(OpsError::Forbidden {
            needed: Role::Worker,
            scope: "in every namespace".to_owned(),
        })
    }

    /// `Ok` if the caller holds `role` somewhere (any namespace), else
    /// [`OpsError::Forbidden`]; for listings the operation then filters to what the caller
    /// may see.
    pub fn require_somewhere(&self, role: Role) -> Result<(), OpsError> {
        if self.grants.iter().any(|g| g.role >= role) {
            return Ok(());
        }
        Err(OpsError::Forbidden {
            needed: role,
            scope: "in some namespace".to_owned(),
        })
    }
}

impl Ops {
    /// The caller a token's text names, if it is a live token; marks it used (at most
    /// once a minute: writing on every call would make each read a write transaction).
    pub async fn authenticate(&self, token: &str) -> Result<Principal, OpsError> {
        let record = self
            .store()
            .token_by_hash(&hash_token(token))
            .await?
            .filter(|t| t.revoked_at.is_none())
            .ok_or_else(|| OpsError::Unauthorized("the token is unknown or revoked".into()))?;
        let now = Timestamp::now();
        if record
            .last_used_at
            .is_none_or(|last| now.duration_since(last) > TOUCH_EVERY)
        {
            self.store().touch_token(&record.id, now).await?;
        }
        Ok(Principal {
            actor: format!("token:{}:{}", record.id, record.name),
            token_id: Some(record.id),
            grants: record.grants,
        })
    }
}

/// The SHA-256 (hex) of a token's text: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token with `grants` and returns it with its text, which exists only here:
/// show it once.
pub async fn issue_token(
    store: &Store,
    name: &str,
    grants: Vec<Grant>,
) -> Result<(TokenRecord, String), StoreError> {
    // The thread-local generator is not `Send`: use it before the first await.
    let (secret, id) = {
        let mut rng = rand::rng();
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let mut id = [0u8; 8];
        rng.fill_bytes(&mut id);
        (secret, id)
    };
    let text = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let token = NewToken {
        id: hex::encode(id),
        name: name.to_owned(),
        hash: hash_token(&text),
        grants,
        created_at: Timestamp::now(),
    };
    Ok((store.create_token(&token).await?, text))
}

/// Why [`ensure_admin_token`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminTokenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token file could not be written.
    #[error("cannot write the admin token to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// On first start (no live token exists), creates a global admin token, writes it to
/// `home/admin.token` (mode 0600) and returns it, so the server can tell the operator where
/// it is. Returns `None` once any token exists: the text is never available again.
pub async fn ensure_admin_token(
    store: &Store,
    home: &Path,
) -> Result<Option<String>, AdminTokenError> {
    if store.count_live_tokens().await? > 0 {
        return Ok(None);
    }
    let path = home.join(ADMIN_TOKEN_FILE);
    let grants = vec![Grant {
        namespace: None,
        role: Role::Admin,
    }];
    let (record, text) = issue_token(store, "admin", grants).await?;
    if let Err(source) = write_private(&path, &text) {
        // Nobody can read this token: revoke it, so the next start tries again.
        store.revoke_token(&record.id, Timestamp::now()).await?;
        return Err(AdminTokenError::Write { path, source });
    }
    Ok(Some(text))
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    // `mode` applies only when the file is created; a leftover file keeps its mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(file, "{text}")?;
    file.sync_all()
}
