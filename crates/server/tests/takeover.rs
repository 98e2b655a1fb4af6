//! Runs outlive the server that drives them: two `rota serve` share one PostgreSQL; the
//! server running a run is SIGKILLed (dead) or SIGSTOPped (cut off) mid-step, and the
//! other takes it for dead and continues the run where it stopped. The tests check that a
//! finished step is not run again, that the interrupted attempt is abandoned and retried,
//! that no two attempts of a step ever ran at once (each attempt appends its start, a tick
//! every quarter second and its end to a ledger), and that a cut-off server that comes back
//! finds itself taken for dead, stops and exits without writing over the run.

use std::path::Path;

use nix::sys::signal::Signal;
use rota_testkit::Serve;
use rota_testkit::postgres::TestDatabase;
use serde_json::Value;

use crate::support::{TestResult, get, post, server_dirs_with_job, wait_for};

/// A job whose middle step `b` ticks to the ledger for ten seconds, with attempts to spare.
fn chain_job(ledger: &Path) -> String {
    format!(
        r#"id: chain
steps:
  - id: a
    sh: echo "a $ROTA_ATTEMPT" >> {ledger}
  - id: b
    needs: [a]
    retry: {{ attempts: 3, initial: 1s }}
    sh: |
      echo "start $ROTA_ATTEMPT" >> {ledger}
      for i in $(seq 40); do echo "tick $ROTA_ATTEMPT" >> {ledger}; sleep 0.25; done
      echo "end $ROTA_ATTEMPT" >> {ledger}
  - id: c
    needs: [b]
    sh: echo "c $ROTA_ATTEMPT" >> {ledger}
"#,
        ledger = ledger.display()
    )
}

struct Pair {
    db: TestDatabase,
    servers: Vec<Option<Serve>>,
    token: String,
    _dirs: Vec<tempfile::TempDir>,
}

/// Two servers on one fresh PostgreSQL database, both with the `chain` job.
fn two_servers(ledger: &Path) -> Result<Pair, Box<dyn std::error::Error>> {
    two_servers_with("chain.yaml", &chain_job(ledger))
}

/// Two servers on one fresh PostgreSQL database, both with job file `name`.
fn two_servers_with(name: &str, job: &str) -> Result<Pair, Box<dyn std::error::Error>> {
    let db = TestDatabase::create()?;
    let mut servers = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..2 {
        let (dir, home, jobs) = server_dirs_with_job(name, job)?;
        servers.push(Some(
            Serve::builder(&home, &jobs)
                .args(["--store", db.url()])
                .env("ROTA_LOG", "info")
                .start()?,
        ));
        dirs.push(dir);
    }
    // Whichever server started first made the admin token.
    let token = servers
        .iter()
        .flatten()
        .find_map(|s| std::fs::read_to_string(s.home().join("admin.token")).ok())
        .ok_or("no admin token")?
        .trim()
        .to_owned();
    Ok(Pair {
        db,
        servers,
        token,
        _dirs: dirs,
    })
}

impl Pair {
    fn start_run(&self) -> Result<String, Box<dyn std::error::Error>> {
        self.start_run_of("chain", 0)
    }

