//! Rota's application layer: the product's own rules, in one place.
//!
//! The CLI's local mode, the API's handlers and the daemon all reach the store and the
//! engine through [`Ops`], the way rust-analyzer's `ide` crate is the one facade its LSP
//! server and its CLI both call. What lives here is what must not be written twice:
//! - the approval gate ([`approval_gate`]): a job with `approval:` rules runs only
//!   through plan → approve → apply, whoever asks;
//! - run preparation ([`Ops::prepare_run`]): a run to execute (stored, or about to be) →
//!   the engine's [`RunRequest`], with its secrets resolved and their use recorded, its
//!   base directory and its parameters decided by one rule;
//! - queueing runs and retries, making and applying plans, and the audit entry of each
//!   mutation ([`Ops::audit`]).
//!
//! It holds no SQL (that is `rota-store`) and starts no process (that is `rota-engine`).
#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod children;
mod error;
pub mod fleet;
pub mod foreground;
mod gates;
pub mod host;
pub mod ids;
mod jobs;
pub mod metrics;
mod plans;
pub mod records;
pub mod reports;
pub mod resume;
mod run_end;
mod runs;
pub mod schedules;
mod secrets;
pub mod service;
pub mod worker;

use std::path::PathBuf;

pub use error::OpsError;
pub use jobs::SavedJob;
pub use rota_engine::confirm::{Confirm, Confirmations, FailureAnswer};
pub use rota_engine::run::RunRequest;
pub use rota_store::Store;
pub use runs::{Gated, RunSpec, approval_gate, ephemeral_namespace, is_ephemeral, resolve_params};
pub use service::{Rota, Session};

use rota_store::NewAuditEntry;

/// Where the artifacts of a run served by `rota serve` keep the webhook body that started
/// it; steps find it through `ROTA_WEBHOOK_BODY_FILE`.
pub const WEBHOOK_BODY_FILE: &str = "webhook-body";

/// The application layer over one store.
#[derive(Debug, Clone)]
pub struct Ops {
    store: Store,
    runner: Option<Runner>,
    /// The scheduler's trigger arithmetic ([`Ops::with_schedules`]).
    schedules: Option<std::sync::Arc<dyn schedules::ScheduleOps>>,
    /// The data directory whose key seals secrets ([`Ops::with_secrets_home`]).
    secrets_home: Option<PathBuf>,
    /// That key, once loaded ([`Ops::sealing_key`]).
    sealing_key: std::sync::Arc<std::sync::OnceLock<rota_secrets::SecretKey>>,
    /// Wakes the waiters on workers' calls in this process ([`Ops::with_hub`]).
    hub: fleet::Hub,
    /// Where runs keep their files, one directory per run id, removed when a run is pruned
    /// ([`Ops::with_run_dirs`]; [`Ops::runs_here`] sets it too).
    run_dirs: Option<PathBuf>,
    /// Where run artifacts' bytes are and the caps steps keep them under
    /// ([`Ops::with_artifacts`]; [`Ops::runs_here`] sets `$ROTA_HOME/artifacts`).
    artifacts: Option<rota_engine::artifacts::Artifacts>,
}

/// The directory of `$ROTA_HOME` where artifacts are kept by default.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// Where a process that executes runs keeps what they need (see [`Ops::runs_here`]).
#[derive(Debug, Clone)]
struct Runner {
    home: PathBuf,
    artifacts_dir: PathBuf,
    default_dir: PathBuf,
}

/// Who asks for a mutation, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `local:<user>` for the CLI's local mode, the token's name through the API, `rota
    /// serve` for the scheduler.
    pub name: String,
    /// The client's address, when the call came over the network.
    pub source: Option<String>,
}

impl Actor {
    /// The user running this process, as local commands name them: `local:<user>`.
    pub fn local() -> Actor {
        Actor {
            name: format!("local:{}", local_user()),
            source: None,
        }
    }
}

/// The name of the user running this process.
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown-user".to_owned())
}

