//! Plans: made from a job revision and its parameters, applied once into a queued run.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rota_core::model::{Job, Value};
use rota_store::{NewPlan, NewRun, PlanError, PlanRecord};

use crate::{Actor, Ops, OpsError};

impl Ops {
    /// Makes a plan of revision `revision` of `job` in `namespace` with resolved `params`
    /// (and, with `dry_run`, queues its dry run).
    pub async fn create_plan(
        &self,
        actor: &Actor,
        namespace: &str,
        job: &Job,
        revision: i64,
        params: &BTreeMap<String, Value>,
        dry_run: bool,
    ) -> Result<PlanRecord, OpsError> {
        // The plan pins the revision its parameters were resolved against.
        let content = self.store.plan_of(namespace, job, revision, params).await?;
        let dry_run = dry_run.then(|| NewRun::of_plan(&content, true, &actor.name));
        let plan = NewPlan {
            id: rota_store::ids::new_run_id(),
            content,
            approval: job.approval.clone(),
            created_by: actor.name.clone(),
            created_at: Timestamp::now(),
            dry_run,
        };
        Ok(self.store.create_plan(&plan).await?)
    }

    /// Applies the approved plan `id` by `actor`: resolves it again from the job's latest
    /// revision, the plan's parameters and the secrets' current versions, refuses if that
    /// differs from what was approved, else queues its run and marks the plan applied,
    /// once. Returns the queued run's id.
    pub async fn apply_plan(&self, actor: &Actor, id: &str) -> Result<String, PlanError> {
        let plan = self.store.find_plan(id).await?;
        let current = self
            .store
            .resolve_plan(
                &plan.content.namespace,
                &plan.content.job,
                &plan.content.params,
            )
            .await?
            .map(|(content, _)| content);
        let run = NewRun::of_plan(
            current.as_ref().unwrap_or(&plan.content),
            false,
            &actor.name,
        );
        let applied = self
            .store
            .apply_plan(
                &plan.id,
                current.as_ref(),
                &run,
                &actor.name,
                Timestamp::now(),
            )
            .await?;
        Ok(applied.run_id.unwrap_or(run.id))
    }
}
