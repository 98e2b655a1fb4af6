//! The application layer's rules, each tested once, against a real SQLite store.

use std::collections::BTreeMap;
use std::path::Path;

use rota_core::parse::{Format, parse_str};
use rota_ops::records::RetryRun;
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
        .queue_run("ops", "deploy", BTreeMap::new(), false, "api", None, None)
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
        .queue_run("ops", "report", BTreeMap::new(), false, "api", None, None)
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
        .queue_run("ops", "report", BTreeMap::new(), true, "api", None, None)
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
        .queue_run("ops", "report", BTreeMap::new(), false, "api", None, None)
        .await
        .expect("queued");
    let actor = Actor::local();
    let active = f
        .ops
        .queue_retry(&actor, &run.id, &RetryRun::default())
        .await
        .expect_err("a queued run is still active");
    assert!(matches!(active, OpsError::Conflict(_)), "{active}");
    let unknown_step = f
        .ops
        .queue_retry(
            &actor,
            &run.id,
            &RetryRun {
                from: Some("nope".to_owned()),
                ..RetryRun::default()
            },
        )
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

/// The audit entries so far, as `(actor, action, result)`.
async fn audit_trail(ops: &Ops) -> Vec<(String, String, String)> {
    ops.store()
        .list_audit(0, 1000)
        .await
        .expect("the audit log reads")
        .into_iter()
        .map(|e| (e.actor, e.action, e.result))
        .collect()
}

/// A caller holding only `role` in namespace `ops`.
fn holding(actor: &str, role: rota_store::Role) -> rota_ops::auth::Principal {
    rota_ops::auth::Principal {
        actor: actor.to_owned(),
        token_id: None,
        grants: vec![rota_store::Grant {
            namespace: Some("ops".to_owned()),
            role,
        }],
    }
}

#[tokio::test]
async fn a_viewer_reads_jobs_but_may_not_save_one_and_the_refusal_is_audited() {
    use rota_ops::records::{JobFormat, JobPageQuery, JobSubmission};
    use rota_ops::service::Jobs;
    let f = fixture().await;
    save(&f.ops, PLAIN, None).await;
    let viewer = f
        .ops
        .session(holding("token:1:viewer", rota_store::Role::Viewer), None);
    let listed = viewer
        .list_jobs("ops", JobPageQuery::default())
        .await
        .expect("a viewer lists jobs");
    assert_eq!(listed.items.len(), 1);
    let file = JobSubmission {
        format: JobFormat::Yaml,
        source: PLAIN.to_owned(),
    };
    let refused = viewer.put_job("ops", "report", file.clone()).await;
    assert!(
        matches!(refused, Err(OpsError::Forbidden { .. })),
        "{refused:?}"
    );
    let elsewhere = f
        .ops
        .session(holding("token:2:editor", rota_store::Role::Editor), None);
    let other = elsewhere.put_job("other", "report", file.clone()).await;
    assert!(
        matches!(other, Err(OpsError::Forbidden { .. })),
        "{other:?}"
    );
    let saved = elsewhere
        .put_job("ops", "report", file)
        .await
        .expect("an editor saves");
    assert!(saved.unchanged, "the same text is no new revision");
    assert_eq!(
        audit_trail(&f.ops).await,
        vec![
            (
                "token:1:viewer".into(),
                "job.put".into(),
                "forbidden".into()
            ),
            (
                "token:2:editor".into(),
                "job.put".into(),
                "forbidden".into()
            ),
            ("token:2:editor".into(), "job.put".into(), "ok".into()),
        ]
    );
}

#[tokio::test]
async fn a_local_user_approves_by_their_name_but_not_their_own_plan() {
    use rota_ops::auth::Principal;
    use rota_ops::records::{CreatePlan, DecidePlan};
    use rota_ops::service::Plans;
    use rota_ops::service::plans::Verdict;
    let f = fixture().await;
    save(&f.ops, GATED, None).await;
    let as_user = |user: &str| {
        f.ops
            .session(Principal::admin(format!("local:{user}")), None)
    };
    let own = as_user("alice")
        .create_plan("ops", "deploy", CreatePlan::default())
        .await
        .expect("alice plans");
    let refused = as_user("alice")
        .decide_plan(&own.id, Verdict::Approve, DecidePlan::default())
        .await;
    assert!(matches!(refused, Err(OpsError::Conflict(_))), "{refused:?}");
    let plan = as_user("carol")
        .create_plan("ops", "deploy", CreatePlan::default())
        .await
        .expect("carol plans");
    assert_eq!(plan.status, "awaiting_approval");
    let stranger = as_user("mallory")
        .decide_plan(&plan.id, Verdict::Approve, DecidePlan::default())
        .await;
    assert!(
        matches!(stranger, Err(OpsError::Forbidden { .. })),
        "{stranger:?}"
    );
    let approved = as_user("alice")
        .decide_plan(&plan.id, Verdict::Approve, DecidePlan::default())
        .await
        .expect("alice is an approver");
    assert_eq!(approved.status, "approved");
    let shown = as_user("carol")
        .get_plan(&plan.id)
        .await
        .expect("the plan reads");
    assert!(shown.drift.is_empty(), "{:?}", shown.drift);
}
