//! Crashes: a `rota run` killed with SIGKILL leaves no step processes behind (its guardian
//! stops them), and the next rota command records the run as abandoned with a reason.

use nix::sys::signal::Signal;

use crate::util::{Rota, assert_code, finish, read_pid, signal, stderr, wait_gone};

#[test]
fn sigkilled_runner_leaves_no_step_processes_and_the_run_is_abandoned() {
    let rota = Rota::new();
    rota.write(
        "crash.yaml",
        r#"id: crash-job
steps:
  - id: slow
    sh: |
      sleep 300 &
      echo $! > slow.bg
      echo $$ > slow.pid
      exec sleep 300
"#,
    );
    let child = rota.spawn(["run", "crash.yaml"]);
    let run_id = rota.wait_for_running_run();
    let step_pid = read_pid(&rota.path("slow.pid"));
    let background_pid = read_pid(&rota.path("slow.bg"));

    signal(child.id(), Signal::SIGKILL);
    let output = finish(child, "the killed rota run");
    assert_eq!(output.status.code(), None, "rota was killed by a signal");

    wait_gone(step_pid, "the step's sleep");
    wait_gone(background_pid, "the step's background sleep");
    // The guardian itself exits once its work is done.
    rota.assert_no_processes_left();

    let listing = rota.run(["runs", "--output", "json"]);
    assert_code(&listing, 0);
    assert!(
        stderr(&listing).contains(&run_id),
        "the abandonment is reported: {}",
        stderr(&listing)
    );
    let runs: serde_json::Value = serde_json::from_slice(&listing.stdout).expect("JSON");
    let run = &runs[0];
    assert_eq!(run["id"], run_id.as_str());
    assert_eq!(run["status"], "abandoned", "{run:#}");
    assert!(
        run["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{run:#}"
    );

    // The verdict is stored, not recomputed: it stays the same and filters find it.
    let filtered = rota.json_ok(&["runs", "--status", "abandoned"]);
    assert_eq!(filtered[0]["id"], run_id.as_str());
    // Its logs stay readable, and following them ends at once: the run is over.
    let logs = rota.run(["logs", "--follow", &run_id]);
    assert_code(&logs, 0);
    let (running, _) = rota.run_json(&["runs", "--status", "running"]);
    assert_eq!(running.as_array().map(Vec::len), Some(0), "{running:#}");
}