    /// Starts a run of `job` through server `via`.
    fn start_run_of(&self, job: &str, via: usize) -> Result<String, Box<dyn std::error::Error>> {
        let via = self.servers[via].as_ref().ok_or("no server")?;
        let path = format!("/api/v1/namespaces/default/jobs/{job}");
        wait_for("the job to load", || {
            get(via.addr(), &path, Some(&self.token)).is_ok_and(|(status, _, _)| status == 200)
        })?;
        let auth = format!("Bearer {}", self.token);
        let (status, body) = post(
            via.addr(),
            &format!("{path}/runs"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            b"{}",
        )?;
        if status != 202 {
            return Err(format!("start: {status} {body}").into());
        }
        let run: Value = serde_json::from_str(&body)?;
        Ok(run["id"].as_str().ok_or("run id")?.to_owned())
    }

    /// The index of the server that owns `run` once step `b` runs there.
    fn driver_of(&self, run: &str, ledger: &Path) -> Result<usize, Box<dyn std::error::Error>> {
        wait_for("step b to start", || {
            ledger_lines(ledger).iter().any(|l| l == "tick 1")
        })?;
        let pid: u32 = self
            .db
            .query(&format!("SELECT owner_pid FROM runs WHERE id = '{run}'"))?
            .parse()?;
        self.servers
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.pid() == pid))
            .ok_or_else(|| format!("run {run} is owned by pid {pid}, neither server").into())
    }

    fn finished_run(
        &self,
        survivor: usize,
        run: &str,
    ) -> Result<Value, Box<dyn std::error::Error>> {
        let via = self.servers[survivor].as_ref().ok_or("survivor")?;
        let mut last = Value::Null;
        wait_for("the run to end", || {
            let Ok((200, _, body)) = get(
                via.addr(),
                &format!("/api/v1/runs/{run}"),
                Some(&self.token),
            ) else {
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
}

fn ledger_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What the resumed run must show: `a` and `c` ran once, `b`'s first attempt was abandoned
/// and its second succeeded, and once attempt 2 started attempt 1 never ticked again.
fn assert_resumed_once(run: &Value, ledger: &[String], log: &str) {
    assert_eq!(run["status"], "succeeded", "{run}\n{log}");
    let attempts = |id: &str| {
        run["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["id"] == id))
            .map(|s| s["attempts"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(attempts("a"), 1, "{run}");
    assert_eq!(attempts("b"), 2, "{run}");
    assert_eq!(attempts("c"), 1, "{run}");
    let count = |line: &str| ledger.iter().filter(|l| *l == line).count();
    assert_eq!(count("a 1"), 1, "a ran once: {ledger:?}");
    assert_eq!(count("c 1"), 1, "c ran once: {ledger:?}");
    assert_eq!(count("end 1"), 0, "attempt 1 was stopped: {ledger:?}");
    assert_eq!(count("end 2"), 1, "{ledger:?}");
    let second = ledger
        .iter()
        .position(|l| l == "start 2")
        .unwrap_or(ledger.len());
    assert!(
        ledger[second..].iter().all(|l| l != "tick 1"),
        "attempt 1 still ran when attempt 2 started: {ledger:?}"
    );
}

#[test]
fn a_run_whose_server_dies_is_continued_by_another_where_it_stopped() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let ledger = scratch.path().join("ledger");
    let mut pair = two_servers(&ledger)?;
    let run = pair.start_run()?;
    let driver = pair.driver_of(&run, &ledger)?;
    pair.servers[driver].as_mut().ok_or("driver")?.kill9()?;

    let survivor = 1 - driver;
    let finished = pair.finished_run(survivor, &run)?;
    let log = pair.servers[survivor]
        .as_ref()
        .map(Serve::log_text)
        .unwrap_or_default();
    assert_resumed_once(&finished, &ledger_lines(&ledger), &log);
    // Taken for dead once: once its runs were recovered, its row went.
    assert_eq!(log.matches("server taken for dead").count(), 1, "{log}");
    assert_eq!(pair.db.query("SELECT count(*) FROM servers")?, "1");
    Ok(())
}

#[test]
fn a_cut_off_server_is_taken_for_dead_and_stops_without_writing_over_the_run() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let ledger = scratch.path().join("ledger");
    let mut pair = two_servers(&ledger)?;
    let run = pair.start_run()?;
    let driver = pair.driver_of(&run, &ledger)?;
    let stopped_pid = pair.servers[driver].as_ref().ok_or("driver")?.pid();
    rota_testkit::signal(stopped_pid, Signal::SIGSTOP)?;

    let survivor = 1 - driver;
    let finished = pair.finished_run(survivor, &run);
    rota_testkit::signal(stopped_pid, Signal::SIGCONT)?;
    let finished = finished?;
    let log = pair.servers[survivor]
        .as_ref()
        .map(Serve::log_text)
        .unwrap_or_default();
    assert_resumed_once(&finished, &ledger_lines(&ledger), &log);

    // Back, it finds its row gone: it stops and exits with an error, having written nothing.
    let mut cut_off = pair.servers[driver].take().ok_or("driver")?;
    let mut exit = None;
    wait_for("the cut-off server to exit", || {
        exit = cut_off.child().try_wait().ok().flatten();
        exit.is_some()
    })?;
    let exit = exit.ok_or("exit")?;
    assert!(!exit.success(), "{exit:?}\n{}", cut_off.log_text());
    assert!(
        cut_off.log_text().contains("taken for dead"),
        "{}",
        cut_off.log_text()
    );
    let again = pair.finished_run(survivor, &run)?;
    assert_eq!(
        again["steps"], finished["steps"],
        "the run is as the survivor left it"
    );
    Ok(())
}

#[test]
fn a_jobs_max_active_runs_holds_across_servers() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let ledger = scratch.path().join("ledger");
    let job = format!(
        "id: serial\npolicy: {{ max_active_runs: 1 }}\nsteps:\n  - id: work\n    sh: |\n      echo start >> {ledger}\n      sleep 1\n      echo end >> {ledger}\n",
        ledger = ledger.display()
    );
    let pair = two_servers_with("serial.yaml", &job)?;
    let runs = (0..4)
        .map(|i| pair.start_run_of("serial", i % 2))
        .collect::<Result<Vec<_>, _>>()?;
    for run in &runs {
        let finished = pair.finished_run(0, run)?;
        assert_eq!(finished["status"], "succeeded", "{finished}");
    }
    let lines = ledger_lines(&ledger);
    let expected: Vec<&str> = ["start", "end"].repeat(4);
    assert_eq!(lines, expected, "one run at a time, on either server");
    Ok(())
}

#[test]
fn a_run_waiting_at_a_gate_outlives_its_server_and_continues_on_another_once_approved() -> TestResult
{
    let scratch = tempfile::tempdir()?;
    let ledger = scratch.path().join("ledger");
    let job = format!(
        "id: gated\nsteps:\n  - id: a\n    sh: echo a >> {ledger}\n  - id: gate\n    needs: [a]\n    approval: {{ approvers: [\"role:operator\"], allow_self: true }}\n  - id: c\n    needs: [gate]\n    sh: echo c >> {ledger}\n",
        ledger = ledger.display()
    );
    let mut pair = two_servers_with("gated.yaml", &job)?;
    let run = pair.start_run_of("gated", 0)?;
    let first = pair.servers[0].as_ref().ok_or("server 0")?;
    let path = format!("/api/v1/runs/{run}");
    wait_for("the run to wait at its gate", || {
        get(first.addr(), &path, Some(&pair.token)).is_ok_and(|(status, _, body)| {
            status == 200 && body.contains("\"status\":\"awaiting_approval\"")
        })
    })?;
    // The server that drove the run up to its gate dies while the run waits.
    pair.servers[0].as_mut().ok_or("server 0")?.kill9()?;
    let survivor = pair.servers[1].as_ref().ok_or("server 1")?;
    let auth = format!("Bearer {}", pair.token);
    let (status, body) = post(
        survivor.addr(),
        &format!("{path}/approve"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"step": "gate"}"#,
    )?;
    assert_eq!(status, 200, "{body}");
    let finished = pair.finished_run(1, &run)?;
    let log = survivor.log_text();
    assert_eq!(finished["status"], "succeeded", "{finished}\n{log}");
    assert_eq!(ledger_lines(&ledger), ["a", "c"], "each step ran once");
    Ok(())
}
