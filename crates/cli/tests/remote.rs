//! The CLI as the API's client: a real `rota serve` on a loopback port, driven with
//! `rota --server URL --token T …`, against the same commands on the server's own store.

use std::io::BufRead as _;
use std::process::Output;
use std::sync::mpsc;

use serde_json::Value;

use crate::util::{
    PATIENCE, Rota, Server, assert_code, assert_stderr_has, assert_stdout_has, describe, finish,
    json, stderr, stdout, wait_until,
};

const HELLO: &str = "\
id: hello
params:
  n: { type: int, default: 2 }
steps:
  - id: a
    sh: for i in $(seq {{ params.n }}); do echo line $i; done
  - id: b
    needs: [a]
    sh: echo to-stderr >&2
";

const FAILS: &str = "\
id: fails
steps:
  - id: boom
    sh: exit 3
";

/// Prints a line, then waits (printing) until the file `release` exists in its working dir.
const WAITS: &str = "\
id: waits
steps:
  - id: wait
    sh: |
      echo started
      i=0
      while [ ! -e \"$RELEASE\" ]; do i=$((i+1)); echo tick $i; sleep 0.1; done
      echo released
";

/// An installation whose server loads `HELLO`, `FAILS` and `WAITS`.
fn setup() -> (Rota, Server) {
    let rota = Rota::new();
    rota.write("jobs/hello.yaml", HELLO);
    let release = rota.path("release");
    rota.write(
        "jobs/waits.yaml",
        &WAITS.replace(
            "\"$RELEASE\"",
            &format!("{:?}", release.display().to_string()),
        ),
    );
    rota.write("jobs/fails.yaml", FAILS);
    let server = rota.serve(&rota.path("jobs"));
    (rota, server)
}

/// `--server URL --token T ARGS`: the arguments of a command for `server`, as its admin.
fn remote_args<'a>(server: &'a Server, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--server", &server.url, "--token", &server.admin_token];
    all.extend(args);
    all
}

/// `rota --server URL --token T ARGS`.
pub(crate) fn remote(rota: &Rota, server: &Server, args: &[&str]) -> Output {
    rota.run(remote_args(server, args))
}

/// `rota --server URL --token T ARGS --output json`, parsed; the exit code must be 0.
pub(crate) fn remote_json(rota: &Rota, server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let output = remote(rota, server, &all);
    assert_code(&output, 0);
    json(&output)
}

/// The same command on the server's store, without `--server`.
fn local_json(rota: &Rota, args: &[&str]) -> Value {
    rota.json_ok(args)
}

#[test]
fn remote_output_is_the_local_output_of_the_same_store() {
    let (rota, server) = setup();
    let run = remote_json(&rota, &server, &["run", "hello", "-p", "n=3"]);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["params"]["n"], 3, "-p is coerced to the declared int");
    let id = run["id"].as_str().expect("run id");
    for args in [
        vec!["runs"],
        vec!["runs", "--job", "hello", "--status", "succeeded"],
        vec!["runs", "show", id],
        vec!["jobs"],
        vec!["jobs", "-n", "default"],
        vec!["schedule", "history", "hello"],
        vec!["tokens", "list"],
        vec!["secrets", "list"],
        vec!["audit", "list"],
    ] {
        let over_api = remote_json(&rota, &server, &args);
        let on_store = local_json(&rota, &args);
        assert_eq!(over_api, on_store, "`rota {}` differs", args.join(" "));
    }
    // The run's JSON contract, as `rota run` promises it.
    let listed = local_json(&rota, &["runs", "show", id]);
    assert_eq!(run, listed);
    let step = &run["steps"][0];
    for key in ["id", "status", "exit_code", "attempts", "outputs"] {
        assert!(step.get(key).is_some(), "step lacks {key}: {run:#}");
    }
    // Tables too: the same rows either way.
    let table = remote(&rota, &server, &["runs", "show", id]);
    assert_code(&table, 0);
    assert_eq!(stdout(&table), stdout(&rota.run(["runs", "show", id])));
}

