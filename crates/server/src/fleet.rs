//! This server's part in the fleet: it says it is alive (`rota status` lists it), abandons
//! the leases of workers that stopped renewing them (so their attempts are retried), and
//! holds or waits for the scheduler's lease: of all the servers sharing a store, only the
//! holder fires schedules. The lease lasts [`SCHEDULER_LEASE_TTL`] and is renewed every
//! [`LEAD_EVERY`], so when the scheduling server dies another takes over within about six
//! seconds; a server that stops releases it at once.

use std::time::Duration;

use jiff::Timestamp;
use rota_ops::fleet::REAP_EVERY;
use rota_ops::service::workers::SCHEDULER_LEASE;
use rota_store::ServerRecord;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the server renews its row.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// How long the scheduler's lease lasts unless renewed.
pub const SCHEDULER_LEASE_TTL: Duration = Duration::from_secs(5);

/// How often a server takes or renews the scheduler's lease.
pub const LEAD_EVERY: Duration = Duration::from_secs(1);

/// The fleet's background task of one server.
pub struct Fleet {
    /// Whether this server holds the scheduler's lease.
    pub leader: watch::Receiver<bool>,
    stop: CancellationToken,
    task: JoinHandle<()>,
    ops: rota_ops::Ops,
    id: String,
}

impl Fleet {
    /// Starts the task for a server listening on `listen`, once it has tried to take the
    /// scheduler's lease (a lone server schedules from its first tick).
    pub async fn start(ops: rota_ops::Ops, listen: String) -> Fleet {
        let me = ServerRecord {
            id: server_id(),
            host: rota_ops::host::host_name(),
            pid: std::process::id(),
            listen,
            started_at: Timestamp::now(),
            last_heartbeat: Timestamp::now(),
        };
        let stop = CancellationToken::new();
        let id = me.id.clone();
        let (leader_tx, leader) = watch::channel(lead(&ops, &id).await);
        let task = tokio::spawn(run(ops.clone(), me, leader_tx, stop.clone()));
        Fleet {
            leader,
            stop,
            task,
            ops,
            id,
        }
    }

    /// Stops the task and removes this server's row.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Err(error) = self.ops.store().server_gone(&self.id).await {
            tracing::warn!(%error, "cannot remove this server from the cluster's list");
        }
    }
}

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
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
        return false;
    };
    pid != std::process::id() as i32
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH)
}

async fn run(
    ops: rota_ops::Ops,
    me: ServerRecord,
    leader: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut lead_tick = tokio::time::interval(LEAD_EVERY);
    lead_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reap = tokio::time::interval(REAP_EVERY);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = reap.tick() => {
                if let Err(error) = ops.expire_leases().await {
                    tracing::warn!(%error, "cannot expire workers' leases");
                }
            }
            _ = lead_tick.tick() => {
                let holds = lead(&ops, &me.id).await;
                leader.send_if_modified(|held| {
                    let changed = *held != holds;
                    *held = holds;
                    changed
                });
            }
            _ = beat.tick() => {
                if let Err(error) = ops.store().server_heartbeat(&me, Timestamp::now()).await {
                    tracing::warn!(%error, "cannot renew this server's heartbeat");
                }
            }
        }
    }
}
