//! The data directory (`$ROTA_HOME`) and the store inside it (`rota_ops::host::Home`).

use std::path::PathBuf;

use anyhow::Context as _;
use rota_ops::Ops;
use rota_ops::host::Home as DataDir;

/// The data directory.
pub struct Home {
    pub dir: PathBuf,
    /// `--store`/`ROTA_STORE`: the store's URL, when it is not the SQLite file in `dir`.
    pub store: Option<String>,
    data: DataDir,
}

impl Home {
    /// `--home`/`ROTA_HOME`, else the platform data dir (`~/.local/share/rota` on Linux);
    /// from here on the process umask is 077 (see `rota_ops::host::Home::new`).
    /// `store` (`--store`/`ROTA_STORE`) names the store's database instead of the SQLite
    /// file in the directory.
    pub fn new(explicit: Option<PathBuf>, store: Option<String>) -> anyhow::Result<Home> {
        let dir = match explicit {
            Some(dir) => dir,
            None => dirs::data_dir()
                .map(|d| d.join("rota"))
                .context("no data directory: set ROTA_HOME")?,
        };
        Ok(Home {
            data: DataDir::new(dir.clone()).with_store(store.clone()),
            dir,
            store,
        })
    }

    /// Opens the store, after marking runs whose `rota` process died as abandoned.
    pub async fn open_store(&self) -> anyhow::Result<rota_ops::Store> {
        Ok(self.data.open_store().await?)
    }

    /// The application layer over `store`, executing runs in this process: the steps of a
    /// job without a job file (ad-hoc commands, jobs saved with `rota jobs put`) run in the
    /// working directory.
    pub fn ops(&self, store: &rota_ops::Store) -> Ops {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        self.data
            .ops(store, cwd)
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
}
