//! Opening the database: connection settings, the pool and migrations, on SQLite or
//! PostgreSQL.
//!
//! **SQLite** (the default, `$ROTA_HOME/rota.db`). Several `rota` processes share one file (a
//! running `rota run`, `rota runs` in another terminal, `rota cancel`), so every connection
//! uses WAL (readers never block the writer), `synchronous=NORMAL` (durable at each
//! checkpoint, safe against corruption), a busy timeout so a writer waits for another instead
//! of failing, and foreign keys. Writes begin with `BEGIN IMMEDIATE`, taking the write lock up
//! front: a deferred transaction that reads and then writes can fail with `SQLITE_BUSY`
//! without waiting.
//!
//! **PostgreSQL** (`postgres://…`, for several servers sharing one store). Every write
//! transaction begins with `BEGIN` and then takes one transaction-scoped advisory lock, the
//! same for all ([`Backend::begin_write`]): write transactions are serialized across every
//! process and server exactly as SQLite's single writer serializes them, and each one's
//! statements (READ COMMITTED) see everything committed before it took the lock. So every
//! argument the store makes about its writes holds unchanged on both backends: the
//! read-then-write checks of plans, claims, cancels and audit-chain appends, and the event
//! log's and log lines' ids, which are committed in increasing order, so `id > cursor` never
//! skips a row committed later with a smaller id. Single-statement writes outside
//! [`Store::write`] (touching a token, pausing a schedule) are atomic by themselves on both.
//! Reads never take the lock. The global lock costs parallelism between writers that touch
//! unrelated rows, so hot paths take row locks instead, each with its own argument: workers'
//! claims of dispatches (`FOR UPDATE SKIP LOCKED`) and their lease renewals
//! ([`Store::write_rows`]; the argument is in `crate::fleet`). Such a transaction writes no
//! event and no log line, so the ids' argument above is untouched.
//!
//! Queries go through sqlx's `Any` driver, written once in SQL both accept (see
//! [`crate::dialect`]). Each backend has its own migrations, one file per SQLite migration
//! with the same number and name (`migrations/sqlite`, `migrations/postgres`).

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, ConnectOptions as _, Executor as _, Transaction};

use crate::StoreError;
pub use crate::dialect::Backend;

/// The SQLite schema's migrations, embedded in the binary. Users' databases have applied
/// them and sqlx checks their checksums: these files never change.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL schema's migrations, one per SQLite migration, table for table.
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a writer waits for another process's write transaction (SQLite).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per process on SQLite: WAL lets readers run beside the one writer.
const SQLITE_CONNECTIONS: u32 = 4;

/// Connections per process on PostgreSQL.
const POSTGRES_CONNECTIONS: u32 = 10;

/// The database file's name inside `$ROTA_HOME`.
pub const DB_FILE: &str = "rota.db";

/// A handle on the store; cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// Its wake-ups' listener ([`Store::wake_ups`]).
    pub(crate) listener: std::sync::Arc<crate::wake::Listener>,
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
        // The `Any` driver takes a URL. An absolute path keeps the URL's first segment from
        // being read as a host name (which would lose its case).
        let absolute = std::path::absolute(&path).map_err(|source| StoreError::CreateDir {
            path: path.clone(),
            source,
        })?;
        let url = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&absolute)
            .create_if_missing(true)
            .to_url_lossy();
        Store::connect(url.as_str(), Backend::Sqlite, path.display().to_string()).await
    }

    /// Opens a database by URL and brings the schema up to date: a SQLite file
    /// (`sqlite:///var/lib/rota/rota.db?mode=rwc`) or a PostgreSQL database
    /// (`postgres://user@host:5432/rota`, also `postgresql://`; it must exist, its schema is
    /// created on first open).
    pub async fn open_url(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::of_url(url).ok_or_else(|| StoreError::BadUrl {
            url: redact(url),
            why: "only sqlite: and postgres:// (postgresql://) URLs are supported".to_owned(),
        })?;
        if backend == Backend::Sqlite {
            // Refused here, not after ten attempts to connect.
            <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url).map_err(
                |e| StoreError::BadUrl {
                    url: url.to_owned(),
                    why: e.to_string(),
                },
            )?;
        }
        Store::connect(url, backend, redact(url)).await
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Connects and migrates. Two processes opening a fresh SQLite file at once race to
    /// create it and switch it to WAL mode, and SQLite answers the loser "database is
    /// locked" without waiting for the busy timeout; the race lasts only while the schema is
    /// created, so a few short retries settle it. (sqlx's migrator locks a PostgreSQL
    /// database while it migrates, so servers starting together there simply wait.)
    async fn connect(url: &str, backend: Backend, location: String) -> Result<Store, StoreError> {
        const ATTEMPTS: u64 = 10;
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions =
            url.parse().map_err(|e: sqlx::Error| StoreError::BadUrl {
                url: redact(url),
                why: e.to_string(),
            })?;
        let mut attempt = 1;
        loop {
            let pool = pool_options(backend).connect_with(options.clone()).await;
            let result = match pool {
                Ok(pool) => migrate(&pool, backend).await.map(|()| Store {
                    pool,
                    backend,
                    listener: crate::wake::Listener::new(backend, url),
                }),
                Err(source) => Err(StoreError::Open {
                    location: location.clone(),
                    source,
                }),
            };
            match result {
                Err(StoreError::Open { .. } | StoreError::Migrate(_))
                    if backend == Backend::Sqlite && attempt < ATTEMPTS =>
                {
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Begins a write transaction holding the store's one write lock (see the module docs).
    pub(crate) async fn write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.pool.begin_with(self.backend.begin_write()).await?)
    }

    /// Begins a transaction that writes only rows it locks itself, without the store's
    /// write lock on PostgreSQL ([`Backend::begin_row_writes`]).
    pub(crate) async fn write_rows(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self
            .pool
            .begin_with(self.backend.begin_row_writes())
            .await?)
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The pool of a backend. SQLite's connection settings are pragmas set on each new
/// connection (the `Any` driver takes only a URL, which cannot carry them).
fn pool_options(backend: Backend) -> AnyPoolOptions {
    match backend {
        Backend::Sqlite => AnyPoolOptions::new()
            .max_connections(SQLITE_CONNECTIONS)
            .min_connections(0)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // The busy timeout first, so switching to WAL waits for another writer.
                    let pragmas = format!(
                        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                        BUSY_TIMEOUT.as_millis()
                    );
                    conn.execute(pragmas.as_str()).await?;
                    Ok(())
                })
            }),
        Backend::Postgres => AnyPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            .min_connections(0),
    }
}

/// Runs pending migrations. sqlx does not lock SQLite while migrating, so two processes
/// opening a fresh file at once can race; the loser's migration fails (the tables exist) and
/// `Store::connect`'s retry then finds the migration applied by the winner. On PostgreSQL
/// sqlx holds an advisory lock while it migrates, so a second server waits and then finds
/// everything applied.
async fn migrate(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    };
    migrator.run(pool).await.map_err(StoreError::from)
}

/// A URL as it may be shown: without a password.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((credentials, host)) if credentials.contains(':') => {
                let user = credentials.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
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