#[test]
fn remote_run_follows_to_the_end_with_the_run_exit_code() {
    let (rota, server) = setup();
    let ok = remote(&rota, &server, &["run", "hello", "-p", "n=2"]);
    assert_code(&ok, 0);
    let text = stdout(&ok);
    for expected in [
        "a | line 1",
        "a | line 2",
        "b ! to-stderr",
        "a | ■ succeeded",
    ] {
        assert!(
            text.contains(expected),
            "missing {expected:?}: {}",
            describe(&ok)
        );
    }
    assert!(
        text.find("a | line 2") < text.find("b | ▶"),
        "a's lines come before b starts: {text}"
    );
    let failed = remote(&rota, &server, &["run", "fails"]);
    assert_code(&failed, 1);
    assert_stdout_has(&failed, "boom | ■ failed");
    let detached = remote(&rota, &server, &["run", "hello", "--detach"]);
    assert_code(&detached, 0);
    let id = stdout(&detached).trim().to_owned();
    assert_eq!(id.len(), 26, "--detach prints only the run id: {id:?}");
}

#[test]
fn remote_run_rejects_bad_params_with_the_local_message() {
    let (rota, server) = setup();
    let output = remote(&rota, &server, &["run", "hello", "-p", "n=many"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "n");
    let missing = remote(&rota, &server, &["run", "nope"]);
    assert_code(&missing, 2);
    assert_stderr_has(&missing, "Not found");
}

#[test]
fn wrong_or_missing_token_exits_2_with_a_clear_message() {
    let (rota, server) = setup();
    let wrong = "not-the-token-0123456789";
    let output = rota.run(["--server", &server.url, "--token", wrong, "runs"]);
    assert_code(&output, 2);
    let message = stderr(&output);
    assert!(message.contains("rejected the token"), "{message}");
    assert!(!message.contains(wrong), "the token is echoed: {message}");
    assert!(stdout(&output).is_empty());

    let output = rota.run(["--server", &server.url, "jobs"]);
    assert_code(&output, 2);
    let message = stderr(&output);
    assert!(message.contains("Authentication required"), "{message}");
    assert!(message.contains("no token was given"), "{message}");

    // The environment and a token file work like --token.
    let file = rota.write("token", &format!("{}\n", server.admin_token));
    // A token file wins over a stale ROTA_TOKEN.
    let from_file = rota
        .command([
            "--server",
            &server.url,
            "--token-file",
            file.to_str().expect("utf-8 path"),
            "jobs",
        ])
        .env("ROTA_TOKEN", wrong)
        .output()
        .expect("run rota");
    assert_code(&from_file, 0);
    let from_env = rota
        .command(["jobs"])
        .env("ROTA_SERVER", &server.url)
        .env("ROTA_TOKEN", &server.admin_token)
        .output()
        .expect("run rota");
    assert_code(&from_env, 0);
    assert!(stdout(&from_env).contains("hello"));
}

#[test]
fn a_missing_role_and_an_unreachable_server_exit_2() {
    let (rota, server) = setup();
    let created = remote(
        &rota,
        &server,
        &["tokens", "create", "ci", "--role", "viewer"],
    );
    assert_code(&created, 0);
    let viewer = stdout(&created).trim().to_owned();
    let output = rota.run(["--server", &server.url, "--token", &viewer, "run", "hello"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "operator");
    assert!(!stderr(&output).contains(&viewer));
    let output = rota.run(["--server", "http://127.0.0.1:9", "--token", "x", "runs"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "127.0.0.1:9");
}

#[test]
fn logs_follow_prints_lines_of_a_running_job_until_it_ends() {
    let (rota, server) = setup();
    let started = remote(&rota, &server, &["run", "waits", "--detach"]);
    assert_code(&started, 0);
    let id = stdout(&started).trim().to_owned();
    let mut follow = rota.spawn(remote_args(&server, &["logs", "-f", &id]));
    let (tx, rx) = mpsc::channel::<String>();
    let out = follow.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    // Lines arrive while the step still runs: it only ends once `release` exists.
    let first = rx
        .recv_timeout(PATIENCE)
        .expect("a line while the run is running");
    assert_eq!(first, "wait | started");
    let tick = rx.recv_timeout(PATIENCE).expect("a second line");
    assert!(tick.starts_with("wait | tick"), "{tick}");
    rota.write("release", "");
    let output = finish(follow, "rota logs -f");
    assert_code(&output, 0);
    reader.join().expect("reader thread");
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(
        rest.last().map(String::as_str),
        Some("wait | released"),
        "{rest:?}"
    );
    // It followed the server-sent events of the log stream, not pages of lines.
    let metrics = server.get("/metrics");
    assert!(
        metrics.contains(r#"route="/api/v1/runs/{id}/logs/stream",status="2xx""#),
        "{metrics}"
    );
}

#[test]
fn cancel_of_a_followed_remote_run_is_accepted_and_the_exit_code_follows_the_end() {
    let (rota, server) = setup();
    let follower = rota.spawn(remote_args(&server, &["run", "waits"]));
    let mut id = String::new();
    wait_until("the remote run to be running", || {
        let runs = remote_json(&rota, &server, &["runs", "--status", "running"]);
        id = runs[0]["id"].as_str().unwrap_or_default().to_owned();
        !id.is_empty()
    });
    let cancel = remote(&rota, &server, &["cancel", &id]);
    assert_code(&cancel, 0);
    assert!(stdout(&cancel).contains("cancel requested"));
    let output = finish(follower, "rota run (remote)");
    let run = remote_json(&rota, &server, &["runs", "show", &id]);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_code(&output, 130);
    // Cancelling it again is refused as in local mode: it already ended.
    let again = remote(&rota, &server, &["cancel", &id]);
    assert_code(&again, 1);
    assert_stderr_has(&again, "already ended");
}

#[test]
fn secrets_and_tokens_are_managed_over_the_api() {
    let (rota, server) = setup();
    let set = rota.spawn_with_stdin(
        remote_args(&server, &["secrets", "set", "DB_PASSWORD"]),
        "hunter2\n",
    );
    let output = finish(set, "rota secrets set");
    assert_code(&output, 0);
    assert!(!stdout(&output).contains("hunter2"));
    let listed = remote_json(&rota, &server, &["secrets", "list"]);
    assert_eq!(listed[0]["name"], "DB_PASSWORD");
    assert_eq!(listed[0]["version"], 1);
    let removed = remote_json(&rota, &server, &["secrets", "rm", "DB_PASSWORD"]);
    assert_eq!(removed["removed_versions"], 1);
    let again = remote(&rota, &server, &["secrets", "rm", "DB_PASSWORD"]);
    assert_code(&again, 1);

    let created = remote_json(
        &rota,
        &server,
        &["tokens", "create", "ci", "--role", "operator"],
    );
    let id = created["id"].as_str().expect("token id");
    assert!(created["token"].as_str().is_some_and(|t| !t.is_empty()));
    let revoked = remote_json(&rota, &server, &["tokens", "revoke", id]);
    assert_eq!(revoked["revoked"], true);
    let output = rota.run([
        "--server",
        &server.url,
        "--token",
        created["token"].as_str().unwrap_or_default(),
        "runs",
    ]);
    assert_code(&output, 2);

    let verify = remote_json(&rota, &server, &["audit", "verify"]);
    assert_eq!(verify["intact"], true, "{verify:#}");
    assert_eq!(verify, local_json(&rota, &["audit", "verify"]));
    // Tampering with the server's audit table is found over the API too.
    crate::admin::tamper(
        &rota,
        "UPDATE audit SET actor = 'someone-else' WHERE id = 1",
    );
    let broken = remote(&rota, &server, &["audit", "verify", "--output", "json"]);
    assert_code(&broken, 1);
    assert_eq!(
        json(&broken)["break"]["entry_id"],
        1,
        "{}",
        describe(&broken)
    );
    assert_eq!(json(&broken)["break"]["what"], "modified");
    assert_stderr_has(&broken, "audit log broken at entry 1");
}

#[test]
fn jobs_put_saves_a_file_on_the_server_and_reports_problems_with_positions() {
    let (rota, server) = setup();
    let file = rota.write(
        "new.yaml",
        "id: fresh\nsteps:\n  - id: a\n    sh: echo fresh\n",
    );
    let saved = remote_json(
        &rota,
        &server,
        &["jobs", "put", file.to_str().expect("utf-8")],
    );
    assert_eq!(saved[0]["id"], "fresh");
    assert_eq!(saved[0]["revision"], 1);
    let run = remote_json(&rota, &server, &["run", "fresh"]);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let bad = rota.write("bad.yaml", "id: broken\nsteps:\n  - id: a\n    shx: echo\n");
    let output = remote(
        &rota,
        &server,
        &["jobs", "put", bad.to_str().expect("utf-8")],
    );
    assert_code(&output, 2);
    assert_stderr_has(&output, "bad.yaml:4:5");
}

#[test]
fn schedule_pause_and_resume_over_the_api_match_local_output() {
    let (rota, server) = setup();
    let paused = remote_json(&rota, &server, &["pause", "hello"]);
    assert_eq!(paused["state"], "paused");
    let resumed = remote_json(&rota, &server, &["resume", "hello"]);
    assert_eq!(resumed["state"], "resumed");
    let local = local_json(&rota, &["pause", "hello"]);
    let keys = |v: &Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(keys(&paused), keys(&local));
}

/// Where the two modes used to disagree: an unknown job was the server's problem text
/// remotely and `no stored job` locally (now `no stored job` in both, exit 2); a local
/// pause was not audited (now it is, as through the API, in the local user's name); a
/// zoned `--from` was accepted only locally (now in both).
#[test]
fn schedule_commands_say_an_unknown_job_and_audit_alike_in_both_modes() {
    let (rota, server) = setup();
    for args in [
        &["pause", "no-such-job"][..],
        &["resume", "no-such-job"],
        &["schedule", "next", "no-such-job"],
        &["schedule", "history", "no-such-job"],
        &[
            "backfill",
            "no-such-job",
            "--from",
            "2020-01-01T00:00:00Z",
            "--to",
            "2020-01-02T00:00:00Z",
        ],
    ] {
        for output in [remote(&rota, &server, args), rota.run(args)] {
            assert_code(&output, 2);
            assert_stderr_has(
                &output,
                "no stored job \"no-such-job\" in namespace \"default\"",
            );
        }
    }
    let zoned = [
        "resume",
        "hello",
        "--from",
        "2030-01-01T09:00[Europe/Paris]",
    ];
    let resumed = remote_json(&rota, &server, &zoned);
    assert_eq!(resumed["resume_from"], "2030-01-01T08:00:00Z");
    assert_eq!(local_json(&rota, &zoned), resumed);

    let entries = local_json(&rota, &["audit", "list"]);
    let schedule: Vec<(&str, &str)> = entries
        .as_array()
        .expect("an array of entries")
        .iter()
        .filter(|e| e["action"] == "schedule.resume")
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default(),
                e["result"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(schedule.len(), 4, "{entries:#}");
    assert!(schedule[0].0.starts_with("token:") && schedule[0].1 == "not-found");
    assert!(schedule[1].0.starts_with("local:") && schedule[1].1 == "not-found");
    assert!(schedule[2].0.starts_with("token:") && schedule[2].1 == "ok");
    assert!(schedule[3].0.starts_with("local:") && schedule[3].1 == "ok");
}

#[test]
fn schedule_next_and_backfill_over_the_api_match_local_output() {
    let rota = Rota::new();
    // Yearly, so "now" cannot cross a fire time between the two calls compared.
    rota.write(
        "jobs/yearly.yaml",
        "id: yearly\ntriggers:\n  - cron: \"0 0 1 1 *\"\nsteps:\n  - id: a\n    sh: echo new year\n",
    );
    let server = rota.serve(&rota.path("jobs"));
    let next = remote_json(
        &rota,
        &server,
        &[
            "schedule", "next", "yearly", "-n", "default", "--count", "3",
        ],
    );
    assert_eq!(
        next,
        local_json(
            &rota,
            &[
                "schedule", "next", "yearly", "-n", "default", "--count", "3"
            ]
        )
    );
    assert_eq!(next.as_array().map(Vec::len), Some(3), "{next:#}");
    let range = [
        "--from",
        "2020-01-01T00:00:00Z",
        "--to",
        "2022-06-01T00:00:00Z",
    ];
    let mut args = vec!["backfill", "yearly"];
    args.extend(range);
    let queued = remote_json(&rota, &server, &args);
    let times = |v: &Value| {
        v.as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| i["scheduled_at"].as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        times(&queued),
        [
            "2020-01-01T00:00:00Z",
            "2021-01-01T00:00:00Z",
            "2022-01-01T00:00:00Z"
        ]
    );
    assert!(
        queued[0]["queued"] == true && queued[0]["run_id"].is_string(),
        "{queued:#}"
    );
    // The same range again, locally: the same occurrences, none queued twice.
    let again = local_json(&rota, &args);
    assert_eq!(times(&again), times(&queued));
    assert!(
        again[0]["queued"] == false && again[0]["run_id"].is_null(),
        "{again:#}"
    );
}

#[test]
fn completions_offer_the_server_flags() {
    let rota = Rota::new();
    let output = rota.run(["completions", "bash"]);
    assert_code(&output, 0);
    let script = stdout(&output);
    for flag in ["--server", "--token-file", "retry", "--detach"] {
        assert!(script.contains(flag), "completions lack {flag}");
    }
}

#[test]
fn ctrl_c_while_following_a_remote_run_asks_the_server_to_cancel_it() {
    let (rota, server) = setup();
    let mut follower = rota.spawn(remote_args(&server, &["run", "waits"]));
    let mut ended = false;
    wait_until("the remote run to be running", || {
        ended = follower.try_wait().ok().flatten().is_some();
        let runs = remote_json(&rota, &server, &["runs", "--status", "running"]);
        ended || runs.as_array().is_some_and(|r| !r.is_empty())
    });
    if ended {
        let output = finish(follower, "rota run (remote)");
        panic!(
            "the follower ended before its run ran: {}",
            describe(&output)
        );
    }
    crate::util::signal(follower.id(), nix::sys::signal::Signal::SIGINT);
    wait_until("the cancel request in the audit log", || {
        let entries = remote_json(&rota, &server, &["audit", "list"]);
        entries.as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e["action"] == "run.cancel" && e["result"] == "ok")
        })
    });
    let output = finish(follower, "rota run (remote)");
    assert_stderr_has(&output, "asking the server to cancel");
    assert_code(&output, 130);
}

#[test]
fn jobs_put_saves_a_file_in_the_local_store() {
    let rota = Rota::new();
    let file = rota.write(
        "put.yaml",
        "id: stored\nsteps:\n  - id: a\n    sh: echo stored\n",
    );
    let path = file.to_str().expect("utf-8");
    let saved = local_json(&rota, &["jobs", "put", path, "-n", "team"]);
    assert_eq!(saved[0]["id"], "stored");
    assert_eq!(saved[0]["namespace"], "team");
    assert_eq!(saved[0]["revision"], 1);
    // The same text again keeps the revision.
    let again = local_json(&rota, &["jobs", "put", path, "-n", "team"]);
    assert_eq!(again[0]["revision"], 1);
    let output = rota.run(["run", "stored", "-n", "team"]);
    assert_code(&output, 0);
    assert_stdout_has(&output, "a | stored");
}

#[test]
fn namespaces_and_job_deletion_work_remotely_and_locally_alike() {
    let (rota, server) = setup();
    let file = rota.write(
        "gone.yaml",
        "id: gone-soon\nnamespace: team\nsteps:\n  - id: a\n    sh: echo bye\n",
    );
    let path = file.to_str().expect("utf-8");
    remote_json(&rota, &server, &["jobs", "put", path]);
    let listed = remote_json(&rota, &server, &["namespaces"]);
    assert_eq!(
        listed,
        local_json(&rota, &["namespaces"]),
        "same shape both ways"
    );
    let team = listed
        .as_array()
        .and_then(|all| all.iter().find(|n| n["name"] == "team"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(team["jobs"], 1, "{listed:#}");

    let removed = remote(&rota, &server, &["jobs", "rm", "gone-soon", "-n", "team"]);
    assert_code(&removed, 0);
    let jobs = remote_json(&rota, &server, &["jobs", "-n", "team"]);
    assert_eq!(jobs, serde_json::json!([]), "a deleted job is not listed");
    let counted = remote_json(&rota, &server, &["namespaces"]);
    let team = counted
        .as_array()
        .and_then(|all| all.iter().find(|n| n["name"] == "team"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(team["jobs"], 0, "nor counted: {counted:#}");
    let again = remote(&rota, &server, &["jobs", "rm", "gone-soon", "-n", "team"]);
    assert_code(&again, 1);
    assert_stderr_has(&again, "no job gone-soon");
    let run = remote(&rota, &server, &["run", "gone-soon", "-n", "team"]);
    assert_code(&run, 2);
    assert_stderr_has(&run, "not found");

    // A job loaded from the server's job directory is removed with its file.
    let from_file = remote(&rota, &server, &["jobs", "rm", "hello"]);
    assert_code(&from_file, 2);
    assert_stderr_has(&from_file, "file");

    // Locally: saving revives it, and `jobs rm` deletes it again.
    local_json(&rota, &["jobs", "put", path]);
    let local = rota.run(["jobs", "rm", "gone-soon", "-n", "team"]);
    assert_code(&local, 0);
    assert_eq!(
        local_json(&rota, &["jobs", "-n", "team"]),
        serde_json::json!([])
    );
}

#[test]
fn abbreviated_run_ids_work_remotely_as_locally() {
    let (rota, server) = setup();
    let first = remote_json(&rota, &server, &["run", "hello"]);
    let second = remote_json(&rota, &server, &["run", "hello"]);
    let first = first["id"].as_str().expect("run id");
    let second = second["id"].as_str().expect("run id");
    let short = &first[..16];

    for args in [vec!["runs", "show", short], vec!["logs", short]] {
        let over_api = remote(&rota, &server, &args);
        assert_code(&over_api, 0);
        let on_store = rota.run(&args);
        assert_eq!(
            stdout(&over_api),
            stdout(&on_store),
            "`rota {args:?}` differs"
        );
    }
    // The run has ended: a cancel by prefix reaches it and is refused as locally.
    assert_code(&remote(&rota, &server, &["cancel", short]), 1);

    // A prefix both runs share names neither.
    let shared: String = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let ambiguous = remote(&rota, &server, &["runs", "show", &shared]);
    assert_code(&ambiguous, 2);
    for text in ["matches several runs", first, second] {
        assert_stderr_has(&ambiguous, text);
    }
    // A prefix no run has is the server's 404.
    let unknown = remote(&rota, &server, &["logs", "zzzz"]);
    assert_code(&unknown, 2);
    assert_stderr_has(&unknown, "not found");
}
