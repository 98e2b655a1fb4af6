//! The fleet with real processes: `rota serve` hands the steps with `runs_on:` labels to
//! `rota worker` processes over its API (and keeps the run's report when it ends); workers are SIGKILLed and SIGSTOPped (cut off)
//! mid-attempt, and the tests check that the attempt is abandoned and retried elsewhere,
//! that a cut-off worker's late calls are refused and its process killed, and that no
//! attempt ran twice at once (each attempt appends its start and end to a ledger file).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{Server, TestResult, get, rota_bin, server_dirs_with_job, wait_for};

/// A `rota worker` child, killed when dropped; its stderr goes to a file.
pub(crate) struct Worker {
    pub(crate) child: Child,
    log: PathBuf,
}

impl Worker {
    /// A worker named `name` of the server, with one label, two slots and a 2 s grace.
    pub(crate) fn start(
        root: &Path,
        name: &str,
        server: &Server,
        token: &str,
        label: &str,
    ) -> Result<Worker, Box<dyn std::error::Error>> {
        Worker::start_with(root, name, &server.addr()?, token, label, 2, 2)
    }

    /// A worker named `name` of the server listening on `addr`, with its home (and so its
    /// work directory, `<home>/worker`) at `<root>/worker-<name>`.
    pub(crate) fn start_with(
        root: &Path,
        name: &str,
        addr: &str,
        token: &str,
        label: &str,
        slots: u32,
        grace_secs: u32,
    ) -> Result<Worker, Box<dyn std::error::Error>> {
        Worker::spawn(root, name, addr, token, label, (slots, grace_secs), &[])
    }

    /// Like [`Worker::start`], with the work directory of the worker `other` (as two
    /// workers on one host may share one).
    pub(crate) fn start_in_work_dir_of(
        root: &Path,
        name: &str,
        other: &str,
        server: &Server,
        token: &str,
        label: &str,
    ) -> Result<Worker, Box<dyn std::error::Error>> {
        let work_dir = Worker::work_dir(root, other);
        let extra = ["--work-dir".as_ref(), work_dir.as_os_str()];
        Worker::spawn(root, name, &server.addr()?, token, label, (2, 2), &extra)
    }

