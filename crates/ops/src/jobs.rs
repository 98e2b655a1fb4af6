//! Jobs saved without a job directory (`rota jobs put`, `PUT …/jobs/{job}`) and their
//! deletion.

use jiff::Timestamp;
use rota_core::model::Job;
use rota_store::{JobRevision, NewJobRevision, StoreError};

use crate::{Actor, Ops, OpsError};

/// A job saved as a revision.
#[derive(Debug, Clone)]
pub struct SavedJob {
    /// The latest revision after the save.
    pub revision: JobRevision,
    /// True when the source was the latest revision's already: nothing new was saved.
    pub unchanged: bool,
}

impl Ops {
    /// Saves `job` (parsed from `source`) as the next revision of its id in `namespace`.
    /// Like a job saved through the API, and unlike one a server loads from its job
    /// directory, the revision has no source file: a server on this store schedules it
    /// and it can be deleted.
    pub async fn put_job(
        &self,
        namespace: &str,
        job: &Job,
        source: &str,
    ) -> Result<SavedJob, OpsError> {
        let previous = self.store.latest_job_revision(namespace, &job.id).await?;
        let revision = NewJobRevision::of_job(namespace, job, source, Timestamp::now());
        let saved = self.store.save_job_revision(&revision).await?;
        let unchanged = previous.is_some_and(|p| p.revision == saved.revision);
        Ok(SavedJob {
            revision: saved,
            unchanged,
        })
    }

    /// Deletes job `job` of `namespace` by `actor`; a job defined by a file in a server's
    /// job directory is deleted by removing the file, not here.
    pub async fn delete_job(
        &self,
        actor: &Actor,
        namespace: &str,
        job: &str,
    ) -> Result<(), OpsError> {
        let deleted = self
            .store
            .delete_job(namespace, job, &actor.name, Timestamp::now())
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(StoreError::JobNotFound { .. }) => {
                Err(OpsError::NotFound(format!("job {namespace}/{job}")))
            }
            Err(StoreError::JobDefinedByFile { path, .. }) => Err(OpsError::Conflict(format!(
                "job {namespace}/{job} is defined by file {path}; remove the file"
            ))),
            Err(other) => Err(other.into()),
        }
    }
}
