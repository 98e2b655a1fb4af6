//! The step DAG: ordering by `needs`, parallelism bounded by `concurrency`, `when` rules,
//! and retries. Nothing here depends on speed: order is proven with marker files written
//! by the steps, parallelism with a rendezvous through files.

use serde_json::Value;

use crate::util::{Rota, assert_code, step};

/// A step that marks its start, waits for its partner to start (up to 60 s, then fails),
/// and marks its end. Two of them can only both succeed if they run at the same time.
fn rendezvous_step(me: &str, partner: &str) -> String {
    format!(
        r#"  - id: {me}
    sh: |
      touch {me}.started
      i=0
      while [ ! -e {partner}.started ]; do
        i=$((i+1)); [ $i -gt 600 ] && exit 1
        sleep 0.1
      done
"#
    )
}

#[test]
fn independent_steps_run_in_parallel_up_to_concurrency() {
    let rota = Rota::new();
    let mut job = "id: parallel-job\nconcurrency: 2\nsteps:\n".to_owned();
    job.push_str(&rendezvous_step("left", "right"));
    job.push_str(&rendezvous_step("right", "left"));
    rota.write("parallel.yaml", &job);
    let run = rota.json_ok(&["run", "parallel.yaml"]);
    assert_eq!(step(&run, "left")["status"], "succeeded");
    assert_eq!(step(&run, "right")["status"], "succeeded");
}

/// Steps append `start X` and `end X` to one journal; appends of a few bytes with `>>`
/// are atomic, so the journal is the true order of events.
fn journal_step(id: &str, needs: &[&str]) -> String {
    let needs = if needs.is_empty() {
        String::new()
    } else {
        format!("    needs: [{}]\n", needs.join(", "))
    };
    format!(
        r#"  - id: {id}
{needs}    sh: |
      echo "start {id}" >> journal
      sleep 0.2
      echo "end {id}" >> journal
"#
    )
}

fn journal(rota: &Rota) -> Vec<String> {
    std::fs::read_to_string(rota.path("journal"))
        .expect("journal written by the steps")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn concurrency_one_runs_steps_one_at_a_time() {
    let rota = Rota::new();
    let mut job = "id: serial-job\nconcurrency: 1\nsteps:\n".to_owned();
    for id in ["a", "b", "c"] {
        job.push_str(&journal_step(id, &[]));
    }
    rota.write("serial.yaml", &job);
    let run = rota.json_ok(&["run", "serial.yaml"]);
    assert_eq!(run["status"], "succeeded");
    let lines = journal(&rota);
    assert_eq!(lines.len(), 6, "{lines:?}");
    // No interval overlaps another: every start is directly followed by its own end.
    for pair in lines.chunks(2) {
        let started = pair[0].strip_prefix("start ").expect("a start line");
        assert_eq!(
            pair[1],
            format!("end {started}"),
            "intervals overlap: {lines:?}"
        );
    }
}

#[test]
fn a_step_starts_only_after_all_its_needs_finished() {
    let rota = Rota::new();
    let mut job = "id: order-job\nconcurrency: 4\nsteps:\n".to_owned();
    job.push_str(&journal_step("first", &[]));
    job.push_str(&journal_step("second", &[]));
    job.push_str(&journal_step("join", &["first", "second"]));
    job.push_str(&journal_step("last", &["join"]));
    rota.write("order.yaml", &job);
    rota.json_ok(&["run", "order.yaml"]);
    let lines = journal(&rota);
    let at = |line: &str| {
        lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("{line:?} missing from {lines:?}"))
    };
    assert!(at("end first") < at("start join"), "{lines:?}");
    assert!(at("end second") < at("start join"), "{lines:?}");
    assert!(at("end join") < at("start last"), "{lines:?}");
}

