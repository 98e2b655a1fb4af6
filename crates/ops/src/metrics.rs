//! The store's figures behind Rota's Prometheus metrics (`GET /metrics`).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
pub use rota_store::RunCount;

use crate::auth::{Role, Scope};
use crate::{OpsError, Session};

/// What one scrape reads from the store.
#[derive(Debug, Clone, Default)]
pub struct StoreFigures {
    /// Runs per namespace and status.
    pub runs: Vec<RunCount>,
    /// How long each step attempt that finished within the window took.
    pub step_durations: Vec<Duration>,
}

impl Session {
    /// The store's figures for one scrape, to a viewer of every namespace: runs by
    /// namespace and status, and the durations of step attempts that finished in the last
    /// `window`.
    pub async fn metrics(&self, window: SignedDuration) -> Result<StoreFigures, OpsError> {
        self.principal().require(Scope::Global, Role::Viewer)?;
        let store = self.ops().store();
        let since = Timestamp::now()
            .checked_sub(window)
            .unwrap_or(Timestamp::MIN);
        Ok(StoreFigures {
            runs: store.run_counts_by_status().await?,
            step_durations: store.recent_step_durations(since).await?,
        })
    }
}
