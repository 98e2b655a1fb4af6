//! The fleet's less travelled paths, with real processes: a worker drained by SIGTERM, a
//! run cancelled while its step runs on a worker, a step's timeout on a worker, a worker cut
//! off from its server, a server giving up on a worker that does not confirm a stop, and a
//! chaos loop that SIGKILLs workers mid-run and checks the attempts against a ledger the
//! steps themselves write.
//!
//! Every wait is for a state, bounded by [`crate::support::PATIENCE`]; no test asserts how fast anything
//! happened.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use rota_core::model::StepStatus;
use rota_store::{StepAttemptRecord, Store};
use rota_testkit::pid_alive;
use rota_testkit::postgres::TestDatabase;
use serde_json::Value;

use crate::fleet::{Worker, finished_run, ledger_lines, log_texts, step, worker_token};
use crate::support::{Server, TestResult, post, server_dirs, wait_for};

type Error = Box<dyn std::error::Error>;

/// Which store the server runs on.
#[derive(Clone, Copy, PartialEq)]
enum Db {
    Sqlite,
    Postgres,
}

/// One `rota serve` with a worker token, and a scratch directory for the files the steps
/// write (pid files, ledgers): the steps on workers run in directories removed afterwards.
struct Cluster {
    // Field order is drop order: the server and its database go before the directories.
    server: Server,
    db: Option<TestDatabase>,
    token: String,
    home: PathBuf,
    scratch: PathBuf,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// A server on `db` with `--grace GRACE`, loading the job `job(scratch)` from `file`.
    fn start(
        db: Db,
        file: &str,
        grace_secs: u32,
        job: impl FnOnce(&Path) -> String,
    ) -> Result<Cluster, Error> {
        let (dir, home, jobs) = server_dirs()?;
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch)?;
        std::fs::write(jobs.join(file), job(&scratch))?;
        let db = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(TestDatabase::create()?),
        };
        let mut env = Vec::new();
        if let Some(db) = &db {
            env.push(("ROTA_STORE", db.url()));
        }
        let server = Server::start_with_grace(&home, &jobs, &env, grace_secs)?;
        let token = worker_token(&server, dir.path())?;
        Ok(Cluster {
            server,
            db,
            token,
            home,
            scratch,
            dir,
        })
    }

    fn worker(&self, name: &str, label: &str, slots: u32, grace: u32) -> Result<Worker, Error> {
        Worker::start_with(
            self.dir.path(),
            name,
            &self.server.addr()?,
            &self.token,
            label,
            slots,
            grace,
        )
    }

    /// Every attempt of `run`'s step `step` the store holds, oldest first.
    fn attempts(&self, run: &str, step: &str) -> Result<Vec<StepAttemptRecord>, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let store = match &self.db {
                None => Store::open(&self.home).await?,
                Some(db) => Store::open_url(db.url()).await?,
            };
            let attempts = store.step_attempts(run, step).await;
            store.close().await;
            Ok::<_, Error>(attempts?)
        })
    }

    fn cancel(&self, run: &str) -> TestResult {
        let bearer = self.server.admin_bearer()?;
        let (status, body) = post(
            &self.server.addr()?,
            &format!("/api/v1/runs/{run}/cancel"),
            &[("Authorization", bearer.as_str())],
            b"",
        )?;
        if status != 202 {
            return Err(format!("cancelling {run}: {status} {body}").into());
        }
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }
}

/// The pid written to `file`, once it is there.
fn pid_in(file: &Path) -> Result<i32, Error> {
    let mut pid = None;
    wait_for(&format!("{}", file.display()), || {
        pid = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok());
        pid.is_some()
    })?;
    Ok(pid.ok_or("no pid")?)
}

/// The worker's exit status once it has exited.
fn exit_of(worker: &mut Worker) -> Result<std::process::ExitStatus, Error> {
    let mut status = None;
    wait_for("the worker to exit", || {
        status = worker.child.try_wait().ok().flatten();
        status.is_some()
    })?;
    Ok(status.ok_or("no exit status")?)
}

/// The workers named in a step's record, by attempt.
fn workers_of(step: &Value) -> BTreeMap<u32, String> {
    step["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            let attempt = u32::try_from(w["attempt"].as_u64()?).ok()?;
            Some((attempt, w["worker"].as_str()?.to_owned()))
        })
        .collect()
}

