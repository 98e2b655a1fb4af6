//! The engine's [`ChildRuns`] port: the child run of a `job:` step, executed in this
//! process (`rota run` and `rota serve` alike, so a server's worker slots can never all be
//! held by parents waiting for children that have no slot), prepared through the one
//! [`Ops::prepare_run`] path (its secrets resolved and their use recorded), and stopped
//! with its parent step.
//!
//! Before anything starts: an unfinished child of the same parent step (an attempt that a
//! crashed server's recovery put back) is adopted and waited for instead of starting a
//! second one; and the chain of parents is read from the store, so that a job already
//! running among the ancestors (jobs can change after their calls were checked at load
//! time) or a chain deeper than [`MAX_DEPTH`] fails the step with nothing started.

use std::sync::Arc;
use std::time::Duration;

use rota_core::model::RunStatus;
use rota_engine::children::{ChildEnd, ChildRequest, ChildRun, ChildRuns, MAX_DEPTH};
use rota_engine::run::{RunStop, StopReason};
use rota_store::{RunParent, RunRecord, Store};

use crate::{Ops, OpsError, RunSpec};

/// How often an adopted child's end, and a child's cancel requests, are read from the store.
const POLL: Duration = Duration::from_millis(500);

/// The trigger of a child run of a run that a server executes.
pub const CHILD_TRIGGER: &str = "job";

/// Runs the children of `job:` steps in this process (see the module's docs).
#[derive(Debug, Clone)]
pub struct Children {
    ops: Ops,
}

impl Ops {
    /// The engine's runner of child runs, over this application layer (which must execute
    /// runs here: [`Ops::runs_here`]).
    pub fn children(&self) -> Arc<dyn ChildRuns> {
        Arc::new(Children { ops: self.clone() })
    }
}

impl ChildRuns for Children {
    fn start_or_adopt<'a>(
        &'a self,
        request: ChildRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ChildRun, String>> + Send + 'a>>
    {
        Box::pin(async move { self.start(request).await.map_err(|e| e.to_string()) })
    }
}

/// Why a child run was not started.
#[derive(Debug, thiserror::Error)]
enum ChildError {
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error(transparent)]
    Store(#[from] rota_store::StoreError),
    #[error(
        "job call cycle at run time: {path}; run {run} already runs job `{job}`, so no child \
         run was started"
    )]
    Cycle {
        path: String,
        run: String,
        job: String,
    },
    #[error(
        "too deep: this run already has {depth} runs in its chain of parents (at most \
         {MAX_DEPTH}), so no child run was started"
    )]
    TooDeep { depth: usize },
    #[error("no job `{job}` in namespace `{namespace}`: no child run was started")]
    UnknownJob { job: String, namespace: String },
}

