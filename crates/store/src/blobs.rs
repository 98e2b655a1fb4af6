//! Where artifacts' bytes live: an [`object_store`] store, the server's disk
//! (`LocalFileSystem` under `$ROTA_HOME/artifacts`) by default, or an S3-compatible bucket
//! (`s3://bucket/prefix`, configured by the usual `AWS_*` environment: endpoint, region,
//! credentials, `AWS_ALLOW_HTTP`). Keys are `<namespace>/<YYYY-MM-DD>/<run id>/<step>/<path>`
//! ([`artifact_key`]); the rows that name them are in [`crate::ArtifactRecord`].

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as Key;

/// Why the artifact store refused.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The location given is not one Rota can store artifacts in.
    #[error("unsupported artifact store {location:?}: {why}")]
    BadLocation {
        /// The location as given.
        location: String,
        /// Why.
        why: String,
    },
    /// The key is not a valid object path.
    #[error("invalid artifact key {key:?}: {why}")]
    BadKey {
        /// The key.
        key: String,
        /// Why.
        why: String,
    },
    /// No object under this key.
    #[error("artifact {0:?} is not in the artifact store")]
    Missing(String),
    /// The store failed.
    #[error("artifact store {location}: {source}")]
    Store {
        /// The store's location.
        location: String,
        /// What failed.
        source: object_store::Error,
    },
}

/// The artifact store: bytes by key.
#[derive(Clone)]
pub struct ArtifactBlobs {
    store: Arc<dyn ObjectStore>,
    location: String,
}

impl std::fmt::Debug for ArtifactBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactBlobs")
            .field("location", &self.location)
            .finish()
    }
}

/// The key of an artifact: `<namespace>/<YYYY-MM-DD>/<run id>/<step>/<path>`, dated by
/// `day` (UTC) so a bucket lists by day.
pub fn artifact_key(
    namespace: &str,
    day: jiff::Timestamp,
    run_id: &str,
    step_id: &str,
    path: &str,
) -> String {
    let date = day.strftime("%Y-%m-%d");
    format!("{namespace}/{date}/{run_id}/{step_id}/{path}")
}

impl ArtifactBlobs {
    /// Artifacts on this machine's disk, under `dir` (created, mode 0700).
    pub fn local(dir: &Path) -> Result<ArtifactBlobs, BlobError> {
        let location = dir.display().to_string();
        let bad = |why: String| BlobError::BadLocation {
            location: location.clone(),
            why,
        };
        std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| bad(e.to_string()))?;
        }
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| bad(e.to_string()))?;
        Ok(ArtifactBlobs {
            store: Arc::new(store),
            location,
        })
    }

    /// The store at `location`: `s3://bucket[/prefix]` (S3 or an S3-compatible server, from
    /// the `AWS_*` environment), or a directory on this machine.
    pub fn open(location: &str) -> Result<ArtifactBlobs, BlobError> {
        let Some(rest) = location.strip_prefix("s3://") else {
            if location.contains("://") {
                return Err(BlobError::BadLocation {
                    location: location.to_owned(),
                    why: "only s3:// URLs and directories are supported".to_owned(),
                });
            }
            return ArtifactBlobs::local(Path::new(location));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobError::BadLocation {
                location: location.to_owned(),
                why: "no bucket named".to_owned(),
            });
        }
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| BlobError::BadLocation {
                location: location.to_owned(),
                why: e.to_string(),
            })?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        };
        Ok(ArtifactBlobs {
            store,
            location: location.to_owned(),
        })
    }

    /// Where the bytes are (a directory or an `s3://` URL), for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn key(key: &str) -> Result<Key, BlobError> {
        Key::parse(key).map_err(|e| BlobError::BadKey {
            key: key.to_owned(),
            why: e.to_string(),
        })
    }

    fn failed(&self, source: object_store::Error) -> BlobError {
        BlobError::Store {
            location: self.location.clone(),
            source,
        }
    }

    /// Stores `bytes` under `key`, replacing what was there.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let path = Self::key(key)?;
        self.store
            .put(&path, bytes.into())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// The bytes under `key`.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let path = Self::key(key)?;
        let found = match self.store.get(&path).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::Missing(key.to_owned()));
            }
            Err(error) => return Err(self.failed(error)),
        };
        let bytes = found.bytes().await.map_err(|e| self.failed(e))?;
        Ok(bytes.to_vec())
    }

    /// Deletes the objects under `keys`; a key with no object is no error (a prune that
    /// stopped halfway is run again).
    pub async fn delete(&self, keys: &[String]) -> Result<(), BlobError> {
        for key in keys {
            let path = Self::key(key)?;
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(self.failed(error)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_dated_and_names_run_step_and_path() {
        let day: jiff::Timestamp = "2026-03-04T23:59:00Z".parse().expect("instant");
        assert_eq!(
            artifact_key("default", day, "r1", "build", "out/a.txt"),
            "default/2026-03-04/r1/build/out/a.txt"
        );
    }

    #[tokio::test]
    async fn local_bytes_go_in_come_back_and_are_deleted() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let blobs = ArtifactBlobs::open(&dir.path().join("a").display().to_string())?;
        blobs
            .put("ns/2026-01-01/r/s/x/y.bin", vec![0, 1, 2])
            .await?;
        assert_eq!(blobs.get("ns/2026-01-01/r/s/x/y.bin").await?, vec![0, 1, 2]);
        blobs
            .delete(&["ns/2026-01-01/r/s/x/y.bin".to_owned()])
            .await?;
        assert!(matches!(
            blobs.get("ns/2026-01-01/r/s/x/y.bin").await,
            Err(BlobError::Missing(_))
        ));
        // Deleting again is no error.
        blobs
            .delete(&["ns/2026-01-01/r/s/x/y.bin".to_owned()])
            .await?;
        assert!(matches!(
            ArtifactBlobs::open("ftp://host/x"),
            Err(BlobError::BadLocation { .. })
        ));
        Ok(())
    }
}