/// `ledger`'s lines `start|end ATTEMPT PID`, by attempt: its pid, and whether it ended.
fn simple_ledger(ledger: &Path) -> BTreeMap<u32, (i32, bool)> {
    let mut attempts = BTreeMap::new();
    for line in ledger_lines(ledger) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [what, attempt, pid] = words[..]
            && let (Ok(attempt), Ok(pid)) = (attempt.parse::<u32>(), pid.parse::<i32>())
        {
            let entry = attempts.entry(attempt).or_insert((pid, false));
            entry.1 |= what == "end";
        }
    }
    attempts
}

/// A step script that logs `start ATTEMPT PID` (and `end …`) to `ledger` and, in its first
/// attempt, sleeps until killed.
fn stuck_first_attempt(ledger: &Path) -> String {
    format!(
        "      echo \"start $ROTA_ATTEMPT $$\" >> {ledger}\n      if [ \"$ROTA_ATTEMPT\" = 1 ]; then sleep 600; fi\n      echo \"end $ROTA_ATTEMPT $$\" >> {ledger}\n",
        ledger = ledger.display()
    )
}

#[test]
fn a_worker_drained_by_sigterm_finishes_what_it_can_and_hands_back_the_rest() -> TestResult {
    let cluster = Cluster::start(Db::Sqlite, "drain.yaml", 2, |scratch| {
        format!(
            "id: drain\nsteps:\n  - id: quick\n    runs_on: {{ pool: a }}\n    sh: |\n      echo \"start $ROTA_ATTEMPT $$\" >> {quick}\n      while [ ! -e {release} ]; do sleep 0.05; done\n      echo quick is done\n      echo result=kept >> \"$ROTA_OUTPUT\"\n      echo \"end $ROTA_ATTEMPT $$\" >> {quick}\n  - id: long\n    runs_on: {{ pool: a }}\n    retry: {{ attempts: 2, initial: 1s }}\n    sh: |\n{long}",
            quick = scratch.join("quick").display(),
            release = scratch.join("release").display(),
            long = stuck_first_attempt(&scratch.join("long")),
        )
    })?;
    // A grace long enough for `quick` to see the release file and end, on any machine.
    let mut first = cluster.worker("w-first", "pool=a", 2, 8)?;
    let run = cluster.server.start_run("drain")?;
    wait_for("both steps to start on the first worker", || {
        !simple_ledger(&cluster.path("quick")).is_empty()
            && !simple_ledger(&cluster.path("long")).is_empty()
    })?;

    rota_testkit::signal(first.pid(), Signal::SIGTERM)?;
    wait_for("the worker to start draining", || {
        first
            .log_text()
            .contains("shutting down; 2 attempt(s) running")
    })?;
    // `quick` ends within the grace period; `long` does not, and is handed back.
    std::fs::write(cluster.path("release"), "")?;
    let status = exit_of(&mut first)?;
    assert!(status.success(), "{status:?}\n{}", first.log_text());
    let long_pid = simple_ledger(&cluster.path("long"))
        .get(&1)
        .ok_or("long attempt 1")?
        .0;
    assert!(
        !pid_alive(long_pid),
        "the handed-back attempt's process still runs"
    );

    let second = cluster.worker("w-second", "pool=a", 2, 5)?;
    let run_json = finished_run(&cluster.server, &run)?;
    assert_eq!(
        run_json["status"],
        "succeeded",
        "{run_json}\n{}\n{}",
        first.log_text(),
        second.log_text()
    );
    let quick = step(&run_json, "quick");
    assert_eq!(quick["status"], "succeeded", "{quick}");
    assert_eq!(quick["attempts"], 1, "{quick}");
    assert_eq!(quick["outputs"]["result"], "kept", "{quick}");
    assert_eq!(workers_of(quick), BTreeMap::from([(1, "w-first".into())]));
    let long = step(&run_json, "long");
    assert_eq!(long["attempts"], 2, "{long}");
    assert_eq!(
        workers_of(long),
        BTreeMap::from([(1, "w-first".into()), (2, "w-second".into())])
    );
    let attempts = cluster.attempts(&run, "long")?;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].status, StepStatus::Abandoned, "{attempts:?}");
    assert_eq!(
        attempts[0].reason.as_deref(),
        Some("its worker shut down and handed it back")
    );
    assert_eq!(attempts[1].status, StepStatus::Succeeded, "{attempts:?}");

    // Nothing lost: the drained attempt's lines and end, the retry's end.
    let lines = log_texts(&cluster.server, &run)?;
    assert!(lines.iter().any(|l| l == "quick is done"), "{lines:?}");
    let quick_ledger = simple_ledger(&cluster.path("quick"));
    assert_eq!(quick_ledger.len(), 1, "{quick_ledger:?}");
    assert!(quick_ledger[&1].1, "{quick_ledger:?}");
    let long_ledger = simple_ledger(&cluster.path("long"));
    assert!(!long_ledger[&1].1, "{long_ledger:?}");
    assert!(long_ledger[&2].1, "{long_ledger:?}");
    Ok(())
}

