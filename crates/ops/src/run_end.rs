//! A run's end, observed in one place. Every run this layer executes goes through
//! [`Ops::execute_run`] (`rota run`, `apply`, `retry` and `approve` here through
//! [`Ops::execute_here`], the runs `rota serve` executes, its steps on workers or not, and
//! the child runs of `job:` steps), and a run that waits at its gates ends through
//! [`Ops::cancel_waiting_run`]; both hand the ended run to `run_ended`, so what follows a
//! run's end is written once: today, keeping its report when its job asks
//! (`report: html|md`, docs/reports.md).
//!
//! A run that stops at an `approval:` gate has not ended (it resumes after the decision),
//! and a run that ends without executing (cancelled while queued, refused when prepared,
//! abandoned by a dead process and found by recovery) keeps no report: `rota report`
//! still writes one on demand.

use jiff::Timestamp;
use rota_core::model::KeptReport;
use rota_engine::run::{EngineConfig, EngineError, RunStop, RunSummary, Update};
use rota_store::{NewArtifact, RUN_STEP, artifact_key};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc::UnboundedSender;

use crate::records::Run;
use crate::reports::ReportFormat;
use crate::{Ops, OpsError, RunRequest};

impl Ops {
    /// Executes `request` with the engine to its end (or to its gates), then observes its
    /// end. `claimed`: the run is already recorded and owned by this process (a claimed
    /// queued run, a retry, an applied plan), so the engine records no start. Errors mean
    /// the run could not be recorded, as [`rota_engine::run::execute`] says.
    pub async fn execute_run(
        &self,
        config: &EngineConfig,
        request: RunRequest,
        stop: RunStop,
        updates: Option<UnboundedSender<Update>>,
        claimed: bool,
    ) -> Result<RunSummary, EngineError> {
        let wanted = request.job.report;
        let store = self.store();
        let summary = if claimed {
            rota_engine::run::execute_claimed(store, config, request, stop, updates).await?
        } else {
            rota_engine::run::execute(store, config, request, stop, updates).await?
        };
        self.run_ended(&summary.run_id, wanted).await;
        Ok(summary)
    }

    /// Ends run `run_id` as cancelled by `by` if it waits at its gates (nobody executes it
    /// then), and observes that end; `false` when it does not wait.
    pub async fn cancel_waiting_run(&self, run_id: &str, by: &str) -> Result<bool, OpsError> {
        if !self
            .store()
            .cancel_waiting_run(run_id, by, Timestamp::now())
            .await?
        {
            return Ok(false);
        }
        // Its job as the run recorded it: the revision it runs.
        let wanted = match self.store().get_run(run_id).await? {
            Some(run) => self
                .store()
                .job_revision(&run.namespace, &run.job_id, run.job_revision)
                .await?
                .map(|revision| revision.job())
                .transpose()?
                .map_or(KeptReport::None, |job| job.report),
            None => KeptReport::None,
        };
        self.run_ended(run_id, wanted).await;
        Ok(true)
    }

    /// What follows the end of run `run_id`, whose job says `wanted`: its report kept. A
    /// failure is logged, never the run's: it has ended as it did.
    async fn run_ended(&self, run_id: &str, wanted: KeptReport) {
        let Some(format) = ReportFormat::kept(wanted) else {
            return;
        };
        if let Err(error) = self.keep_report(run_id, format).await {
            tracing::warn!(run = %run_id, %error, "the run's report was not kept");
        }
    }

    /// Renders the report of run `run_id`, if it has ended, as `rota report` would, stores
    /// it in the artifact store as the run's `report.html` / `report.md` (step
    /// [`RUN_STEP`]) and records it with its `run.report` audit entry.
    async fn keep_report(&self, run_id: &str, format: ReportFormat) -> Result<(), OpsError> {
        let artifacts = self.artifacts().ok_or_else(|| {
            OpsError::Unavailable("this process has no artifact store".to_owned())
        })?;
        let record = self
            .store()
            .get_run(run_id)
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("run {run_id:?}")))?;
        // Parked at a gate, or put back for another server: not ended, nothing to keep.
        if !record.status.is_terminal() {
            return Ok(());
        }
        let run = self.run_details(Run::from(record)).await?;
        let (namespace, day) = (
            run.namespace.clone(),
            run.started_at.unwrap_or(run.created_at),
        );
        let report = crate::reports::gather(self, run).await?;
        // A report of many log lines or notebooks is real work: off the async workers.
        let bytes = tokio::task::spawn_blocking(move || {
            crate::reports::render(&report, format).into_bytes()
        })
        .await
        .map_err(|e| OpsError::Internal(format!("rendering the report failed: {e}")))?;
        let path = format.kept_path();
        let kept = NewArtifact {
            path: path.to_owned(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            stored_key: artifact_key(&namespace, day, run_id, RUN_STEP, path),
        };
        artifacts
            .blobs
            .put(&kept.stored_key, bytes)
            .await
            .map_err(|e| OpsError::Unavailable(e.to_string()))?;
        self.store()
            .record_run_report(run_id, &kept, Timestamp::now())
            .await?;
        Ok(())
    }
}