    fn spawn(
        root: &Path,
        name: &str,
        addr: &str,
        token: &str,
        label: &str,
        (slots, grace_secs): (u32, u32),
        extra: &[&std::ffi::OsStr],
    ) -> Result<Worker, Box<dyn std::error::Error>> {
        let home = root.join(format!("worker-{name}"));
        std::fs::create_dir_all(&home)?;
        let log = root.join(format!("worker-{name}.log"));
        let child = rota_testkit::rota_command(rota_bin(), &home)
            .args(["worker", "--server"])
            .arg(format!("http://{addr}"))
            .args(["--name", name, "--label", label, "--slots"])
            .arg(slots.to_string())
            .arg("--grace")
            .arg(grace_secs.to_string())
            .args(extra)
            .env("ROTA_TOKEN", token)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Worker { child, log })
    }

    /// The work directory of the worker `name` started under `root`.
    pub(crate) fn work_dir(root: &Path, name: &str) -> PathBuf {
        root.join(format!("worker-{name}")).join("worker")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A worker token, made through the CLI against the server with its admin token.
pub(crate) fn worker_token(
    server: &Server,
    root: &Path,
) -> Result<String, Box<dyn std::error::Error>> {
    let out = rota_testkit::rota_command(rota_bin(), &root.join("cli-home"))
        .args([
            "tokens",
            "create",
            "fleet-worker",
            "--role",
            "worker",
            "--server",
        ])
        .arg(format!("http://{}", server.addr()?))
        .env("ROTA_TOKEN", server.admin_token()?)
        .output()?;
    if !out.status.success() {
        return Err(format!("tokens create: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// The run's JSON once it has ended.
pub(crate) fn finished_run(
    server: &Server,
    run: &str,
) -> Result<Value, Box<dyn std::error::Error>> {
    let (addr, token) = (server.addr()?, server.admin_token()?);
    let mut last = Value::Null;
    wait_for("the run to end", || {
        let Ok((200, _, body)) = get(&addr, &format!("/api/v1/runs/{run}"), Some(&token)) else {
            return false;
        };
        last = serde_json::from_str(&body).unwrap_or(Value::Null);
        matches!(
            last["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled" | "timed_out" | "abandoned")
        )
    })?;
    Ok(last)
}

/// The run's log lines' texts.
pub(crate) fn log_texts(
    server: &Server,
    run: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let (_, _, body) = get(
        &server.addr()?,
        &format!("/api/v1/runs/{run}/logs?limit=500"),
        Some(&server.admin_token()?),
    )?;
    let page: Value = serde_json::from_str(&body)?;
    Ok(page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|line| line["text"].as_str().map(str::to_owned))
        .collect())
}

pub(crate) fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .unwrap_or(&Value::Null)
}

pub(crate) fn ledger_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// No two attempts of one step were running at the same time: in the ledger, every
/// `start` of a step is followed by its `end` (or by nothing, for an attempt killed) before
/// the next attempt's `start`, unless the earlier attempt never ended.
fn assert_never_concurrent(ledger: &[String], killed_attempts: &[&str]) {
    let mut running: Option<String> = None;
    for line in ledger {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (what, attempt) = (words[0], words[1].to_owned());
        match what {
            "start" => {
                if let Some(other) = &running {
                    assert!(
                        killed_attempts.contains(&other.as_str()),
                        "attempt {attempt} started while attempt {other} ran: {ledger:?}"
                    );
                }
                running = Some(attempt);
            }
            "end" => {
                assert_eq!(running.as_deref(), Some(attempt.as_str()), "{ledger:?}");
                running = None;
            }
            other => panic!("ledger line {other:?}"),
        }
    }
}

#[test]
fn workers_run_labelled_steps_and_the_records_name_the_worker() -> TestResult {
    let job = "id: fleet\nreport: md\nsteps:\n  - id: here\n    sh: echo on the server\n  - id: there\n    needs: [here]\n    runs_on: { pool: a }\n    sh: |\n      echo \"hello from $ROTA_STEP\"\n      echo answer=42 >> \"$ROTA_OUTPUT\"\n";
    let (dir, home, jobs) = server_dirs_with_job("fleet.yaml", job)?;
    let server = Server::start(&home, &jobs, &[])?;
    let token = worker_token(&server, dir.path())?;
    let worker = Worker::start(dir.path(), "w-a", &server, &token, "pool=a")?;

    let run = server.start_run("fleet")?;
    let run_json = finished_run(&server, &run)?;
    assert_eq!(
        run_json["status"],
        "succeeded",
        "{run_json}\n{}",
        worker.log_text()
    );
    let there = step(&run_json, "there");
    assert_eq!(there["outputs"]["answer"], "42", "{there}");
    assert_eq!(there["workers"][0]["worker"], "w-a", "{there}");
    assert!(step(&run_json, "here")["workers"].is_null(), "{run_json}");
    let lines = log_texts(&server, &run)?;
    assert!(lines.iter().any(|l| l == "hello from there"), "{lines:?}");

    // The run kept its report (`report: md`) once it ended, the worker's lines in it.
    let (addr, admin) = (server.addr()?, server.admin_token()?);
    wait_for("the kept report to be listed", || {
        let listed = format!("/api/v1/runs/{run}/artifacts?step=@run");
        matches!(get(&addr, &listed, Some(&admin)), Ok((200, _, body)) if body.contains("report.md"))
    })?;
    let kept = format!("/api/v1/runs/{run}/artifacts/@run/report.md");
    let (code, _, report) = get(&addr, &kept, Some(&admin))?;
    assert_eq!(code, 200, "{report}");
    assert!(report.contains("hello from there"), "{report}");
    assert!(report.contains("| Status | succeeded |"), "{report}");

    // `rota status` lists the server and the worker with its labels and slots.
    let out = rota_testkit::rota_command(rota_bin(), &dir.path().join("cli-home"))
        .args(["status", "--output", "json", "--server"])
        .arg(format!("http://{}", server.addr()?))
        .env("ROTA_TOKEN", server.admin_token()?)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        status["servers"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    let workers = status["workers"].as_array().ok_or("workers")?;
    assert_eq!(workers.len(), 1, "{status}");
    assert_eq!(workers[0]["name"], "w-a");
    assert_eq!(workers[0]["labels"]["pool"], "a");
    assert_eq!(workers[0]["slots"], 2);
    assert!(workers[0]["last_heartbeat"].is_string(), "{status}");

    // The worker token does nothing else.
    let (code, _, _) = get(&server.addr()?, "/api/v1/runs", Some(&token))?;
    assert_eq!(code, 403);
    Ok(())
}

/// A step's `resources:` travel with its attempt: the worker holds its process to them.
#[test]
fn a_workers_step_is_held_to_its_resources() -> TestResult {
    let job = "id: limited\nsteps:\n  - id: hog\n    runs_on: { pool: a }\n    resources: { memory: 16m }\n    sh: python3 -c \"x = bytearray(200 * 1024 * 1024)\"\n";
    let (dir, home, jobs) = server_dirs_with_job("limited.yaml", job)?;
    let server = Server::start(&home, &jobs, &[])?;
    let token = worker_token(&server, dir.path())?;
    let worker = Worker::start(dir.path(), "w-a", &server, &token, "pool=a")?;

    let run = server.start_run("limited")?;
    let run_json = finished_run(&server, &run)?;
    let hog = step(&run_json, "hog");
    assert_eq!(hog["status"], "failed", "{run_json}\n{}", worker.log_text());
    assert_eq!(hog["workers"][0]["worker"], "w-a", "{hog}");
    let reason = hog["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("out of memory") && reason.contains("16m"),
        "{hog}"
    );
    Ok(())
}

/// A job whose step `work` (on pool `a`, two attempts) logs its start and end to `ledger`,
/// and in its first attempt sleeps until killed.
fn ledger_job(ledger: &Path) -> String {
    format!(
        "id: chaos\nsteps:\n  - id: work\n    runs_on: {{ pool: a }}\n    retry: {{ attempts: 2, initial: 1s }}\n    sh: |\n      echo \"start $ROTA_ATTEMPT $$\" >> {ledger}\n      if [ \"$ROTA_ATTEMPT\" = 1 ]; then sleep 600; fi\n      echo \"end $ROTA_ATTEMPT $$\" >> {ledger}\n",
        ledger = ledger.display()
    )
}

#[test]
fn a_killed_worker_loses_its_lease_and_the_attempt_is_retried_on_another() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let ledger = scratch.path().join("ledger");
    let (dir, home, jobs) = server_dirs_with_job("chaos.yaml", ledger_job(&ledger))?;
    let server = Server::start(&home, &jobs, &[])?;
    let token = worker_token(&server, dir.path())?;
    let mut first = Worker::start(dir.path(), "w-first", &server, &token, "pool=a")?;

    let run = server.start_run("chaos")?;
    wait_for("the first attempt to start", || {
        ledger_lines(&ledger)
            .iter()
            .any(|l| l.starts_with("start 1 "))
    })?;
    rota_testkit::signal(first.pid(), Signal::SIGKILL)?;
    let _ = first.child.wait();
    // The killed worker's attempt directory is left; the next worker on the same work
    // directory removes it.
    let first_dir = Worker::work_dir(dir.path(), "w-first").join(first.pid().to_string());
    assert!(first_dir.is_dir(), "{}", first_dir.display());
    let second =
        Worker::start_in_work_dir_of(dir.path(), "w-second", "w-first", &server, &token, "pool=a")?;

    let run_json = finished_run(&server, &run)?;
    assert_eq!(
        run_json["status"],
        "succeeded",
        "{run_json}\n{}",
        second.log_text()
    );
    let work = step(&run_json, "work");
    assert_eq!(work["attempts"], 2, "{work}");
    let workers = work["workers"].as_array().ok_or("workers")?;
    assert_eq!(workers.len(), 2, "{work}");
    assert_eq!(workers[0]["worker"], "w-first");
    assert_eq!(workers[1]["worker"], "w-second");
    let lines = log_texts(&server, &run)?;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("w-first stopped renewing its lease")),
        "{lines:?}"
    );
    // The dead worker's guardian killed its attempt: attempt 1 never ended.
    let ledger = ledger_lines(&ledger);
    assert_never_concurrent(&ledger, &["1"]);
    assert!(
        ledger.iter().all(|l| !l.starts_with("end 1 ")),
        "{ledger:?}"
    );
    assert!(ledger.iter().any(|l| l.starts_with("end 2 ")), "{ledger:?}");
    assert!(!first_dir.exists(), "{} is left", first_dir.display());
    assert!(second.log_text().contains("left by a worker that is gone"));
    Ok(())
}

#[test]
fn a_cut_off_worker_is_fenced_out_and_kills_its_orphaned_attempt() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let ledger = scratch.path().join("ledger");
    let (dir, home, jobs) = server_dirs_with_job("chaos.yaml", ledger_job(&ledger))?;
    let server = Server::start(&home, &jobs, &[])?;
    let token = worker_token(&server, dir.path())?;
    let cut_off = Worker::start(dir.path(), "w-cut", &server, &token, "pool=a")?;

    let run = server.start_run("chaos")?;
    wait_for("the first attempt to start", || {
        ledger_lines(&ledger)
            .iter()
            .any(|l| l.starts_with("start 1 "))
    })?;
    let orphan: i32 = ledger_lines(&ledger)[0]
        .split_whitespace()
        .nth(2)
        .ok_or("pid")?
        .parse()?;
    // Cut off: the worker stops (its step process runs on), its lease expires, and the
    // attempt goes to another worker.
    rota_testkit::signal(cut_off.pid(), Signal::SIGSTOP)?;
    let other = Worker::start(dir.path(), "w-other", &server, &token, "pool=a")?;
    let run_json = finished_run(&server, &run)?;
    assert_eq!(
        run_json["status"],
        "succeeded",
        "{run_json}\n{}",
        other.log_text()
    );
    assert!(
        rota_testkit::pid_alive(orphan),
        "the orphaned attempt still runs"
    );

    // Back: its next heartbeat is refused, and it kills the orphaned attempt.
    rota_testkit::signal(cut_off.pid(), Signal::SIGCONT)?;
    wait_for("the cut-off worker to kill its orphaned attempt", || {
        !rota_testkit::pid_alive(orphan)
    })?;
    wait_for("the cut-off worker to say it lost the lease", || {
        cut_off.log_text().contains("lost the lease")
    })?;
    let run_after = finished_run(&server, &run)?;
    assert_eq!(run_after["status"], "succeeded");
    assert_eq!(step(&run_after, "work")["workers"][1]["worker"], "w-other");
    let ledger = ledger_lines(&ledger);
    assert_never_concurrent(&ledger, &["1"]);
    assert!(
        ledger.iter().all(|l| !l.starts_with("end 1 ")),
        "{ledger:?}"
    );
    Ok(())
}

