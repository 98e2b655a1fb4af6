//! Integration tests of the store, each run on both backends: a real SQLite file in a
//! temporary directory (`<test>::sqlite`) and a fresh database on a real PostgreSQL server
//! (`<test>::postgres`, on the cluster `scripts/setup` starts and names in
//! `ROTA_TEST_POSTGRES`; without it those tests fail, saying so).

use std::collections::BTreeMap;
use std::time::Instant;

use jiff::Timestamp;
use rota_core::model::{RunStatus, StepStatus};
use rota_store::{
    Backend, LogStream, NewJobRevision, NewRun, Owner, RunEvent, RunFilter, Store, StoreError,
};
use serde_json::json;

#[path = "../../testkit/src/postgres.rs"]
#[allow(dead_code)]
mod postgres;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Runs the test function `$name(backend)` once per backend, as the tests `$name::sqlite` and
/// `$name::postgres`; a tokio test flavor may follow the name.
macro_rules! both {
    ($name:ident $(, $flavor:tt)?) => {
        mod $name {
            #[tokio::test $($flavor)?]
            async fn sqlite() -> Result<(), Box<dyn std::error::Error>> {
                super::$name(rota_store::Backend::Sqlite).await
            }

            #[tokio::test $($flavor)?]
            async fn postgres() -> Result<(), Box<dyn std::error::Error>> {
                super::$name(rota_store::Backend::Postgres).await
            }
        }
    };
}

/// An empty database of one backend, removed when dropped: a temporary directory for
/// SQLite's file, plus a fresh database for PostgreSQL.
struct Db {
    dir: tempfile::TempDir,
    pg: Option<postgres::TestDatabase>,
}

impl Db {
    fn new(backend: Backend) -> Result<Db, Box<dyn std::error::Error>> {
        Ok(Db {
            dir: tempfile::tempdir()?,
            pg: match backend {
                Backend::Sqlite => None,
                Backend::Postgres => Some(postgres::TestDatabase::create()?),
            },
        })
    }

    /// A new handle on the database (creating its schema the first time).
    async fn open(&self) -> Result<Store, StoreError> {
        match &self.pg {
            Some(pg) => Store::open_url(pg.url()).await,
            None => Store::open(self.dir.path()).await,
        }
    }
}

/// A fresh store of `backend` (kept alive by the returned guard).
async fn fresh(backend: Backend) -> Result<(Db, Store), Box<dyn std::error::Error>> {
    let db = Db::new(backend)?;
    let store = db.open().await?;
    assert_eq!(store.backend(), backend);
    Ok((db, store))
}

/// A timestamp `secs` seconds after a fixed origin, with microsecond detail.
fn at(secs: i64) -> Timestamp {
    Timestamp::from_microsecond(1_700_000_000_000_000 + secs * 1_000_000 + 123_456)
        .expect("in range")
}

fn owner() -> Owner {
    Owner {
        host: "host-a".into(),
        pid: 4242,
        start_token: "boot-1".into(),
    }
}

/// Saves revision 1 of `job` in namespace `ns`.
async fn job(store: &Store, ns: &str, job: &str) -> Result<i64, StoreError> {
    let rev = NewJobRevision::new(ns, job, format!("id: {job}\n"), json!({ "id": job }), at(0));
    Ok(store.save_job_revision(&rev).await?.revision)
}

fn new_run(id: &str, ns: &str, job: &str, created: i64, steps: &[&str]) -> NewRun {
    NewRun {
        id: id.into(),
        namespace: ns.into(),
        job_id: job.into(),
        job_revision: 1,
        params: json!({ "env": "staging", "n": 3 }),
        dry_run: false,
        trigger: "cli".into(),
        started_by: None,
        scheduled_at: None,
        created_at: at(created),
        owner: owner(),
        steps: steps.iter().map(|s| s.to_string()).collect(),
        parent: None,
    }
}

async fn create(store: &Store, run: NewRun) -> Result<(), StoreError> {
    store.record(&[RunEvent::RunCreated { run }]).await
}

fn started(run: &str, step: &str, attempt: u32, secs: i64, pgid: Option<i32>) -> RunEvent {
    RunEvent::StepStarted {
        run_id: run.into(),
        step_id: step.into(),
        attempt,
        at: at(secs),
        pgid,
    }
}

fn finished(
    run: &str,
    step: &str,
    attempt: u32,
    status: StepStatus,
    code: i32,
    secs: i64,
) -> RunEvent {
    RunEvent::StepFinished {
        run_id: run.into(),
        step_id: step.into(),
        attempt,
        status,
        exit_code: Some(code),
        reason: (code != 0).then(|| format!("exit code {code}")),
        outputs: BTreeMap::new(),
        at: at(secs),
    }
}

fn log(run: &str, step: &str, secs: i64, stream: LogStream, text: &str) -> RunEvent {
    RunEvent::Log {
        run_id: run.into(),
        step_id: step.into(),
        attempt: 1,
        ts: at(secs),
        stream,
        text: text.into(),
    }
}

async fn event_kinds(store: &Store) -> Result<Vec<(String, Option<String>)>, StoreError> {
    Ok(store
        .events_after(0, 1000)
        .await?
        .into_iter()
        .map(|e| (e.kind, e.step_id))
        .collect())
}

both!(open_creates_the_store);
/// SQLite: the data directory and the database file are created. PostgreSQL: the (existing,
/// empty) database gets the schema.
async fn open_creates_the_store(backend: Backend) -> TestResult {
    let db = Db::new(backend)?;
    let store = match &db.pg {
        None => {
            let home = db.dir.path().join("nested").join("home");
            let store = Store::open(&home).await?;
            assert!(home.join(rota_store::DB_FILE).is_file());
            store
        }
        Some(pg) => {
            let tables = "SELECT count(*) FROM information_schema.tables \
                          WHERE table_schema = 'public' AND table_name = 'runs'";
            assert_eq!(pg.query(tables)?, "0");
            let store = db.open().await?;
            assert_eq!(pg.query(tables)?, "1");
            store
        }
    };
    assert!(store.list_jobs(None).await?.is_empty());
    Ok(())
}

