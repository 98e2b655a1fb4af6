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
    pub fn new(explicit: Option<PathBuf>) -> anyhow::Result<Home> {
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
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
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

    /// Where runs keep their files (outputs, notebooks).
    pub fn artifacts_dir(&self) -> PathBuf {
        self.dir.join("runs")
    }
}
