//! The retention loop of `rota serve`: at start and every
//! [`rota_ops::service::retention::RETENTION_EVERY`] (hourly), each namespace that has a
//! retention setting (`rota namespaces set NS --retention 30d`) loses the runs that finished
//! longer ago, through the same operation as `rota prune`, audited in the name of
//! `rota serve` (a pass that deletes nothing is not audited). Each pass also drops the
//! events older than the event feed's window (`--event-feed-keep`, 24 hours by default):
//! the feed is for following changes, the run tables keep the state.

use std::time::Duration;

use rota_ops::Ops;
use rota_ops::auth::Principal;
use rota_ops::service::retention::RETENTION_EVERY;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Who the retention loop acts as in the audit log.
pub const RETENTION_ACTOR: &str = "rota serve";

/// The running retention loop.
pub struct RetentionLoop {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RetentionLoop {
    /// Applies the retention settings of `ops`' store, and the event feed's window of
    /// `event_feed_keep`, now and every hour until stopped.
    pub fn spawn(ops: Ops, event_feed_keep: Duration) -> RetentionLoop {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let session = ops.session(Principal::admin(RETENTION_ACTOR), None);
            loop {
                match session.apply_retention().await {
                    Ok(reports) => {
                        for report in reports {
                            tracing::info!(
                                namespace = report.namespace.as_deref().unwrap_or("*"),
                                runs = report.runs,
                                log_lines = report.log_lines,
                                cutoff = %report.cutoff,
                                "retention: pruned finished runs"
                            );
                        }
                    }
                    Err(error) => tracing::warn!(%error, "retention pass failed"),
                }
                prune_event_feed(&ops, event_feed_keep).await;
                tokio::select! {
                    () = tokio::time::sleep(RETENTION_EVERY) => {}
                    _ = &mut stopped => break,
                }
            }
        });
        RetentionLoop { stop, task }
    }

    /// Stops the loop (a pass under way finishes its current batch first).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Drops the events older than `keep` from the event feed; a failure is logged, and the
/// next pass tries again.
async fn prune_event_feed(ops: &Ops, keep: Duration) {
    let cutoff = jiff::SignedDuration::try_from(keep)
        .ok()
        .and_then(|keep| jiff::Timestamp::now().checked_sub(keep).ok());
    let Some(cutoff) = cutoff else {
        return;
    };
    match ops.store().prune_event_feed(cutoff).await {
        Ok(0) => {}
        Ok(events) => {
            tracing::info!(events, %cutoff, "retention: dropped old events from the feed")
        }
        Err(error) => tracing::warn!(%error, "dropping old events from the feed failed"),
    }
}
