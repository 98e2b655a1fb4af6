//! Stopping steps: step and run timeouts, Ctrl-C, `rota cancel` from another process.
//! Every test checks that the step's processes, including a background grandchild, are gone
//! afterwards (polled through /proc with a generous bound).

use std::path::Path;
use std::process::{Child, Output};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::util::{
    Rota, assert_code, assert_reason_has, finish, json, read_pid, signal, stdout, step, wait_gone,
    wait_until,
};

/// A long step that leaves a background grandchild: its pid goes to `<id>.bg`, the shell's
/// own pid (which then becomes a `sleep`) to `<id>.pid`.
fn long_step(id: &str, extra: &str) -> String {
    format!(
        r#"  - id: {id}
{extra}    sh: |
      sleep 300 &
      echo $! > {id}.bg
      echo $$ > {id}.pid
      exec sleep 300
"#
    )
}

/// Asserts that both processes of a [`long_step`] are gone.
fn assert_step_processes_gone(rota: &Rota, id: &str) {
    for suffix in ["pid", "bg"] {
        let path = rota.path(&format!("{id}.{suffix}"));
        let pid = read_pid(&path);
        wait_gone(pid, &format!("process of step {id} ({suffix})"));
    }
    // Nor is anything else of this installation left: no guardian, no stray child.
    rota.assert_no_processes_left();
}

/// Writes job `id`, one [`long_step`] `slow`, to `file`.
fn write_slow_job(rota: &Rota, id: &str, file: &str) {
    rota.write(
        file,
        &format!("id: {id}\nsteps:\n{}", long_step("slow", "")),
    );
}

/// Starts `rota run` of a [`write_slow_job`] job and waits until step `slow` runs; the
/// child and the run's id.
fn spawn_slow_run(rota: &Rota, id: &str, file: &str) -> (Child, String) {
    write_slow_job(rota, id, file);
    let child = rota.spawn(["run", file]);
    let run_id = rota.wait_for_running_run();
    read_pid(&rota.path("slow.pid"));
    (child, run_id)
}

/// The JSON run `rota run --output json` printed when cancelled: exit code 130, the run and
/// its step `slow` cancelled.
fn cancelled_run(output: &Output) -> Value {
    assert_code(output, 130);
    let run = json(output);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_eq!(step(&run, "slow")["status"], "cancelled", "{run:#}");
    run
}

/// Step `slow`'s processes are gone and the (only) run is recorded cancelled.
fn assert_slow_cancelled(rota: &Rota) {
    assert_step_processes_gone(rota, "slow");
    assert_eq!(rota.runs()[0]["status"], "cancelled");
}

#[test]
fn step_timeout_stops_the_whole_process_group() {
    let rota = Rota::new();
    let job = format!(
        "id: timeout-job\nsteps:\n{}",
        long_step("slow", "    timeout: 2s\n")
    );
    rota.write("timeout.yaml", &job);
    let (run, output) = rota.run_json(&["run", "timeout.yaml"]);
    assert_code(&output, 1);
    assert_eq!(run["status"], "failed", "{run:#}");
    let slow = step(&run, "slow");
    assert_eq!(slow["status"], "timed_out", "{slow:#}");
    assert_reason_has(slow, "timed out");
    assert_step_processes_gone(&rota, "slow");
}

#[test]
fn step_ignoring_sigterm_is_killed_after_the_grace_period() {
    let rota = Rota::new();
    rota.write(
        "stubborn.yaml",
        r#"id: stubborn-job
steps:
  - id: stubborn
    timeout: 2s
    sh: |
      trap '' TERM
      sleep 300 &
      echo $! > stubborn.bg
      echo $$ > stubborn.pid
      while true; do sleep 1; done
"#,
    );
    let (run, output) = rota.run_json(&["run", "stubborn.yaml"]);
    assert_code(&output, 1);
    assert_eq!(step(&run, "stubborn")["status"], "timed_out", "{run:#}");
    assert_step_processes_gone(&rota, "stubborn");
}

