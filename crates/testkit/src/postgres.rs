//! Fresh PostgreSQL databases for tests of the PostgreSQL store, on the cluster that
//! `scripts/postgres` (called by `scripts/setup`) starts and names in `ROTA_TEST_POSTGRES`.
//!
//! Each [`TestDatabase`] is a database of its own (`rota_t_<random>`), dropped when the value
//! is dropped, so tests running in parallel never see each other's rows. Databases are made
//! with `psql` (PostgreSQL's client, installed with the server), which keeps this plumbing
//! free of a database driver. It uses only the standard library: rota-store's tests include
//! this file by path (a dev-dependency on this crate would build the store twice).

use std::process::{Command, Stdio};

/// The variable naming the test cluster: a `postgres://` URL of a database (any) on it whose
/// user may create databases.
pub const ENV: &str = "ROTA_TEST_POSTGRES";

/// A database created for one test, dropped (with its connections) on drop.
#[derive(Debug)]
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database on the cluster named by `ROTA_TEST_POSTGRES`. Fails, never
    /// skips, when the variable is missing: a test meant to run on PostgreSQL must not pass
    /// without it.
    pub fn create() -> Result<TestDatabase, String> {
        let admin = std::env::var(ENV).map_err(|_| {
            format!(
                "{ENV} is not set: the PostgreSQL tests need a PostgreSQL server; run \
                 `eval \"$(scripts/setup)\"` (or `eval \"$(scripts/postgres)\"`) in this shell first"
            )
        })?;
        let name = format!("rota_t_{}", unique());
        psql(&admin, &format!("CREATE DATABASE {name}"))?;
        let url = with_database(&admin, &name)?;
        Ok(TestDatabase { admin, name, url })
    }

    /// The database's URL, for `Store::open_url` or `rota serve --store`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `sql` in the database through `psql` and returns its unaligned output (rows one
    /// per line, columns separated by `|`).
    pub fn query(&self, sql: &str) -> Result<String, String> {
        psql(&self.url, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // A store still open in the test holds connections; FORCE ends them.
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// `admin` with its database replaced by `name`.
fn with_database(admin: &str, name: &str) -> Result<String, String> {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin, None),
    };
    let after_scheme = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| format!("{ENV}={admin:?} is not a postgres:// URL"))?;
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    Ok(match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    })
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql (PostgreSQL's client): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

/// A name part no other test process or thread picks: pid, time and a counter.
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
