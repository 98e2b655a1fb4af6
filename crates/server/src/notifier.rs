//! The notification delivery loop of `rota serve`: every second it sends the due rows of
//! the store's notification outbox (`rota_engine::notify::Deliverer`), whoever queued them
//! (this server's runs, or a `rota run` that exited before its endpoint answered).
//!
//! Secrets used by notification templates are resolved when sending, from the secrets
//! store of the run's namespace first and the server's environment second, as for runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rota_engine::notify::{Deliverer, SecretSource};
use rota_store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Time between delivery passes.
pub const PASS_INTERVAL: Duration = Duration::from_secs(1);

/// The running delivery loop.
pub struct Notifier {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The secrets of a notification: the secrets store of its namespace, else the
/// environment (`rota_secrets::resolve`).
pub fn secret_source(store: Store, home: PathBuf) -> SecretSource {
    Arc::new(move |namespace: String, names: Vec<String>| {
        let store = store.clone();
        let home = home.clone();
        Box::pin(async move {
            let key = rota_secrets::SecretKey::load(&home).map_err(|e| e.to_string())?;
            let resolved = rota_secrets::resolve(&store, key.as_ref(), &namespace, &names)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<BTreeMap<String, String>, String>(resolved.exposed())
        })
    })
}

impl Notifier {
    /// Starts delivering due notifications of `store` every [`PASS_INTERVAL`].
    pub fn spawn(store: Store, home: PathBuf) -> Notifier {
        let deliverer = Deliverer::new(secret_source(store.clone(), home));
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                if let Err(error) = deliverer.deliver_due(&store, None).await {
                    tracing::warn!(%error, "notification delivery pass failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(PASS_INTERVAL) => {}
                    _ = &mut stopped => break,
                }
            }
            // One last pass for the runs that ended while the server drained.
            if let Err(error) = deliverer.deliver_due(&store, None).await {
                tracing::warn!(%error, "notification delivery pass failed");
            }
        });
        Notifier { stop, task }
    }

    /// Stops the loop after one last pass; what is still pending stays in the outbox for
    /// the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