both!(open_sets_up_the_database_as_the_store_needs);
/// SQLite: the file is in WAL mode (readers beside the writer). PostgreSQL: every text
/// column compares by code point, as SQLite does, whatever the database's collation.
async fn open_sets_up_the_database_as_the_store_needs(backend: Backend) -> TestResult {
    let (db, _store) = fresh(backend).await?;
    match &db.pg {
        None => {
            let url = format!("sqlite://{}", db.dir.path().join("rota.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await?;
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&pool)
                .await?;
            assert_eq!(mode, "wal");
            pool.close().await;
        }
        Some(pg) => {
            let text_columns = pg.query(
                "SELECT count(*) FROM information_schema.columns \
                 WHERE table_schema = 'public' AND data_type = 'text' \
                 AND table_name <> '_sqlx_migrations'",
            )?;
            assert!(text_columns.parse::<u32>()? > 50, "{text_columns}");
            let others = pg.query(
                "SELECT table_name || '.' || column_name FROM information_schema.columns \
                 WHERE table_schema = 'public' AND data_type = 'text' \
                 AND table_name <> '_sqlx_migrations' AND collation_name IS DISTINCT FROM 'C'",
            )?;
            assert_eq!(others, "", "text columns without COLLATE \"C\"");
        }
    }
    Ok(())
}

both!(open_url_opens_its_backends_urls_and_refuses_others);
async fn open_url_opens_its_backends_urls_and_refuses_others(backend: Backend) -> TestResult {
    let db = Db::new(backend)?;
    match &db.pg {
        None => {
            let path = db.dir.path().join("other.db");
            let store = Store::open_url(&format!("sqlite://{}?mode=rwc", path.display())).await?;
            assert_eq!(store.backend(), Backend::Sqlite);
            assert_eq!(job(&store, "default", "hello").await?, 1);
            assert!(path.is_file());
        }
        Some(pg) => {
            let store = Store::open_url(pg.url()).await?;
            assert_eq!(store.backend(), Backend::Postgres);
            assert_eq!(job(&store, "default", "hello").await?, 1);
            // `postgresql://` is the same thing.
            let alias = pg.url().replacen("postgres://", "postgresql://", 1);
            let again = Store::open_url(&alias).await?;
            assert_eq!(again.list_jobs(None).await?.len(), 1);
        }
    }
    for url in ["mysql://localhost/rota", "/var/lib/rota/rota.db"] {
        let err = Store::open_url(url).await.err();
        assert!(matches!(err, Some(StoreError::BadUrl { .. })), "{err:?}");
    }
    Ok(())
}

both!(migrations_run_once_across_reopens);
async fn migrations_run_once_across_reopens(backend: Backend) -> TestResult {
    let (db, store) = fresh(backend).await?;
    store.close().await;
    let again = db.open().await?;
    again.close().await;
    let _third = db.open().await?;
    let (applied, migrations): (Vec<i64>, &str) = match &db.pg {
        None => {
            let url = format!("sqlite://{}", db.dir.path().join("rota.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await?;
            let applied = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
                .fetch_all(&pool)
                .await?;
            pool.close().await;
            (applied, "sqlite")
        }
        Some(pg) => {
            let text = pg.query("SELECT version FROM _sqlx_migrations ORDER BY version")?;
            let applied = text.lines().map(str::parse).collect::<Result<_, _>>()?;
            (applied, "postgres")
        }
    };
    // Each migration file is applied exactly once, however often the store is opened.
    let files = |backend: &str| -> std::io::Result<Vec<String>> {
        let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    };
    let mut expected: Vec<i64> = files(migrations)?
        .iter()
        .filter_map(|name| name.split('_').next()?.parse().ok())
        .collect();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(applied, expected);
    // The PostgreSQL schema mirrors SQLite's migration for migration.
    assert_eq!(files("sqlite")?, files("postgres")?);
    Ok(())
}

both!(concurrent_first_opens_of_one_database_both_succeed);
async fn concurrent_first_opens_of_one_database_both_succeed(backend: Backend) -> TestResult {
    let db = Db::new(backend)?;
    let (a, b) = tokio::join!(db.open(), db.open());
    let (a, b) = (a?, b?);
    job(&a, "default", "from-a").await?;
    job(&b, "default", "from-b").await?;
    assert_eq!(a.list_jobs(None).await?.len(), 2);
    Ok(())
}

both!(job_revisions_are_idempotent_on_the_latest_hash);
async fn job_revisions_are_idempotent_on_the_latest_hash(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    let a = NewJobRevision::new(
        "ops",
        "certs",
        "id: certs\n",
        json!({ "id": "certs" }),
        at(1),
    );
    let b = NewJobRevision::new(
        "ops",
        "certs",
        "id: certs # v2\n",
        json!({ "id": "certs" }),
        at(2),
    );
    assert_ne!(a.hash, b.hash, "the source text is part of the hash");

    let first = store.save_job_revision(&a).await?;
    assert_eq!(first.revision, 1);
    let same = store.save_job_revision(&a).await?;
    assert_eq!(same, first);
    let second = store.save_job_revision(&b).await?;
    assert_eq!(second.revision, 2);
    assert_eq!(second.source, "id: certs # v2\n");
    // Going back to the first content is a change too: the latest is what was saved last.
    let third = store.save_job_revision(&a).await?;
    assert_eq!(third.revision, 3);

    let latest = store.latest_job_revision("ops", "certs").await?;
    assert_eq!(latest.map(|r| r.revision), Some(3));
    assert_eq!(store.latest_job_revision("ops", "nope").await?, None);
    let old = store.job_revision("ops", "certs", 2).await?;
    assert_eq!(old.map(|r| r.hash), Some(b.hash.clone()));
    // Another namespace numbers its own revisions.
    let other = NewJobRevision::new(
        "dev",
        "certs",
        "id: certs\n",
        json!({ "id": "certs" }),
        at(3),
    );
    assert_eq!(store.save_job_revision(&other).await?.revision, 1);
    Ok(())
}

both!(list_jobs_gives_the_latest_revision_of_each_job);
async fn list_jobs_gives_the_latest_revision_of_each_job(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "zeta").await?;
    job(&store, "ops", "alpha").await?;
    job(&store, "dev", "alpha").await?;
    let v2 = NewJobRevision::new(
        "ops",
        "alpha",
        "id: alpha\n# v2\n",
        json!({ "id": "alpha" }),
        at(5),
    );
    store.save_job_revision(&v2).await?;

    let all: Vec<(String, String, i64)> = store
        .list_jobs(None)
        .await?
        .into_iter()
        .map(|j| (j.namespace, j.job_id, j.revision))
        .collect();
    assert_eq!(
        all,
        vec![
            ("dev".into(), "alpha".into(), 1),
            ("ops".into(), "alpha".into(), 2),
            ("ops".into(), "zeta".into(), 1),
        ]
    );
    let ops = store.list_jobs(Some("ops")).await?;
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0].definition, json!({ "id": "alpha" }));
    Ok(())
}

