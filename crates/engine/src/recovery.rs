//! Crash recovery: runs whose owning process died are marked `abandoned`.
//!
//! Every `rota` command calls [`mark_abandoned_runs`] when it opens the store, so a
//! `rota run` killed with SIGKILL is noticed by whatever runs next. The dead run's step
//! processes were already stopped by its guardian; as a second line of defence any
//! recorded step process group that still exists is killed here. Queued runs are left
//! alone: they belong to no process until a server claims them.

use jiff::Timestamp;
use rota_store::{Store, StoreError};

use crate::owner;

/// Marks every active run whose owner is gone as abandoned; returns their ids.
pub async fn mark_abandoned_runs(store: &Store) -> Result<Vec<String>, StoreError> {
    let mut abandoned = Vec::new();
    for run in store.active_runs().await? {
        // A queued run is durable work waiting for a worker (the scheduler daemon queues
        // runs before starting them), not work of a process: it runs when a server takes it.
        if run.status == rota_core::model::RunStatus::Queued {
            continue;
        }
        let o = &run.owner;
        if owner::is_alive(&o.host, o.pid, &o.start_token) {
            continue;
        }
        for step in &run.running_steps {
            if let Some(pgid) = step.pgid.filter(|&pgid| pgid > 1) {
                // The group may be gone already; the error is the expected case.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let reason = format!(
            "the rota process (pid {}) on {} that ran it died",
            o.pid, o.host
        );
        store
            .mark_abandoned(&run.id, &reason, Timestamp::now())
            .await?;
        abandoned.push(run.id);
    }
    Ok(abandoned)
}
