//! Runs started by `job:` steps: a run's parent (run and step) is recorded with it
//! (`NewRun::parent`, migration 0020), and these queries follow the link both ways.

use sqlx::Row;

use crate::read::run_record;
use crate::{RunRecord, Store, StoreError};

/// One run of a chain of parents, nearest first ([`Store::run_ancestry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    /// The run's id.
    pub run_id: String,
    /// Its namespace.
    pub namespace: String,
    /// Its job.
    pub job_id: String,
    /// What started it (`cli` for a `rota run` in the foreground).
    pub trigger: String,
}

impl Store {
    /// The run `run_id` and the runs above it, nearest first: its parent, its parent's
    /// parent, … at most `limit` runs in all (a link to a missing run ends the chain).
    /// Bounded so that a corrupted chain cannot loop.
    pub async fn run_ancestry(
        &self,
        run_id: &str,
        limit: usize,
    ) -> Result<Vec<Ancestor>, StoreError> {
        let mut chain: Vec<Ancestor> = Vec::new();
        let mut next = Some(run_id.to_owned());
        while let Some(id) = next.take() {
            if chain.len() >= limit || chain.iter().any(|a| a.run_id == id) {
                break;
            }
            let Some(row) = sqlx::query(
                "SELECT id, namespace, job_id, triggered_by, parent_run_id FROM runs WHERE id = $1",
            )
            .bind(&id)
            .fetch_optional(&self.pool)
            .await?
            else {
                break;
            };
            next = row.try_get("parent_run_id")?;
            chain.push(Ancestor {
                run_id: row.try_get("id")?,
                namespace: row.try_get("namespace")?,
                job_id: row.try_get("job_id")?,
                trigger: row.try_get("triggered_by")?,
            });
        }
        Ok(chain)
    }

    /// The latest run started by step `step_id` of run `parent_run_id` that has not ended
    /// (queued or running), without its steps: what a new attempt of that step adopts
    /// instead of starting a second child.
    pub async fn unfinished_child(
        &self,
        parent_run_id: &str,
        step_id: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM runs WHERE parent_run_id = $1 AND parent_step_id = $2 \
             AND status IN ('queued', 'running') ORDER BY id DESC LIMIT 1",
            crate::read::RUN_COLUMNS
        ))
        .bind(parent_run_id)
        .bind(step_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_record).transpose()
    }

    /// The ids of the runs that steps of run `parent_run_id` started, oldest first.
    pub async fn child_runs(&self, parent_run_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM runs WHERE parent_run_id = $1 ORDER BY id")
                .bind(parent_run_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