/// A job whose step (on pool `a`, with a retry policy a cancel must not trigger) starts a
/// background child and records the pids of its shell and of the child, then waits.
fn pid_job(scratch: &Path) -> String {
    format!(
        "id: pids\nsteps:\n  - id: work\n    runs_on: {{ pool: a }}\n    retry: {{ attempts: 3, initial: 1s }}\n    sh: |\n      sleep 600 &\n      echo $! > {child}.$ROTA_RUN_ID.$ROTA_ATTEMPT\n      echo $$ > {shell}.$ROTA_RUN_ID.$ROTA_ATTEMPT\n      wait\n",
        child = scratch.join("child").display(),
        shell = scratch.join("shell").display(),
    )
}

fn a_run_cancelled_while_its_step_runs_on_a_worker(db: Db) -> TestResult {
    let cluster = Cluster::start(db, "pids.yaml", 2, pid_job)?;
    let worker = cluster.worker("w-a", "pool=a", 1, 2)?;
    let run = cluster.server.start_run("pids")?;
    let shell = pid_in(&cluster.path(&format!("shell.{run}.1")))?;
    let child = pid_in(&cluster.path(&format!("child.{run}.1")))?;

    cluster.cancel(&run)?;
    let run_json = finished_run(&cluster.server, &run)?;
    assert_eq!(
        run_json["status"],
        "cancelled",
        "{run_json}\n{}",
        worker.log_text()
    );
    let work = step(&run_json, "work");
    assert_eq!(work["status"], "cancelled", "{work}");
    assert_eq!(work["attempts"], 1, "a cancel is not retried: {work}");
    wait_for("the step's processes on the worker to go", || {
        !pid_alive(shell) && !pid_alive(child)
    })?;
    assert!(
        worker.log_text().contains("the server asked to stop"),
        "{}",
        worker.log_text()
    );
    let attempts = cluster.attempts(&run, "work")?;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].status, StepStatus::Cancelled, "{attempts:?}");

    // The worker's slot is free again: the next run runs there.
    let again = cluster.server.start_run("pids")?;
    let shell = pid_in(&cluster.path(&format!("shell.{again}.1")))?;
    cluster.cancel(&again)?;
    assert_eq!(
        finished_run(&cluster.server, &again)?["status"],
        "cancelled"
    );
    wait_for("the next run's process to go", || !pid_alive(shell))?;
    Ok(())
}

#[test]
fn cancelling_a_run_kills_its_step_on_the_worker() -> TestResult {
    a_run_cancelled_while_its_step_runs_on_a_worker(Db::Sqlite)
}

#[test]
fn cancelling_a_run_kills_its_step_on_the_worker_postgres() -> TestResult {
    a_run_cancelled_while_its_step_runs_on_a_worker(Db::Postgres)
}

