//! Test plumbing of the store's unit tests: a fresh store of either backend, and [`both!`],
//! which runs a test once per backend (`<test>::sqlite`, `<test>::postgres`), as the
//! integration tests in `tests/` do.

use crate::test_postgres::TestDatabase;
use crate::{Backend, Store};

/// An empty database of one backend, removed when dropped.
pub(crate) struct TestDb {
    _dir: tempfile::TempDir,
    _pg: Option<TestDatabase>,
}

/// A fresh store of `backend`: a SQLite file in a temporary directory, or a fresh database on
/// the PostgreSQL cluster named by `ROTA_TEST_POSTGRES` (an error without it).
pub(crate) async fn fresh(backend: Backend) -> Result<(TestDb, Store), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (pg, store) = match backend {
        Backend::Sqlite => (None, Store::open(dir.path()).await?),
        Backend::Postgres => {
            let pg = TestDatabase::create()?;
            let store = Store::open_url(pg.url()).await?;
            (Some(pg), store)
        }
    };
    Ok((TestDb { _dir: dir, _pg: pg }, store))
}

/// Runs the test function `$name(backend)` once per backend, as the tests `$name::sqlite` and
/// `$name::postgres`.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() -> Result<(), Box<dyn std::error::Error>> {
                super::$name(crate::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() -> Result<(), Box<dyn std::error::Error>> {
                super::$name(crate::Backend::Postgres).await
            }
        }
    };
}
pub(crate) use both;
