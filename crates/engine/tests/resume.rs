//! Resuming a server run whose owner died, on a real SQLite store with real processes: what
//! ended before is kept (and not run again), the abandoned step runs its next attempt.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::{Job, RunStatus, StepStatus};
use rota_core::parse::{Format, parse_str};
use rota_engine::recovery::recover_runs;
use rota_engine::run::{EngineConfig, PriorStep, RunRequest, RunStop, execute_claimed};
use rota_store::{NewJobRevision, NewRun, Owner, RunEvent, RunRecord, Store};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `a` appends to a marker and publishes an output, `b` (retry from the caller) appends its
/// attempt number, `c` writes `a`'s output.
fn job_source(b_retry: &str) -> String {
    format!(
        r#"id: resume-job
steps:
  - id: a
    sh: |
      echo ran >> a.marker
      echo "x=from-a" >> "$ROTA_OUTPUT"
  - id: b
    needs: [a]
    retry: {b_retry}
    sh: echo "$ROTA_ATTEMPT" >> b.attempts
  - id: c
    needs: [b]
    sh: echo "{{{{ steps.a.outputs.x }}}}" > c.out
"#
    )
}

/// A process that is certainly not running: this one, with a start token it never had.
fn dead_owner() -> Owner {
    Owner {
        host: rota_engine::owner::host_name(),
        pid: std::process::id(),
        start_token: "a-process-long-gone".to_owned(),
    }
}

fn live_owner() -> Owner {
    Owner {
        host: rota_engine::owner::host_name(),
        pid: std::process::id(),
        start_token: rota_engine::owner::own_start_token(),
    }
}

/// A new home whose store holds a dead run (see `dead_run`) of the job retrying `retry`.
async fn dead_run_in_a_new_home(
    retry: &str,
    trigger: &str,
) -> Result<(tempfile::TempDir, Store, Job), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("home")).await?;
    let job = dead_run(&store, dir.path(), &job_source(retry), trigger).await?;
    Ok((dir, store, job))
}

/// Records what a server that died while `b`'s first attempt ran left behind: `a` ran (its
/// marker line written, its output recorded) and succeeded, `b` started attempt 1.
async fn dead_run(
    store: &Store,
    dir: &Path,
    source: &str,
    trigger: &str,
) -> Result<Job, Box<dyn std::error::Error>> {
    let job = parse_str(source, "resume.yaml", Format::Yaml)
        .map_err(|d| format!("{d:?}"))?
        .remove(0);
    let revision = NewJobRevision::new(
        "default",
        job.id.clone(),
        source,
        serde_json::to_value(&job)?,
        Timestamp::now(),
    );
    let revision = store.save_job_revision(&revision).await?.revision;
    std::fs::write(dir.join("a.marker"), "ran\n")?;
    std::fs::write(dir.join("b.attempts"), "1\n")?;
    let now = Timestamp::now();
    let step_event = |step: &str, finished: Option<StepStatus>| match finished {
        None => RunEvent::StepStarted {
            run_id: "run-1".into(),
            step_id: step.into(),
            attempt: 1,
            at: now,
            pgid: None,
        },
        Some(status) => RunEvent::StepFinished {
            run_id: "run-1".into(),
            step_id: step.into(),
            attempt: 1,
            status,
            exit_code: Some(0),
            reason: None,
            outputs: BTreeMap::from([("x".to_owned(), "from-a".to_owned())]),
            at: now,
        },
    };
    store
        .record(&[
            RunEvent::RunCreated {
                run: NewRun {
                    id: "run-1".into(),
                    namespace: "default".into(),
                    job_id: job.id.clone(),
                    job_revision: revision,
                    params: serde_json::json!({}),
                    dry_run: false,
                    trigger: trigger.into(),
                    started_by: None,
                    scheduled_at: Some(now),
                    created_at: now,
                    owner: dead_owner(),
                    steps: job.steps.iter().map(|s| s.id.clone()).collect(),
                    parent: None,
                },
            },
            RunEvent::RunStarted {
                run_id: "run-1".into(),
                at: now,
            },
            step_event("a", None),
            step_event("a", Some(StepStatus::Succeeded)),
            step_event("b", None),
        ])
        .await?;
    Ok(job)
}