#[test]
fn a_steps_timeout_on_a_worker_ends_it_as_on_its_server() -> TestResult {
    // The same step twice: on the server, and on a worker.
    let cluster = Cluster::start(Db::Sqlite, "slow.yaml", 2, |scratch| {
        let body = |name: &str| {
            format!(
                "    timeout: 1s\n    sh: |\n      echo $$ > {pid}\n      echo waiting\n      sleep 600\n",
                pid = scratch.join(name).display()
            )
        };
        format!(
            "id: slow\nsteps:\n  - id: here\n{}  - id: there\n    runs_on: {{ pool: a }}\n{}",
            body("here.pid"),
            body("there.pid")
        )
    })?;
    let worker = cluster.worker("w-a", "pool=a", 1, 2)?;
    let run = cluster.server.start_run("slow")?;
    let here_pid = pid_in(&cluster.path("here.pid"))?;
    let there_pid = pid_in(&cluster.path("there.pid"))?;
    let run_json = finished_run(&cluster.server, &run)?;
    wait_for("both steps' processes to go", || {
        !pid_alive(here_pid) && !pid_alive(there_pid)
    })?;

    let (here, there) = (step(&run_json, "here"), step(&run_json, "there"));
    assert_eq!(
        there["status"],
        "timed_out",
        "{run_json}\n{}",
        worker.log_text()
    );
    for field in [
        "status",
        "attempt",
        "attempts",
        "exit_code",
        "reason",
        "outputs",
    ] {
        assert_eq!(here[field], there[field], "{field}: {here} vs {there}");
    }
    assert_eq!(workers_of(there), BTreeMap::from([(1, "w-a".into())]));
    let (here_attempts, there_attempts) = (
        cluster.attempts(&run, "here")?,
        cluster.attempts(&run, "there")?,
    );
    let shape = |a: &StepAttemptRecord| {
        (
            a.attempt,
            a.status,
            a.exit_code,
            a.reason.clone(),
            a.outputs.clone(),
            a.started_at.is_some(),
            a.finished_at.is_some(),
        )
    };
    assert_eq!(
        here_attempts.iter().map(shape).collect::<Vec<_>>(),
        there_attempts.iter().map(shape).collect::<Vec<_>>()
    );
    // The lines each step wrote before its timeout are kept, on both.
    let (_, _, body) = crate::support::get(
        &cluster.server.addr()?,
        &format!("/api/v1/runs/{run}/logs?limit=500"),
        Some(&cluster.server.admin_token()?),
    )?;
    let page: Value = serde_json::from_str(&body)?;
    let lines_of = |id: &str| -> Vec<(String, String)> {
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["step_id"] == id)
            .map(|l| {
                (
                    l["stream"].as_str().unwrap_or_default().to_owned(),
                    l["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(lines_of("here"), lines_of("there"));
    assert!(
        lines_of("there").contains(&("stdout".to_owned(), "waiting".to_owned())),
        "{page}"
    );
    Ok(())
}

fn a_worker_cut_off_from_its_server_stops_its_attempt(kill_server: bool) -> TestResult {
    let mut cluster = Cluster::start(Db::Sqlite, "cut.yaml", 2, |scratch| {
        format!(
            "id: cut\nsteps:\n  - id: work\n    runs_on: {{ pool: a }}\n    retry: {{ attempts: 2, initial: 1s }}\n    sh: |\n{}",
            stuck_first_attempt(&scratch.join("ledger"))
        )
    })?;
    let worker = cluster.worker("w-a", "pool=a", 1, 2)?;
    let run = cluster.server.start_run("cut")?;
    let ledger = cluster.path("ledger");
    wait_for("the first attempt to start", || {
        simple_ledger(&ledger).contains_key(&1)
    })?;
    let pid = simple_ledger(&ledger)[&1].0;
    let server_pid = cluster.server.child().id();
    if kill_server {
        cluster.server.kill9()?;
    } else {
        rota_testkit::signal(server_pid, Signal::SIGSTOP)?;
    }
    // Its heartbeats fail; once its lease has surely expired, the worker stops the attempt.
    let gone = wait_for("the worker to stop its attempt", || !pid_alive(pid));
    if !kill_server {
        rota_testkit::signal(server_pid, Signal::SIGCONT)?;
    }
    gone?;
    assert!(
        worker.log_text().contains("it has expired"),
        "{}",
        worker.log_text()
    );
    if kill_server {
        return Ok(());
    }
    // Back: the server abandons the attempt (its lease expired) and retries it.
    let run_json = finished_run(&cluster.server, &run)?;
    assert_eq!(
        run_json["status"],
        "succeeded",
        "{run_json}\n{}",
        worker.log_text()
    );
    let attempts = cluster.attempts(&run, "work")?;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].status, StepStatus::Abandoned, "{attempts:?}");
    assert_eq!(attempts[1].status, StepStatus::Succeeded, "{attempts:?}");
    let ledger = simple_ledger(&ledger);
    assert!(!ledger[&1].1 && ledger[&2].1, "{ledger:?}");
    Ok(())
}

#[test]
fn a_worker_whose_server_is_frozen_stops_its_attempt_after_the_lease() -> TestResult {
    a_worker_cut_off_from_its_server_stops_its_attempt(false)
}

#[test]
fn a_worker_whose_server_died_stops_its_attempt_after_the_lease() -> TestResult {
    a_worker_cut_off_from_its_server_stops_its_attempt(true)
}

fn a_server_gives_up_on_a_worker_that_does_not_confirm_a_stop(db: Db) -> TestResult {
    let cluster = Cluster::start(db, "pids.yaml", 2, pid_job)?;
    let worker = cluster.worker("w-frozen", "pool=a", 1, 2)?;
    let run = cluster.server.start_run("pids")?;
    let shell = pid_in(&cluster.path(&format!("shell.{run}.1")))?;
    let child = pid_in(&cluster.path(&format!("child.{run}.1")))?;

    rota_testkit::signal(worker.pid(), Signal::SIGSTOP)?;
    let resume = Resume(worker.pid());
    cluster.cancel(&run)?;
    // The frozen worker neither confirms the stop nor renews its lease: the server stops
    // waiting for it, and the run ends.
    let run_json = finished_run(&cluster.server, &run)?;
    assert_eq!(run_json["status"], "cancelled", "{run_json}");
    let work = step(&run_json, "work");
    assert_eq!(work["attempts"], 1, "a cancel is not retried: {work}");
    let attempts = cluster.attempts(&run, "work")?;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    // Cancelled, as on one node, whether its lease expired first or the server gave up
    // waiting for the stop.
    assert_eq!(work["status"], "cancelled", "{work}");
    assert_eq!(attempts[0].status, StepStatus::Cancelled, "{attempts:?}");
    // Its process is orphaned meanwhile: the worker is alive, so its guardian waits.
    assert!(pid_alive(shell) && pid_alive(child));

    // Back: its heartbeat is refused, and it kills the orphaned process.
    drop(resume);
    wait_for("the worker to kill its orphaned attempt", || {
        !pid_alive(shell) && !pid_alive(child)
    })?;
    wait_for("the worker to say it lost the lease", || {
        worker.log_text().contains("lost the lease")
    })?;
    let after = finished_run(&cluster.server, &run)?;
    assert_eq!(after["status"], "cancelled");
    let attempts_after = cluster.attempts(&run, "work")?;
    assert_eq!(
        attempts_after
            .iter()
            .map(|a| (a.status, a.reason.clone()))
            .collect::<Vec<_>>(),
        attempts
            .iter()
            .map(|a| (a.status, a.reason.clone()))
            .collect::<Vec<_>>(),
        "the late worker changed the record"
    );
    Ok(())
}

/// Sends SIGCONT to a process when dropped (a stopped worker must not outlive a failed test).
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = rota_testkit::signal(self.0, Signal::SIGCONT);
    }
}

