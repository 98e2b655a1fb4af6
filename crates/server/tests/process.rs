//! The real `rota` binary: `rota serve` killed with SIGKILL mid-run and restarted loses and
//! duplicates nothing; webhooks over a real listener; hot reload; SIGTERM lets runs finish.
//!
//! The binary is the one cargo just built (`rota_testkit::rota_bin`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    PATIENCE, Server, TestResult, get, post, rota_bin, send, server_dirs, server_dirs_with_job,
    wait_for,
};
use jiff::Timestamp;
use rota_core::model::RunStatus;
use rota_store::{OccurrenceKind, RunFilter, RunRecord, Store};

async fn runs_of(store: &Store, job: &str) -> Result<Vec<RunRecord>, rota_store::StoreError> {
    store
        .list_runs(&RunFilter {
            job_id: Some(job.to_owned()),
            limit: 1000,
            ..RunFilter::default()
        })
        .await
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_then_restart_loses_and_duplicates_nothing() -> TestResult {
    let (_dir, home, jobs) = server_dirs_with_job(
        "tick.yaml",
        "id: tick\ntriggers:\n  - cron: '* * * * * *'\npolicy:\n  overlap: buffer_one\n\
         steps:\n  - id: main\n    sh: echo $$ >> pids.txt; sleep 2\n",
    )?;
    let mut server = Server::start(&home, &jobs, &[])?;
    let store = Store::open(&home).await?;

    // Wait for a running run with one buffered behind it, then kill the server outright.
    let mut at_kill = (String::new(), String::new());
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let runs = runs_of(&store, "tick").await?;
        let running = runs.iter().find(|r| {
            r.status == RunStatus::Running
                && !r.steps.is_empty()
                && r.steps[0].status.as_str() == "running"
        });
        let queued = runs.iter().find(|r| r.status == RunStatus::Queued);
        if let (Some(running), Some(queued)) = (running, queued) {
            at_kill = (running.id.clone(), queued.id.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !at_kill.0.is_empty(),
        "never saw a running run with a buffered one"
    );
    server.kill9()?;

    // The step's process group dies with the server (the guardian), leaving no orphan.
    wait_for("the step processes to be gone", || {
        std::fs::read_to_string(jobs.join("pids.txt"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .all(|pid| !pid_alive(pid))
    })?;

    // Down long enough (past the misfire grace) for occurrences to go through catch-up.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut server = Server::start(&home, &jobs, &[])?;
    let (running_id, queued_id) = at_kill;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let queued = store
            .get_run(&queued_id)
            .await?
            .ok_or("queued run vanished")?;
        if queued.status.is_terminal() {
            assert_eq!(
                queued.status,
                RunStatus::Succeeded,
                "the queued run ran after the restart"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the queued run never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = server.terminate()?;
    assert!(
        status.success(),
        "rota serve exits 0 on SIGTERM: {status:?}"
    );

    let abandoned = store
        .get_run(&running_id)
        .await?
        .ok_or("running run vanished")?;
    assert_eq!(abandoned.status, RunStatus::Abandoned);
    assert_eq!(abandoned.steps[0].status.as_str(), "abandoned");

    // Nothing ran twice: one run per occurrence, and every run has its occurrence.
    let runs = runs_of(&store, "tick").await?;
    let mut scheduled = BTreeSet::new();
    for run in &runs {
        let at = run
            .scheduled_at
            .ok_or("a scheduled run without its instant")?;
        assert!(scheduled.insert(at), "two runs for the occurrence at {at}");
    }
    let history = store.occurrences("default", "tick", 1000).await?;
    let with_runs: BTreeSet<Timestamp> = history
        .iter()
        .filter(|o| o.kind == OccurrenceKind::Run)
        .map(|o| o.scheduled_at)
        .collect();
    assert_eq!(with_runs, scheduled);

    // Nothing was lost: every second from the first occurrence to the last is recorded, as a
    // run, skipped or missed — including the seconds the server was dead.
    let mut instants: Vec<Timestamp> = history.iter().map(|o| o.scheduled_at).collect();
    instants.sort();
    for pair in instants.windows(2) {
        assert_eq!(
            pair[1].as_second() - pair[0].as_second(),
            1,
            "a gap in the recorded occurrences between {} and {}",
            pair[0],
            pair[1]
        );
    }
    assert!(
        history.iter().any(|o| o.kind == OccurrenceKind::Missed),
        "the downtime left missed occurrences (catch-up mode last)"
    );
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_hot_reload_and_a_graceful_stop_on_a_live_server() -> TestResult {
    let (_dir, home, jobs) = server_dirs_with_job(
        "hook.yaml",
        "id: hook\ntriggers:\n  - webhook: { secret: HOOK_SECRET, signature: github }\n\
         policy:\n  overlap: buffer_all\n\
         steps:\n  - id: main\n    sh: sleep 1; cp \"$ROTA_WEBHOOK_BODY_FILE\" body.txt\n",
    )?;
    let mut server = Server::start(&home, &jobs, &[("HOOK_SECRET", "s3cret")])?;
    let addr = server.addr()?;
    let store = Store::open(&home).await?;

    let body = br#"{"ref":"refs/heads/main"}"#;
    let (status, _) = post(
        &addr,
        "/hooks/default/hook",
        &[("X-Hub-Signature-256", "sha256=00")],
        body,
    )?;
    assert_eq!(status, 401);
    let (status, _) = post(&addr, "/hooks/default/hook", &[], body)?;
    assert_eq!(status, 401);
    let (status, _) = post(&addr, "/hooks/default/nope", &[], body)?;
    assert_eq!(status, 404);
    assert!(
        runs_of(&store, "hook").await?.is_empty(),
        "refused requests queue nothing"
    );

    let signature = rota_server::hooks::github_signature("s3cret", body);
    let (status, answer) = post(
        &addr,
        "/hooks/default/hook",
        &[("X-Hub-Signature-256", &signature)],
        body,
    )?;
    assert_eq!(status, 202, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer)?;
    let run_id = answer["run_id"].as_str().ok_or("no run id")?.to_owned();

    // Hot reload: a broken edit is reported and the last good revision keeps serving.
    std::fs::write(jobs.join("hook.yaml"), "id: hook\nbogus: true\nsteps: []\n")?;
    let shown = jobs.join("hook.yaml").display().to_string();
    let deadline = Instant::now() + PATIENCE;
    while store.job_load_errors().await?.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the broken file was never reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let errors = store.job_load_errors().await?;
    assert_eq!(errors[0].path, shown);
    assert!(errors[0].message.contains(":2:"), "{}", errors[0].message);
    // Another delivery (the same signed body again would be refused as a replay).
    let body2 = br#"{"ref":"refs/heads/main","n":2}"#;
    let signature2 = rota_server::hooks::github_signature("s3cret", body2);
    let (status, _) = post(
        &addr,
        "/hooks/default/hook",
        &[("X-Hub-Signature-256", &signature2)],
        body2,
    )?;
    assert_eq!(status, 202, "the last good revision still takes webhooks");

    // A fixed file becomes a new revision and clears the error.
    std::fs::write(
        jobs.join("hook.yaml"),
        // The runs of the first revision may still be going: keep buffering, or the new
        // request would be skipped by the default overlap policy instead of queued.
        "id: hook\ndescription: v2\ntriggers:\n  - webhook: { secret: HOOK_SECRET, signature: bearer }\n\
         policy:\n  overlap: buffer_all\n\
         steps:\n  - id: main\n    sh: 'true'\n",
    )?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let revision = store
            .latest_job_revision("default", "hook")
            .await?
            .ok_or("no revision")?;
        if revision.revision == 2 && store.job_load_errors().await?.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the fixed file was never loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, answer) = post(
        &addr,
        "/hooks/default/hook",
        &[("Authorization", "Bearer s3cret")],
        b"",
    )?;
    assert_eq!(
        status, 202,
        "the new revision's bearer scheme applies: {answer}"
    );

    // SIGTERM: running runs finish within the grace period.
    let status = server.terminate()?;
    assert!(status.success(), "{status:?}");
    let run = store.get_run(&run_id).await?.ok_or("webhook run missing")?;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.reason);
    assert_eq!(run.trigger, "webhook");
    // The second delivery's run may still be queued at shutdown.
    let seen = std::fs::read(jobs.join("body.txt"))?;
    assert!(
        seen == body || seen == body2,
        "the step saw the request body"
    );
    store.close().await;
    Ok(())
}

/// Runs the `rota` binary with `home` as its data directory; returns stdout.
fn rota(home: &Path, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let output = Command::new(rota_bin())
        .args(args)
        .env("ROTA_HOME", home)
        .env_remove("ROTA_LOG")
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "rota {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_queues_past_occurrences_once_and_the_server_runs_them() -> TestResult {
    let (_dir, home, jobs) = server_dirs_with_job(
        "daily.yaml",
        "id: daily\ntriggers:\n  - cron: '0 0 12 * * *'\npolicy:\n  overlap: buffer_all\n\
         steps:\n  - id: main\n    sh: echo {{ run.scheduled_at }} >> seen.txt\n",
    )?;
    let mut server = Server::start(&home, &jobs, &[])?;
    let store = Store::open(&home).await?;

    rota(&home, &["pause", "daily"])?;
    assert!(store.schedule_states().await?[0].paused);
    let args = [
        "backfill",
        "daily",
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-03T23:00:00Z",
        "--output",
        "json",
    ];
    let first: serde_json::Value = serde_json::from_str(&rota(&home, &args)?)?;
    let queued: Vec<&str> = first
        .as_array()
        .ok_or("not a list")?
        .iter()
        .filter_map(|o| o["run_id"].as_str())
        .collect();
    assert_eq!(queued.len(), 3, "{first}");
    // The same range again queues nothing: those occurrences are recorded.
    let again: serde_json::Value = serde_json::from_str(&rota(&home, &args)?)?;
    assert!(
        again
            .as_array()
            .ok_or("not a list")?
            .iter()
            .all(|o| o["queued"] == false),
        "{again}"
    );

    let deadline = Instant::now() + PATIENCE;
    loop {
        let runs = runs_of(&store, "daily").await?;
        if runs.len() == 3 && runs.iter().all(|r| r.status.is_terminal()) {
            assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
            assert!(runs.iter().all(|r| r.trigger == "backfill"));
            break;
        }
        assert!(Instant::now() < deadline, "the backfilled runs never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = std::fs::read_to_string(jobs.join("seen.txt"))?;
    let mut seen: Vec<&str> = seen.lines().collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "2026-01-01T12:00:00Z",
            "2026-01-02T12:00:00Z",
            "2026-01-03T12:00:00Z"
        ]
    );

    let history: serde_json::Value = serde_json::from_str(&rota(
        &home,
        &["schedule", "history", "daily", "--output", "json"],
    )?)?;
    assert_eq!(history.as_array().map(Vec::len), Some(3));
    assert_eq!(history[0]["scheduled_at"], "2026-01-03T12:00:00Z");

    rota(
        &home,
        &["resume", "daily", "--from", "2026-01-05T00:00:00Z"],
    )?;
    let state = &store.schedule_states().await?[0];
    assert!(!state.paused);
    assert_eq!(state.resume_from, Some("2026-01-05T00:00:00Z".parse()?));

    let next: serde_json::Value = serde_json::from_str(&rota(
        &home,
        &[
            "schedule", "next", "daily", "--count", "2", "--output", "json",
        ],
    )?)?;
    let next = next.as_array().ok_or("not a list")?;
    assert_eq!(next.len(), 2);
    assert!(
        next.iter()
            .all(|n| n["at"].as_str().is_some_and(|t| t.ends_with("T12:00:00Z"))),
        "{next:?}"
    );
    server.terminate()?;
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_with_a_first_start_admin_token() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, home, jobs) = server_dirs_with_job(
        "tick.yaml",
        "id: tick\ntriggers:\n  - interval: 1s\nsteps:\n  - id: one\n    sh: echo tick\n",
    )?;
    let server = Server::start(&home, &jobs, &[])?;
    let addr = server.addr()?;
    let token_file = home.join("admin.token");
    assert!(token_file.exists(), "no admin token file was written");
    assert_eq!(
        std::fs::metadata(&token_file)?.permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&token_file)?.trim().to_owned();

    let (status, head, body) = get(&addr, "/api/v1/runs", None)?;
    assert_eq!(status, 401, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("application/problem+json"),
        "{head}"
    );
    let (status, _, body) = get(&addr, "/api/v1/runs", Some("not-a-token"))?;
    assert_eq!(status, 401, "{body}");

    wait_for("a scheduled run to finish", || {
        get(&addr, "/api/v1/runs?status=succeeded", Some(&token))
            .ok()
            .and_then(|(_, _, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
            .and_then(|page| page["items"].as_array().map(|items| !items.is_empty()))
            .unwrap_or(false)
    })?;
    // The scheduler feeds its lateness to /metrics: the interval job has fired on time.
    let (status, _, body) = get(&addr, "/metrics", Some(&token))?;
    assert_eq!(status, 200, "{body}");
    let fired = body
        .lines()
        .find_map(|line| line.strip_prefix("rota_scheduler_lateness_seconds_count "))
        .and_then(|count| count.trim().parse::<f64>().ok())
        .ok_or("no lateness count in /metrics")?;
    assert!(fired >= 1.0, "lateness observed {fired} times:\n{body}");
    let (status, _, body) = get(&addr, "/api/v1/openapi.json", None)?;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body)?;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{body}"
    );
    // The token is never written to the server's log.
    let log = std::fs::read_to_string(home.join("serve.log"))?;
    assert!(!log.contains(&token), "the admin token leaked into the log");
    Ok(())
}

/// A one-off run whose first step writes a marker and whose second step (with `retry`)
/// records `<attempt> <pid>` and, on its first attempt only, sleeps for good. The server is
/// killed with SIGKILL while that attempt sleeps; returns the run's id and the pid of the
/// killed attempt, once that process is gone.
async fn kill_while_the_second_step_sleeps(
    home: &Path,
    jobs: &Path,
    store: &Store,
    retry: &str,
) -> Result<(String, i32), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(jobs)?;
    let at = Timestamp::now() + jiff::SignedDuration::from_secs(3);
    std::fs::write(
        jobs.join("resume.yaml"),
        format!(
            "id: resume\ntriggers:\n  - at: '{at}'\nsteps:\n  - id: first\n    \
             sh: echo ran >> first.marker\n  - id: second\n    needs: [first]\n{retry}    \
             sh: |\n      echo \"$ROTA_ATTEMPT $$\" >> second.txt\n      \
             if [ \"$ROTA_ATTEMPT\" = 1 ]; then exec sleep 600; fi\n"
        ),
    )?;
    let mut server = Server::start(home, jobs, &[])?;
    let mut found = None;
    let deadline = Instant::now() + PATIENCE;
    while found.is_none() && Instant::now() < deadline {
        let runs = runs_of(store, "resume").await?;
        let sleeping = std::fs::read_to_string(jobs.join("second.txt")).unwrap_or_default();
        if let (Some(run), Some(line)) = (runs.first(), sleeping.lines().next())
            && run
                .steps
                .get(1)
                .is_some_and(|s| s.status.as_str() == "running")
        {
            let pid = line.strip_prefix("1 ").ok_or("not attempt 1")?.parse()?;
            found = Some((run.id.clone(), pid));
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (run_id, pid) = found.ok_or("never saw the second step's first attempt running")?;
    server.kill9()?;
    // The attempt's process dies with the server (the guardian), leaving no orphan.
    wait_for("the first attempt's process to be gone", || !pid_alive(pid))?;
    Ok((run_id, pid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_step_then_restart_retries_the_step_and_reruns_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (home, jobs) = (dir.path().join("home"), dir.path().join("jobs"));
    std::fs::create_dir_all(&home)?;
    let store = Store::open(&home).await?;
    let retry = "    retry: {attempts: 2, initial: 100ms}\n";
    let (run_id, killed) = kill_while_the_second_step_sleeps(&home, &jobs, &store, retry).await?;

    let mut server = Server::start(&home, &jobs, &[])?;
    let deadline = Instant::now() + PATIENCE;
    let run = loop {
        let run = store.get_run(&run_id).await?.ok_or("run vanished")?;
        if run.status.is_terminal() {
            break run;
        }
        assert!(Instant::now() < deadline, "the resumed run never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = server.terminate()?;
    assert!(
        status.success(),
        "rota serve exits 0 on SIGTERM: {status:?}"
    );

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let attempts: Vec<(u32, String)> = store
        .step_attempts(&run_id, "second")
        .await?
        .iter()
        .map(|a| (a.attempt, a.status.as_str().to_owned()))
        .collect();
    assert_eq!(
        attempts,
        [(1, "abandoned".to_owned()), (2, "succeeded".to_owned())]
    );
    // Nothing ran twice: the first step's marker has one line, and it has one attempt.
    assert_eq!(std::fs::read_to_string(jobs.join("first.marker"))?, "ran\n");
    assert_eq!(store.step_attempts(&run_id, "first").await?.len(), 1);
    let second = std::fs::read_to_string(jobs.join("second.txt"))?;
    let lines: Vec<&str> = second.lines().collect();
    assert_eq!(lines.len(), 2, "{second}");
    assert!(lines[1].starts_with("2 "), "{second}");
    assert_eq!(runs_of(&store, "resume").await?.len(), 1);
    assert!(!pid_alive(killed));
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_step_without_retries_left_abandons_the_run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (home, jobs) = (dir.path().join("home"), dir.path().join("jobs"));
    std::fs::create_dir_all(&home)?;
    let store = Store::open(&home).await?;
    let (run_id, _) = kill_while_the_second_step_sleeps(&home, &jobs, &store, "").await?;

    // Recovery is done before the server listens.
    let mut server = Server::start(&home, &jobs, &[])?;
    let run = store.get_run(&run_id).await?.ok_or("run vanished")?;
    let status = server.terminate()?;
    assert!(
        status.success(),
        "rota serve exits 0 on SIGTERM: {status:?}"
    );
    assert_eq!(run.status, RunStatus::Abandoned);
    assert_eq!(run.steps[0].status.as_str(), "succeeded");
    assert_eq!(run.steps[1].status.as_str(), "abandoned");
    assert_eq!(store.step_attempts(&run_id, "second").await?.len(), 1);
    assert_eq!(
        std::fs::read_to_string(jobs.join("second.txt"))?
            .lines()
            .count(),
        1
    );
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_saved_through_the_api_is_scheduled_and_its_new_revision_replaces_it() -> TestResult {
    let (_dir, home, jobs) = server_dirs()?;
    let server = Server::start(&home, &jobs, &[])?;
    let addr = server.addr()?;
    let token = server.admin_token()?;
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let put_job = |word: &str| -> std::io::Result<(u16, String)> {
        let source = format!(
            "id: api-tick\ntriggers:\n  - interval: 1s\nsteps:\n  - id: say\n    sh: echo {word}\n"
        );
        let body = serde_json::json!({ "format": "yaml", "source": source }).to_string();
        send(
            "PUT",
            &addr,
            "/api/v1/namespaces/default/jobs/api-tick",
            &headers,
            body.as_bytes(),
        )
    };
    let (status, body) = put_job("first")?;
    assert_eq!(status, 201, "{body}");

    let store = Store::open(&home).await?;
    let mut first_revision_ran = false;
    for _ in 0..(PATIENCE.as_millis() / 100) {
        let runs = runs_of(&store, "api-tick").await?;
        if runs
            .iter()
            .any(|r| r.status == RunStatus::Succeeded && r.job_revision == 1)
        {
            first_revision_ran = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        first_revision_ran,
        "the API-saved job never ran on its interval"
    );

    // A new revision through the API: the schedule follows it.
    let (status, body) = put_job("second")?;
    assert_eq!(status, 201, "{body}");
    let mut second_revision_ran = false;
    for _ in 0..(PATIENCE.as_millis() / 100) {
        let runs = runs_of(&store, "api-tick").await?;
        if runs
            .iter()
            .any(|r| r.status == RunStatus::Succeeded && r.job_revision == 2)
        {
            second_revision_ran = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(second_revision_ran, "the new revision was not scheduled");
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_secret_comes_from_the_secrets_store_and_each_check_is_audited() -> TestResult {
    let (_dir, home, jobs) = server_dirs()?;
    for (job, secret) in [
        ("stored-hook", "HOOK_TOKEN"),
        ("unset-hook", "NOT_SET_ANYWHERE"),
    ] {
        std::fs::write(
            jobs.join(format!("{job}.yaml")),
            format!(
                "id: {job}\ntriggers:\n  - webhook: {{ secret: {secret}, signature: bearer }}\n\
                 steps:\n  - id: main\n    sh: echo hooked\n"
            ),
        )?;
    }
    let server = Server::start(&home, &jobs, &[])?;
    let addr = server.addr()?;
    let admin = server.admin_bearer()?;
    let (status, body) = send(
        "PUT",
        &addr,
        "/api/v1/namespaces/default/secrets/HOOK_TOKEN",
        &[
            ("Authorization", &admin),
            ("Content-Type", "application/json"),
        ],
        br#"{"value": "hook-s3cret"}"#,
    )?;
    assert!(status == 200 || status == 201, "{status} {body}");
    wait_for("the hook jobs to load", || {
        post(&addr, "/hooks/default/stored-hook", &[], b"{}").is_ok_and(|(s, _)| s == 401)
    })?;

    let (status, _) = post(
        &addr,
        "/hooks/default/stored-hook",
        &[("Authorization", "Bearer wrong")],
        b"{}",
    )?;
    assert_eq!(status, 401, "a wrong secret is refused");
    let (status, answer) = post(
        &addr,
        "/hooks/default/stored-hook",
        &[("Authorization", "Bearer hook-s3cret")],
        b"{}",
    )?;
    assert_eq!(status, 202, "the stored secret is accepted: {answer}");
    let (status, answer) = post(
        &addr,
        "/hooks/default/unset-hook",
        &[("Authorization", "Bearer anything")],
        b"{}",
    )?;
    assert_eq!(
        status, 503,
        "a secret set nowhere is a server problem: {answer}"
    );
    assert!(!answer.contains("anything"), "{answer}");

    let store = Store::open(&home).await?;
    let uses: Vec<_> = store
        .list_audit(0, 500)
        .await?
        .into_iter()
        .filter(|e| e.action == "secret.use" && e.actor == "webhook")
        .collect();
    assert!(
        uses.len() >= 3,
        "every check is audited (the load probe included): {uses:?}"
    );
    assert!(
        uses.iter().all(|e| e.target == "default/HOOK_TOKEN@1"),
        "{uses:?}"
    );
    let log = std::fs::read_to_string(home.join("serve.log"))?;
    assert!(!log.contains("hook-s3cret"), "the secret reached the log");
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_from_the_api_and_rota_cancel_stop_a_queued_and_a_running_run() -> TestResult {
    let (_dir, home, jobs) = server_dirs_with_job(
        "slow.yaml",
        "id: slow\npolicy:\n  max_active_runs: 1\nsteps:\n  - id: wait\n    sh: echo $$ > pid.$ROTA_RUN_ID; sleep 60\n",
    )?;
    let server = Server::start(&home, &jobs, &[])?;
    let addr = server.addr()?;
    let bearer = server.admin_bearer()?;
    let headers = [("Authorization", bearer.as_str())];
    let start = || server.start_run("slow");
    let (first, second) = (start()?, start()?);
    let store = Store::open(&home).await?;
    let status_of = |id: &str| {
        let id = id.to_owned();
        let store = store.clone();
        async move { store.get_run(&id).await.ok().flatten().map(|r| r.status) }
    };
    let deadline = Instant::now() + PATIENCE;
    while status_of(&first).await != Some(RunStatus::Running) {
        assert!(Instant::now() < deadline, "the first run never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status_of(&second).await,
        Some(RunStatus::Queued),
        "max_active_runs: 1"
    );

    // The queued one through the API, the running one with a local `rota cancel` on the
    // server's store: the server's poll stops it, and the server itself keeps serving.
    let (status, body) = post(
        &addr,
        &format!("/api/v1/runs/{second}/cancel"),
        &headers,
        b"",
    )?;
    assert_eq!(status, 202, "{body}");
    rota(&home, &["cancel", &first])?;
    while status_of(&first).await != Some(RunStatus::Cancelled) {
        assert!(
            Instant::now() < deadline,
            "the running run was never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second_run = store.get_run(&second).await?.ok_or("second run missing")?;
    assert_eq!(second_run.status, RunStatus::Cancelled);
    assert!(
        second_run
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("before it started")),
        "{:?}",
        second_run.reason
    );
    assert!(
        second_run.steps.iter().all(|s| s.started_at.is_none()),
        "the queued run ran nothing: {:?}",
        second_run.steps
    );
    // The step's process is gone, not left sleeping.
    let pid_file = jobs.join(format!("pid.{first}"));
    let pid: i32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
    wait_for("the cancelled step's process to go", || !pid_alive(pid))?;
    let (status, _, _) = get(&addr, "/api/v1/openapi.json", None)?;
    assert_eq!(status, 200, "the server still serves after a local cancel");
    let audited = store.list_audit(0, 1000).await?.into_iter().any(|e| {
        e.actor.starts_with("local:")
            && e.action == "run.cancel"
            && e.target == format!("run/{first}")
    });
    assert!(audited, "the local cancel is audited");
    store.close().await;
    Ok(())
}

/// A job whose `work` step marks its start and sleeps, with a `when: always` cleanup that
/// records its pid and sleeps too.
const TIDY: &str = "id: tidy\nsteps:\n  - id: work\n    sh: touch work.started; sleep 60\n\
     \x20 - id: cleanup\n    needs: [work]\n    when: always\n\
     \x20   sh: echo $$ > cleanup.pid; sleep 60\n";

/// The pid the [`TIDY`] job's cleanup step recorded.
fn cleanup_pid(jobs: &Path) -> Result<i32, Box<dyn std::error::Error>> {
    Ok(std::fs::read_to_string(jobs.join("cleanup.pid"))?
        .trim()
        .parse()?)
}

/// A [`TIDY`] run ended cancelled, with both its steps cancelled.
fn assert_tidy_run_cancelled(run: &RunRecord) {
    use rota_core::model::StepStatus;
    assert_eq!(run.status, RunStatus::Cancelled);
    let step_ids: Vec<_> = run.steps.iter().map(|s| s.step_id.as_str()).collect();
    assert_eq!(step_ids, ["work", "cleanup"]);
    assert!(
        run.steps.iter().all(|s| s.status == StepStatus::Cancelled),
        "{:?}",
        run.steps
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_cleans_up_and_a_second_cancel_stops_the_cleanup() -> TestResult {
    let (_dir, home, jobs) = server_dirs_with_job("tidy.yaml", TIDY)?;
    let server = Server::start(&home, &jobs, &[])?;
    let addr = server.addr()?;
    let bearer = server.admin_bearer()?;
    let headers = [("Authorization", bearer.as_str())];
    let run_id = server.start_run("tidy")?;
    let cancel = format!("/api/v1/runs/{run_id}/cancel");
    wait_for("the work step to start", || {
        jobs.join("work.started").exists()
    })?;
    let (status, body) = post(&addr, &cancel, &headers, b"")?;
    assert_eq!(status, 202, "{body}");
    // The first cancel stops `work`; `cleanup` runs all the same.
    wait_for("the cleanup step to start", || {
        jobs.join("cleanup.pid").exists()
    })?;
    let pid = cleanup_pid(&jobs)?;
    let store = Store::open(&home).await?;
    let run = store.get_run(&run_id).await?.ok_or("run missing")?;
    assert_eq!(
        run.status,
        RunStatus::Running,
        "cleanup keeps the run going"
    );
    let (status, body) = post(&addr, &cancel, &headers, b"")?;
    assert_eq!(status, 202, "{body}");
    wait_for("the cleanup step's process to go", || !pid_alive(pid))?;
    let deadline = Instant::now() + PATIENCE;
    let run = loop {
        let run = store.get_run(&run_id).await?.ok_or("run missing")?;
        if run.status.is_terminal() {
            break run;
        }
        assert!(Instant::now() < deadline, "the run never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_tidy_run_cancelled(&run);
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_cleanup_start_then_stops_it_after_one_more_grace() -> TestResult {
    let (_dir, home, jobs) = server_dirs_with_job("tidy.yaml", TIDY)?;
    let mut server = Server::start_with_grace(&home, &jobs, &[], 1)?;
    let run_id = server.start_run("tidy")?;
    wait_for("the work step to start", || {
        jobs.join("work.started").exists()
    })?;
    // SIGTERM: after the 1 s grace `work` is cancelled, `cleanup` starts, and after one
    // more step grace (5 s) the server stops it too and exits.
    let status = server.terminate()?;
    assert!(status.success(), "the server exited with {status}");
    let pid = cleanup_pid(&jobs)?;
    wait_for("the cleanup step's process to go", || !pid_alive(pid))?;
    let store = Store::open(&home).await?;
    let run = store.get_run(&run_id).await?.ok_or("run missing")?;
    assert_tidy_run_cancelled(&run);
    store.close().await;
    Ok(())
}