both!(a_whole_run_round_trips);
async fn a_whole_run_round_trips(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    let mut run = new_run(
        "r-1",
        "ops",
        "deploy",
        10,
        &["build", "test", "ship", "report"],
    );
    run.scheduled_at = Some(at(9));
    run.dry_run = true;
    run.trigger = "cron".into();
    let mut outputs = BTreeMap::new();
    outputs.insert("version".to_string(), "1.2.3".to_string());
    store
        .record(&[
            RunEvent::RunCreated { run: run.clone() },
            RunEvent::RunStarted {
                run_id: "r-1".into(),
                at: at(11),
            },
            started("r-1", "build", 1, 12, Some(1001)),
            log("r-1", "build", 13, LogStream::Stdout, "compiling"),
            log("r-1", "build", 14, LogStream::Stderr, "warning: x"),
            RunEvent::StepFinished {
                run_id: "r-1".into(),
                step_id: "build".into(),
                attempt: 1,
                status: StepStatus::Succeeded,
                exit_code: Some(0),
                reason: None,
                outputs: outputs.clone(),
                at: at(15),
            },
            started("r-1", "test", 1, 16, Some(1002)),
            finished("r-1", "test", 1, StepStatus::Failed, 3, 17),
            started("r-1", "test", 2, 18, Some(1003)),
            finished("r-1", "test", 2, StepStatus::Failed, 4, 19),
            RunEvent::StepSkipped {
                run_id: "r-1".into(),
                step_id: "ship".into(),
                status: StepStatus::Skipped,
                reason: "needs failed: test".into(),
                at: at(20),
            },
            RunEvent::RunFinished {
                run_id: "r-1".into(),
                status: RunStatus::Failed,
                reason: Some("step test failed".into()),
                at: at(21),
            },
        ])
        .await?;

    let got = store.get_run("r-1").await?.ok_or("run missing")?;
    assert_eq!(got.id, "r-1");
    assert_eq!(
        (got.namespace.as_str(), got.job_id.as_str()),
        ("ops", "deploy")
    );
    assert_eq!(got.job_revision, 1);
    assert_eq!(got.status, RunStatus::Failed);
    assert_eq!(got.reason.as_deref(), Some("step test failed"));
    assert_eq!(got.params, json!({ "env": "staging", "n": 3 }));
    assert!(got.dry_run);
    assert_eq!(got.trigger, "cron");
    assert_eq!(got.scheduled_at, Some(at(9)));
    assert_eq!(got.created_at, at(10));
    assert_eq!(got.started_at, Some(at(11)));
    assert_eq!(got.finished_at, Some(at(21)));
    assert_eq!(got.owner, owner());
    assert!(!got.cancel_requested);

    let steps: Vec<&str> = got.steps.iter().map(|s| s.step_id.as_str()).collect();
    assert_eq!(steps, ["build", "test", "ship", "report"], "file order");
    let build = &got.steps[0];
    assert_eq!(build.status, StepStatus::Succeeded);
    assert_eq!((build.attempt, build.attempts), (1, 1));
    assert_eq!(build.exit_code, Some(0));
    assert_eq!(build.outputs, outputs);
    assert_eq!(
        (build.started_at, build.finished_at),
        (Some(at(12)), Some(at(15)))
    );
    let test = &got.steps[1];
    assert_eq!(test.status, StepStatus::Failed);
    assert_eq!((test.attempt, test.attempts), (2, 2));
    assert_eq!(test.exit_code, Some(4));
    assert_eq!(test.reason.as_deref(), Some("exit code 4"));
    assert_eq!(test.started_at, Some(at(18)));
    let ship = &got.steps[2];
    assert_eq!(ship.status, StepStatus::Skipped);
    assert_eq!((ship.attempt, ship.attempts), (0, 0));
    assert_eq!(ship.reason.as_deref(), Some("needs failed: test"));
    assert_eq!(ship.finished_at, Some(at(20)));
    let report = &got.steps[3];
    assert_eq!(report.status, StepStatus::Pending);
    assert_eq!((report.started_at, report.finished_at), (None, None));

    let attempts = store.step_attempts("r-1", "test").await?;
    let summary: Vec<_> = attempts
        .iter()
        .map(|a| {
            (
                a.attempt,
                a.status,
                a.exit_code,
                a.started_at,
                a.finished_at,
                a.pgid,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                1,
                StepStatus::Failed,
                Some(3),
                Some(at(16)),
                Some(at(17)),
                Some(1002)
            ),
            (
                2,
                StepStatus::Failed,
                Some(4),
                Some(at(18)),
                Some(at(19)),
                Some(1003)
            ),
        ]
    );

    let logs = store.logs("r-1", None, 0, 100).await?;
    let lines: Vec<_> = logs
        .iter()
        .map(|l| {
            (
                l.step_id.as_str(),
                l.attempt,
                l.ts,
                l.stream,
                l.text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("build", 1, at(13), LogStream::Stdout, "compiling"),
            ("build", 1, at(14), LogStream::Stderr, "warning: x"),
        ]
    );
    assert!(logs[0].seq < logs[1].seq);

    let kinds = event_kinds(&store).await?;
    let expected: Vec<(&str, Option<&str>)> = vec![
        ("run.created", None),
        ("run.started", None),
        ("step.started", Some("build")),
        ("step.finished", Some("build")),
        ("step.started", Some("test")),
        ("step.finished", Some("test")),
        ("step.started", Some("test")),
        ("step.finished", Some("test")),
        ("step.skipped", Some("ship")),
        ("run.finished", None),
    ];
    let expected: Vec<(String, Option<String>)> = expected
        .into_iter()
        .map(|(k, s)| (k.to_string(), s.map(str::to_string)))
        .collect();
    assert_eq!(kinds, expected);
    let events = store.events_after(0, 1000).await?;
    assert!(events.iter().all(|e| e.run_id.as_deref() == Some("r-1")));
    assert_eq!(events[3].data["outputs"], json!({ "version": "1.2.3" }));
    assert_eq!(
        events[9].data,
        json!({ "status": "failed", "reason": "step test failed" })
    );
    assert_eq!(events[0].at, at(10));
    Ok(())
}

both!(events_after_pages_through_the_log);
async fn events_after_pages_through_the_log(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    create(&store, new_run("r-1", "ops", "deploy", 1, &["a"])).await?;
    store
        .record(&[
            started("r-1", "a", 1, 2, None),
            finished("r-1", "a", 1, StepStatus::Succeeded, 0, 3),
        ])
        .await?;
    let first = store.events_after(0, 2).await?;
    assert_eq!(first.len(), 2);
    let rest = store.events_after(first[1].id, 10).await?;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].kind, "step.finished");
    assert!(store.events_after(rest[0].id, 10).await?.is_empty());
    Ok(())
}