#[test]
fn a_server_gives_up_on_a_frozen_worker_after_a_cancel() -> TestResult {
    a_server_gives_up_on_a_worker_that_does_not_confirm_a_stop(Db::Sqlite)
}

#[test]
fn a_server_gives_up_on_a_frozen_worker_after_a_cancel_postgres() -> TestResult {
    a_server_gives_up_on_a_worker_that_does_not_confirm_a_stop(Db::Postgres)
}

/// How many steps the chaos job has, and how many attempts each may take.
const CHAOS_STEPS: usize = 12;
const CHAOS_ATTEMPTS: u32 = 5;

/// The chaos job: [`CHAOS_STEPS`] steps on pool `c` (the second half each needing one of the
/// first), each with [`CHAOS_ATTEMPTS`] attempts. Each attempt appends `start`, then `end`
/// (or `term`, when it is stopped) lines `WHAT RUN STEP ATTEMPT NANOS PID WORKER` to
/// `ledger`, the worker being the home its working directory lies in
/// (`<home>/worker/<worker pid>/<attempt>`). When its worker dies,
/// the shell is killed at once (`PR_SET_PDEATHSIG`) and the rest of its process group by the
/// worker's guardian: the subshell that sleeps says when (`term`).
fn chaos_job(ledger: &Path) -> String {
    let mut job = String::from("id: chaos\nsteps:\n");
    for i in 0..CHAOS_STEPS {
        job.push_str(&format!(
            "  - id: s{i:02}\n    runs_on: {{ pool: c }}\n    retry: {{ attempts: {CHAOS_ATTEMPTS}, initial: 200ms }}\n"
        ));
        if i >= CHAOS_STEPS / 2 {
            job.push_str(&format!("    needs: [s{:02}]\n", i - CHAOS_STEPS / 2));
        }
        job.push_str(&format!(
            "    sh: |\n      w=$(basename \"$(dirname \"$(dirname \"$(dirname \"$(pwd -P)\")\")\")\")\n      note() {{ echo \"$1 $ROTA_RUN_ID $ROTA_STEP $ROTA_ATTEMPT $(date +%s%N) $$ $w\" >> {ledger}; }}\n      note start\n      (trap 'note term; exit 143' TERM; sleep 1 & wait $!)\n      note end\n",
            ledger = ledger.display()
        ));
    }
    job
}