#[test]
fn when_rules_decide_which_steps_run_after_a_failure() {
    let rota = Rota::new();
    rota.write(
        "when.yaml",
        r#"id: when-job
steps:
  - id: broken
    sh: exit 3
  - id: on-success
    needs: [broken]
    sh: touch on-success.ran
  - id: on-failure
    needs: [broken]
    when: failure
    sh: touch on-failure.ran
  - id: always
    needs: [broken]
    when: always
    sh: echo "seen={{ steps.broken.status }}" >> "$ROTA_OUTPUT"
  - id: downstream
    needs: [on-success]
    sh: touch downstream.ran
"#,
    );
    let (run, output) = rota.run_json(&["run", "when.yaml"]);
    assert_code(&output, 1);
    assert_eq!(run["status"], "failed");
    assert_eq!(step(&run, "broken")["status"], "failed");
    assert_eq!(step(&run, "on-success")["status"], "skipped");
    assert_eq!(step(&run, "on-failure")["status"], "succeeded");
    assert_eq!(step(&run, "always")["status"], "succeeded");
    assert_eq!(step(&run, "always")["outputs"]["seen"], "failed");
    assert_eq!(step(&run, "downstream")["status"], "skipped");
    assert!(!rota.path("on-success.ran").exists());
    assert!(rota.path("on-failure.ran").exists());
    assert!(!rota.path("downstream.ran").exists());
}

#[test]
fn when_failure_step_is_skipped_after_success() {
    let rota = Rota::new();
    rota.write(
        "ok.yaml",
        "id: ok-job\nsteps:\n  - id: fine\n    sh: \"true\"\n  - id: rescue\n    needs: [fine]\n    when: failure\n    sh: touch rescue.ran\n",
    );
    let run = rota.json_ok(&["run", "ok.yaml"]);
    assert_eq!(step(&run, "rescue")["status"], "skipped");
    assert!(!rota.path("rescue.ran").exists());
}

/// A step that fails until it has been tried `succeed_on` times, counting in a file.
fn flaky_job(retry: &str, succeed_on: u32) -> String {
    format!(
        r#"id: flaky-job
steps:
  - id: flaky
    retry: {retry}
    sh: |
      n=$(cat count 2>/dev/null || echo 0)
      n=$((n+1))
      echo $n > count
      echo "attempt=$ROTA_ATTEMPT" >> "$ROTA_OUTPUT"
      [ $n -ge {succeed_on} ]
"#
    )
}

/// Runs a [`flaky_job`] with `rota run --output json`, checks its exit code, and returns
/// the run's JSON.
fn run_flaky(rota: &Rota, retry: &str, succeed_on: u32, code: i32) -> Value {
    rota.write("flaky.yaml", &flaky_job(retry, succeed_on));
    let (run, output) = rota.run_json(&["run", "flaky.yaml"]);
    assert_code(&output, code);
    run
}

/// How many times the [`flaky_job`] step ran, as its count file says.
fn tries_counted(rota: &Rota) -> String {
    std::fs::read_to_string(rota.path("count"))
        .expect("count")
        .trim()
        .to_owned()
}

#[test]
fn retries_until_success_with_constant_backoff() {
    let rota = Rota::new();
    let run = run_flaky(&rota, "{ attempts: 3, initial: 100ms }", 3, 0);
    let flaky = step(&run, "flaky");
    assert_eq!(flaky["status"], "succeeded");
    assert_eq!(flaky["attempts"], 3);
    assert_eq!(flaky["outputs"]["attempt"], "3");
    assert_eq!(tries_counted(&rota), "3");
}

#[test]
fn retries_with_exponential_backoff_give_up_after_the_last_attempt() {
    let rota = Rota::new();
    let run = run_flaky(
        &rota,
        "{ attempts: 3, backoff: exponential, initial: 50ms }",
        10,
        1,
    );
    let flaky = step(&run, "flaky");
    assert_eq!(flaky["status"], "failed");
    assert_eq!(flaky["attempts"], 3);
    assert_eq!(flaky["exit_code"], 1);
    assert_eq!(tries_counted(&rota), "3");
}

#[test]
fn exponential_backoff_retry_can_succeed() {
    let rota = Rota::new();
    let run = run_flaky(
        &rota,
        "{ attempts: 4, backoff: exponential, initial: 50ms, max: 200ms }",
        2,
        0,
    );
    assert_eq!(step(&run, "flaky")["attempts"], 2);
}
