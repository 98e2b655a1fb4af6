//! This server's part in the fleet: it says it is alive (`rota status` lists it), abandons
//! the leases of workers that stopped renewing them (so their attempts are retried), and
//! holds or waits for the scheduler's lease: of all the servers sharing a store, only the
//! holder fires schedules. The lease lasts [`SCHEDULER_LEASE_TTL`] and is renewed every
//! [`LEAD_EVERY`], so when the scheduling server dies another takes over within about six
//! seconds; a server that stops releases it at once.
//!
//! Runs outlive the server that drives them. Each server renews its row every
//! [`HEARTBEAT_EVERY`]; the scheduling server takes one whose row is older than
//! [`SERVER_TTL`] for dead: it marks the row (`Store::fence_server`), recovers that server's
//! runs (`rota_engine::recovery::recover_runs_of_servers`: the attempts it was running are
//! recorded `abandoned` and the run is queued again, so any server continues it where it
//! stopped; a run that cannot continue is abandoned), then removes the row. On SQLite every
//! server is on this host, so a server is taken for dead only when its process is gone. On
//! PostgreSQL a server that could not renew its row for [`SELF_FENCE_AFTER`] (cut off from
//! the database, or stopped) takes itself for dead before the others do: it stops its runs
//! and exits ([`Fleet::fenced`]); one that finds its row marked does the same. Its late
//! writes, if any, are refused (`Store::record_as`).

use std::time::Duration;

use jiff::Timestamp;
use rota_ops::fleet::REAP_EVERY;
use rota_ops::service::workers::SCHEDULER_LEASE;
use rota_store::ServerRecord;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the server renews its row.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// How old a server's row may grow before the scheduling server takes it for dead.
pub const SERVER_TTL: Duration = Duration::from_secs(6);

/// How long a server on PostgreSQL goes on without renewing its row before it takes itself
/// for dead: well before the others would ([`SERVER_TTL`]).
pub const SELF_FENCE_AFTER: Duration = Duration::from_secs(4);

/// How long the scheduler's lease lasts unless renewed.
pub const SCHEDULER_LEASE_TTL: Duration = Duration::from_secs(5);

/// How often a server takes or renews the scheduler's lease.
pub const LEAD_EVERY: Duration = Duration::from_secs(1);

/// The fleet's background task of one server.
pub struct Fleet {
    /// Whether this server holds the scheduler's lease.
    pub leader: watch::Receiver<bool>,
    /// Cancelled when this server has to take itself for dead (see the module docs): it
    /// must stop its runs at once, recording nothing more, and exit.
    pub fenced: CancellationToken,
    stop: CancellationToken,
    /// The lease, reaping and heartbeat tasks.
    tasks: [JoinHandle<()>; 3],
    ops: rota_ops::Ops,
    id: String,
}

impl Fleet {
    /// Starts the task for a server listening on `listen`, once the server is registered
    /// and has tried to take the scheduler's lease (a lone server schedules from its first
    /// tick).
    pub async fn start(
        ops: rota_ops::Ops,
        listen: String,
    ) -> Result<Fleet, rota_store::StoreError> {
        let me = ServerRecord {
            id: server_id(),
            host: rota_ops::host::host_name(),
            pid: std::process::id(),
            listen,
            started_at: Timestamp::now(),
            last_heartbeat: Timestamp::now(),
        };
        ops.store().register_server(&me).await?;
        let stop = CancellationToken::new();
        let fenced = CancellationToken::new();
        let id = me.id.clone();
        let (leader_tx, leader) = watch::channel(lead(&ops, &id).await);
        let beat = tokio::spawn(heartbeat(
            ops.clone(),
            id.clone(),
            stop.clone(),
            fenced.clone(),
        ));
        let reap = tokio::spawn(reap_loop(
            ops.clone(),
            id.clone(),
            leader.clone(),
            stop.clone(),
        ));
        let lead = tokio::spawn(lead_loop(ops.clone(), id.clone(), leader_tx, stop.clone()));
        Ok(Fleet {
            leader,
            fenced,
            stop,
            tasks: [lead, reap, beat],
            ops,
            id,
        })
    }

