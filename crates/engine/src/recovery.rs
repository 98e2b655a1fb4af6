//! Crash recovery: runs whose owning process died are resumed or marked `abandoned`.
//!
//! Every `rota` command calls [`mark_abandoned_runs`] (the server [`recover_runs`]) when it
//! opens the store, so a `rota` killed with SIGKILL is noticed by whatever runs next. The
//! dead run's step processes were already stopped by its guardian; as a second line of
//! defence any recorded step process group that still exists is killed here.
//!
//! A run started by a server (any trigger but `cli`) is resumed when every step it was
//! running may be tried again under its `retry.attempts`: the dead attempts are recorded
//! `abandoned` and the run is queued again, for a server to claim and continue where it
//! stopped (see [`crate::run::PriorStep`]). Other runs are marked `abandoned`: a `rota run`
//! has no server to continue it. Queued runs are left alone: they belong to no process
//! until a server claims them. Containers of `container:` steps whose rota died are removed
//! (found by their `rota.owner` label).

use jiff::Timestamp;
use rota_core::model::Job;
use rota_store::{ActiveRun, NewNotification, Owner, RunRecord, Store, StoreError};

use crate::owner;

/// What recovery did with the runs whose owner is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Runs marked `abandoned`.
    pub abandoned: Vec<String>,
    /// Runs queued again to be resumed by a server.
    pub resumed: Vec<String>,
}

/// Recovers every active run whose owner is gone; returns the ids of those marked
/// abandoned (resumed runs are logged).
pub async fn mark_abandoned_runs(store: &Store) -> Result<Vec<String>, StoreError> {
    Ok(recover_runs(store).await?.abandoned)
}

/// Recovers every active run whose owner is gone: resumes it if it was started by a server
/// and its running steps may be retried, marks it abandoned otherwise.
pub async fn recover_runs(store: &Store) -> Result<Recovered, StoreError> {
    let recovered =
        recover_runs_of(store, |o| !owner::is_alive(&o.host, o.pid, &o.start_token)).await?;
    // A container outlives the rota that started it; best-effort, bounded, quiet without an
    // engine (see `kinds::container::remove_orphans`).
    for id in crate::kinds::container::remove_orphans().await {
        tracing::info!(container = %id, "removed the container of a step whose rota died");
    }
    Ok(recovered)
}

/// Recovers the active runs of the servers taken for dead in a fleet (`dead`, by host and
/// pid: their rows in the store stopped being renewed and were removed,
/// `Store::fence_server`), wherever they ran.
pub async fn recover_runs_of_servers(
    store: &Store,
    dead: &[(String, u32)],
) -> Result<Recovered, StoreError> {
    if dead.is_empty() {
        return Ok(Recovered::default());
    }
    recover_runs_of(store, |o| {
        dead.iter()
            .any(|(host, pid)| *host == o.host && *pid == o.pid)
    })
    .await
}

async fn recover_runs_of(
    store: &Store,
    is_dead: impl Fn(&Owner) -> bool,
) -> Result<Recovered, StoreError> {
    let mut recovered = Recovered::default();
    for run in store.active_runs().await? {
        // A queued run is durable work waiting for a worker (the scheduler daemon queues
        // runs before starting them), not work of a process: it runs when a server takes it.
        if run.status == rota_core::model::RunStatus::Queued || !is_dead(&run.owner) {
            continue;
        }
        let o = &run.owner;
        // Process groups are only ours to kill on this host; elsewhere the dead owner's
        // guardian (or the fenced server itself) stops them.
        if o.host == owner::host_name() {
            for step in &run.running_steps {
                if let Some(pgid) = step.pgid.filter(|&pgid| pgid > 1) {
                    // The group may be gone already; the error is the expected case.
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pgid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let reason = format!(
            "the rota process (pid {}) on {} that ran it died",
            o.pid, o.host
        );
        let now = Timestamp::now();
        if resumable(store, &run).await? {
            if store.requeue_for_resume(&run.id, o, &reason, now).await? {
                tracing::info!(run = %run.id, "run queued again to resume after its owner died");
                recovered.resumed.push(run.id);
            }
            continue;
        }
        let notifications = abandoned_notifications(store, &run.id, &reason, now).await?;
        if store
            .mark_abandoned(&run.id, o, &reason, now, &notifications)
            .await?
        {
            recovered.abandoned.push(run.id);
        }
    }
    Ok(recovered)
}

/// The notifications the abandoned run's end queues (its job's `failure` rules).
async fn abandoned_notifications(
    store: &Store,
    run_id: &str,
    reason: &str,
    at: Timestamp,
) -> Result<Vec<NewNotification>, StoreError> {
    let Some(run) = store.get_run(run_id).await? else {
        return Ok(Vec::new());
    };
    let Some(job) = job_of(store, &run).await? else {
        return Ok(Vec::new());
    };
    Ok(crate::notify::abandoned_notifications(
        &job, &run, reason, at,
    ))
}

/// The job revision a run used, when it still loads.
async fn job_of(store: &Store, run: &RunRecord) -> Result<Option<Job>, StoreError> {
    let Some(revision) = store
        .job_revision(&run.namespace, &run.job_id, run.job_revision)
        .await?
    else {
        return Ok(None);
    };
    Ok(revision.job().ok())
}

/// Whether a server may continue the run: it is not a `rota run`, no cancel was asked for,
/// its job revision still loads and every step it was running has attempts left. (Starts
/// are committed before a step's process starts, so a step recorded `pending` never ran.)
async fn resumable(store: &Store, active: &ActiveRun) -> Result<bool, StoreError> {
    let Some(run) = store.get_run(&active.id).await? else {
        return Ok(false);
    };
    if run.is_foreground() || run.cancel_requested {
        return Ok(false);
    }
    let Some(job) = job_of(store, &run).await? else {
        return Ok(false);
    };
    Ok(active.running_steps.iter().all(|running| {
        job.steps
            .iter()
            .find(|s| s.id == running.step_id)
            .is_some_and(|step| running.attempt < step.retry.attempts)
    }))
}
