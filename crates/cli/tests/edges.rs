//! The rough edges of a first run: output formats, flags that mean one thing everywhere,
//! error messages that say what to do, and what a server shows of a run.

use std::process::{Output, Stdio};

use serde_json::Value;

use crate::util::{Rota, Server, assert_code, assert_stderr_has, stderr, stdout, step, wait_until};

use crate::remote::{remote, remote_json};

/// Each stdout line parsed as one JSON value.
fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"))
        })
        .collect()
}

/// A free loopback port (bound, read back, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Sets secret `name` in `namespace` through `rota secrets set` (value on stdin).
fn set_secret(rota: &Rota, namespace: &str, name: &str, value: &str) {
    let child = rota.spawn_with_stdin(
        ["secrets", "set", name, "-n", namespace],
        &format!("{value}\n"),
    );
    let output = child.wait_with_output().expect("rota secrets set");
    assert_code(&output, 0);
}

#[test]
fn logs_with_output_json_print_one_json_object_per_line() {
    let rota = Rota::new();
    let (run, output) = rota.run_json(&["run", "-c", "echo one; echo two >&2"]);
    assert_code(&output, 0);
    let id = run["id"].as_str().expect("run id");
    let output = rota.run(["logs", id, "--output", "json"]);
    assert_code(&output, 0);
    let lines = json_lines(&output);
    let texts: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["stream"] != "system")
        .map(|l| {
            (
                l["stream"].as_str().unwrap_or_default(),
                l["text"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(texts.contains(&("stdout", "one")), "{lines:?}");
    assert!(texts.contains(&("stderr", "two")), "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["seq"].is_i64() && l["ts"].is_string())
    );
}

#[test]
fn a_newline_in_an_output_stays_inside_its_table_cell() {
    let rota = Rota::new();
    let file = rota.write(
        "multi.yaml",
        "id: multi\nsteps:\n  - id: a\n    sh: printf 'notes<<EOF\\nline 1\\nline 2\\nEOF\\n' >> \"$ROTA_OUTPUT\"\n",
    );
    let (run, output) = rota.run_json(&["run", file.to_str().expect("utf-8 path")]);
    assert_code(&output, 0);
    assert_eq!(step(&run, "a")["outputs"]["notes"], "line 1\nline 2");
    let id = run["id"].as_str().expect("run id");
    let shown = rota.run(["runs", "show", id]);
    assert_code(&shown, 0);
    let text = stdout(&shown);
    let row = text
        .lines()
        .find(|l| l.starts_with("a "))
        .unwrap_or_else(|| panic!("no row for step a:\n{text}"));
    assert!(row.contains(r"notes=line 1\nline 2"), "{text}");
    assert!(
        !text.lines().any(|l| l.trim() == "line 2"),
        "the output's second line broke the table:\n{text}"
    );
}

#[test]
fn a_retried_step_shows_its_whole_time_and_its_attempts() {
    let rota = Rota::new();
    // Fails twice, then succeeds: the waits between attempts are 500 ms and 1 s.
    let file = rota.write(
        "flaky.yaml",
        "id: flaky\nsteps:\n  - id: a\n    sh: n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]\n    retry: { attempts: 3, backoff: exponential, initial: 500ms }\n",
    );
    let run = rota.json_ok(&["run", file.to_str().expect("utf-8 path")]);
    let a = step(&run, "a");
    assert_eq!(a["attempts"], 3, "{run:#}");
    let id = run["id"].as_str().expect("run id");
    let shown = rota.run(["runs", "show", id]);
    let text = stdout(&shown);
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("a "))
        .unwrap_or_else(|| panic!("no row for step a:\n{text}"))
        .split_whitespace()
        .collect();
    // STEP STATUS EXIT ATTEMPTS DURATION
    assert_eq!(row[3], "3", "{text}");
    let seconds: f64 = row[4]
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("duration {:?} in:\n{text}", row[4]));
    // The backoff alone waits 1.5 s between the first start and the last end.
    assert!(
        seconds >= 1.5,
        "the step's whole time, not its last attempt's: {text}"
    );
    let (shown, _) = rota.run_json(&["runs", "show", id]);
    let a = step(&shown, "a");
    assert_ne!(a["first_started_at"], a["started_at"], "{shown:#}");
}

#[test]
fn schedule_next_takes_n_as_the_namespace_and_count_as_count() {
    let rota = Rota::new();
    let file = rota.write(
        "yearly.yaml",
        "id: yearly\ntriggers:\n  - cron: \"0 0 1 1 *\"\nsteps:\n  - id: a\n    sh: echo new year\n",
    );
    let saved = rota.run([
        "jobs",
        "put",
        file.to_str().expect("utf-8 path"),
        "-n",
        "team",
    ]);
    assert_code(&saved, 0);
    let (next, output) =
        rota.run_json(&["schedule", "next", "yearly", "-n", "team", "--count", "2"]);
    assert_code(&output, 0);
    assert_eq!(next.as_array().map(Vec::len), Some(2), "{next:#}");
    let (preview, output) =
        rota.run_json(&["schedule", "preview", "--cron", "0 0 * * *", "--count", "3"]);
    assert_code(&output, 0);
    assert_eq!(preview.as_array().map(Vec::len), Some(3), "{preview:#}");
}

#[test]
fn schedule_history_of_an_unknown_job_is_an_error() {
    let rota = Rota::new();
    let output = rota.run(["schedule", "history", "no-such-job"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "no stored job \"no-such-job\"");
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    // A known job without occurrences has an empty history.
    let file = rota.write(
        "quiet.yaml",
        "id: quiet\nsteps:\n  - id: a\n    sh: echo quiet\n",
    );
    assert_code(
        &rota.run(["jobs", "put", file.to_str().expect("utf-8 path")]),
        0,
    );
    let history = rota.json_ok(&["schedule", "history", "quiet"]);
    assert_eq!(history, Value::Array(Vec::new()));
}

#[test]
fn an_ad_hoc_run_says_how_to_reach_a_secret_stored_in_default() {
    let rota = Rota::new();
    set_secret(&rota, "default", "DB_PASS", "s3cret-value");
    let file = rota.write(
        "uses-secret.yaml",
        "id: uses-secret\nsecrets: [DB_PASS]\nsteps:\n  - id: a\n    sh: test -n \"{{ secrets.DB_PASS }}\" && echo has it\n",
    );
    let path = file.to_str().expect("utf-8 path");
    let output = rota.run(["run", path]);
    assert_code(&output, 2);
    let message = stderr(&output);
    for part in [
        "secret DB_PASS is not set in namespace adhoc-",
        "an ad-hoc run's namespace",
        "DB_PASS is set in namespace default",
        "`-n default`",
        "`namespace: default`",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    // Following the advice works.
    let run = rota.json_ok(&["run", path, "-n", "default"]);
    assert_eq!(run["namespace"], "default");
    assert_eq!(run["status"], "succeeded", "{run:#}");
}

#[test]
fn an_error_does_not_repeat_its_cause() {
    let rota = Rota::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let output = rota.run(["serve", "--listen", &addr]);
    assert_code(&output, 2);
    let message = stderr(&output);
    let os_error = "Address already in use";
    assert_eq!(message.matches(os_error).count(), 1, "{message}");
    assert!(message.contains(&addr), "{message}");
}

#[test]
fn example_http_yaml_works_as_its_comment_says() {
    let source = std::fs::read_to_string(crate::util::example("http.yaml")).expect("example");
    let server_command = source
        .lines()
        .find_map(|l| l.trim_start_matches('#').trim().strip_prefix("python3 -c "))
        .expect("the example names the server to start");
    let script = server_command
        .trim()
        .trim_matches('\'')
        .replace("8080", &free_port().to_string());
    let port = script
        .split("\"127.0.0.1\", ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the port in the command")
        .to_owned();
    let mut server = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example's HTTP server");
    wait_until("the example's HTTP server", || {
        std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap_or(0))).is_ok()
    });
    let rota = Rota::new().env("API_TOKEN", "dev-token");
    let base = format!("base=http://127.0.0.1:{port}");
    let (run, output) = rota.run_json(&[
        "run",
        crate::util::example("http.yaml")
            .to_str()
            .expect("utf-8 path"),
        "-p",
        &base,
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert_code(&output, 0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(step(&run, "notify")["status"], "succeeded", "{run:#}");
}

/// A server whose job directory holds a job on a one-second interval, a job that waits for
/// a file, and a job with a retry policy.
fn server_with_jobs(rota: &Rota) -> Server {
    rota.write(
        "jobs/ticks.yaml",
        "id: ticks\ntriggers:\n  - interval: 1s\nsteps:\n  - id: a\n    sh: echo tick\n",
    );
    let release = rota.path("release");
    rota.write(
        "jobs/waits.yaml",
        &format!(
            "id: waits\nsteps:\n  - id: wait\n    sh: while [ ! -e {:?} ]; do sleep 0.1; done\n",
            release.display().to_string()
        ),
    );
    rota.write(
        "jobs/greets.yaml",
        "id: greets\nparams:\n  who: { type: string, default: world }\nsteps:\n  - id: hello\n    sh: echo \"hello {{ params.who }}\"\n    timeout: 90s\n    retry: { attempts: 2, initial: 1s }\n",
    );
    rota.serve(&rota.path("jobs"))
}

#[test]
fn through_a_server_runs_say_their_trigger_and_cancel_reason_once() {
    let rota = Rota::new();
    let server = server_with_jobs(&rota);
    // An interval trigger is called `interval`, as in job files.
    let mut runs = Value::Null;
    wait_until("a run of the interval trigger", || {
        runs = remote_json(&rota, &server, &["runs", "--job", "ticks"]);
        runs.as_array().is_some_and(|r| !r.is_empty())
    });
    assert_eq!(runs[0]["trigger"], "interval", "{runs:#}");
    let table = stdout(&remote(&rota, &server, &["runs", "--job", "ticks"]));
    assert!(table.contains("interval"), "{table}");
    assert!(!table.contains("every"), "{table}");

    // A cancel through the API names who asked, once.
    let run = remote_json(&rota, &server, &["run", "waits", "--detach"]);
    let id = run["id"].as_str().expect("run id").to_owned();
    wait_until("the run to be running", || {
        remote_json(&rota, &server, &["runs", "show", &id])["status"] == "running"
    });
    assert_code(&remote(&rota, &server, &["cancel", &id]), 0);
    let mut shown = Value::Null;
    wait_until("the run to end", || {
        shown = remote_json(&rota, &server, &["runs", "show", &id]);
        shown["status"] == "cancelled"
    });
    let reason = shown["reason"].as_str().expect("a reason");
    assert_eq!(reason.matches("cancelled by").count(), 1, "{reason}");
    assert!(reason.contains("token:"), "{reason}");
}

#[test]
fn through_a_server_logs_json_durations_and_unknown_jobs() {
    let rota = Rota::new();
    let server = server_with_jobs(&rota);
    // Durations on the wire are texts.
    let job: Value =
        serde_json::from_str(&server.get("/api/v1/namespaces/default/jobs/greets")).expect("job");
    let greet = &job["definition"]["steps"][0];
    assert_eq!(greet["timeout"], "1m30s", "{job:#}");
    assert_eq!(greet["retry"]["initial"], "1s", "{job:#}");
    // The CLI still reads the definition (it coerces parameters with it), and shows what
    // each step ran, rendered.
    let output = remote(&rota, &server, &["run", "greets", "-p", "who=rota"]);
    assert_code(&output, 0);
    assert!(
        stdout(&output).contains("hello | ▶ echo \"hello rota\""),
        "{}",
        stdout(&output)
    );
    let run = remote_json(&rota, &server, &["runs", "--job", "greets"]);
    let id = run[0]["id"].as_str().expect("run id").to_owned();
    // `logs --output json` over the API: one JSON object per line.
    let output = remote(&rota, &server, &["logs", &id, "--output", "json"]);
    assert_code(&output, 0);
    let lines = json_lines(&output);
    assert!(
        lines
            .iter()
            .any(|l| l["text"] == "hello rota" && l["step_id"] == "hello"),
        "{lines:?}"
    );
    // An unknown job's history is a 404, exit 2.
    let output = remote(&rota, &server, &["schedule", "history", "no-such-job"]);
    assert_code(&output, 2);
    assert!(stdout(&output).is_empty());
}

#[test]
fn plans_count_the_approvals_they_got_and_show_drift() {
    let rota = Rota::new();
    // Expires before anyone decides: it got no approvals, whatever it still needs.
    let gated = rota.write(
        "gated.yaml",
        "id: gated\napproval: { approvers: [alice, bob], quorum: 2, expires: 1s }\nsteps:\n  - id: a\n    sh: echo deploy\n",
    );
    let plan = rota.json_ok(&["plan", gated.to_str().expect("utf-8 path")]);
    let gated_id = plan["id"].as_str().expect("plan id").to_owned();
    wait_until("the plan to expire", || {
        let (plans, _) = rota.run_json(&["plans", "--status", "expired"]);
        plans.as_array().is_some_and(|p| !p.is_empty())
    });
    let listed = stdout(&rota.run(["plans"]));
    let row = listed
        .lines()
        .find(|l| l.starts_with(&gated_id))
        .unwrap_or_else(|| panic!("no row for {gated_id}:\n{listed}"));
    assert!(row.contains("expired"), "{listed}");
    assert!(row.contains("0/2"), "{listed}");

    // Approved at once (no rules), then its job changes: apply would refuse it, and the
    // listing says so.
    let free = rota.write(
        "free.yaml",
        "id: free\nnamespace: team\nsteps:\n  - id: a\n    sh: echo one\n",
    );
    let free_path = free.to_str().expect("utf-8 path");
    let plan = rota.json_ok(&["plan", free_path]);
    assert_eq!(plan["status"], "approved");
    assert_eq!(plan["drift"], Value::Array(Vec::new()));
    let free_id = plan["id"].as_str().expect("plan id").to_owned();
    rota.write(
        "free.yaml",
        "id: free\nnamespace: team\nsteps:\n  - id: a\n    sh: echo two\n",
    );
    assert_code(&rota.run(["jobs", "put", free_path, "-n", "team"]), 0);
    let listed = stdout(&rota.run(["plans"]));
    let row = listed
        .lines()
        .find(|l| l.starts_with(&free_id))
        .unwrap_or_else(|| panic!("no row for {free_id}:\n{listed}"));
    assert!(row.contains("drifted (approved)"), "{listed}");
    let shown = rota.json_ok(&["plans", "show", &free_id]);
    assert_eq!(shown["status"], "approved");
    assert!(
        shown["drift"].as_array().is_some_and(|d| !d.is_empty()),
        "{shown:#}"
    );
    let text = stdout(&rota.run(["plans", "show", &free_id]));
    assert!(text.contains("drift "), "{text}");
}