    /// Stops the tasks and removes this server's row (given up after [`STOP_WRITES_LIMIT`]
    /// when the store does not answer: the others then take the row for dead).
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        match tokio::time::timeout(STOP_WRITES_LIMIT, self.ops.store().server_gone(&self.id)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot remove this server from the cluster's list");
            }
            Err(_) => tracing::warn!(
                "the store did not answer: this server's row is left for the others to take for dead"
            ),
        }
    }
}

/// How long a stopping server waits for one last write (its row's removal).
pub const STOP_WRITES_LIMIT: Duration = Duration::from_secs(5);

/// This server's id: host, process id and random bits (a restarted server is a new one).
fn server_id() -> String {
    let random: u32 = rand::random();
    format!(
        "{}-{}-{random:08x}",
        rota_ops::host::host_name(),
        std::process::id()
    )
}

/// Takes or renews the scheduler's lease; whether this server holds it. On SQLite, a lease
/// held by a dead process of this host (a previous life of this server) is taken over at
/// once, so a restarted server schedules from its first tick.
async fn lead(ops: &rota_ops::Ops, me: &str) -> bool {
    let store = ops.store();
    let now = Timestamp::now();
    match store
        .acquire_lease(SCHEDULER_LEASE, me, now, SCHEDULER_LEASE_TTL)
        .await
    {
        Ok(true) => true,
        Ok(false) => match store.lease_holder(SCHEDULER_LEASE, now).await {
            // Only on SQLite, where every server is on this host: host names may repeat
            // across the machines of a fleet, and a pid means nothing on another host.
            Ok(Some((holder, _)))
                if store.backend() == rota_store::Backend::Sqlite && died_here(&holder) =>
            {
                store
                    .replace_lease_holder(SCHEDULER_LEASE, &holder, me, now, SCHEDULER_LEASE_TTL)
                    .await
                    .unwrap_or(false)
            }
            _ => false,
        },
        Err(error) => {
            tracing::warn!(%error, "cannot take or renew the scheduler's lease");
            false
        }
    }
}

/// Whether server id `holder` (`<host>-<pid>-<random>`) names a process of this host that
/// is gone.
fn died_here(holder: &str) -> bool {
    let Some(rest) = holder.strip_prefix(&format!("{}-", rota_ops::host::host_name())) else {
        return false;
    };
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    pid != std::process::id() && !process_exists(pid)
}

/// Takes or renews the scheduler's lease every [`LEAD_EVERY`] and publishes whether this
/// server holds it.
async fn lead_loop(
    ops: rota_ops::Ops,
    me: String,
    leader: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(LEAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // A lease that cannot be renewed in time is given up rather than assumed: past its
        // TTL another server may hold it.
        let holds = tokio::time::timeout(LEAD_ANSWER_LIMIT, lead(&ops, &me))
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(
                    "the store did not answer in time: this server stops scheduling until it does"
                );
                false
            });
        leader.send_if_modified(|held| {
            let changed = *held != holds;
            *held = holds;
            changed
        });
    }
}

/// Every [`REAP_EVERY`]: expires workers' leases and, on the scheduling server, takes dead
/// servers' runs over. A task of its own: a slow pass delays neither the lease nor the
/// heartbeat.
async fn reap_loop(
    ops: rota_ops::Ops,
    me: String,
    leader: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let pass = async {
            if let Err(error) = ops.expire_leases().await {
                tracing::warn!(%error, "cannot expire workers' leases");
            }
            if *leader.borrow() {
                recover_dead_servers(&ops, &me).await;
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = pass => {}
        }
    }
}

/// How long the scheduler's lease may take to answer before this server stops scheduling:
/// well inside the lease's TTL, so it never schedules on a lease another server took.
const LEAD_ANSWER_LIMIT: Duration = Duration::from_secs(2);

