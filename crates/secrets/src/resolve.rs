//! Setting, removing and resolving secrets against the store.
//!
//! Setting and removing are audited (`secret.set`, `secret.delete`) with the caller as
//! actor; the uses by runs are audited by `Store::record_secret_use`, which the caller runs
//! once the run id is known.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rota_store::{NewAuditEntry, NewSecret, SecretUse, Store};

use crate::{SecretKey, SecretValue, SecretsError, open, seal};

/// The secrets a run receives, and where each came from.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The values, by name.
    pub values: BTreeMap<String, SecretValue>,
    /// One entry per name: the stored version, or `None` for the process environment.
    pub uses: Vec<SecretUse>,
}

impl Resolved {
    /// The plaintexts by name, as the engine's run request takes them.
    pub fn exposed(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().to_owned()))
            .collect()
    }
}

/// Checks a secret's name: letters, digits and `_`, not starting with a digit, at most 128
/// characters, so it can be an environment variable name.
pub fn validate_name(name: &str) -> Result<(), SecretsError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(SecretsError::InvalidName(name.to_owned()))
    }
}

/// Stores a new version of `namespace/name` sealed under `key`, audits it as `secret.set`
/// by `actor`, and returns the version.
pub async fn put(
    store: &Store,
    key: &SecretKey,
    namespace: &str,
    name: &str,
    value: &SecretValue,
    actor: &str,
) -> Result<i64, SecretsError> {
    validate_name(name)?;
    let at = Timestamp::now();
    let secret = NewSecret {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        created_at: at,
        created_by: actor.to_owned(),
    };
    let version = store
        .put_secret(&secret, |version| {
            seal(key, namespace, name, version, value.expose().as_bytes())
        })
        .await?;
    store
        .append_audit(&audit(
            at,
            actor,
            "secret.set",
            namespace,
            name,
            Some(version),
        ))
        .await?;
    Ok(version)
}

/// Marks every version of `namespace/name` deleted, audits it as `secret.delete` by
/// `actor`, and returns how many versions that was (0: there was no such secret, and
/// nothing is audited).
pub async fn remove(
    store: &Store,
    namespace: &str,
    name: &str,
    actor: &str,
) -> Result<u64, SecretsError> {
    let at = Timestamp::now();
    let removed = store.delete_secret(namespace, name, at).await?;
    if removed > 0 {
        store
            .append_audit(&audit(at, actor, "secret.delete", namespace, name, None))
            .await?;
    }
    Ok(removed)
}

/// Resolves `names` for a run in `namespace`: the latest stored version of each, opened
/// with `key`, or else the process environment variable of that name.
pub async fn resolve(
    store: &Store,
    key: Option<&SecretKey>,
    namespace: &str,
    names: &[String],
) -> Result<Resolved, SecretsError> {
    resolve_with(store, key, namespace, names, |name| {
        std::env::var(name).ok()
    })
    .await
}

/// Like [`resolve`], with the environment given as a lookup function.
pub async fn resolve_with(
    store: &Store,
    key: Option<&SecretKey>,
    namespace: &str,
    names: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Resolved, SecretsError> {
    let mut resolved = Resolved::default();
    let mut missing = Vec::new();
    for name in names {
        if resolved.values.contains_key(name) {
            continue;
        }
        let (value, version) = match store.latest_secret(namespace, name).await? {
            Some(record) => {
                let key = key.ok_or_else(|| SecretsError::NoKey {
                    namespace: namespace.to_owned(),
                    name: name.clone(),
                })?;
                let value = open(key, namespace, name, record.version, &record.sealed)?;
                (value, Some(record.version))
            }
            None => match env(name) {
                Some(text) => (SecretValue::new(text), None),
                None => {
                    missing.push(name.clone());
                    continue;
                }
            },
        };
        resolved.values.insert(name.clone(), value);
        resolved.uses.push(SecretUse {
            namespace: namespace.to_owned(),
            name: name.clone(),
            version,
        });
    }
    if missing.is_empty() {
        Ok(resolved)
    } else {
        Err(SecretsError::Missing {
            namespace: namespace.to_owned(),
            names: missing,
        })
    }
}

fn audit(
    at: Timestamp,
    actor: &str,
    action: &str,
    namespace: &str,
    name: &str,
    version: Option<i64>,
) -> NewAuditEntry {
    let target = match version {
        Some(version) => format!("{namespace}/{name}@{version}"),
        None => format!("{namespace}/{name}"),
    };
    NewAuditEntry {
        at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target,
        source: None,
        result: "ok".to_owned(),
    }
}