/// Live processes whose working directory is under `dir`.
fn processes_in(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            pid_alive(pid)
                && std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

/// One attempt as the chaos ledger tells it.
#[derive(Debug, Default)]
struct Told {
    start: u128,
    /// When it ended or was stopped (`end` or `term`), if it said so.
    last: Option<u128>,
    ended: bool,
    worker: String,
}

/// The chaos ledger: (run, step) → attempt → what it told.
fn chaos_ledger(ledger: &Path) -> BTreeMap<(String, String), BTreeMap<u32, Told>> {
    let mut told: BTreeMap<(String, String), BTreeMap<u32, Told>> = BTreeMap::new();
    for line in ledger_lines(ledger) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [what, run, step, attempt, nanos, _pid, worker] = words[..] else {
            panic!("ledger line {line:?}");
        };
        let (attempt, nanos) = (
            attempt.parse::<u32>().expect("attempt"),
            nanos.parse::<u128>().expect("nanos"),
        );
        let entry = told
            .entry((run.to_owned(), step.to_owned()))
            .or_default()
            .entry(attempt)
            .or_default();
        match what {
            "start" => {
                entry.start = nanos;
                entry.worker = worker.trim_start_matches("worker-").to_owned();
            }
            "end" | "term" => {
                entry.last = Some(nanos);
                entry.ended |= what == "end";
            }
            other => panic!("ledger line {other:?}"),
        }
    }
    told
}

