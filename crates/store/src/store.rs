//! Opening the database: connection settings, the pool and migrations.
//!
//! Several `rota` processes share one SQLite file (a running `rota run`, `rota runs` in
//! another terminal, `rota cancel`), so every connection uses WAL (readers never block the
//! writer), `synchronous=NORMAL` (durable at each checkpoint, safe against corruption), a
//! busy timeout so a writer waits for another instead of failing, and foreign keys.
//! Writes begin with `BEGIN IMMEDIATE`, taking the write lock up front: a deferred
//! transaction that reads and then writes can fail with `SQLITE_BUSY` without waiting.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::StoreError;

/// The schema migrations, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another process's write transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per process: WAL lets readers run beside the one writer.
const MAX_CONNECTIONS: u32 = 4;

/// The database file's name inside `$ROTA_HOME`.
pub const DB_FILE: &str = "rota.db";

/// A handle on the store; cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) `home/rota.db`, creating `home` too (mode 0700), and
    /// brings the schema up to date. The database file is created (or made) mode 0600 whatever
    /// the umask; SQLite gives its WAL and SHM files the database file's mode, and leftover
    /// ones are made 0600 too.
    pub async fn open(home: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(home)
            .map_err(|source| StoreError::CreateDir {
                path: home.to_path_buf(),
                source,
            })?;
        let path = home.join(DB_FILE);
        make_private(&path).map_err(|source| StoreError::CreateDir {
            path: path.clone(),
            source,
        })?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        Store::connect(options, path.display().to_string()).await
    }

    /// Opens a database by URL, e.g. `sqlite:///var/lib/rota/rota.db?mode=rwc`, and brings
    /// the schema up to date. Only SQLite URLs are supported so far.
    pub async fn open_url(url: &str) -> Result<Store, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::BadUrl {
                url: url.to_owned(),
                why: "only sqlite: URLs are supported".to_owned(),
            });
        }
        let options = SqliteConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
            url: url.to_owned(),
            why: e.to_string(),
        })?;
        Store::connect(options, url.to_owned()).await
    }

    /// Connects and migrates. Two processes opening a fresh file at once race to create it
    /// and switch it to WAL mode, and SQLite answers the loser "database is locked" without
    /// waiting for the busy timeout; the race lasts only while the schema is created, so a
    /// few short retries settle it.
    async fn connect(options: SqliteConnectOptions, location: String) -> Result<Store, StoreError> {
        const ATTEMPTS: u64 = 10;
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let mut attempt = 1;
        loop {
            let pool = SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .min_connections(0)
                .connect_with(options.clone())
                .await;
            let result = match pool {
                Ok(pool) => migrate(&pool).await.map(|()| Store { pool }),
                Err(source) => Err(StoreError::Open {
                    location: location.clone(),
                    source,
                }),
            };
            match result {
                Err(StoreError::Open { .. } | StoreError::Migrate(_)) if attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Begins a write transaction holding the database's write lock.
    pub(crate) async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Runs pending migrations. sqlx does not lock SQLite while migrating, so two processes
/// opening a fresh file at once can race; the loser's migration fails (the tables exist) and
/// `Store::connect`'s retry then finds the migration applied by the winner.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(StoreError::from)
}

/// Creates the database file `path` mode 0600 if it is missing, and makes it and its WAL and
/// SHM files 0600 if they exist with another mode (files of an older Rota, or made under a
/// lax umask).
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    for file in [path.as_os_str().to_owned(), wal, shm] {
        match std::fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