/// What a server builds to continue a claimed run from its recorded steps.
fn resumed(job: Job, run: &RunRecord, dir: &Path) -> (RunRequest, EngineConfig) {
    let request = RunRequest {
        run_id: run.id.clone(),
        job,
        job_revision: run.job_revision,
        namespace: run.namespace.clone(),
        params: BTreeMap::new(),
        secrets: BTreeMap::new(),
        dry_run: false,
        trigger: run.trigger.clone(),
        started_by: None,
        scheduled_at: run.scheduled_at,
        base_dir: dir.to_owned(),
        prior: run.steps.iter().map(PriorStep::from).collect(),
        gates: Default::default(),
        confirmations: Default::default(),
        resume: None,
        parent: None,
    };
    let config = EngineConfig {
        artifacts_dir: dir.join("runs"),
        grace: Duration::from_secs(5),
        log_cap_bytes: 1 << 20,
        guardian: None,
        durable_step_starts: true,
        remote: None,
        children: None,
        artifacts: None,
    };
    (request, config)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn a_resumed_run_retries_the_abandoned_step_and_does_not_rerun_finished_ones() -> TestResult {
    let (dir, store, job) =
        dead_run_in_a_new_home("{ attempts: 2, initial: 100ms }", "cron").await?;

    let recovered = recover_runs(&store).await?;
    assert_eq!(recovered.resumed, ["run-1"]);
    assert!(recovered.abandoned.is_empty());
    let run = store.get_run("run-1").await?.ok_or("run missing")?;
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.steps[1].status, StepStatus::Abandoned);

    // As the server does: claim the queued run, continue from its recorded steps.
    assert!(
        store
            .claim_queued_run("run-1", &live_owner(), Timestamp::now(), None)
            .await?
    );
    let (request, config) = resumed(job, &run, dir.path());
    let summary = execute_claimed(&store, &config, request, RunStop::new(), None).await?;

    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    let steps: Vec<_> = summary
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.status, s.attempts))
        .collect();
    assert_eq!(
        steps,
        [
            ("a", StepStatus::Succeeded, 1),
            ("b", StepStatus::Succeeded, 2),
            ("c", StepStatus::Succeeded, 1),
        ]
    );
    // `a` did not run again; `b` ran once more, as attempt 2; `c` saw `a`'s recorded output.
    assert_eq!(read(&dir.path().join("a.marker")), "ran\n");
    assert_eq!(read(&dir.path().join("b.attempts")), "1\n2\n");
    assert_eq!(read(&dir.path().join("c.out")), "from-a\n");

    let run = store.get_run("run-1").await?.ok_or("run missing")?;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.steps[0].attempts, 1);
    let b: Vec<_> = store
        .step_attempts("run-1", "b")
        .await?
        .iter()
        .map(|a| (a.attempt, a.status))
        .collect();
    assert_eq!(b, [(1, StepStatus::Abandoned), (2, StepStatus::Succeeded)]);
    assert!(recover_runs(&store).await?.resumed.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_step_without_attempts_left_abandons_the_run() -> TestResult {
    let (_dir, store, _job) = dead_run_in_a_new_home("{ attempts: 1 }", "cron").await?;

    let recovered = recover_runs(&store).await?;
    assert_eq!(recovered.abandoned, ["run-1"]);
    assert!(recovered.resumed.is_empty());
    let run = store.get_run("run-1").await?.ok_or("run missing")?;
    assert_eq!(run.status, RunStatus::Abandoned);
    assert_eq!(run.steps[0].status, StepStatus::Succeeded);
    assert_eq!(run.steps[1].status, StepStatus::Abandoned);
    assert_eq!(run.steps[2].status, StepStatus::Skipped);
    assert!(store.queued_run_ids().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_cli_run_is_abandoned_even_with_attempts_left() -> TestResult {
    let (_dir, store, _job) =
        dead_run_in_a_new_home("{ attempts: 3, initial: 100ms }", "cli").await?;

    let recovered = recover_runs(&store).await?;
    assert_eq!(recovered.abandoned, ["run-1"]);
    let run = store.get_run("run-1").await?.ok_or("run missing")?;
    assert_eq!(run.status, RunStatus::Abandoned);
    assert!(store.queued_run_ids().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_resumed_step_waits_its_retry_backoff_before_the_next_attempt() -> TestResult {
    let (dir, store, job) = dead_run_in_a_new_home("{ attempts: 2, initial: 1h }", "cron").await?;
    recover_runs(&store).await?;
    let run = store.get_run("run-1").await?.ok_or("run missing")?;
    assert!(
        store
            .claim_queued_run("run-1", &live_owner(), Timestamp::now(), None)
            .await?
    );
    let (request, config) = resumed(job, &run, dir.path());
    let stop = RunStop::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        // Long enough for an attempt that did not wait to have run its `echo`.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stopper.stop(rota_engine::run::StopReason::Cancelled("test".into()));
    });
    let summary = execute_claimed(&store, &config, request, stop, None).await?;
    assert_eq!(summary.status, RunStatus::Cancelled, "{summary:?}");
    // Attempt 2 never started: the hour of backoff was still running when the run stopped.
    assert_eq!(read(&dir.path().join("b.attempts")), "1\n");
    let b: Vec<_> = store
        .step_attempts("run-1", "b")
        .await?
        .iter()
        .map(|a| (a.attempt, a.status))
        .collect();
    assert_eq!(b, [(1, StepStatus::Abandoned)]);
    Ok(())
}

#[tokio::test]
async fn an_abandoned_run_queues_its_failure_notifications_with_its_end() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("home")).await?;
    let source = format!(
        "{}notify:\n  - on: [failure]\n    webhook: {{ url: \"http://127.0.0.1:9/failed\" }}\n  \
         - on: [success]\n    webhook: {{ url: \"http://127.0.0.1:9/ok\" }}\n",
        job_source("{ attempts: 1 }")
    );
    dead_run(&store, dir.path(), &source, "cron").await?;

    assert_eq!(recover_runs(&store).await?.abandoned, ["run-1"]);
    let queued = store.notifications_of_run("run-1").await?;
    let queued: Vec<_> = queued
        .iter()
        .map(|n| (n.queued.event.as_str(), n.queued.url_template.as_str()))
        .collect();
    assert_eq!(queued, [("failure", "http://127.0.0.1:9/failed")]);
    // Recovering again finds nothing to do and queues nothing more.
    assert!(recover_runs(&store).await?.abandoned.is_empty());
    assert_eq!(store.notifications_of_run("run-1").await?.len(), 1);
    Ok(())
}