#[test]
fn run_timeout_stops_running_steps_cancels_the_rest_and_runs_cleanup() {
    let rota = Rota::new();
    let mut job = "id: run-timeout-job\npolicy:\n  timeout: 2s\nsteps:\n".to_owned();
    job.push_str(&long_step("slow", ""));
    job.push_str("  - id: next\n    needs: [slow]\n    sh: touch next.ran\n");
    job.push_str(
        "  - id: cleanup\n    needs: [slow]\n    when: always\n    sh: touch cleanup.ran\n",
    );
    rota.write("run-timeout.yaml", &job);
    let (run, output) = rota.run_json(&["run", "run-timeout.yaml"]);
    assert_code(&output, 1);
    assert_eq!(run["status"], "timed_out", "{run:#}");
    assert_reason_has(&run, "timeout");
    assert_eq!(step(&run, "slow")["status"], "timed_out");
    assert_eq!(step(&run, "next")["status"], "cancelled", "{run:#}");
    assert!(!rota.path("next.ran").exists());
    // `when: always` is the run's cleanup: it runs after the stop, and the run stays
    // timed out.
    assert_eq!(step(&run, "cleanup")["status"], "succeeded", "{run:#}");
    assert!(rota.path("cleanup.ran").exists());
    assert_step_processes_gone(&rota, "slow");
    let runs = rota.runs();
    assert_eq!(runs[0]["status"], "timed_out");
}

#[test]
fn a_second_ctrl_c_stops_the_cleanup_steps_too() {
    let rota = Rota::new();
    let mut job = format!("id: cleanup-job\nsteps:\n{}", long_step("slow", ""));
    job.push_str(&long_step(
        "cleanup",
        "    needs: [slow]\n    when: always\n",
    ));
    rota.write("cleanup.yaml", &job);
    let child = rota.spawn(["run", "cleanup.yaml", "--output", "json"]);
    read_pid(&rota.path("slow.pid"));
    signal(child.id(), Signal::SIGINT);
    // The first Ctrl-C stops `slow`; the cleanup step starts after it.
    read_pid(&rota.path("cleanup.pid"));
    for suffix in ["pid", "bg"] {
        let pid = read_pid(&rota.path(&format!("slow.{suffix}")));
        wait_gone(pid, &format!("process of step slow ({suffix})"));
    }
    signal(child.id(), Signal::SIGINT);
    let output = finish(child, "rota run");
    let run = cancelled_run(&output);
    assert_eq!(step(&run, "cleanup")["status"], "cancelled", "{run:#}");
    assert_step_processes_gone(&rota, "slow");
    assert_step_processes_gone(&rota, "cleanup");
}

#[test]
fn ctrl_c_cancels_the_run_with_exit_code_130() {
    let rota = Rota::new();
    write_slow_job(&rota, "interrupt-job", "interrupt.yaml");
    let child = rota.spawn(["run", "interrupt.yaml", "--output", "json"]);
    // Once the step wrote its pid, rota's signal handlers are installed and the step runs.
    read_pid(&rota.path("slow.bg"));
    read_pid(&rota.path("slow.pid"));
    signal(child.id(), Signal::SIGINT);
    let output = finish(child, "rota run");
    let run = cancelled_run(&output);
    assert_step_processes_gone(&rota, "slow");
    let runs = rota.runs();
    assert_eq!(runs[0]["id"], run["id"]);
    assert_eq!(runs[0]["status"], "cancelled");
}

#[test]
fn rota_cancel_from_another_process_stops_the_run() {
    let rota = Rota::new();
    let mut job = format!("id: cancel-job\nsteps:\n{}", long_step("slow", ""));
    job.push_str("  - id: later\n    needs: [slow]\n    sh: touch later.ran\n");
    rota.write("cancel.yaml", &job);
    let child = rota.spawn(["run", "cancel.yaml", "--output", "json"]);
    let run_id = rota.wait_for_running_run();
    read_pid(&rota.path("slow.pid"));

    let (reply, cancel) = rota.run_json(&["cancel", &run_id]);
    assert_code(&cancel, 0);
    assert_eq!(reply["id"], run_id.as_str());

    let output = finish(child, "rota run");
    let run = cancelled_run(&output);
    assert_eq!(run["id"], run_id.as_str());
    assert_ne!(step(&run, "later")["status"], "succeeded");
    assert!(!rota.path("later.ran").exists());
    assert_step_processes_gone(&rota, "slow");

    let shown = rota.json_ok(&["runs", "show", &run_id]);
    assert_eq!(shown["status"], "cancelled");

    // A finished run cannot be cancelled again, and an unknown one is a usage error.
    let again = rota.run(["cancel", &run_id]);
    assert_code(&again, 1);
    let unknown = rota.run(["cancel", "no-such-run"]);
    assert_code(&unknown, 2);
}

