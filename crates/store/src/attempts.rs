//! Where a step's attempts are kept: one row each, not two.
//!
//! `step_runs` holds each step's current attempt (the one its status, outputs and times
//! describe); `step_attempts` holds only the attempts it no longer describes: earlier
//! attempts, kept when a later one starts, and the current attempt as it ended when the step
//! is then skipped (the skip overwrites the step's status, not the attempt's). So a step that
//! ran once, the usual case, has one row, in `step_runs`.
//!
//! Every attempt of a step is therefore its `step_attempts` rows together with its
//! `step_runs` row when that row's attempt is at least 1 and not also in `step_attempts`
//! ([`ATTEMPTS_OF_STEP`]). The writers keep that true: before `step_runs` takes another
//! attempt, [`archive_current`] copies the one it holds, and when it takes an attempt that
//! `step_attempts` holds, [`drop_archived`] removes that copy.

use sqlx::AnyConnection;

use crate::StoreError;

/// The columns of an attempt, in both tables.
const COLUMNS: &str = "attempt, status, exit_code, reason, outputs, started_at, finished_at, pgid";

/// Every attempt of the step `$1`, `$2` (run, step), oldest first, with [`COLUMNS`].
pub(crate) const ATTEMPTS_OF_STEP: &str = "\
    SELECT attempt, status, exit_code, reason, outputs, started_at, finished_at, pgid \
    FROM step_attempts WHERE run_id = $1 AND step_id = $2 \
    UNION ALL \
    SELECT s.attempt, s.status, s.exit_code, s.reason, s.outputs, s.started_at, \
    s.finished_at, s.pgid FROM step_runs s WHERE s.run_id = $1 AND s.step_id = $2 \
    AND s.attempt >= 1 AND NOT EXISTS (SELECT 1 FROM step_attempts a \
    WHERE a.run_id = s.run_id AND a.step_id = s.step_id AND a.attempt = s.attempt) \
    ORDER BY attempt";

/// For a query over `step_runs s`: the step's row is the only record of its attempt (a real
/// one, not 0), so it counts as one of the step's attempts.
pub(crate) const CURRENT_ONLY_IN_STEP_RUNS: &str = "s.attempt >= 1 AND NOT EXISTS \
    (SELECT 1 FROM step_attempts a \
     WHERE a.run_id = s.run_id AND a.step_id = s.step_id AND a.attempt = s.attempt)";

/// Which of the step's current attempts [`archive_current`] copies.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Archive {
    /// Any attempt other than this one (the step is about to take it).
    OtherThan(i64),
    /// An attempt older than this one (the step takes it only if it is newer).
    OlderThan(i64),
    /// Whatever attempt it is (the step's status is about to be overwritten by a skip).
    Any,
}