impl Children {
    async fn start(&self, request: ChildRequest) -> Result<ChildRun, ChildError> {
        let store = self.ops.store().clone();
        let parent = &request.parent;
        if let Some(run) = store
            .unfinished_child(&parent.run_id, &parent.step_id)
            .await?
        {
            return Ok(adopt(self.ops.clone(), run));
        }
        let chain = store.run_ancestry(&parent.run_id, MAX_DEPTH + 1).await?;
        if let Some(at) = chain
            .iter()
            .position(|a| a.job_id == request.job_id && a.namespace == parent.namespace)
        {
            // Oldest first: `a → b → a`.
            let mut path: Vec<&str> = chain[..=at]
                .iter()
                .rev()
                .map(|a| a.job_id.as_str())
                .collect();
            path.push(&request.job_id);
            return Err(ChildError::Cycle {
                path: path.join(" → "),
                run: chain[at].run_id.clone(),
                job: request.job_id.clone(),
            });
        }
        if chain.len() >= MAX_DEPTH {
            return Err(ChildError::TooDeep { depth: chain.len() });
        }
        let revision = store
            .latest_job_revision(&parent.namespace, &request.job_id)
            .await?
            .ok_or_else(|| ChildError::UnknownJob {
                job: request.job_id.clone(),
                namespace: parent.namespace.clone(),
            })?;
        let job = revision.job().map_err(OpsError::from)?;
        // A job with `approval:` rules runs only through a plan, also when another job
        // calls it.
        crate::approval_gate(&job, &parent.namespace, crate::Gated::Start)?;
        let params = crate::resolve_params(&job, request.params.clone())?;
        // The child of a `rota run` is a foreground run too: no server ever resumes it.
        let foreground = chain
            .first()
            .is_some_and(|a| a.trigger == rota_store::FOREGROUND_TRIGGER);
        // Whoever started the parent started the child: an `approval:` gate in the child
        // refuses them as it would in the parent.
        let started_by = store
            .get_run(&parent.run_id)
            .await?
            .and_then(|run| run.started_by);
        let spec = RunSpec {
            run_id: rota_store::ids::new_run_id(),
            job,
            job_revision: revision.revision,
            namespace: parent.namespace.clone(),
            params,
            dry_run: request.dry_run,
            trigger: if foreground {
                rota_store::FOREGROUND_TRIGGER.to_owned()
            } else {
                CHILD_TRIGGER.to_owned()
            },
            started_by,
            scheduled_at: None,
            source_path: revision.source_path.clone(),
            prior: Vec::new(),
            env_values: std::collections::BTreeMap::new(),
            resume: None,
            confirmed_by: None,
        };
        let mut prepared = self.ops.prepare_run(spec).await?;
        prepared.parent = Some(RunParent {
            run_id: parent.run_id.clone(),
            step_id: parent.step_id.clone(),
        });
        let run_id = prepared.run_id.clone();
        let stop = RunStop::new();
        let config = request.config;
        let (done, ended) = tokio::sync::oneshot::channel();
        {
            let (ops, stop, run_id) = (self.ops.clone(), stop.clone(), run_id.clone());
            tokio::spawn(async move {
                // `rota cancel` of the child itself: its own flag in the store.
                let watcher = tokio::spawn(crate::foreground::stop_on_cancel_request(
                    ops.store().clone(),
                    run_id.clone(),
                    stop.clone(),
                ));
                let summary = ops.execute_run(&config, prepared, stop, None, false).await;
                watcher.abort();
                let end = match summary {
                    Ok(summary) => ChildEnd {
                        run_id,
                        status: summary.status,
                        reason: summary.reason,
                        steps: summary
                            .steps
                            .into_iter()
                            .map(|s| (s.id, s.outputs))
                            .collect(),
                    },
                    Err(error) => ChildEnd {
                        run_id,
                        status: RunStatus::Failed,
                        reason: Some(format!("the child run could not be recorded: {error}")),
                        steps: Vec::new(),
                    },
                };
                let _ = done.send(end);
            });
        }
        let (lost, waited) = (run_id.clone(), store.clone());
        let (cancel_ops, cancel_id) = (self.ops.clone(), run_id.clone());
        Ok(ChildRun {
            run_id,
            adopted: false,
            end: Box::pin(async move {
                let end = ended.await.unwrap_or_else(|_| ChildEnd {
                    run_id: lost,
                    status: RunStatus::Failed,
                    reason: Some("the child run's task ended without a result".to_owned()),
                    steps: Vec::new(),
                });
                // A child stopped at an `approval:` gate has not ended: the parent waits
                // for whoever continues it after the decision.
                if end.status == RunStatus::AwaitingApproval {
                    return wait_in_store(waited, end.run_id).await;
                }
                end
            }),
            stop: Box::new(move |force| {
                let reason = StopReason::Cancelled("its parent run".to_owned());
                if force {
                    stop.force(reason);
                } else {
                    stop.stop(reason);
                }
                // A child waiting at its gate is executed by nobody: it ends in the store.
                let (ops, run_id) = (cancel_ops.clone(), cancel_id.clone());
                tokio::spawn(async move {
                    let _ = ops.cancel_waiting_run(&run_id, "its parent run").await;
                });
            }),
        })
    }
}

/// Waits for a child run another attempt started (executed by whoever owns it now: a
/// server that resumed it), reading the store; a stop asks its owner to cancel it there.
fn adopt(ops: Ops, run: RunRecord) -> ChildRun {
    let run_id = run.id.clone();
    let cancel = {
        let (ops, run_id) = (ops.clone(), run_id.clone());
        move |force: bool| {
            let (ops, run_id) = (ops.clone(), run_id.clone());
            tokio::spawn(async move {
                // One waiting at an `approval:` gate ends in the store; a running one is
                // asked to stop (a second request forces it, as a second `rota cancel` does).
                let _ = ops.cancel_waiting_run(&run_id, "its parent run").await;
                let store = ops.store();
                let _ = store.request_cancel(&run_id, "its parent run").await;
                if force {
                    let _ = store.request_cancel(&run_id, "its parent run").await;
                }
            });
        }
    };
    ChildRun {
        run_id: run_id.clone(),
        adopted: true,
        end: Box::pin(wait_in_store(ops.store().clone(), run_id)),
        stop: Box::new(cancel),
    }
}

/// The end of child run `run_id`, executed elsewhere (a server that resumed it, or whoever
/// continues it after an `approval:` decision), read from the store until it has ended.
async fn wait_in_store(store: Store, run_id: String) -> ChildEnd {
    loop {
        match store.get_run(&run_id).await {
            Ok(Some(run)) if run.status.is_terminal() => {
                return ChildEnd {
                    run_id,
                    status: run.status,
                    reason: run.reason,
                    steps: run
                        .steps
                        .into_iter()
                        .map(|s| (s.step_id, s.outputs))
                        .collect(),
                };
            }
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => {
                return ChildEnd {
                    run_id,
                    status: RunStatus::Failed,
                    reason: Some("the child run is gone from the store".to_owned()),
                    steps: Vec::new(),
                };
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
