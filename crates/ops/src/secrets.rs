//! Where the key that seals secrets lives, and loading it for a secret to be set.

use std::path::PathBuf;

use rota_secrets::{SecretKey, SecretsError};

use crate::{Ops, OpsError};

impl Ops {
    /// Enables setting secrets: their key is `ROTA_SECRET_KEY`, else `home/secret.key`,
    /// created (mode 0600) on the first secret set.
    pub fn with_secrets_home(mut self, home: impl Into<PathBuf>) -> Ops {
        self.secrets_home = Some(home.into());
        self.sealing_key = std::sync::Arc::default();
        self
    }

    /// The key that seals secrets, created on first use and then kept (every clone of this
    /// `Ops` shares it): sealing each attempt handed to a worker and opening each claim
    /// reads no file. Without a data directory, or when the configured key is unusable (a
    /// malformed `ROTA_SECRET_KEY` or key file, or a key file others may read),
    /// [`OpsError::Unavailable`]: that is the configuration of the process, which its log
    /// explains, not a failure of the call. A failure is not kept: the next call tries again.
    pub(crate) fn sealing_key(&self) -> Result<SecretKey, OpsError> {
        if let Some(key) = self.sealing_key.get() {
            return Ok(key.clone());
        }
        let key = self.load_sealing_key()?;
        // Two first calls at once may both load it: the same key, whichever is kept.
        Ok(self.sealing_key.get_or_init(|| key).clone())
    }

    fn load_sealing_key(&self) -> Result<SecretKey, OpsError> {
        let home = self.secrets_home.as_deref().ok_or_else(|| {
            OpsError::Unavailable("secrets are not configured on this server".into())
        })?;
        match SecretKey::load_or_create(home) {
            Ok(key) => Ok(key),
            Err(
                error @ (SecretsError::BadEnvKey { .. }
                | SecretsError::BadKeyFile { .. }
                | SecretsError::KeyFileExposed { .. }),
            ) => {
                tracing::error!(%error, "the secrets key is unusable");
                Err(OpsError::Unavailable(
                    "the secrets key is unusable; the log of the rota holding it (a server's, or this command's stderr) says why".into(),
                ))
            }
            Err(error) => Err(secrets_error(error)),
        }
    }
}

/// A failure of `rota-secrets` as an operation's error.
pub(crate) fn secrets_error(error: SecretsError) -> OpsError {
    match error {
        SecretsError::InvalidName(_) => OpsError::InvalidId(error.to_string()),
        SecretsError::Store(e) => OpsError::Store(e),
        other => OpsError::Secrets(other.to_string()),
    }
}
