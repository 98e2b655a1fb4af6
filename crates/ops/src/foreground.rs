//! Runs this process executes itself, in the foreground (`rota run`, and `rota retry` and
//! `rota apply` with the local store): saving the job file or command being run, claiming a
//! queued run, executing it with live updates, Ctrl-C and `rota cancel`, and delivering its
//! notifications before the process exits. The CLI only prints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::{Job, RunStatus, Value};
pub use rota_engine::process::Stream;
pub use rota_engine::run::Update;
use rota_engine::run::{EngineConfig, RunStop, StopReason};
use rota_store::{CancelState, NewJobRevision, RunEvent, Store};
use tokio::sync::mpsc::UnboundedSender;

use crate::records::{Gate, Run};
use crate::{Ops, OpsError, RunRequest, RunSpec};

/// How long a foreground run keeps trying to deliver its notifications after it ended.
const NOTIFY_BUDGET: Duration = Duration::from_secs(15);

/// Time between SIGTERM and SIGKILL when a step of a foreground run is stopped.
const GRACE: Duration = Duration::from_secs(5);

/// Per-step cap on stored log bytes of a foreground run.
const LOG_CAP_BYTES: usize = 10 * 1024 * 1024;

/// A job to run here, as loaded: from a job file, an ad-hoc command, or the store.
#[derive(Debug, Clone)]
pub struct LoadedJob {
    /// The job.
    pub job: Job,
    /// Its source text (the file, or the command line).
    pub source: String,
    /// The job file it came from, if any (absolute).
    pub source_path: Option<String>,
    /// The namespace it runs in.
    pub namespace: String,
}

/// A run executed here, ended.
pub struct Executed {
    /// The run as recorded at its end.
    pub run: Run,
    /// Its status.
    pub status: RunStatus,
    notifications: Option<Notifications>,
    store: Store,
}

impl Executed {
    /// Delivers what the run's end queued, within a budget; says on stderr what could not
    /// be delivered (it stays queued for `rota serve`).
    pub async fn deliver_notifications(self) {
        if let Some(notifications) = self.notifications {
            notifications.finish(&self.store, &self.run.id).await;
        }
    }
}

impl Ops {
    /// The latest stored revision of job `job_id` in `namespace`, to run here.
    pub async fn stored_job(&self, namespace: &str, job_id: &str) -> Result<LoadedJob, OpsError> {
        let revision = self
            .store()
            .latest_job_revision(namespace, job_id)
            .await?
            .ok_or_else(|| {
                OpsError::NotFound(format!("job {job_id:?} in namespace {namespace:?}"))
            })?;
        // The normalized definition, as a server runs it: the text of a revision saved
        // through the API or `rota jobs put` has no file name to tell its format by.
        let job = revision.job()?;
        Ok(LoadedJob {
            job,
            source: revision.source,
            source_path: revision.source_path,
            namespace: namespace.to_owned(),
        })
    }

    /// Saves a loaded job as a revision (idempotent on its source) and returns the
    /// revision's number: the run or plan made of it records that revision.
    pub async fn save_loaded(&self, loaded: &LoadedJob) -> Result<i64, OpsError> {
        let mut revision = NewJobRevision::of_job(
            loaded.namespace.clone(),
            &loaded.job,
            loaded.source.clone(),
            Timestamp::now(),
        );
        revision.source_path = loaded.source_path.clone();
        Ok(self.store().save_job_revision(&revision).await?.revision)
    }

    /// The run `rota run` starts here: a fresh id, the foreground trigger, `revision` of
    /// the loaded job.
    pub fn foreground_spec(
        loaded: LoadedJob,
        revision: i64,
        params: BTreeMap<String, Value>,
        dry_run: bool,
    ) -> RunSpec {
        RunSpec {
            run_id: rota_store::ids::new_run_id(),
            job: loaded.job,
            job_revision: revision,
            namespace: loaded.namespace,
            params,
            dry_run,
            trigger: rota_store::FOREGROUND_TRIGGER.to_owned(),
            started_by: Some(crate::Actor::local().name),
            scheduled_at: None,
            source_path: loaded.source_path,
            prior: Vec::new(),
            env_values: BTreeMap::new(),
            resume: None,
            confirmed_by: None,
        }
    }

    /// Takes the queued run `run_id` for this process and prepares it: `Ok(None)` when a
    /// `rota serve` on this store took it first. A run claimed but not runnable (its
    /// secrets gone, its definition unreadable) ends here, failed, with the reason.
    pub async fn claim_here(&self, run_id: &str) -> Result<Option<RunRequest>, OpsError> {
        let owner = rota_engine::owner::this_process();
        if !self
            .store()
            .claim_queued_run(run_id, &owner, Timestamp::now(), None)
            .await?
        {
            return Ok(None);
        }
        let prepared = match self.claimed_run(run_id).await {
            Ok(spec) => self.prepare_run(spec).await,
            Err(error) => Err(error),
        };
        match prepared {
            Ok(request) => Ok(Some(request)),
            Err(error) => {
                self.store()
                    .record(&[RunEvent::RunFinished {
                        run_id: run_id.to_owned(),
                        status: RunStatus::Failed,
                        reason: Some(error.to_string()),
                        at: Timestamp::now(),
                    }])
                    .await?;
                Err(error)
            }
        }
    }

