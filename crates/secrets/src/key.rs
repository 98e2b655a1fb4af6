//! The key that seals every secret: from `ROTA_SECRET_KEY` or the key file.
//!
//! `ROTA_SECRET_KEY` (base64 of 32 bytes) wins when set, which suits deployments that inject
//! the key. Otherwise the key lives in `$ROTA_HOME/secret.key` as base64 text, mode 0600.
//! It is created from OS randomness the first time a secret is set: the bytes are written to
//! a private temporary file which is then hard-linked into place, so two processes racing
//! to create it agree on one key and nobody ever reads a half-written file. A key file that
//! group or others may read is refused rather than silently used.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::TryRng as _;
use rand::rngs::SysRng;

use crate::SecretsError;

/// The environment variable that may hold the key (base64 of 32 bytes).
pub const KEY_ENV: &str = "ROTA_SECRET_KEY";

/// The key file's name inside `$ROTA_HOME`.
pub const KEY_FILE: &str = "secret.key";

/// Where a key came from, for messages.
#[derive(Clone, PartialEq, Eq)]
enum Origin {
    Env,
    File(PathBuf),
    Generated,
}

/// A 256-bit key. `Debug` shows where it came from, never its bytes.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; 32],
    origin: Origin,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match &self.origin {
            Origin::Env => format!("${KEY_ENV}"),
            Origin::File(path) => path.display().to_string(),
            Origin::Generated => "generated".to_owned(),
        };
        f.debug_struct("SecretKey")
            .field("origin", &origin)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A fresh key from OS randomness (not saved anywhere).
    pub fn generate() -> Result<SecretKey, SecretsError> {
        let mut bytes = [0u8; 32];
        SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| SecretsError::Random(e.to_string()))?;
        Ok(SecretKey {
            bytes,
            origin: Origin::Generated,
        })
    }

    /// Parses the base64 of 32 bytes, as `ROTA_SECRET_KEY` holds it.
    pub fn from_base64(text: &str) -> Result<SecretKey, SecretsError> {
        decode(text)
            .map(|bytes| SecretKey {
                bytes,
                origin: Origin::Env,
            })
            .map_err(|why| SecretsError::BadEnvKey { why })
    }

    /// The key as base64, e.g. to export it into `ROTA_SECRET_KEY` elsewhere.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// Reads a key file, refusing one that group or others may read.
    pub fn from_file(path: &Path) -> Result<SecretKey, SecretsError> {
        let metadata = std::fs::metadata(path).map_err(|source| SecretsError::KeyFileIo {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SecretsError::KeyFileExposed {
                path: path.to_owned(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| SecretsError::KeyFileIo {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        let bytes = decode(&text).map_err(|why| SecretsError::BadKeyFile {
            path: path.to_owned(),
            why,
        })?;
        Ok(SecretKey {
            bytes,
            origin: Origin::File(path.to_owned()),
        })
    }

    /// The key to use with data directory `home`: `ROTA_SECRET_KEY` if set, else the key
    /// file if it exists, else `None` (nothing is created).
    pub fn load(home: &Path) -> Result<Option<SecretKey>, SecretsError> {
        SecretKey::load_from(std::env::var(KEY_ENV).ok().as_deref(), home)
    }

    /// Like [`SecretKey::load`] with the environment variable's value given.
    pub fn load_from(env: Option<&str>, home: &Path) -> Result<Option<SecretKey>, SecretsError> {
        if let Some(text) = env {
            return SecretKey::from_base64(text).map(Some);
        }
        let path = home.join(KEY_FILE);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => SecretKey::from_file(&path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SecretsError::KeyFileIo {
                action: "read",
                path,
                source,
            }),
        }
    }

    /// The key to use with data directory `home`, creating the key file (mode 0600) if
    /// neither `ROTA_SECRET_KEY` nor the file exists.
    pub fn load_or_create(home: &Path) -> Result<SecretKey, SecretsError> {
        SecretKey::load_or_create_from(std::env::var(KEY_ENV).ok().as_deref(), home)
    }

    /// Like [`SecretKey::load_or_create`] with the environment variable's value given.
    pub fn load_or_create_from(env: Option<&str>, home: &Path) -> Result<SecretKey, SecretsError> {
        if let Some(key) = SecretKey::load_from(env, home)? {
            return Ok(key);
        }
        create_key_file(home)
    }

    /// Whether this key was read from `ROTA_SECRET_KEY`.
    pub fn is_from_env(&self) -> bool {
        self.origin == Origin::Env
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

fn decode(text: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64 ({e})"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("{} bytes instead of 32", bytes.len()))
}

fn create_key_file(home: &Path) -> Result<SecretKey, SecretsError> {
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| SecretsError::KeyFileIo {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(home).map_err(io("create the directory of", home))?;
    let path = home.join(KEY_FILE);
    let key = SecretKey::generate()?;
    let tmp = home.join(format!(
        ".{KEY_FILE}.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(format!("{}\n", key.to_base64()).as_bytes())?;
            file.sync_all()
        });
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(SecretsError::KeyFileIo {
            action: "create",
            path: tmp,
            source,
        });
    }
    // A hard link never replaces an existing file: whoever links first wins, and the
    // others read the winner's key.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(SecretKey {
            bytes: key.bytes,
            origin: Origin::File(path),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => SecretKey::from_file(&path),
        Err(source) => Err(SecretsError::KeyFileIo {
            action: "create",
            path,
            source,
        }),
    }
}
