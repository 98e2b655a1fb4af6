//! `rota retry RUN --from STEP --resume`: a retry whose notebook step `STEP` continues the
//! original run's executed notebook from the cell that failed (see
//! `rota_notebook::resume`) instead of starting it over.
//!
//! The retry records the step ([`rota_store::RunRecord::resume_step`]); whoever executes
//! the retry reads the original's executed notebook when it prepares the run: the
//! `executed.ipynb` artifact of that step when artifacts were kept, else the file the
//! step's last attempt wrote in the original run's directory.

use rota_core::model::{Job, StepStatus};
use rota_engine::run::NotebookResume;
use rota_store::RunRecord;
use serde_json::Value;

use crate::service::artifacts::Kept;
use crate::{Ops, OpsError};

/// The artifact a notebook step's executed notebook is kept as.
const EXECUTED_NOTEBOOK: &str = "executed.ipynb";

/// The step statuses a notebook can be resumed from: it stopped at a cell.
const RESUMABLE: [StepStatus; 3] = [
    StepStatus::Failed,
    StepStatus::TimedOut,
    StepStatus::Cancelled,
];

/// Which step of which run a retry resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeSource {
    /// The run whose notebook it continues (the retried run).
    pub run: String,
    /// The notebook step.
    pub step: String,
}

impl ResumeSource {
    /// What the stored retry `run` resumes, if anything.
    pub fn of(run: &RunRecord) -> Option<ResumeSource> {
        Some(ResumeSource {
            run: run.retry_of.clone()?,
            step: run.resume_step.clone()?,
        })
    }
}

impl Ops {
    /// Refuses a resume of step `step` of the ended run `original` (of `job`) that cannot
    /// work, before any retry is queued: the step must be a notebook step that stopped at
    /// a cell and whose executed notebook this process can read.
    pub(crate) async fn check_resumable(
        &self,
        original: &RunRecord,
        job: &Job,
        step: &str,
    ) -> Result<(), OpsError> {
        let kind = job
            .steps
            .iter()
            .find(|s| s.id == step)
            .map(|s| s.kind.name());
        if kind != Some("notebook") {
            return Err(OpsError::Invalid(format!(
                "--resume continues a notebook step from its failed cell; step {step:?} of \
                 run {} is {}",
                original.id,
                kind.map_or("not in the job".to_owned(), |k| format!("a {k} step"))
            )));
        }
        let status = original
            .steps
            .iter()
            .find(|s| s.step_id == step)
            .map(|s| s.status);
        if !status.is_some_and(|s| RESUMABLE.contains(&s)) {
            return Err(OpsError::Invalid(format!(
                "step {step:?} of run {} did not stop at a cell ({}): there is nothing to \
                 resume; retry it without --resume",
                original.id,
                status.map_or("never ran", |s| s.as_str())
            )));
        }
        self.executed_notebook(original, step).await.map(|_| ())
    }

    /// What the engine needs to resume `source`: the executed notebook of its step.
    pub(crate) async fn notebook_resume(
        &self,
        source: &ResumeSource,
    ) -> Result<NotebookResume, OpsError> {
        let original = self.run(&source.run).await?;
        let notebook = self.executed_notebook(&original, &source.step).await?;
        Ok(NotebookResume {
            step: source.step.clone(),
            from_run: original.id,
            notebook,
        })
    }

    /// The executed notebook of step `step`'s last attempt in `run`: its kept artifact,
    /// else the file in the run's directory.
    async fn executed_notebook(&self, run: &RunRecord, step: &str) -> Result<Value, OpsError> {
        let bytes = match self.kept_notebook(run, step).await? {
            Some(bytes) => bytes,
            None => self.run_dir_notebook(run, step)?,
        };
        serde_json::from_slice(&bytes).map_err(|error| {
            OpsError::Invalid(format!(
                "the executed notebook of step {step:?} of run {} is not readable: {error}",
                run.id
            ))
        })
    }

    /// The kept `executed.ipynb` artifact's bytes, when this process has an artifact store
    /// that holds them.
    async fn kept_notebook(
        &self,
        run: &RunRecord,
        step: &str,
    ) -> Result<Option<Vec<u8>>, OpsError> {
        if self.artifacts().is_none() {
            return Ok(None);
        }
        match self
            .artifact_bytes(&run.id, step, EXECUTED_NOTEBOOK)
            .await?
        {
            Kept::Bytes(bytes) => Ok(Some(bytes)),
            Kept::NotListed | Kept::BytesMissing => Ok(None),
        }
    }

    fn run_dir_notebook(&self, run: &RunRecord, step: &str) -> Result<Vec<u8>, OpsError> {
        let attempt = run
            .steps
            .iter()
            .find(|s| s.step_id == step)
            .map_or(0, |s| s.attempt);
        let missing = || {
            OpsError::Invalid(format!(
                "step {step:?} of run {} kept no executed notebook here to resume from",
                run.id
            ))
        };
        let path = self
            .run_dir(&run.id)
            .map(|dir| dir.join(format!("{step}.{attempt}.ipynb")))
            .ok_or_else(missing)?;
        std::fs::read(&path).map_err(|_| missing())
    }
}
