//! The seam to child runs: a `job:` step (`kinds::job`) asks its run's [`ChildRuns`]
//! (`EngineConfig::children`) to start a run of another job, or to adopt the one an
//! earlier attempt of the step left unfinished, and waits for its end. The engine does
//! not know where jobs are stored nor how a run is prepared (its secrets, its base
//! directory): `rota-ops` implements the port, and runs the child in this process with the
//! same engine settings.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use rota_core::model::{RunStatus, Value};

use crate::run::EngineConfig;

/// Most runs in a chain of parents: a run whose ancestry is this deep starts no child.
/// Jobs can change after their calls were checked for cycles at load time; this bounds
/// what such a change can start.
pub const MAX_DEPTH: usize = 8;

/// The step attempt asking for a child run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    /// The parent run.
    pub run_id: String,
    /// Its namespace (the child's too).
    pub namespace: String,
    /// The `job:` step.
    pub step_id: String,
    /// The step's attempt.
    pub attempt: u32,
}

/// What a `job:` step asks for.
pub struct ChildRequest {
    /// Who asks.
    pub parent: ParentRef,
    /// The job to run (its latest revision, in the parent's namespace).
    pub job_id: String,
    /// Its parameters, rendered.
    pub params: BTreeMap<String, Value>,
    /// Run it as a dry run.
    pub dry_run: bool,
    /// The engine settings the child runs with (the parent's).
    pub config: EngineConfig,
}

/// A child run started (or adopted) for a step.
pub struct ChildRun {
    /// Its id.
    pub run_id: String,
    /// Whether it was already there (an earlier attempt started it) rather than started now.
    pub adopted: bool,
    /// Resolves when the child run has ended.
    pub end: Pin<Box<dyn Future<Output = ChildEnd> + Send>>,
    /// Stops the child run (`true`: its cleanup steps too, as a second Ctrl-C does).
    pub stop: Box<dyn Fn(bool) + Send + Sync>,
}

/// How a child run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildEnd {
    /// Its id.
    pub run_id: String,
    /// Its final status.
    pub status: RunStatus,
    /// Why, when it did not succeed.
    pub reason: Option<String>,
    /// Each step's outputs, in file order.
    pub steps: Vec<(String, BTreeMap<String, String>)>,
}

/// Starts and follows child runs (implemented by `rota-ops`).
pub trait ChildRuns: Send + Sync {
    /// Adopts the unfinished child run of the parent's step if there is one, else starts a
    /// run of `request.job_id`; `Err` says why nothing was started (an unknown job, a run
    /// cycle, a chain of parents deeper than [`MAX_DEPTH`], invalid parameters…).
    fn start_or_adopt<'a>(
        &'a self,
        request: ChildRequest,
    ) -> Pin<Box<dyn Future<Output = Result<ChildRun, String>> + Send + 'a>>;
}
