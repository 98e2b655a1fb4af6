//! What a `rota` process sets up about itself before it runs anything: its environment and
//! umask, its data directory and store, the guardian that kills its children if it dies,
//! and the host that starts notebook kernels. The binary calls these; it never reaches
//! into the engine itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rota_engine::guardian::Guardian;
use rota_store::Store;

use crate::{Ops, OpsError};

/// The subcommand the guardian runs as (`rota __guardian`).
pub const GUARDIAN_COMMAND: &str = "__guardian";

/// Removes the secret key and API token from this process's environment before any thread
/// exists, so they leave `/proc/PID/environ` (see `rota_engine::sandbox`).
pub fn hide_sensitive_environment() {
    rota_engine::sandbox::hide_sensitive_environment();
}

/// The guardian's main loop (`rota __guardian`): waits for its parent to go, then kills
/// every process group and cgroup it was told to watch. Returns the exit code.
pub fn guardian_main() -> i32 {
    rota_engine::guardian::guardian_main()
}

/// Processes a step leaves behind are re-parented to this process rather than to PID 1
/// (which may not reap them), so the supervisor can kill and reap a step's whole group.
pub fn adopt_orphans() -> std::io::Result<()> {
    rota_engine::process::adopt_orphans()
}

/// The variables a step never inherits; the template helper scrubs them too.
pub fn scrubbed_env() -> Vec<std::ffi::OsString> {
    rota_engine::sandbox::scrubbed_env()
}

/// Makes the data directory `dir` private (created, or made, mode 0700) and keeps the steps
/// this process runs out of it, then says once which of these protections this machine
/// cannot enforce (`rota serve`, before its store exists).
pub fn protect_home(dir: &Path) -> std::io::Result<()> {
    rota_engine::sandbox::init(dir)?;
    rota_engine::sandbox::announce();
    Ok(())
}

/// Starts the watchdog (this same binary as `rota __guardian`); without it a SIGKILLed
/// `rota` would leave its steps running, so failing to start it is said once, as a warning.
/// This machine's host name (as runs record their owner).
pub fn host_name() -> String {
    rota_engine::owner::host_name()
}

/// Starts the guardian, the watchdog that kills this process's step processes if it dies.
pub fn spawn_guardian() -> Option<Arc<Guardian>> {
    let exe = std::env::current_exe().ok()?;
    match Guardian::spawn(&exe, &[GUARDIAN_COMMAND]) {
        Ok(guardian) => Some(Arc::new(guardian)),
        Err(error) => {
            eprintln!("rota: warning: cannot start the process guardian: {error}");
            None
        }
    }
}

/// The host that starts `rota notebook run`'s kernel: the engine's supervisor, as for a
/// `notebook:` step, with a cgroup of its own where the machine has a writable hierarchy
/// and a guardian, so that neither the kernel nor what its cells start outlives `rota`.
/// `runs_a_kernel` is false for the notebook commands that start none.
pub fn notebook_kernels(runs_a_kernel: bool) -> rota_notebook::kernel::Host {
    let guardian = if runs_a_kernel {
        rota_engine::cgroup::init();
        spawn_guardian()
    } else {
        None
    };
    rota_engine::kernels::Kernels::new(guardian, None).host()
}

/// A data directory (`$ROTA_HOME`), as this process uses it, and the store it opens: the
/// SQLite file inside it, or a database named by URL ([`Home::with_store`]).
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
    store: Option<String>,
}

impl Home {
    /// The data directory `dir`. From here on the process umask is 077, so that everything
    /// Rota writes under it (the store and its WAL/SHM, run directories, notebooks, webhook
    /// bodies) is readable by its owner only, whatever the user's umask; step processes get
    /// the user's umask back (see `rota_engine::sandbox`).
    pub fn new(dir: PathBuf) -> Home {
        rota_engine::sandbox::private_umask();
        Home { dir, store: None }
    }

    /// Opens the store at `url` (`postgres://…`, or `sqlite:…`) instead of the SQLite file in
    /// the directory, which keeps everything else (the secret key, run directories, tokens).
    pub fn with_store(mut self, url: Option<String>) -> Home {
        self.store = url;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where runs keep their files (outputs, notebooks).
    pub fn artifacts_dir(&self) -> PathBuf {
        self.dir.join("runs")
    }

    /// Opens the store, and first marks runs whose `rota` process died as abandoned (each
    /// is said on stderr), so every command sees an honest history. The directory is
    /// created (or made) mode 0700, and steps this process runs are kept out of it.
    pub async fn open_store(&self) -> Result<Store, HomeError> {
        rota_engine::sandbox::init(&self.dir).map_err(|source| HomeError::SetUp {
            dir: self.dir.clone(),
            source,
        })?;
        let opened = match &self.store {
            Some(url) => Store::open_url(url).await,
            None => Store::open(&self.dir).await,
        };
        let store = opened.map_err(|source| HomeError::Open {
            dir: self.dir.clone(),
            source,
        })?;
        let abandoned = rota_engine::recovery::mark_abandoned_runs(&store)
            .await
            .map_err(HomeError::Recovery)?;
        for run in abandoned {
            eprintln!("rota: run {run} was abandoned: the rota process running it died");
        }
        Ok(store)
    }

    /// The application layer over `store`, executing runs in this process: the steps of a
    /// job without a job file (ad-hoc commands, jobs saved with `rota jobs put`) run in
    /// `default_dir` (the CLI's working directory).
    pub fn ops(&self, store: &Store, default_dir: PathBuf) -> Ops {
        Ops::new(store.clone()).runs_here(&self.dir, self.artifacts_dir(), default_dir)
    }
}

/// Why a data directory could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// The directory could not be created or protected.
    #[error("cannot set up {}: {source}", dir.display())]
    SetUp {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store in it could not be opened.
    #[error("cannot open the store in {}: {source}", dir.display())]
    Open {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: rota_store::StoreError,
    },
    /// Runs whose process died could not be checked.
    #[error("cannot check for abandoned runs: {0}")]
    Recovery(rota_store::StoreError),
}

impl From<HomeError> for OpsError {
    fn from(error: HomeError) -> Self {
        OpsError::Unavailable(error.to_string())
    }
}