both!(a_step_finished_without_a_start_still_records_its_attempt);
async fn a_step_finished_without_a_start_still_records_its_attempt(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    create(&store, new_run("r-1", "ops", "deploy", 1, &["a"])).await?;
    store
        .record(&[finished("r-1", "a", 1, StepStatus::Succeeded, 0, 2)])
        .await?;
    let attempts = store.step_attempts("r-1", "a").await?;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].started_at, None);
    assert_eq!(attempts[0].finished_at, Some(at(2)));
    Ok(())
}

both!(a_late_finish_of_an_older_attempt_does_not_hide_the_newer_one);
async fn a_late_finish_of_an_older_attempt_does_not_hide_the_newer_one(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    create(&store, new_run("r-1", "ops", "deploy", 1, &["a"])).await?;
    store
        .record(&[
            started("r-1", "a", 1, 2, None),
            started("r-1", "a", 2, 3, None),
            finished("r-1", "a", 1, StepStatus::TimedOut, 1, 4),
        ])
        .await?;
    let run = store.get_run("r-1").await?.ok_or("run missing")?;
    assert_eq!(
        (run.steps[0].status, run.steps[0].attempt),
        (StepStatus::Running, 2)
    );
    let attempts = store.step_attempts("r-1", "a").await?;
    assert_eq!(attempts[0].status, StepStatus::TimedOut);
    Ok(())
}

both!(a_batch_with_a_bad_event_applies_nothing);
async fn a_batch_with_a_bad_event_applies_nothing(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    let err = store
        .record(&[
            RunEvent::RunCreated {
                run: new_run("r-1", "ops", "deploy", 1, &["a"]),
            },
            started("r-1", "a", 1, 2, None),
            started("r-1", "no-such-step", 1, 2, None),
        ])
        .await
        .err();
    assert!(
        matches!(&err, Some(StoreError::UnknownStep { step_id, .. }) if step_id == "no-such-step"),
        "{err:?}"
    );
    assert_eq!(store.get_run("r-1").await?, None);
    assert!(store.events_after(0, 10).await?.is_empty());

    let err = store
        .record(&[RunEvent::RunStarted {
            run_id: "ghost".into(),
            at: at(1),
        }])
        .await
        .err();
    assert!(matches!(err, Some(StoreError::RunNotFound(_))), "{err:?}");
    let err = store
        .record(&[log("ghost", "a", 1, LogStream::System, "x")])
        .await
        .err();
    assert!(matches!(err, Some(StoreError::RunNotFound(_))), "{err:?}");
    Ok(())
}

both!(creating_a_run_checks_its_id_and_job_revision);
async fn creating_a_run_checks_its_id_and_job_revision(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    create(&store, new_run("r-1", "ops", "deploy", 1, &["a"])).await?;
    let err = create(&store, new_run("r-1", "ops", "deploy", 2, &["a"]))
        .await
        .err();
    assert!(
        matches!(err, Some(StoreError::DuplicateRun(ref id)) if id == "r-1"),
        "{err:?}"
    );
    let mut unknown = new_run("r-2", "ops", "deploy", 2, &["a"]);
    unknown.job_revision = 7;
    let err = create(&store, unknown).await.err();
    assert!(
        matches!(
            err,
            Some(StoreError::UnknownJobRevision { revision: 7, .. })
        ),
        "{err:?}"
    );
    Ok(())
}

both!(logs_filter_by_step_and_follow_a_cursor);
async fn logs_filter_by_step_and_follow_a_cursor(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    create(&store, new_run("r-1", "ops", "deploy", 1, &["a", "b"])).await?;
    create(&store, new_run("r-2", "ops", "deploy", 2, &["a"])).await?;
    let mut batch = Vec::new();
    for i in 0..10 {
        let step = if i % 2 == 0 { "a" } else { "b" };
        batch.push(log("r-1", step, i, LogStream::Stdout, &format!("line {i}")));
        batch.push(log("r-2", "a", i, LogStream::Stdout, &format!("other {i}")));
    }
    store.record(&batch).await?;

    let texts = |logs: &[rota_store::LogRecord]| -> Vec<String> {
        logs.iter().map(|l| l.text.clone()).collect()
    };
    let page1 = store.logs("r-1", None, 0, 4).await?;
    assert_eq!(texts(&page1), ["line 0", "line 1", "line 2", "line 3"]);
    let last = page1.last().ok_or("empty page")?.seq;
    let page2 = store.logs("r-1", None, last, 100).await?;
    assert_eq!(page2.len(), 6);
    assert_eq!(page2[0].text, "line 4");
    let only_b = store.logs("r-1", Some("b"), 0, 100).await?;
    assert_eq!(
        texts(&only_b),
        ["line 1", "line 3", "line 5", "line 7", "line 9"]
    );
    assert!(store.logs("r-1", Some("zzz"), 0, 100).await?.is_empty());
    Ok(())
}