/// Copies the step's current attempt from `step_runs` into `step_attempts`, as it stands,
/// when it is a real attempt (not 0, never started) that `archive` selects. A copy already
/// there is kept: it is the attempt as it ended, before a skip overwrote the step's row.
pub(crate) async fn archive_current(
    conn: &mut AnyConnection,
    run_id: &str,
    step_id: &str,
    archive: Archive,
) -> Result<(), StoreError> {
    let (condition, attempt) = match archive {
        Archive::OtherThan(attempt) => ("attempt <> $3", attempt),
        Archive::OlderThan(attempt) => ("attempt < $3", attempt),
        Archive::Any => ("attempt >= $3", 0),
    };
    // The WHERE clause also keeps SQLite from reading `ON CONFLICT` as a join constraint.
    sqlx::query(&format!(
        "INSERT INTO step_attempts (run_id, step_id, {COLUMNS}) \
         SELECT run_id, step_id, {COLUMNS} FROM step_runs \
         WHERE run_id = $1 AND step_id = $2 AND attempt >= 1 AND {condition} \
         ON CONFLICT (run_id, step_id, attempt) DO NOTHING"
    ))
    .bind(run_id)
    .bind(step_id)
    .bind(attempt)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes the copy of `attempt` from `step_attempts` once `step_runs` holds that attempt
/// again: the step's row is then its one record.
pub(crate) async fn drop_archived(
    conn: &mut AnyConnection,
    run_id: &str,
    step_id: &str,
    attempt: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM step_attempts WHERE run_id = $1 AND step_id = $2 AND attempt = $3")
        .bind(run_id)
        .bind(step_id)
        .bind(attempt)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! A store written before attempts were kept once (schema 0017: every attempt in
    //! `step_attempts`, the latest also in `step_runs`) reads back the same after the
    //! migration, on both backends.

    use std::path::Path;

    use sqlx::migrate::Migrator;
    use sqlx::{AnyPool, Executor as _};

    use crate::test_postgres::TestDatabase;
    use crate::testing::both;
    use crate::{Backend, Store};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The last migration before attempts were kept once.
    const OLD_SCHEMA: &str = "0017";

    /// A run as the old write path left it: `a` ran once, `b` failed then succeeded, `c` was
    /// skipped without running, `d` failed and was then skipped (its step row says skipped,
    /// its attempt failed).
    const OLD_ROWS: &str = "
        INSERT INTO job_revisions (namespace, job_id, revision, hash, source, definition,
            created_at) VALUES ('ns', 'job', 1, 'h', 'id: job', '{}', 1);
        INSERT INTO runs (id, namespace, job_id, job_revision, status, params, dry_run,
            triggered_by, created_at, started_at, finished_at, owner_host, owner_pid,
            owner_start_token)
            VALUES ('r1', 'ns', 'job', 1, 'failed', '{}', FALSE, 'cli', 10, 11, 90, 'h', 1, 't');
        INSERT INTO step_runs (run_id, step_id, position, status, attempt, exit_code, reason,
            outputs, started_at, finished_at, pgid) VALUES
            ('r1', 'a', 0, 'succeeded', 1, 0, NULL, '{\"x\":\"1\"}', 20, 30, NULL),
            ('r1', 'b', 1, 'succeeded', 2, 0, NULL, '{}', 50, 60, NULL),
            ('r1', 'c', 2, 'skipped', 0, NULL, 'needs failed', '{}', NULL, 70, NULL),
            ('r1', 'd', 3, 'skipped', 1, 3, 'cancelled', '{}', 75, 80, NULL);
        INSERT INTO step_attempts (run_id, step_id, attempt, status, exit_code, reason,
            outputs, started_at, finished_at, pgid) VALUES
            ('r1', 'a', 1, 'succeeded', 0, NULL, '{\"x\":\"1\"}', 20, 30, 101),
            ('r1', 'b', 1, 'failed', 1, 'exited with code 1', '{}', 35, 40, 102),
            ('r1', 'b', 2, 'succeeded', 0, NULL, '{}', 50, 60, 103),
            ('r1', 'd', 1, 'failed', 3, 'exited with code 3', '{}', 75, 78, 104);
    ";

    both!(a_store_of_the_old_schema_reads_back_the_same_after_migrating);
    async fn a_store_of_the_old_schema_reads_back_the_same_after_migrating(
        backend: Backend,
    ) -> TestResult {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir()?;
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create()?),
        };
        let url = match &pg {
            Some(pg) => pg.url().to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join(crate::DB_FILE).display()
            ),
        };
        {
            let pool = AnyPool::connect(&url).await?;
            old_migrator(backend, dir.path()).await?.run(&pool).await?;
            pool.execute(OLD_ROWS).await?;
            pool.close().await;
        }
        let store = match backend {
            Backend::Sqlite => Store::open(dir.path()).await?,
            Backend::Postgres => Store::open_url(&url).await?,
        };

        let run = store.get_run("r1").await?.ok_or("run r1 is gone")?;
        let steps: Vec<_> = run
            .steps
            .iter()
            .map(|s| {
                let first = s.first_started_at.map(|t| t.as_microsecond());
                (
                    s.step_id.as_str(),
                    s.status.as_str(),
                    s.attempt,
                    s.attempts,
                    first,
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                ("a", "succeeded", 1, 1, Some(20)),
                ("b", "succeeded", 2, 2, Some(35)),
                ("c", "skipped", 0, 0, None),
                ("d", "skipped", 1, 1, Some(75)),
            ]
        );
        let attempts = |step: &'static str| {
            let store = store.clone();
            async move {
                let found = store.step_attempts("r1", step).await?;
                Ok::<_, crate::StoreError>(
                    found
                        .iter()
                        .map(|a| (a.attempt, a.status.as_str().to_owned(), a.exit_code, a.pgid))
                        .collect::<Vec<_>>(),
                )
            }
        };
        let owned = |rows: &[(u32, &str, Option<i32>, Option<i32>)]| {
            rows.iter()
                .map(|(n, s, c, p)| (*n, (*s).to_owned(), *c, *p))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            attempts("a").await?,
            owned(&[(1, "succeeded", Some(0), Some(101))])
        );
        assert_eq!(
            attempts("b").await?,
            owned(&[
                (1, "failed", Some(1), Some(102)),
                (2, "succeeded", Some(0), Some(103))
            ])
        );
        assert_eq!(attempts("c").await?, owned(&[]));
        assert_eq!(
            attempts("d").await?,
            owned(&[(1, "failed", Some(3), Some(104))])
        );
        // One row per attempt: only `b`'s first and `d`'s as it failed stay in step_attempts.
        let kept: Vec<(String, i64)> =
            sqlx::query_as("SELECT step_id, attempt FROM step_attempts ORDER BY step_id")
                .fetch_all(&store.pool)
                .await?;
        assert_eq!(kept, [("b".to_owned(), 1), ("d".to_owned(), 1)]);
        Ok(())
    }

    /// A migrator of the schema as it was at [`OLD_SCHEMA`]: the backend's migrations up to
    /// it, copied into `dir` (their checksums are those the store then finds applied).
    async fn old_migrator(
        backend: Backend,
        dir: &Path,
    ) -> Result<Migrator, Box<dyn std::error::Error>> {
        let name = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(name);
        let target = dir.join("old-migrations");
        std::fs::create_dir_all(&target)?;
        for entry in std::fs::read_dir(&source)? {
            let path = entry?.path();
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if file.as_bytes().get(..4) <= Some(OLD_SCHEMA.as_bytes()) {
                std::fs::copy(&path, target.join(file))?;
            }
        }
        Ok(Migrator::new(target).await?)
    }
}