    /// Executes `request` in this process, sending live updates to `updates`: the
    /// guardian watches its processes, Ctrl-C / SIGTERM / SIGHUP and `rota cancel` stop it
    /// (a second one forces its cleanup steps to stop too), and its notifications are
    /// delivered while it runs. `claimed`: the run is already recorded and owned by this
    /// process (a retry, an applied plan), so the engine records no start.
    pub async fn execute_here(
        &self,
        request: RunRequest,
        claimed: bool,
        updates: UnboundedSender<Update>,
    ) -> Result<Executed, OpsError> {
        let artifacts_dir = self.artifacts_dir().ok_or(OpsError::NotARunner)?.to_owned();
        rota_engine::sandbox::announce();
        let config = EngineConfig {
            artifacts_dir,
            grace: GRACE,
            log_cap_bytes: LOG_CAP_BYTES,
            guardian: crate::host::spawn_guardian(),
            durable_step_starts: false,
            remote: None,
            children: Some(self.children()),
            artifacts: self.artifacts().cloned(),
        };
        let store = self.store().clone();
        let stop = RunStop::new();
        let run_id = request.run_id.clone();
        let watchers = [
            tokio::spawn(stop_on_signals(stop.clone())),
            tokio::spawn(stop_on_cancel_request(
                store.clone(),
                run_id.clone(),
                stop.clone(),
            )),
        ];
        let notifications = Notifications::start(&store, &request);
        let summary = self
            .execute_run(&config, request, stop, Some(updates), claimed)
            .await;
        for watcher in watchers {
            watcher.abort();
        }
        let summary = summary?;
        let mut run = Run::from(self.store().find_run(&summary.run_id).await?);
        run.gates = self
            .store()
            .run_gates(&run.id)
            .await?
            .into_iter()
            .map(Gate::from)
            .collect();
        Ok(Executed {
            run,
            status: summary.status,
            notifications,
            store,
        })
    }
}

/// Ctrl-C, SIGTERM and SIGHUP cancel the run cleanly (the steps get SIGTERM, then SIGKILL)
/// and let its `when: always` steps clean up; a second signal stops those too.
async fn stop_on_signals(stop: RunStop) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let mut received = 0;
    loop {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        };
        received += 1;
        if received == 1 {
            eprintln!(
                "rota: {name} received, cancelling the run (`when: always` steps still run; signal again to stop them)"
            );
            stop.stop(StopReason::Cancelled(name.to_owned()));
        } else {
            eprintln!("rota: {name} received again, stopping the cleanup steps too");
            stop.force(StopReason::Cancelled(name.to_owned()));
            return;
        }
    }
}

/// `rota cancel` from another terminal sets a flag in the store (and signals this process
/// when it can); polling the flag covers the cases where no signal arrives. A second
/// `rota cancel` forces the stop, as a second Ctrl-C does.
pub(crate) async fn stop_on_cancel_request(store: Store, run_id: String, stop: RunStop) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let reason = || StopReason::Cancelled("rota cancel".to_owned());
        match store.cancel_state(&run_id).await {
            Ok(CancelState::Requested) => stop.stop(reason()),
            Ok(CancelState::Forced) => {
                stop.force(reason());
                return;
            }
            Ok(CancelState::None) | Err(_) => {}
        }
    }
}

/// Delivery of the run's notifications by the process that runs it: while the run goes on
/// (for `duration_exceeded`), then bounded by [`NOTIFY_BUDGET`] once it ended. What is
/// still undelivered stays queued in the store for the next `rota serve` on this home.
struct Notifications {
    deliverer: rota_engine::notify::Deliverer,
    done: tokio::sync::oneshot::Sender<()>,
    during: tokio::task::JoinHandle<()>,
}

impl Notifications {
    fn start(store: &Store, request: &RunRequest) -> Option<Notifications> {
        if request.job.notify.is_empty() || request.dry_run {
            return None;
        }
        // The run's own secret values: the templates can only name the job's secrets.
        let known = request.secrets.clone();
        let source: rota_engine::notify::SecretSource =
            Arc::new(move |_namespace: String, names: Vec<String>| {
                let found: Result<BTreeMap<String, String>, String> = names
                    .iter()
                    .map(|name| match known.get(name) {
                        Some(value) => Ok((name.clone(), value.clone())),
                        None => Err(format!("secret {name} is not set")),
                    })
                    .collect();
                Box::pin(async move { found })
            });
        let deliverer = rota_engine::notify::Deliverer::new(source);
        let (done, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (store, run_id, during_deliverer) =
            (store.clone(), request.run_id.clone(), deliverer.clone());
        let during = tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = &mut stopped => break,
                }
                if let Err(error) = during_deliverer.deliver_due(&store, Some(&run_id)).await {
                    eprintln!("rota: warning: cannot deliver notifications: {error}");
                }
            }
        });
        Some(Notifications {
            deliverer,
            done,
            during,
        })
    }

    /// Delivers what the run's end queued; says on stderr what could not be delivered.
    async fn finish(self, store: &Store, run_id: &str) {
        let _ = self.done.send(());
        let _ = self.during.await;
        let delivered = tokio::select! {
            delivered = self.deliverer.deliver_run(store, run_id, NOTIFY_BUDGET) => delivered,
            // A Ctrl-C while waiting for an endpoint leaves the rest to `rota serve`.
            _ = tokio::signal::ctrl_c() => store
                .count_pending_notifications(Some(run_id))
                .await
                .map(|pending| (Default::default(), pending)),
        };
        match delivered {
            Ok((_, 0)) => {}
            Ok((_, pending)) => eprintln!(
                "rota: {pending} notification(s) of run {run_id} not delivered yet; they stay \
                 queued and `rota serve` on this ROTA_HOME delivers them"
            ),
            Err(error) => eprintln!(
                "rota: cannot deliver the notifications of run {run_id} ({error}); they stay \
                 queued and `rota serve` on this ROTA_HOME delivers them"
            ),
        }
    }
}
