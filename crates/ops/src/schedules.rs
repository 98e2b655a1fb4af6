//! The scheduler's trigger arithmetic as the application layer reaches it: [`ScheduleOps`].
//!
//! Next fire times and backfill need the trigger code of `rota-server` (compiled triggers,
//! their origins, the occurrence grid), a crate that depends on this one. So the process
//! that has it hands it in ([`Ops::with_schedules`]): `rota serve` for the API, the CLI for
//! its local mode. Without it, those operations are [`OpsError::Unavailable`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jiff::Timestamp;
use rota_store::Store;

use crate::{Ops, OpsError};

/// A boxed future answering `T` or an [`OpsError`], as [`ScheduleOps`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, OpsError>> + Send + 'a>>;

/// The keys of a job's time triggers, and its next fire times as (instant, trigger key) in
/// time order.
pub type NextFires = (Vec<String>, Vec<(Timestamp, String)>);

/// One occurrence a backfill covered: (instant, trigger key, the run queued for it, or
/// `None` when the occurrence was already recorded).
pub type Backfilled = (Timestamp, String, Option<String>);

/// The scheduler's trigger arithmetic, as the schedule operations need it; `rota-server`
/// implements it over its own trigger code, so the API and the CLI compute the same
/// instants.
pub trait ScheduleOps: Send + Sync + std::fmt::Debug {
    /// The job's time trigger keys and its next `count` fire times after `now`;
    /// [`OpsError::NotFound`] when the job has no (live) revision.
    fn next<'a>(
        &'a self,
        store: &'a Store,
        namespace: &'a str,
        job: &'a str,
        now: Timestamp,
        count: usize,
    ) -> BoxFuture<'a, NextFires>;

    /// Queues one run per occurrence of the job's time triggers in `[from, to]` (an
    /// occurrence already recorded gets none), in time order. A range with too many
    /// occurrences is refused whole ([`OpsError::Invalid`]).
    fn backfill<'a>(
        &'a self,
        store: &'a Store,
        namespace: &'a str,
        job: &'a str,
        from: Timestamp,
        to: Timestamp,
    ) -> BoxFuture<'a, Vec<Backfilled>>;
}

impl Ops {
    /// Enables a job's next fire times and backfill through `schedules` (`rota-server`
    /// provides it).
    pub fn with_schedules(mut self, schedules: Arc<dyn ScheduleOps>) -> Ops {
        self.schedules = Some(schedules);
        self
    }

    /// The installed [`ScheduleOps`], or [`OpsError::Unavailable`].
    pub(crate) fn schedule_ops(&self) -> Result<&dyn ScheduleOps, OpsError> {
        self.schedules.as_deref().ok_or_else(|| {
            OpsError::Unavailable("fire times and backfill are computed by `rota serve`".into())
        })
    }
}