/// Renews this server's row every [`HEARTBEAT_EVERY`], in a task of its own so that no
/// slow store call of the fleet's other work delays it. On PostgreSQL a renewal that has not
/// succeeded for [`SELF_FENCE_AFTER`] — refused, failing, or not answering — fences this
/// server ([`Fleet::fenced`]): the others take it for dead soon after.
async fn heartbeat(
    ops: rota_ops::Ops,
    me: String,
    stop: CancellationToken,
    fenced: CancellationToken,
) {
    let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let self_fencing = ops.store().backend() == rota_store::Backend::Postgres;
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = beat.tick() => {}
        }
        // Judged before renewing: a server that was stopped (or its runtime stalled) longer
        // than this must not renew a row the others may already have taken for dead and
        // act on, whatever the renewal would answer.
        if self_fencing && renewed.elapsed() > SELF_FENCE_AFTER {
            fence_self(&fenced, "could not renew its heartbeat");
            return;
        }
        let renewal = ops.store().server_heartbeat(&me, Timestamp::now());
        let answer = if self_fencing {
            match tokio::time::timeout_at(renewed + SELF_FENCE_AFTER, renewal).await {
                Ok(answer) => answer,
                Err(_) => {
                    fence_self(&fenced, "got no answer from the store");
                    return;
                }
            }
        } else {
            renewal.await
        };
        match answer {
            Ok(true) => renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!("another server took this one for dead and took its runs over");
                fenced.cancel();
                return;
            }
            Err(error) => tracing::warn!(%error, "cannot renew this server's heartbeat"),
        }
    }
}

fn fence_self(fenced: &CancellationToken, what: &str) {
    tracing::error!(
        "this server {what} for {}s: the others take it for dead",
        SELF_FENCE_AFTER.as_secs()
    );
    fenced.cancel();
}

/// Takes the servers whose rows went stale for dead and recovers their runs (run by the
/// scheduling server only; the store's conditions make a second recoverer harmless).
async fn recover_dead_servers(ops: &rota_ops::Ops, me: &str) {
    let store = ops.store();
    let Some(before) = Timestamp::now().checked_sub(SERVER_TTL).ok() else {
        return;
    };
    let stale = match store.stale_servers(before).await {
        Ok(stale) => stale,
        Err(error) => {
            tracing::warn!(%error, "cannot list the servers that stopped renewing their rows");
            return;
        }
    };
    let mut dead = Vec::new();
    for server in stale {
        // On SQLite a server's process is on this host, and alive means alive: nothing can
        // take over its runs while it could still write.
        if server.id == me
            || (store.backend() == rota_store::Backend::Sqlite && process_exists(server.pid))
        {
            continue;
        }
        match store.fence_server(&server.id, before).await {
            Ok(true) => {
                tracing::warn!(server = %server.id, "server taken for dead: it stopped renewing its row");
                dead.push(server);
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, server = %server.id, "cannot take a dead server's row")
            }
        }
    }
    if dead.is_empty() {
        return;
    }
    let owners: Vec<(String, u32)> = dead.iter().map(|s| (s.host.clone(), s.pid)).collect();
    match rota_engine::recovery::recover_runs_of_servers(store, &owners).await {
        Ok(recovered) => {
            for run in recovered.resumed {
                tracing::warn!(run = %run, "run queued to resume: the server running it died");
            }
            for run in recovered.abandoned {
                tracing::warn!(run = %run, "run abandoned: the server running it died");
            }
        }
        Err(error) => {
            // The marked rows stay: the next pass recovers what is left.
            tracing::error!(%error, "cannot recover the runs of a dead server");
            return;
        }
    }
    for server in dead {
        if let Err(error) = store.server_gone(&server.id).await {
            tracing::warn!(%error, server = %server.id, "cannot remove a dead server's row");
        }
    }
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) != Err(nix::errno::Errno::ESRCH)
}