impl Ops {
    /// The application layer over `store`; it queues runs but prepares none for
    /// execution until [`Ops::runs_here`] says where.
    pub fn new(store: Store) -> Ops {
        Ops {
            store,
            runner: None,
            schedules: None,
            secrets_home: None,
            sealing_key: std::sync::Arc::default(),
            hub: fleet::Hub::default(),
            run_dirs: None,
            artifacts: None,
        }
    }

    /// This process executes runs: in data directory `home` (where the secrets key
    /// lives), keeping run artifacts in `artifacts_dir`; `default_dir` is where the steps
    /// of a job that has no job file run (see [`Ops::prepare_run`]).
    pub fn runs_here(
        mut self,
        home: impl Into<PathBuf>,
        artifacts_dir: impl Into<PathBuf>,
        default_dir: impl Into<PathBuf>,
    ) -> Ops {
        let artifacts_dir = artifacts_dir.into();
        let home = home.into();
        self.run_dirs = Some(artifacts_dir.clone());
        if self.artifacts.is_none() {
            let limits = rota_engine::artifacts::ArtifactLimits::from_env();
            match (
                rota_store::ArtifactBlobs::local(&home.join(ARTIFACTS_DIR)),
                limits,
            ) {
                (Ok(blobs), Ok(limits)) => {
                    self.artifacts = Some(rota_engine::artifacts::Artifacts { blobs, limits });
                }
                // Runs still run; their steps get no `$ROTA_ARTIFACTS`.
                (Err(error), _) => {
                    eprintln!("rota: WARNING: artifacts are not kept: {error}");
                }
                (_, Err(error)) => {
                    eprintln!("rota: WARNING: artifacts are not kept: {error}");
                }
            }
        }
        self.runner = Some(Runner {
            home,
            artifacts_dir,
            default_dir: default_dir.into(),
        });
        self
    }

    /// Keeps run artifacts in `artifacts` (a server's `--artifacts`, or its caps).
    pub fn with_artifacts(mut self, artifacts: rota_engine::artifacts::Artifacts) -> Ops {
        self.artifacts = Some(artifacts);
        self
    }

    /// Where run artifacts are kept, when this process knows.
    pub fn artifacts(&self) -> Option<&rota_engine::artifacts::Artifacts> {
        self.artifacts.as_ref()
    }

    /// Runs keep their files in `dir/<run id>`: a pruned run's directory is removed. (A
    /// process that executes runs says so with [`Ops::runs_here`]; the API's, which only
    /// prunes, with this.)
    pub fn with_run_dirs(mut self, dir: impl Into<PathBuf>) -> Ops {
        self.run_dirs = Some(dir.into());
        self
    }

    /// The directory run `run_id` keeps its files in, where this process knows it (ids
    /// other than the store's own spelling are never joined to a path).
    pub fn run_dir(&self, run_id: &str) -> Option<PathBuf> {
        let dir = self.run_dirs.as_ref()?;
        let plain = !run_id.is_empty()
            && run_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        plain.then(|| dir.join(run_id))
    }

    /// Removes the file directories of pruned runs, where this process knows them. A
    /// directory that cannot be removed is logged and left: the runs are gone either way.
    pub(crate) fn remove_run_dirs(&self, run_ids: &[String]) {
        let Some(dir) = &self.run_dirs else { return };
        for id in run_ids {
            // Ids are made by `rota_store::ids`; anything else is never joined to a path.
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                continue;
            }
            let path = dir.join(id);
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "cannot remove a pruned run's files");
                }
            }
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where the runs this process executes keep their artifacts ([`Ops::runs_here`]).
    pub fn artifacts_dir(&self) -> Option<&std::path::Path> {
        self.runner.as_ref().map(|r| r.artifacts_dir.as_path())
    }

    /// Appends the audit entry of a mutation by `actor` of `target` and its `result`
    /// (`ok`, or the slug of its refusal). Callers fail the call when this fails: an
    /// unaudited change must not look like a success.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        result: &str,
    ) -> Result<(), OpsError> {
        let entry = NewAuditEntry {
            at: jiff::Timestamp::now(),
            actor: actor.name.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            source: actor.source.clone(),
            result: result.to_owned(),
        };
        self.store.append_audit(&entry).await?;
        Ok(())
    }
}
