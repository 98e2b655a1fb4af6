//! The data directory (`$ROTA_HOME`) and the store inside it.

use std::path::PathBuf;

use anyhow::Context as _;
use rota_store::Store;

/// The data directory.
pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    /// `--home`/`ROTA_HOME`, else the platform data dir (`~/.local/share/rota` on Linux).
    ///
    /// From here on the process umask is 077, so that everything Rota writes under the data
    /// directory (the store and its WAL/SHM, run directories, notebooks, webhook bodies) is
    /// readable by its owner only, whatever the user's umask; step processes get the user's
    /// umask back (see `rota_engine::sandbox`).
    pub fn new(explicit: Option<PathBuf>) -> anyhow::Result<Home> {
        rota_engine::sandbox::private_umask();
        let dir = match explicit {
            Some(dir) => dir,
            None => dirs::data_dir()
                .map(|d| d.join("rota"))
                .context("no data directory: set ROTA_HOME")?,
        };
        Ok(Home { dir })
    }

    /// Opens the store, and first marks runs whose `rota` process died as abandoned,
    /// so every command sees an honest history.
    ///
    /// The directory is created (or made) mode 0700, and steps this process runs are kept
    /// out of it (`rota_engine::sandbox::init`).
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        rota_engine::sandbox::init(&self.dir)
            .with_context(|| format!("cannot set up {}", self.dir.display()))?;
        let store = Store::open(&self.dir)
            .await
            .with_context(|| format!("cannot open the store in {}", self.dir.display()))?;
        let abandoned = rota_engine::recovery::mark_abandoned_runs(&store)
            .await
            .context("cannot check for abandoned runs")?;
        for run in abandoned {
            eprintln!("rota: run {run} was abandoned: the rota process running it died");
        }
        Ok(store)
    }

    /// The application layer over `store`, executing runs in this process: the steps of a
    /// job without a job file (ad-hoc commands, jobs saved with `rota jobs put`) run in the
    /// working directory.
    pub fn ops(&self, store: &Store) -> rota_ops::Ops {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        rota_ops::Ops::new(store.clone())
            .runs_here(&self.dir, self.artifacts_dir(), cwd)
            .with_secrets_home(&self.dir)
            .with_schedules(std::sync::Arc::new(
                rota_server::backfill::Schedules::with_limit(crate::serve_cmd::BACKFILL_LIMIT),
            ))
    }

    /// The application layer acting for the user running this process (an admin
    /// everywhere, audited as `local:<user>`), over the store it opens ([`Home::open_store`]).
    pub async fn session(&self) -> anyhow::Result<rota_ops::Session> {
        let store = self.open_store().await?;
        Ok(self
            .ops(&store)
            .session(rota_ops::auth::Principal::local(), None))
    }

    /// Where runs keep their files (outputs, notebooks).
    pub fn artifacts_dir(&self) -> PathBuf {
        self.dir.join("runs")
    }
}