fn chaos(db: Db, rounds: usize) -> TestResult {
    let cluster = Cluster::start(db, "chaos.yaml", 2, |scratch| {
        chaos_job(&scratch.join("ledger"))
    })?;
    let ledger = cluster.path("ledger");
    let mut workers: Vec<(String, Worker)> = Vec::new();
    let mut started = 0;
    for _ in 0..3 {
        started += 1;
        let name = format!("w-{started}");
        workers.push((name.clone(), cluster.worker(&name, "pool=c", 2, 2)?));
    }
    let mut killed: BTreeSet<String> = BTreeSet::new();
    let mut runs = Vec::new();
    for _ in 0..rounds {
        let run = cluster.server.start_run("chaos")?;
        // Mid-run: some worker runs one of this run's attempts; SIGKILL one of those.
        let mut busy: Vec<String> = Vec::new();
        wait_for("attempts of the run to run on workers", || {
            let told = chaos_ledger(&ledger);
            let mut running: BTreeMap<String, usize> = BTreeMap::new();
            for ((r, _), attempts) in &told {
                for attempt in attempts.values() {
                    if *r == run && attempt.last.is_none() && attempt.start > 0 {
                        *running.entry(attempt.worker.clone()).or_default() += 1;
                    }
                }
            }
            busy = running.keys().cloned().collect();
            busy.len() >= 2 || running.values().any(|&n| n >= 2)
        })?;
        let victim = busy.swap_remove(rand::random_range(0..busy.len()));
        let index = workers
            .iter()
            .position(|(name, _)| *name == victim)
            .ok_or("the ledger names an unknown worker")?;
        let (name, mut worker) = workers.swap_remove(index);
        rota_testkit::signal(worker.pid(), Signal::SIGKILL)?;
        let _ = worker.child.wait();
        // The dead worker's step processes do not run on: its guardian stops them.
        let home = cluster.dir.path().join(format!("worker-{name}"));
        wait_for("the killed worker's step processes to go", || {
            processes_in(&home).is_empty()
        })?;
        killed.insert(name);
        started += 1;
        let name = format!("w-{started}");
        workers.push((name.clone(), cluster.worker(&name, "pool=c", 2, 2)?));

        let run_json = finished_run(&cluster.server, &run)?;
        let logs: Vec<String> = workers.iter().map(|(_, w)| w.log_text()).collect();
        assert_eq!(run_json["status"], "succeeded", "{run_json}\n{logs:#?}");
        runs.push((run, run_json));
    }

    let told = chaos_ledger(&ledger);
    let mut abandoned = 0;
    for (run, run_json) in &runs {
        for i in 0..CHAOS_STEPS {
            let id = format!("s{i:02}");
            let stored = cluster.attempts(run, &id)?;
            let names = workers_of(step(run_json, &id));
            let empty = BTreeMap::new();
            let file = told.get(&(run.clone(), id.clone())).unwrap_or(&empty);
            let context =
                format!("{run}/{id}: store {stored:?}, workers {names:?}, ledger {file:?}");

            // Retried per the policy: every attempt but the last abandoned by a killed worker.
            let (last, earlier) = stored.split_last().ok_or(context.clone())?;
            assert_eq!(last.status, StepStatus::Succeeded, "{context}");
            assert!(stored.len() <= CHAOS_ATTEMPTS as usize, "{context}");
            for (n, attempt) in stored.iter().enumerate() {
                assert_eq!(attempt.attempt as usize, n + 1, "{context}");
                assert!(names.contains_key(&attempt.attempt), "{context}");
            }
            for attempt in earlier {
                abandoned += 1;
                assert_eq!(attempt.status, StepStatus::Abandoned, "{context}");
                assert!(
                    attempt
                        .reason
                        .as_deref()
                        .is_some_and(|r| r.contains("stopped renewing its lease")),
                    "{context}"
                );
                assert!(killed.contains(&names[&attempt.attempt]), "{context}");
            }
            // The store and the ledger tell the same attempts.
            for (number, attempt) in file {
                let record = stored
                    .iter()
                    .find(|a| a.attempt == *number)
                    .ok_or(context.clone())?;
                assert!(attempt.start > 0, "an attempt with no start: {context}");
                assert_eq!(attempt.worker, names[number], "{context}");
                if !attempt.ended {
                    assert_eq!(record.status, StepStatus::Abandoned, "{context}");
                }
            }
            assert!(
                file.get(&last.attempt).is_some_and(|a| a.ended),
                "the succeeded attempt's end is in the ledger: {context}"
            );
            // No two attempts ran at once: each one that said when it ended (or was
            // stopped) did so before any later attempt started; one that said nothing was
            // killed outright.
            for (number, attempt) in file {
                let Some(last) = attempt.last else { continue };
                for (later, other) in file.range(number + 1..) {
                    assert!(
                        last < other.start,
                        "attempt {number} still ran when attempt {later} started: {context}"
                    );
                }
            }
        }
    }
    assert!(abandoned > 0, "the kills interrupted no attempt");
    // No attempt's process is left.
    wait_for("every step process to go", || {
        rota_testkit::processes_with(&ledger.display().to_string()).is_empty()
    })?;
    Ok(())
}

#[test]
fn chaos_workers_killed_mid_run_lose_no_attempt_and_never_run_one_twice() -> TestResult {
    chaos(Db::Sqlite, 3)
}

#[test]
fn chaos_workers_killed_mid_run_lose_no_attempt_and_never_run_one_twice_postgres() -> TestResult {
    chaos(Db::Postgres, 2)
}