/// Which of two servers on one store holds the scheduler's lease, asked of `via`.
fn scheduler_listen(via: &rota_testkit::Serve, token: &str) -> Option<String> {
    let (status, _, body) = get(via.addr(), "/api/v1/cluster", Some(token)).ok()?;
    if status != 200 {
        return None;
    }
    let cluster: Value = serde_json::from_str(&body).ok()?;
    let holder = cluster["scheduler"].as_str()?;
    cluster["servers"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == holder)
        .and_then(|s| s["listen"].as_str())
        .map(str::to_owned)
}

#[test]
fn when_the_scheduling_server_dies_another_takes_over_and_no_occurrence_is_lost() -> TestResult {
    let db = rota_testkit::postgres::TestDatabase::create()?;
    let job = "id: tick\ntriggers:\n  - interval: 1s\nsteps:\n  - id: tick\n    sh: echo tick\n";
    let (a_dir, a_home, a_jobs) = server_dirs_with_job("tick.yaml", job)?;
    let (_b_dir, b_home, b_jobs) = server_dirs_with_job("tick.yaml", job)?;
    let start = |home: &Path, jobs: &Path| {
        rota_testkit::Serve::builder(home, jobs)
            .args(["--store", db.url()])
            .env("ROTA_LOG", "info")
            .start()
    };
    let a = start(&a_home, &a_jobs)?;
    let b = start(&b_home, &b_jobs)?;
    let mut servers = [Some(a), Some(b)];
    let token = [&a_home, &b_home]
        .iter()
        .find_map(|home| std::fs::read_to_string(home.join("admin.token")).ok())
        .ok_or("no admin token")?
        .trim()
        .to_owned();
    let occurrences = || {
        db.query("SELECT count(*) FROM occurrences WHERE job_id = 'tick'")
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_for("a few occurrences", || occurrences() >= 3)?;

    let mut leader = None;
    wait_for("a scheduler", || {
        leader = servers[0]
            .as_ref()
            .and_then(|a| scheduler_listen(a, &token));
        leader.is_some()
    })?;
    let leader = leader.ok_or("no scheduler")?;
    let dead = servers
        .iter()
        .position(|s| s.as_ref().is_some_and(|s| s.addr() == leader))
        .ok_or("the scheduler is neither server")?;
    let mut killed = servers[dead].take().ok_or("server")?;
    killed.kill9()?;
    let survivor = servers[1 - dead].take().ok_or("server")?;
    let before = occurrences();
    wait_for("the other server to take the lease", || {
        scheduler_listen(&survivor, &token).as_deref() == Some(survivor.addr())
    })?;
    wait_for("occurrences after the takeover", || {
        occurrences() >= before + 3
    })?;

    // Every occurrence on the one-second grid, from the first to the last, was decided
    // (run, or recorded missed with its reason) exactly once: none lost in the takeover.
    let gaps = db.query(
        "SELECT (max(scheduled_at) - min(scheduled_at)) / 1000000 + 1 - count(*) \
         FROM occurrences WHERE job_id = 'tick'",
    )?;
    let outcomes = db.query(
        "SELECT string_agg(outcome || coalesce(':' || reason, ''), ', ' ORDER BY scheduled_at) \
         FROM occurrences WHERE job_id = 'tick'",
    )?;
    assert_eq!(gaps, "0", "{outcomes}\n{}", survivor.log_text());
    let missed_without_reason = db.query(
        "SELECT count(*) FROM occurrences WHERE job_id = 'tick' \
         AND outcome <> 'run' AND reason IS NULL",
    )?;
    assert_eq!(missed_without_reason, "0", "{outcomes}");
    drop(a_dir);
    Ok(())
}
