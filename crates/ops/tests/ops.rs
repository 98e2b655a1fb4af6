//! The application layer's rules, each tested once, against a real SQLite store.

use std::collections::BTreeMap;
use std::path::Path;

use rota_core::parse::{Format, parse_str};
use rota_ops::{Actor, Ops, OpsError, RunSpec};
use rota_store::{NewJobRevision, Store};

const GATED: &str = "\
id: deploy
approval: { approvers: [alice] }
steps:
  - id: main
    sh: echo deploying
";

const PLAIN: &str = "\
id: report
secrets: [ROTA_OPS_TEST_TOKEN]
steps:
  - id: main
    sh: echo reporting
";

struct Fixture {
    _home: tempfile::TempDir,
    home: std::path::PathBuf,
    ops: Ops,
}

async fn fixture() -> Fixture {
    let home = tempfile::tempdir().expect("a temp dir");
    let path = home.path().to_owned();
    let store = Store::open(&path).await.expect("the store opens");
    let ops = Ops::new(store).runs_here(&path, path.join("runs"), path.join("default-dir"));
    Fixture {
        _home: home,
        home: path,
        ops,
    }
}

/// Saves `source` as job revision in namespace `ops`, from `file` when given.
async fn save(ops: &Ops, source: &str, file: Option<&Path>) -> i64 {
    let job = parse_str(source, "job.yaml", Format::Yaml)
        .expect("the job parses")
        .remove(0);
    let mut revision = NewJobRevision::of_job("ops", &job, source, jiff::Timestamp::now());
    revision.source_path = file.map(|f| f.display().to_string());
    ops.store()
        .save_job_revision(&revision)
        .await
        .expect("the revision saves")
        .revision
}

#[tokio::test]
async fn a_job_with_approval_rules_is_neither_started_nor_retried_without_a_plan() {
    let f = fixture().await;
    save(&f.ops, GATED, None).await;
    let refused = f
        .ops
        .queue_run("ops", "deploy", BTreeMap::new(), false, "api")
        .await
        .expect_err("the gate refuses a direct start");
    assert!(matches!(refused, OpsError::NeedsPlan { .. }), "{refused}");
    assert!(refused.to_string().contains("approval rules"), "{refused}");
}

#[tokio::test]
async fn a_run_of_a_job_without_a_file_runs_in_the_runner_s_default_directory() {
    let f = fixture().await;
    save(&f.ops, PLAIN, None).await;
    let run = f
        .ops
        .queue_run("ops", "report", BTreeMap::new(), false, "api")
        .await;
    // The secret is missing from store and environment: preparing fails by name, and
    // nothing is recorded as used.
    let run = run.expect("a plain job queues");
    let spec = f.ops.claimed_run(&run.id).await.expect("the run loads");
    let missing = f
        .ops
        .prepare_run(spec.clone())
        .await
        .expect_err("no secret");
    assert!(
        missing.to_string().contains("ROTA_OPS_TEST_TOKEN"),
        "{missing}"
    );
    let uses = f
        .ops
        .store()
        .run_secret_uses(&run.id)
        .await
        .expect("uses read");
    assert!(uses.is_empty(), "{uses:?}");

    let spec = RunSpec {
        job: rota_core::model::Job {
            secrets: Vec::new(),
            ..spec.job
        },
        ..spec
    };
    let request = f.ops.prepare_run(spec).await.expect("prepared");
    assert_eq!(request.base_dir, f.home.join("default-dir"));
    assert_eq!(request.run_id, run.id);
}

#[tokio::test]
async fn a_run_of_a_job_file_runs_in_the_file_s_directory() {
    let f = fixture().await;
    let file = f.home.join("jobs").join("report.yaml");
    save(&f.ops, PLAIN, Some(&file)).await;
    let run = f
        .ops
        .queue_run("ops", "report", BTreeMap::new(), true, "api")
        .await
        .expect("a plain job queues");
    let mut spec = f.ops.claimed_run(&run.id).await.expect("the run loads");
    spec.job.secrets.clear();
    let request = f.ops.prepare_run(spec).await.expect("prepared");
    assert_eq!(request.base_dir, f.home.join("jobs"));
    assert!(request.dry_run, "the stored run's dry_run is kept");
}

#[tokio::test]
async fn a_retry_of_a_run_still_active_is_a_conflict_and_a_cancel_of_an_ended_one_too() {
    let f = fixture().await;
    save(&f.ops, PLAIN, None).await;
    let run = f
        .ops
        .queue_run("ops", "report", BTreeMap::new(), false, "api")
        .await
        .expect("queued");
    let actor = Actor::local();
    let active = f
        .ops
        .queue_retry(&actor, &run.id, None)
        .await
        .expect_err("a queued run is still active");
    assert!(matches!(active, OpsError::Conflict(_)), "{active}");
    let unknown_step = f
        .ops
        .queue_retry(&actor, &run.id, Some("nope"))
        .await
        .expect_err("no such step");
    assert!(
        matches!(unknown_step, OpsError::Invalid(_)),
        "{unknown_step}"
    );
    f.ops
        .cancel_run(&actor, &run.id)
        .await
        .expect("cancel asked");
}
