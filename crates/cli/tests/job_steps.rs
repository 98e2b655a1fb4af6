//! `job:` steps: a run of another job as a step, its outputs, its failure, its cancel with
//! the parent (Ctrl-C, and `rota cancel` of a server's run), cycles refused at load time and
//! bounded at run time, and the links between the runs in their JSON.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::util::{
    Rota, assert_code, example, finish, json, read_pid, signal, stderr, step, wait_gone, wait_until,
};

/// `rota runs show ID --output json`.
fn show(rota: &Rota, id: &str) -> Value {
    rota.json_ok(&["runs", "show", id])
}

/// A child job whose step `slow` runs until stopped, leaving a background grandchild; the
/// pids go to `slow.pid` and `slow.bg`.
const SLOW_CHILD: &str = r#"id: slow-child
steps:
  - id: slow
    sh: |
      sleep 300 &
      echo $! > slow.bg
      echo $$ > slow.pid
      exec sleep 300
"#;

/// A parent calling [`SLOW_CHILD`].
const SLOW_PARENT: &str = r#"id: slow-parent
steps:
  - id: call
    job: { id: slow-child }
"#;

#[test]
fn the_example_parent_reads_its_childs_outputs_and_the_runs_link_both_ways() {
    let rota = Rota::new();
    let put = rota.run([
        "jobs",
        "put",
        &example("job-greet.yaml").display().to_string(),
    ]);
    assert_code(&put, 0);
    let parent_file = example("job-call.yaml").display().to_string();
    let (run, output) = rota.run_json(&["run", "-n", "default", &parent_file, "-p", "who=ops"]);
    assert_code(&output, 0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let call = step(&run, "call");
    assert_eq!(call["outputs"]["greet.word"], "hello-ops", "{run:#}");
    assert_eq!(
        step(&run, "report")["outputs"]["said"],
        "hello-ops",
        "{run:#}"
    );

    let child_id = call["child_run"]
        .as_str()
        .expect("the step names its child run");
    let child = show(&rota, child_id);
    assert_eq!(child["job"], "greet");
    assert_eq!(child["status"], "succeeded");
    assert_eq!(child["params"]["name"], "ops");
    assert_eq!(child["parent"]["run"], run["id"], "{child:#}");
    assert_eq!(child["parent"]["step"], "call", "{child:#}");
    // `runs show` says the same, and its table names both links.
    let shown = show(&rota, run["id"].as_str().unwrap_or_default());
    assert_eq!(step(&shown, "call")["child_run"], child_id);
    let table = rota.run(["runs", "show", child_id]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains(&format!(
            "parent     run {}",
            run["id"].as_str().unwrap_or_default()
        )),
        "{}",
        String::from_utf8_lossy(&table.stdout)
    );
}

#[test]
fn a_failing_child_fails_the_step_with_its_run_and_status() {
    let rota = Rota::new();
    rota.write(
        "child.yaml",
        "id: fails-child\nsteps:\n  - id: boom\n    sh: exit 3\n",
    );
    rota.write("parent.yaml", "id: fails-parent\nsteps:\n  - id: call\n    job: { id: fails-child }\n  - id: after\n    needs: [call]\n    sh: touch after.ran\n");
    assert_code(&rota.run(["jobs", "put", "child.yaml"]), 0);
    let (run, output) = rota.run_json(&["run", "-n", "default", "parent.yaml"]);
    assert_code(&output, 1);
    let call = step(&run, "call");
    assert_eq!(call["status"], "failed", "{run:#}");
    let child_id = call["child_run"].as_str().expect("the child run is named");
    let reason = call["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(child_id) && reason.contains("ended failed"),
        "{reason}"
    );
    assert_eq!(show(&rota, child_id)["status"], "failed");
    assert!(!rota.path("after.ran").exists());
}

#[test]
fn ctrl_c_of_the_parent_cancels_the_child_and_stops_its_processes() {
    let rota = Rota::new();
    rota.write("child.yaml", SLOW_CHILD);
    rota.write("parent.yaml", SLOW_PARENT);
    assert_code(&rota.run(["jobs", "put", "child.yaml"]), 0);
    let child = rota.spawn(["run", "-n", "default", "parent.yaml", "--output", "json"]);
    let bg = read_pid(&rota.path("slow.bg"));
    let pid = read_pid(&rota.path("slow.pid"));
    signal(child.id(), Signal::SIGINT);
    let output = finish(child, "rota run");
    assert_code(&output, 130);
    let run = json(&output);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    let call = step(&run, "call");
    assert_eq!(call["status"], "cancelled", "{run:#}");
    let child_id = call["child_run"].as_str().expect("the child run is named");
    let child_run = show(&rota, child_id);
    assert_eq!(child_run["status"], "cancelled", "{child_run:#}");
    assert_eq!(step(&child_run, "slow")["status"], "cancelled");
    wait_gone(pid, "the child's step");
    wait_gone(bg, "the child's background process");
    rota.assert_no_processes_left();
}

#[test]
fn a_cycle_between_files_is_refused_by_validate_with_its_position_and_path() {
    let rota = Rota::new();
    rota.write(
        "aaa.yaml",
        "id: aaa\nsteps:\n  - id: call-b\n    job: { id: bbb }\n",
    );
    rota.write(
        "bbb.yaml",
        "id: bbb\nsteps:\n  - id: first\n    sh: \"true\"\n  - id: call-a\n    job: { id: aaa }\n",
    );
    rota.write(
        "ccc.yaml",
        "id: ccc\nsteps:\n  - id: call-a\n    job: { id: aaa }\n",
    );
    let output = rota.run(["validate", "aaa.yaml", "bbb.yaml", "ccc.yaml"]);
    assert_code(&output, 2);
    let err = stderr(&output);
    assert!(
        err.contains("aaa.yaml:3:9: job call cycle: aaa → bbb → aaa"),
        "{err}"
    );
    assert!(!err.contains("ccc.yaml"), "{err}");
    // Each file on its own is fine; one file holding both is not.
    assert_code(&rota.run(["validate", "aaa.yaml"]), 0);
    rota.write(
        "both.yaml",
        "jobs:\n  - id: aaa\n    steps:\n      - id: call-b\n        job: { id: bbb }\n  - id: bbb\n    steps:\n      - id: call-a\n        job: { id: aaa }\n",
    );
    let output = rota.run(["validate", "both.yaml"]);
    assert_code(&output, 2);
    assert!(
        stderr(&output).contains("both.yaml:4:13: job call cycle: aaa → bbb → aaa"),
        "{}",
        stderr(&output)
    );
    // Saving a job that closes a cycle with the stored ones is refused too.
    assert_code(&rota.run(["jobs", "put", "aaa.yaml"]), 0);
    let output = rota.run(["jobs", "put", "bbb.yaml"]);
    assert_code(&output, 2);
    assert!(
        stderr(&output).contains("job call cycle: bbb → aaa → bbb"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_cycle_made_after_loading_fails_the_step_at_run_time_and_starts_nothing() {
    let rota = Rota::new();
    rota.write(
        "aaa.yaml",
        "id: aaa\nsteps:\n  - id: call-b\n    job: { id: bbb }\n",
    );
    rota.write(
        "bbb.yaml",
        "id: bbb\nsteps:\n  - id: call-a\n    job: { id: aaa }\n",
    );
    assert_code(&rota.run(["jobs", "put", "aaa.yaml"]), 0);
    // `rota run` saves bbb as it runs it: the cycle is only found when aaa calls bbb again.
    let (run, output) = rota.run_json(&["run", "-n", "default", "bbb.yaml"]);
    assert_code(&output, 1);
    let child_id = step(&run, "call-a")["child_run"]
        .as_str()
        .expect("aaa was started")
        .to_owned();
    let child = show(&rota, &child_id);
    let call = step(&child, "call-b");
    assert_eq!(call["status"], "failed", "{child:#}");
    let reason = call["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("job call cycle at run time: bbb → aaa → bbb"),
        "{reason}"
    );
    assert!(call.get("child_run").is_none(), "{child:#}");
    assert_eq!(rota.runs().len(), 2, "nothing more was started");
}

#[test]
fn a_server_runs_job_steps_and_rota_cancel_of_the_parent_cancels_the_child() {
    let rota = Rota::new();
    rota.write(
        "jobs/greet.yaml",
        &std::fs::read_to_string(example("job-greet.yaml")).unwrap_or_default(),
    );
    rota.write(
        "jobs/call.yaml",
        &std::fs::read_to_string(example("job-call.yaml")).unwrap_or_default(),
    );
    rota.write("jobs/slow-child.yaml", SLOW_CHILD);
    rota.write("jobs/slow-parent.yaml", SLOW_PARENT);
    let server = rota.serve(&rota.path("jobs"));
    let remote = |args: &[&str]| {
        let mut all = vec![
            "--server",
            server.url.as_str(),
            "--token",
            server.admin_token.as_str(),
        ];
        all.extend_from_slice(args);
        rota.run(all)
    };

    let output = remote(&["run", "call-greet", "-p", "who=srv", "--output", "json"]);
    assert_code(&output, 0);
    let run = json(&output);
    let call = step(&run, "call");
    assert_eq!(call["outputs"]["greet.word"], "hello-srv", "{run:#}");
    let child_id = call["child_run"]
        .as_str()
        .expect("the child run is named")
        .to_owned();
    let got = remote(&["runs", "show", &child_id, "--output", "json"]);
    assert_code(&got, 0);
    let child = json(&got);
    assert_eq!(child["parent"]["run"], run["id"], "{child:#}");
    assert_eq!(child["parent"]["step"], "call");
    let api = server.get(&format!("/api/v1/runs/{child_id}"));
    assert!(api.contains("\"parent\""), "{api}");

    let follower = rota.spawn([
        "--server",
        &server.url,
        "--token",
        &server.admin_token,
        "run",
        "slow-parent",
    ]);
    let bg = read_pid(&rota.path("jobs/slow.bg"));
    let pid = read_pid(&rota.path("jobs/slow.pid"));
    let mut parent_id = String::new();
    wait_until("the parent run to be listed", || {
        let listed = remote(&["runs", "--job", "slow-parent", "--output", "json"]);
        parent_id = json(&listed)[0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        !parent_id.is_empty()
    });
    assert_code(&remote(&["cancel", &parent_id]), 0);
    let output = finish(follower, "rota run (remote)");
    assert_code(&output, 130);
    wait_gone(pid, "the child's step");
    wait_gone(bg, "the child's background process");
    let parent = json(&remote(&["runs", "show", &parent_id, "--output", "json"]));
    assert_eq!(parent["status"], "cancelled", "{parent:#}");
    let child_id = step(&parent, "call")["child_run"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut child = Value::Null;
    wait_until("the child run to end", || {
        child = json(&remote(&["runs", "show", &child_id, "--output", "json"]));
        child["status"] != "running"
    });
    assert_eq!(child["status"], "cancelled", "{child:#}");
}

#[test]
fn a_dry_run_starts_the_child_as_a_dry_run_and_shows_its_parameters() {
    let rota = Rota::new();
    rota.write("child.yaml", "id: dry-child\nparams:\n  env: { type: string }\nsteps:\n  - id: touch\n    sh: touch child.ran\n");
    rota.write("parent.yaml", "id: dry-parent\nparams:\n  env: { type: string, default: prod }\nsteps:\n  - id: call\n    job: { id: dry-child, params: { env: \"{{ params.env }}\" } }\n");
    assert_code(&rota.run(["jobs", "put", "child.yaml"]), 0);
    let output = rota.run([
        "run",
        "-n",
        "default",
        "--dry-run",
        "parent.yaml",
        "--output",
        "json",
    ]);
    assert_code(&output, 0);
    let run = json(&output);
    assert!(
        stderr(&output).contains("dry run of job dry-child (env=prod)"),
        "{}",
        stderr(&output)
    );
    let child_id = step(&run, "call")["child_run"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let child = show(&rota, &child_id);
    assert_eq!(child["dry_run"], true, "{child:#}");
    assert_eq!(child["params"]["env"], "prod");
    assert!(
        !rota.path("child.ran").exists(),
        "the child's step only echoed"
    );
}

#[test]
fn a_servers_job_directory_refuses_a_file_that_closes_a_call_cycle() {
    let rota = Rota::new();
    rota.write(
        "jobs/aaa.yaml",
        "id: aaa\nsteps:\n  - id: call-b\n    job: { id: bbb }\n",
    );
    rota.write(
        "jobs/bbb.yaml",
        "id: bbb\nsteps:\n  - id: call-a\n    job: { id: aaa }\n",
    );
    let _server = rota.serve(&rota.path("jobs"));
    let mut problems = String::new();
    wait_until("the cycle to be reported", || {
        let output = rota.run(["jobs"]);
        problems = stderr(&output);
        problems.contains("job call cycle")
    });
    assert!(
        problems.contains("aaa.yaml:3:9: job call cycle: aaa → bbb → aaa"),
        "{problems}"
    );
}