both!(list_runs_filters_orders_newest_first_and_pages);
async fn list_runs_filters_orders_newest_first_and_pages(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    job(&store, "ops", "backup").await?;
    job(&store, "dev", "deploy").await?;
    // Two runs share a creation time, so the id breaks the tie.
    create(&store, new_run("r-a", "ops", "deploy", 1, &["s"])).await?;
    create(&store, new_run("r-b", "ops", "backup", 2, &["s"])).await?;
    create(&store, new_run("r-c", "ops", "deploy", 3, &["s"])).await?;
    create(&store, new_run("r-d", "ops", "deploy", 3, &["s"])).await?;
    create(&store, new_run("r-e", "dev", "deploy", 4, &["s"])).await?;
    store
        .record(&[RunEvent::RunFinished {
            run_id: "r-c".into(),
            status: RunStatus::Succeeded,
            reason: None,
            at: at(5),
        }])
        .await?;

    let ids = |runs: Vec<rota_store::RunRecord>| -> Vec<String> {
        runs.into_iter().map(|r| r.id).collect()
    };
    let all = store.list_runs(&RunFilter::default()).await?;
    assert_eq!(all[0].steps.len(), 1, "listed runs carry their steps");
    assert_eq!(ids(all), ["r-e", "r-d", "r-c", "r-b", "r-a"]);

    let ops = RunFilter {
        namespace: Some("ops".into()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(store.list_runs(&ops).await?),
        ["r-d", "r-c", "r-b", "r-a"]
    );
    let deploy = RunFilter {
        namespace: Some("ops".into()),
        job_id: Some("deploy".into()),
        ..RunFilter::default()
    };
    assert_eq!(ids(store.list_runs(&deploy).await?), ["r-d", "r-c", "r-a"]);
    let succeeded = RunFilter {
        status: Some(RunStatus::Succeeded),
        ..RunFilter::default()
    };
    assert_eq!(ids(store.list_runs(&succeeded).await?), ["r-c"]);
    let queued_deploys = RunFilter {
        job_id: Some("deploy".into()),
        status: Some(RunStatus::Queued),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(store.list_runs(&queued_deploys).await?),
        ["r-e", "r-d", "r-a"]
    );
    // A time window: since is inclusive, until exclusive.
    let window = RunFilter {
        created_since: Some(at(2)),
        created_until: Some(at(4)),
        ..RunFilter::default()
    };
    assert_eq!(ids(store.list_runs(&window).await?), ["r-d", "r-c", "r-b"]);
    // An id prefix, as the CLI resolves abbreviated ids against a server.
    let prefixed = |prefix: &str| RunFilter {
        id_prefix: Some(prefix.into()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(store.list_runs(&prefixed("r-")).await?),
        ["r-e", "r-d", "r-c", "r-b", "r-a"]
    );
    assert_eq!(ids(store.list_runs(&prefixed("r-c")).await?), ["r-c"]);
    assert!(store.list_runs(&prefixed("r-cx")).await?.is_empty());
    assert_eq!(store.list_runs(&prefixed("r")).await?.len(), 5);

    // Page through everything two at a time with the cursor.
    let mut seen = Vec::new();
    let mut filter = RunFilter {
        limit: 2,
        ..RunFilter::default()
    };
    loop {
        let page = store.list_runs(&filter).await?;
        let Some(last) = page.last() else { break };
        filter.before = Some(last.cursor());
        seen.extend(ids(page));
    }
    assert_eq!(seen, ["r-e", "r-d", "r-c", "r-b", "r-a"]);

    // One at a time within a namespace: the cursor steps across the tie and the filter holds.
    let mut seen = Vec::new();
    let mut filter = RunFilter {
        namespace: Some("ops".into()),
        limit: 1,
        ..RunFilter::default()
    };
    loop {
        let page = store.list_runs(&filter).await?;
        let Some(last) = page.last() else { break };
        filter.before = Some(last.cursor());
        seen.extend(ids(page));
    }
    assert_eq!(seen, ["r-d", "r-c", "r-b", "r-a"]);
    Ok(())
}

both!(find_run_matches_unique_prefixes_only);
async fn find_run_matches_unique_prefixes_only(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    for (i, id) in ["abc123", "abd456", "xyz789", "abc"]
        .into_iter()
        .enumerate()
    {
        create(&store, new_run(id, "ops", "deploy", i as i64, &["s"])).await?;
    }
    assert_eq!(store.find_run("xyz789").await?.id, "xyz789");
    assert_eq!(store.find_run("x").await?.id, "xyz789");
    assert_eq!(store.find_run("abd").await?.id, "abd456");
    // An exact id wins even when it is also a prefix of another id.
    assert_eq!(store.find_run("abc").await?.id, "abc");
    assert_eq!(store.find_run("abc1").await?.steps.len(), 1);
    match store.find_run("ab").await {
        Err(StoreError::Ambiguous { prefix, candidates }) => {
            assert_eq!(prefix, "ab");
            assert_eq!(candidates, ["abc", "abc123", "abd456"]);
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    assert!(matches!(
        store.find_run("q").await,
        Err(StoreError::RunNotFound(_))
    ));
    assert!(matches!(
        store.find_run("abc1234").await,
        Err(StoreError::RunNotFound(_))
    ));
    Ok(())
}

both!(cancel_requests_are_recorded_once_forced_by_a_second_and_refused_after_the_end);
async fn cancel_requests_are_recorded_once_forced_by_a_second_and_refused_after_the_end(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    create(&store, new_run("r-1", "ops", "deploy", 1, &["s"])).await?;
    create(&store, new_run("r-2", "ops", "deploy", 2, &["s"])).await?;
    assert!(!store.cancel_requested("r-1").await?);

    assert!(store.request_cancel("r-1", "alice").await?);
    assert!(store.request_cancel("r-1", "bob").await?);
    assert!(store.cancel_requested("r-1").await?);
    let run = store.get_run("r-1").await?.ok_or("run missing")?;
    assert!(run.cancel_requested);
    assert_eq!(run.cancel_requested_by.as_deref(), Some("alice"));
    let requests: Vec<_> = store
        .events_after(0, 100)
        .await?
        .into_iter()
        .filter(|e| e.kind == "run.cancel_requested")
        .collect();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].data, json!({ "by": "alice" }));
    // The second request forced the cancel; a third changes nothing.
    assert_eq!(
        store.cancel_state("r-1").await?,
        rota_store::CancelState::Forced
    );
    assert!(store.request_cancel("r-1", "carol").await?);
    let pending = store.pending_cancels().await?;
    assert_eq!(
        pending,
        [rota_store::PendingCancel {
            run_id: "r-1".into(),
            by: "alice".into(),
            forced: true
        }]
    );
    let forced = store
        .events_after(0, 100)
        .await?
        .into_iter()
        .filter(|e| e.kind == "run.cancel_forced")
        .count();
    assert_eq!(forced, 1);

    store
        .record(&[RunEvent::RunFinished {
            run_id: "r-2".into(),
            status: RunStatus::Succeeded,
            reason: None,
            at: at(3),
        }])
        .await?;
    assert!(!store.request_cancel("r-2", "alice").await?);
    assert!(!store.cancel_requested("r-2").await?);
    assert!(matches!(
        store.request_cancel("ghost", "alice").await,
        Err(StoreError::RunNotFound(_))
    ));
    Ok(())
}

both!(active_runs_lists_queued_and_running_runs_with_process_groups);
async fn active_runs_lists_queued_and_running_runs_with_process_groups(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    create(&store, new_run("r-1", "ops", "deploy", 1, &["a", "b", "c"])).await?;
    create(&store, new_run("r-2", "ops", "deploy", 2, &["a"])).await?;
    create(&store, new_run("r-3", "ops", "deploy", 3, &["a"])).await?;
    store
        .record(&[
            RunEvent::RunStarted {
                run_id: "r-1".into(),
                at: at(4),
            },
            started("r-1", "a", 1, 5, Some(777)),
            started("r-1", "b", 1, 5, Some(778)),
            finished("r-1", "b", 1, StepStatus::Succeeded, 0, 6),
            RunEvent::RunFinished {
                run_id: "r-3".into(),
                status: RunStatus::Cancelled,
                reason: None,
                at: at(6),
            },
        ])
        .await?;
    let active = store.active_runs().await?;
    let ids: Vec<&str> = active.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r-1", "r-2"]);
    assert_eq!(active[0].status, RunStatus::Running);
    assert_eq!(active[0].owner, owner());
    let running: Vec<_> = active[0]
        .running_steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.attempt, s.pgid))
        .collect();
    assert_eq!(running, [("a", 1, Some(777))]);
    assert_eq!(active[1].status, RunStatus::Queued);
    assert!(active[1].running_steps.is_empty());
    Ok(())
}

