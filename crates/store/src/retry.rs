//! Retries: a new queued run of an ended run's job revision that reruns some of its steps
//! and takes the others' results over from the original.
//!
//! The copied steps keep their recorded state (status, attempt, exit code, outputs,
//! reason, times), which is exactly what a server's engine reads as "already done" when it
//! claims a queued run (the same path that resumes a run after a crash), so they are not
//! run again and their outputs still feed `{{ steps.X.outputs.Y }}` downstream.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::json;
use sqlx::Row;

use crate::convert::{append_event, flag, micros, run_status};
use crate::{RunRecord, Store, StoreError};

/// Step statuses a retry copies; a step in any other state (pending, skipped, running,
/// abandoned) never finished in the original and is pending in the retry.
const COPIED: [&str; 4] = ["succeeded", "failed", "timed_out", "cancelled"];

impl Store {
    /// Creates run `new_run_id`, a retry of the ended run `original_id`, in one
    /// transaction: same namespace, job, revision, parameters and dry-run flag; status
    /// `queued` with no owner (a server claims it); trigger `retry`; `retry_of` set.
    ///
    /// `resume_step` names a notebook step in `rerun` that resumes from the cell where it
    /// failed in the original instead of starting over (the engine reads it as
    /// [`RunRecord::resume_step`]).
    ///
    /// `rerun = None` reruns every step. Otherwise the steps in `rerun` are pending and
    /// every other step's state is copied from the original (when it had ended there), so
    /// the engine does not run it again. Compute `rerun` for "from a step" with
    /// `rota_core::dag::downstream`. A `run.created` event carrying `retry_of` and the
    /// rerun steps is appended, with `by` as the actor.
    ///
    /// Errors: [`StoreError::RunNotFound`] for an unknown original,
    /// [`StoreError::RunNotEnded`] if it is still queued or running (or planned),
    /// [`StoreError::UnknownStep`] if `rerun` names a step the run does not have, and
    /// [`StoreError::DuplicateRun`] if `new_run_id` is taken.
    pub async fn create_retry_run(
        &self,
        original_id: &str,
        new_run_id: &str,
        rerun: Option<&BTreeSet<String>>,
        resume_step: Option<&str>,
        by: &str,
        at: Timestamp,
    ) -> Result<RunRecord, StoreError> {
        let mut tx = self.write().await?;
        let original = sqlx::query(
            "SELECT namespace, job_id, job_revision, status, params, \
             CAST(dry_run AS INTEGER) AS dry_run \
             FROM runs WHERE id = $1",
        )
        .bind(original_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::RunNotFound(original_id.to_owned()))?;
        let status = run_status(&original, "status")?;
        if !status.is_terminal() {
            return Err(StoreError::RunNotEnded {
                run_id: original_id.to_owned(),
                status: status.as_str().to_owned(),
            });
        }
        let steps: Vec<String> =
            sqlx::query_scalar("SELECT step_id FROM step_runs WHERE run_id = $1 ORDER BY position")
                .bind(original_id)
                .fetch_all(&mut *tx)
                .await?;
        if let Some(unknown) = rerun.and_then(|r| r.iter().find(|s| !steps.contains(s))) {
            return Err(StoreError::UnknownStep {
                run_id: original_id.to_owned(),
                step_id: unknown.clone(),
            });
        }
        let namespace: String = original.try_get("namespace")?;
        let job_id: String = original.try_get("job_id")?;
        let job_revision: i64 = original.try_get("job_revision")?;
        let inserted = sqlx::query(
            "INSERT INTO runs (id, namespace, job_id, job_revision, status, params, dry_run, \
             triggered_by, created_at, owner_host, owner_pid, owner_start_token, retry_of, \
             started_by, resume_step) \
             VALUES ($1, $2, $3, $4, 'queued', $5, $6, 'retry', $7, '', 0, '', $8, $9, $10)",
        )
        .bind(new_run_id)
        .bind(&namespace)
        .bind(&job_id)
        .bind(job_revision)
        .bind(original.try_get::<String, _>("params")?)
        .bind(flag(&original, "dry_run")?)
        .bind(micros(at))
        .bind(original_id)
        .bind(by)
        .bind(resume_step)
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation())
            {
                return Err(StoreError::DuplicateRun(new_run_id.to_owned()));
            }
            return Err(e.into());
        }
        // Every step first as pending, then the copied ones overwritten from the original:
        // two statements whatever the number of steps.
        sqlx::query(
            "INSERT INTO step_runs (run_id, step_id, position, status, attempt, outputs) \
             SELECT $1, step_id, position, 'pending', 0, '{}' FROM step_runs WHERE run_id = $2",
        )
        .bind(new_run_id)
        .bind(original_id)
        .execute(&mut *tx)
        .await?;
        let copied: Vec<&String> = match rerun {
            None => Vec::new(),
            Some(rerun) => steps.iter().filter(|s| !rerun.contains(*s)).collect(),
        };
        for step_id in &copied {
            sqlx::query(&format!(
                "UPDATE step_runs SET (status, attempt, exit_code, reason, outputs, \
                 started_at, finished_at) = \
                 (SELECT status, attempt, exit_code, reason, outputs, started_at, finished_at \
                  FROM step_runs WHERE run_id = $1 AND step_id = $2) \
                 WHERE run_id = $3 AND step_id = $2 AND EXISTS \
                 (SELECT 1 FROM step_runs WHERE run_id = $1 AND step_id = $2 \
                  AND status IN ('{}'))",
                COPIED.join("', '")
            ))
            .bind(original_id)
            .bind(step_id.as_str())
            .bind(new_run_id)
            .execute(&mut *tx)
            .await?;
            // Its attempts come along, so the retry shows how the kept result came about
            // (without process groups: nothing of them runs in the retry).
            sqlx::query(&format!(
                "INSERT INTO step_attempts (run_id, step_id, attempt, status, exit_code, \
                 reason, outputs, started_at, finished_at) \
                 SELECT $3, step_id, attempt, status, exit_code, reason, outputs, started_at, \
                 finished_at FROM step_attempts WHERE run_id = $1 AND step_id = $2 AND EXISTS \
                 (SELECT 1 FROM step_runs WHERE run_id = $1 AND step_id = $2 \
                  AND status IN ('{}'))",
                COPIED.join("', '")
            ))
            .bind(original_id)
            .bind(step_id.as_str())
            .bind(new_run_id)
            .execute(&mut *tx)
            .await?;
        }
        let rerun_steps: Vec<&String> = steps.iter().filter(|s| !copied.contains(s)).collect();
        let mut data = json!({
            "namespace": namespace,
            "job_id": job_id,
            "job_revision": job_revision,
            "trigger": "retry",
            "retry_of": original_id,
            "rerun": rerun_steps,
            "by": by,
            "steps": steps,
        });
        if let Some(step) = resume_step {
            data["resume_step"] = json!(step);
        }
        append_event(&mut tx, at, "run.created", new_run_id, None, data).await?;
        tx.commit().await?;
        self.get_run(new_run_id)
            .await?
            .ok_or_else(|| StoreError::RunNotFound(new_run_id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use jiff::Timestamp;
    use rota_core::model::{RunStatus, StepStatus};

    use crate::Backend;
    use crate::testing::{TestDb, both, fresh};
    use crate::{NewJobRevision, NewRun, Owner, RunEvent, Store, StoreError};

    async fn store_with_run(
        backend: Backend,
    ) -> Result<(TestDb, Store), Box<dyn std::error::Error>> {
        let (db, store) = fresh(backend).await?;
        let rev = NewJobRevision::new(
            "default",
            "chain",
            "id: chain\n",
            serde_json::json!({"id": "chain"}),
            Timestamp::now(),
        );
        store.save_job_revision(&rev).await?;
        let run = NewRun {
            id: "r1".to_owned(),
            namespace: "default".to_owned(),
            job_id: "chain".to_owned(),
            job_revision: 1,
            params: serde_json::json!({"n": 3}),
            dry_run: false,
            trigger: "api".to_owned(),
            started_by: None,
            scheduled_at: None,
            created_at: Timestamp::now(),
            owner: Owner {
                host: "h".to_owned(),
                pid: 1,
                start_token: "t".to_owned(),
            },
            steps: vec!["a".to_owned(), "b".to_owned(), "c".to_owned()],
            parent: None,
        };
        store.record(&[RunEvent::RunCreated { run }]).await?;
        Ok((db, store))
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn finished(step: &str, status: StepStatus, outputs: &[(&str, &str)]) -> RunEvent {
        RunEvent::StepFinished {
            run_id: "r1".to_owned(),
            step_id: step.to_owned(),
            attempt: 1,
            status,
            exit_code: Some(if status == StepStatus::Succeeded {
                0
            } else {
                1
            }),
            reason: None,
            outputs: outputs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            at: Timestamp::now(),
        }
    }

    both!(retry_of_an_active_run_is_refused);
    async fn retry_of_an_active_run_is_refused(backend: Backend) -> TestResult {
        let (_db, store) = store_with_run(backend).await?;
        let refused = store
            .create_retry_run("r1", "r2", None, None, "me", Timestamp::now())
            .await;
        assert!(
            matches!(&refused, Err(StoreError::RunNotEnded { status, .. }) if status == "queued"),
            "{refused:?}"
        );
        let unknown = store
            .create_retry_run("nope", "r2", None, None, "me", Timestamp::now())
            .await;
        assert!(
            matches!(unknown, Err(StoreError::RunNotFound(_))),
            "{unknown:?}"
        );
        assert!(store.get_run("r2").await?.is_none());
        Ok(())
    }

    both!(a_resuming_retry_names_its_step_and_others_none);
    async fn a_resuming_retry_names_its_step_and_others_none(backend: Backend) -> TestResult {
        let (_db, store) = store_with_run(backend).await?;
        let now = Timestamp::now();
        store
            .record(&[
                finished("a", StepStatus::Failed, &[]),
                RunEvent::RunFinished {
                    run_id: "r1".to_owned(),
                    status: RunStatus::Failed,
                    reason: None,
                    at: now,
                },
            ])
            .await?;
        let rerun: BTreeSet<String> = ["a".to_owned(), "b".to_owned(), "c".to_owned()].into();
        let resumed = store
            .create_retry_run("r1", "r2", Some(&rerun), Some("a"), "me", now)
            .await?;
        assert_eq!(resumed.resume_step.as_deref(), Some("a"));
        let stored = store.get_run("r2").await?.ok_or("no run r2")?;
        assert_eq!(stored.resume_step.as_deref(), Some("a"));
        let plain = store
            .create_retry_run("r1", "r3", None, None, "me", now)
            .await?;
        assert_eq!(plain.resume_step, None);
        Ok(())
    }

    both!(retry_from_a_step_copies_the_steps_before_it);
    async fn retry_from_a_step_copies_the_steps_before_it(backend: Backend) -> TestResult {
        let (_db, store) = store_with_run(backend).await?;
        let now = Timestamp::now();
        store
            .record(&[
                finished("a", StepStatus::Succeeded, &[("x", "42")]),
                finished("b", StepStatus::Failed, &[]),
                RunEvent::RunFinished {
                    run_id: "r1".to_owned(),
                    status: RunStatus::Failed,
                    reason: None,
                    at: now,
                },
            ])
            .await?;
        let rerun: BTreeSet<String> = ["b".to_owned(), "c".to_owned()].into();
        let bad: BTreeSet<String> = ["zz".to_owned()].into();
        let unknown = store
            .create_retry_run("r1", "r2", Some(&bad), None, "me", now)
            .await;
        assert!(
            matches!(unknown, Err(StoreError::UnknownStep { .. })),
            "{unknown:?}"
        );

        let retry = store
            .create_retry_run("r1", "r2", Some(&rerun), None, "me", now)
            .await?;
        assert_eq!(retry.status, RunStatus::Queued);
        assert_eq!(retry.retry_of.as_deref(), Some("r1"));
        assert_eq!(retry.trigger, "retry");
        assert_eq!(retry.params, serde_json::json!({"n": 3}));
        assert_eq!(retry.owner.pid, 0);
        let states: Vec<(&str, StepStatus, u32)> = retry
            .steps
            .iter()
            .map(|s| (s.step_id.as_str(), s.status, s.attempt))
            .collect();
        assert_eq!(
            states,
            [
                ("a", StepStatus::Succeeded, 1),
                ("b", StepStatus::Pending, 0),
                ("c", StepStatus::Pending, 0)
            ]
        );
        assert_eq!(
            retry.steps[0].outputs.get("x").map(String::as_str),
            Some("42")
        );
        // The kept step's attempts come along; the rerun ones start with none.
        let attempts: Vec<u32> = retry.steps.iter().map(|s| s.attempts).collect();
        assert_eq!(attempts, [1, 0, 0]);
        let kept = store.step_attempts("r2", "a").await?;
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].status, StepStatus::Succeeded);

        let all = store
            .create_retry_run("r1", "r3", None, None, "me", now)
            .await?;
        assert!(all.steps.iter().all(|s| s.status == StepStatus::Pending));
        let again = store
            .create_retry_run("r1", "r3", None, None, "me", now)
            .await;
        assert!(
            matches!(again, Err(StoreError::DuplicateRun(_))),
            "{again:?}"
        );

        let events = store.events_after(0, 100).await?;
        let created = events
            .iter()
            .find(|e| e.kind == "run.created" && e.run_id.as_deref() == Some("r2"))
            .map(|e| e.data.clone());
        assert_eq!(
            created.as_ref().and_then(|d| d.get("retry_of")),
            Some(&serde_json::json!("r1"))
        );
        Ok(())
    }
}