#[test]
fn cancel_by_unique_prefix_works() {
    let rota = Rota::new();
    let (child, run_id) = spawn_slow_run(&rota, "prefix-job", "prefix.yaml");
    let prefix = &run_id[..12];
    let cancel = rota.run(["cancel", prefix]);
    assert_code(&cancel, 0);
    let output = finish(child, "rota run");
    assert_code(&output, 130);
    assert_slow_cancelled(&rota);
}

#[test]
fn background_process_left_by_a_finished_step_is_killed_and_reaped() {
    let rota = Rota::new();
    rota.write(
        "leftover.yaml",
        r#"id: leftover-job
steps:
  - id: leaves
    sh: |
      sleep 300 &
      echo $! > leaves.bg
  - id: waits
    needs: [leaves]
    sh: |
      i=0
      while [ ! -e go ]; do
        i=$((i+1)); [ $i -gt 600 ] && exit 1
        sleep 0.1
      done
"#,
    );
    let child = rota.spawn(["run", "leftover.yaml", "--output", "json"]);
    let orphan = read_pid(&rota.path("leaves.bg"));
    // While `rota run` still runs (the second step waits for `go`), the leftover is not only
    // killed but reaped: not even a zombie entry remains.
    wait_until(
        &format!("leftover process {orphan} to be killed and reaped"),
        || !Path::new(&format!("/proc/{orphan}")).exists(),
    );
    // The helper used below sees this installation's processes: rota, its guardian, and the
    // second step once it has started.
    wait_until("rota, its guardian and the second step to be seen", || {
        rota.processes().len() >= 3
    });
    rota.write("go", "");
    let output = finish(child, "rota run");
    assert_code(&output, 0);
    let run = json(&output);
    assert_eq!(step(&run, "leaves")["status"], "succeeded", "{run:#}");
    rota.assert_no_processes_left();
}

#[test]
fn sigterm_to_rota_run_cancels_like_ctrl_c() {
    let rota = Rota::new();
    write_slow_job(&rota, "term-job", "term.yaml");
    let child = rota.spawn(["run", "term.yaml"]);
    read_pid(&rota.path("slow.pid"));
    read_pid(&rota.path("slow.bg"));
    signal(child.id(), Signal::SIGTERM);
    let output = finish(child, "rota run");
    assert_code(&output, 130);
    assert!(
        stdout(&output).contains("cancelled"),
        "human summary: {}",
        stdout(&output)
    );
    assert_slow_cancelled(&rota);
}

#[test]
fn ctrl_c_while_waiting_to_retry_cancels_the_run() {
    let rota = Rota::new();
    rota.write(
        "retry.yaml",
        r#"id: retry-wait-job
steps:
  - id: flaky
    retry: { attempts: 5, initial: 1h }
    sh: |
      echo $ROTA_ATTEMPT >> attempts
      exit 1
"#,
    );
    let child = rota.spawn(["run", "retry.yaml", "--output", "json"]);
    // Wait for the first attempt to be recorded as finished: the step then sleeps an hour.
    wait_until("the first attempt to be logged as failed", || {
        let logs = rota.run(["runs", "--output", "json", "--status", "running"]);
        let Ok(runs) = serde_json::from_slice::<serde_json::Value>(&logs.stdout) else {
            return false;
        };
        let Some(run_id) = runs[0]["id"].as_str() else {
            return false;
        };
        stdout(&rota.run(["logs", run_id])).contains("retrying in")
    });
    signal(child.id(), Signal::SIGINT);
    let output = finish(child, "rota run");
    assert_code(&output, 130);
    let run = json(&output);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_eq!(step(&run, "flaky")["status"], "cancelled", "{run:#}");
    assert_eq!(step(&run, "flaky")["attempts"], 1, "{run:#}");
    let attempts = std::fs::read_to_string(rota.path("attempts")).expect("attempts file");
    assert_eq!(attempts, "1\n");
}

#[test]
fn logs_follow_ends_when_the_run_is_cancelled() {
    let rota = Rota::new();
    let (runner, run_id) = spawn_slow_run(&rota, "follow-cancel-job", "follow-cancel.yaml");
    let follower = rota.spawn(["logs", "--follow", &run_id]);
    assert_code(&rota.run(["cancel", &run_id]), 0);
    assert_code(&finish(runner, "rota run"), 130);
    let follower = finish(follower, "rota logs --follow");
    assert_code(&follower, 0);
    assert_step_processes_gone(&rota, "slow");
}