/// Run `r-1` of `ops/deploy` whose owner died while step `busy` ran: `done` succeeded,
/// `later` never started. Returns how many events the store holds.
async fn run_with_a_busy_step(store: &Store) -> Result<usize, StoreError> {
    job(store, "ops", "deploy").await?;
    create(
        store,
        new_run("r-1", "ops", "deploy", 1, &["done", "busy", "later"]),
    )
    .await?;
    store
        .record(&[
            RunEvent::RunStarted {
                run_id: "r-1".into(),
                at: at(2),
            },
            started("r-1", "done", 1, 3, Some(10)),
            finished("r-1", "done", 1, StepStatus::Succeeded, 0, 4),
            started("r-1", "busy", 1, 5, Some(11)),
        ])
        .await?;
    Ok(store.events_after(0, 1000).await?.len())
}

both!(mark_abandoned_ends_the_run_and_its_unfinished_steps);
async fn mark_abandoned_ends_the_run_and_its_unfinished_steps(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    let before = run_with_a_busy_step(&store).await?;

    // Only the owner that died is taken over: once another process owns the run (it was
    // recovered and claimed again), a late recovery of the old owner changes nothing.
    let other = Owner {
        pid: 4343,
        ..owner()
    };
    assert!(
        !store
            .mark_abandoned("r-1", &other, "late", at(9), &[])
            .await?
    );
    assert!(
        store
            .mark_abandoned(
                "r-1",
                &owner(),
                "owner process 4242 on host-a is gone",
                at(9),
                &[]
            )
            .await?
    );

    let run = store.get_run("r-1").await?.ok_or("run missing")?;
    assert_eq!(run.status, RunStatus::Abandoned);
    assert_eq!(
        run.reason.as_deref(),
        Some("owner process 4242 on host-a is gone")
    );
    assert_eq!(run.finished_at, Some(at(9)));
    let states: Vec<_> = run
        .steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.status))
        .collect();
    assert_eq!(
        states,
        [
            ("done", StepStatus::Succeeded),
            ("busy", StepStatus::Abandoned),
            ("later", StepStatus::Skipped),
        ]
    );
    assert_eq!(
        run.steps[1].reason.as_deref(),
        Some("owner process 4242 on host-a is gone")
    );
    assert_eq!(run.steps[1].finished_at, Some(at(9)));
    let attempts = store.step_attempts("r-1", "busy").await?;
    assert_eq!(attempts[0].status, StepStatus::Abandoned);
    assert!(store.active_runs().await?.is_empty());

    let events = store.events_after(0, 1000).await?;
    let new: Vec<_> = events[before..]
        .iter()
        .map(|e| (e.kind.as_str(), e.step_id.as_deref()))
        .collect();
    assert_eq!(
        new,
        [
            ("step.finished", Some("busy")),
            ("step.skipped", Some("later")),
            ("run.abandoned", None),
        ]
    );

    // Already terminal: nothing changes, no event is added.
    assert!(
        !store
            .mark_abandoned("r-1", &owner(), "again", at(10), &[])
            .await?
    );
    assert_eq!(store.events_after(0, 1000).await?.len(), events.len());
    let run = store.get_run("r-1").await?.ok_or("run missing")?;
    assert_eq!(
        run.reason.as_deref(),
        Some("owner process 4242 on host-a is gone")
    );
    assert!(matches!(
        store
            .mark_abandoned("ghost", &owner(), "x", at(1), &[])
            .await,
        Err(StoreError::RunNotFound(_))
    ));
    Ok(())
}

