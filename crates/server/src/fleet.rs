//! This server's part in the fleet: it says it is alive (`rota status` lists it) and
//! abandons the leases of workers that stopped renewing them, so their attempts are retried.

use std::time::Duration;

use jiff::Timestamp;
use rota_ops::fleet::REAP_EVERY;
use rota_store::ServerRecord;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the server renews its row.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// The fleet's background task of one server.
pub struct Fleet {
    stop: CancellationToken,
    task: JoinHandle<()>,
    ops: rota_ops::Ops,
    id: String,
}

impl Fleet {
    /// Starts the task for a server listening on `listen`.
    pub fn start(ops: rota_ops::Ops, listen: String) -> Fleet {
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
        let task = tokio::spawn(run(ops.clone(), me, stop.clone()));
        Fleet {
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

async fn run(ops: rota_ops::Ops, me: ServerRecord, stop: CancellationToken) {
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
            _ = beat.tick() => {
                if let Err(error) = ops.store().server_heartbeat(&me, Timestamp::now()).await {
                    tracing::warn!(%error, "cannot renew this server's heartbeat");
                }
            }
        }
    }
}