both!(requeue_for_resume_abandons_the_running_attempt_and_queues_the_run);
async fn requeue_for_resume_abandons_the_running_attempt_and_queues_the_run(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    let before = run_with_a_busy_step(&store).await?;

    let other = Owner {
        start_token: "boot-2".into(),
        ..owner()
    };
    assert!(
        !store
            .requeue_for_resume("r-1", &other, "not its owner", at(9))
            .await?
    );
    assert!(
        store
            .requeue_for_resume("r-1", &owner(), "server died", at(9))
            .await?
    );

    let run = store.get_run("r-1").await?.ok_or("run missing")?;
    assert_eq!(run.status, RunStatus::Queued);
    let states: Vec<_> = run
        .steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.status, s.attempt))
        .collect();
    assert_eq!(
        states,
        [
            ("done", StepStatus::Succeeded, 1),
            ("busy", StepStatus::Abandoned, 1),
            ("later", StepStatus::Pending, 0),
        ]
    );
    let attempts = store.step_attempts("r-1", "busy").await?;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, StepStatus::Abandoned);
    assert_eq!(attempts[0].reason.as_deref(), Some("server died"));
    assert_eq!(store.queued_run_ids().await?, ["r-1"]);
    let new: Vec<_> = store.events_after(0, 1000).await?[before..]
        .iter()
        .map(|e| (e.kind.clone(), e.step_id.clone()))
        .collect();
    assert_eq!(
        new,
        [
            ("step.finished".to_owned(), Some("busy".to_owned())),
            ("run.requeued".to_owned(), None),
        ]
    );

    // Only a running run is requeued: a second call changes nothing.
    assert!(
        !store
            .requeue_for_resume("r-1", &owner(), "again", at(10))
            .await?
    );
    assert_eq!(store.events_after(0, 1000).await?.len(), before + 2);

    // The next attempt of the abandoned step continues the step's history.
    assert!(
        store
            .claim_queued_run("r-1", &owner(), at(11), None)
            .await?
    );
    store
        .record(&[
            started("r-1", "busy", 2, 12, None),
            finished("r-1", "busy", 2, StepStatus::Succeeded, 0, 13),
        ])
        .await?;
    let run = store.get_run("r-1").await?.ok_or("run missing")?;
    assert_eq!(run.steps[1].status, StepStatus::Succeeded);
    assert_eq!((run.steps[1].attempt, run.steps[1].attempts), (2, 2));
    let attempts = store.step_attempts("r-1", "busy").await?;
    assert_eq!(attempts[0].status, StepStatus::Abandoned);
    assert!(matches!(
        store
            .requeue_for_resume("ghost", &owner(), "x", at(1))
            .await,
        Err(StoreError::RunNotFound(_))
    ));
    Ok(())
}

both!(
    two_handles_on_one_database_write_concurrently_without_lock_errors,
    (flavor = "multi_thread", worker_threads = 2)
);
async fn two_handles_on_one_database_write_concurrently_without_lock_errors(
    backend: Backend,
) -> TestResult {
    let (db, first) = fresh(backend).await?;
    let second = db.open().await?;
    job(&first, "ops", "deploy").await?;
    const RUNS: usize = 20;
    const STEPS: usize = 10;
    let writer = |store: Store, tag: &'static str| {
        tokio::spawn(async move {
            for r in 0..RUNS {
                let id = format!("{tag}-{r}");
                let steps: Vec<String> = (0..STEPS).map(|s| format!("s{s}")).collect();
                let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
                create(&store, new_run(&id, "ops", "deploy", r as i64, &refs)).await?;
                for s in &steps {
                    store
                        .record(&[
                            started(&id, s, 1, 1, None),
                            log(&id, s, 1, LogStream::Stdout, "hello"),
                            finished(&id, s, 1, StepStatus::Succeeded, 0, 2),
                        ])
                        .await?;
                }
                // Reads interleave with the other handle's writes.
                store.list_runs(&RunFilter::default()).await?;
                store.request_cancel(&id, tag).await?;
            }
            Ok::<(), StoreError>(())
        })
    };
    let a = writer(first.clone(), "a");
    let b = writer(second.clone(), "b");
    a.await??;
    b.await??;

    let all = first
        .list_runs(&RunFilter {
            limit: 1000,
            ..RunFilter::default()
        })
        .await?;
    assert_eq!(all.len(), 2 * RUNS);
    assert!(
        all.iter()
            .all(|r| r.steps.iter().all(|s| s.status == StepStatus::Succeeded))
    );
    let events = second.events_after(0, 1000).await?;
    // Per run: created, 2 per step, one cancel request.
    assert_eq!(events.len(), 2 * RUNS * (1 + 2 * STEPS + 1));
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    Ok(())
}

both!(reopening_the_store_keeps_everything);
async fn reopening_the_store_keeps_everything(backend: Backend) -> TestResult {
    let db = Db::new(backend)?;
    {
        let store = db.open().await?;
        job(&store, "ops", "deploy").await?;
        create(&store, new_run("r-1", "ops", "deploy", 1, &["a"])).await?;
        store
            .record(&[
                started("r-1", "a", 1, 2, Some(5)),
                log("r-1", "a", 3, LogStream::Stdout, "persisted"),
                finished("r-1", "a", 1, StepStatus::Succeeded, 0, 4),
            ])
            .await?;
        store.request_cancel("r-1", "carol").await?;
        store.close().await;
    }
    let store = db.open().await?;
    assert_eq!(store.list_jobs(None).await?.len(), 1);
    let run = store.find_run("r-").await?;
    assert_eq!(run.steps[0].status, StepStatus::Succeeded);
    assert!(run.cancel_requested);
    assert_eq!(store.logs("r-1", None, 0, 10).await?[0].text, "persisted");
    assert_eq!(store.step_attempts("r-1", "a").await?[0].pgid, Some(5));
    assert_eq!(store.events_after(0, 100).await?.len(), 4);
    Ok(())
}

both!(records_a_thousand_step_batch_in_one_call);
async fn records_a_thousand_step_batch_in_one_call(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "big").await?;
    const STEPS: usize = 1000;
    let steps: Vec<String> = (0..STEPS).map(|i| format!("step-{i:04}")).collect();
    let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    create(&store, new_run("big-1", "ops", "big", 1, &refs)).await?;
    let mut batch = Vec::with_capacity(2 * STEPS);
    for s in &steps {
        batch.push(started("big-1", s, 1, 2, Some(100)));
        batch.push(finished("big-1", s, 1, StepStatus::Succeeded, 0, 3));
    }
    let clock = Instant::now();
    store.record(&batch).await?;
    // Printed for comparison across changes; deliberately not asserted.
    println!(
        "recorded {} events ({STEPS} StepStarted+StepFinished pairs) in {:?}",
        batch.len(),
        clock.elapsed()
    );
    let run = store.get_run("big-1").await?.ok_or("run missing")?;
    assert_eq!(run.steps.len(), STEPS);
    assert!(
        run.steps
            .iter()
            .all(|s| s.status == StepStatus::Succeeded && s.attempts == 1)
    );
    Ok(())
}

#[path = "store/schedule.rs"]
mod schedule;

#[path = "store/api_state.rs"]
mod api_state;

#[path = "store/changes.rs"]
mod changes;

both!(every_run_state_change_is_an_audit_entry_in_the_chain);
async fn every_run_state_change_is_an_audit_entry_in_the_chain(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    create(&store, new_run("r-1", "ops", "deploy", 1, &["s"])).await?;
    store
        .record(&[
            RunEvent::RunStarted {
                run_id: "r-1".into(),
                at: at(2),
            },
            RunEvent::RunFinished {
                run_id: "r-1".into(),
                status: RunStatus::Failed,
                reason: Some("failed steps: s".into()),
                at: at(3),
            },
        ])
        .await?;
    assert!(
        !store.request_cancel("r-1", "token:t1:ci").await?,
        "an ended run takes no cancel request"
    );
    let entries: Vec<(String, String, String, String)> = store
        .list_audit(0, 100)
        .await?
        .into_iter()
        .map(|e| (e.actor, e.action, e.target, e.result))
        .collect();
    let entry = |actor: &str, action: &str, result: &str| {
        (
            actor.to_owned(),
            action.to_owned(),
            "run/r-1".to_owned(),
            result.to_owned(),
        )
    };
    // The run's end also records the digest of what it recorded, in the same entry.
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0], entry("engine", "run.created", "ok"));
    let (actor, action, target, result) = &entries[1];
    assert_eq!(
        (actor.as_str(), action.as_str(), target.as_str()),
        ("engine", "run.finished", "run/r-1")
    );
    let digest = result
        .strip_prefix("failed sha256:")
        .ok_or_else(|| format!("no digest in {result:?}"))?;
    assert_eq!(digest.len(), 64, "{result}");
    assert_eq!(store.check_audit_chain().await?, None);
    Ok(())
}

both!(log_lines_keep_their_text);
/// Any text a step prints is kept, byte for byte, except U+0000 on PostgreSQL (its text
/// type cannot hold it), which reads back as U+FFFD.
async fn log_lines_keep_their_text(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    create(&store, new_run("r-1", "ops", "deploy", 1, &["a"])).await?;
    let texts = [
        "plain",
        "tab\there, quotes ' \" and a backslash \\ %_",
        "ünïcødé ✓ 🚀",
        "",
        "nul\0byte",
    ];
    let batch: Vec<RunEvent> = texts
        .iter()
        .map(|text| log("r-1", "a", 2, LogStream::Stdout, text))
        .collect();
    store.record(&batch).await?;
    let read: Vec<String> = store
        .logs("r-1", None, 0, 10)
        .await?
        .into_iter()
        .map(|l| l.text)
        .collect();
    let nul = match backend {
        Backend::Sqlite => "nul\0byte",
        Backend::Postgres => "nul\u{FFFD}byte",
    };
    assert_eq!(read, [texts[0], texts[1], texts[2], texts[3], nul]);
    Ok(())
}

#[path = "store/fleet.rs"]
mod fleet;

#[path = "store/artifacts.rs"]
mod artifacts;

#[path = "store/takeover.rs"]
mod takeover;

both!(child_runs_name_their_parent_and_their_ancestry_is_bounded);
async fn child_runs_name_their_parent_and_their_ancestry_is_bounded(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    for name in ["top", "mid", "leaf"] {
        job(&store, "ns", name).await?;
    }
    let link = |run: &str, step: &str| {
        Some(rota_store::RunParent {
            run_id: run.into(),
            step_id: step.into(),
        })
    };
    create(&store, new_run("r1", "ns", "top", 1, &["call"])).await?;
    let mut mid = new_run("r2", "ns", "mid", 2, &["call"]);
    mid.parent = link("r1", "call");
    create(&store, mid).await?;
    let mut leaf = new_run("r3", "ns", "leaf", 3, &["work"]);
    leaf.parent = link("r2", "call");
    create(&store, leaf).await?;

    let chain = store.run_ancestry("r3", 10).await?;
    let jobs: Vec<&str> = chain.iter().map(|a| a.job_id.as_str()).collect();
    assert_eq!(jobs, ["leaf", "mid", "top"]);
    assert_eq!(store.run_ancestry("r3", 2).await?.len(), 2, "bounded");

    // Both directions: the child names its parent, the parent's step names its child.
    let r2 = store.find_run("r2").await?;
    assert_eq!(r2.parent, link("r1", "call"));
    assert_eq!(r2.steps[0].child_run.as_deref(), Some("r3"));
    let r1 = store.find_run("r1").await?;
    assert_eq!(r1.parent, None);
    assert_eq!(r1.steps[0].child_run.as_deref(), Some("r2"));
    assert_eq!(store.child_runs("r1").await?, ["r2"]);

    // A queued child is unfinished, and adopted; once it ended it is not.
    let unfinished = store.unfinished_child("r1", "call").await?;
    assert_eq!(unfinished.map(|r| r.id).as_deref(), Some("r2"));
    assert!(store.unfinished_child("r1", "other").await?.is_none());
    store
        .record(&[RunEvent::RunFinished {
            run_id: "r2".into(),
            status: RunStatus::Failed,
            reason: None,
            at: at(5),
        }])
        .await?;
    assert!(store.unfinished_child("r1", "call").await?.is_none());
    Ok(())
}
