//! `rollback:` and `finally:`: when a later step fails, the rollbacks of the steps that
//! succeeded run, the last-ended first; `finally` steps run at the end whatever happened.

use crate::util::{Rota, assert_code, assert_reason_has, assert_stderr_has, example, step};

/// The example rollback deploy, copied into the working directory (its steps write to
/// `journal.txt` beside the job file).
fn rollback_example(rota: &Rota) -> String {
    let source = std::fs::read_to_string(example("rollback.yaml")).expect("the example");
    let file = rota.write("rollback.yaml", &source);
    file.to_str().expect("utf-8 path").to_owned()
}

fn journal(rota: &Rota) -> Vec<String> {
    std::fs::read_to_string(rota.path("journal.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_failed_post_check_rolls_back_the_succeeded_steps_last_first_then_finally_runs() {
    let rota = Rota::new();
    let file = rollback_example(&rota);
    let (run, output) = rota.run_json(&["run", &file]);
    assert_code(&output, 1);
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(
        journal(&rota),
        [
            "drain",
            "deploy",
            "check-failed",
            "undeploy 2.0.1",
            "restore-traffic",
            "tidy"
        ]
    );
    assert_eq!(step(&run, "undeploy")["status"], "succeeded");
    assert_eq!(step(&run, "restore-traffic")["status"], "succeeded");
    assert_eq!(step(&run, "tidy")["status"], "succeeded");
    // The log says what the rollback undoes.
    let id = run["id"].as_str().expect("run id");
    let logs = rota.run(["logs", id]);
    assert_code(&logs, 0);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        text.contains("rollback of `deploy`, which succeeded before the run failed"),
        "{text}"
    );
}

#[test]
fn a_passing_run_skips_its_rollbacks_and_still_runs_finally() {
    let rota = Rota::new();
    let file = rollback_example(&rota);
    let (run, output) = rota.run_json(&["run", &file, "-p", "healthy=true"]);
    assert_code(&output, 0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(journal(&rota), ["drain", "deploy", "tidy"]);
    assert_reason_has(step(&run, "undeploy"), "nothing to roll back");
    assert_eq!(step(&run, "undeploy")["status"], "skipped");
}

#[test]
fn only_the_steps_that_succeeded_are_rolled_back() {
    let rota = Rota::new();
    let file = rota.write(
        "partial.yaml",
        "id: partial
steps:
  - id: one
    sh: echo one >> journal.txt
    rollback: undo-one
  - id: two
    needs: [one]
    sh: exit 4
    rollback: undo-two
  - id: undo-one
    sh: echo undo-one >> journal.txt
  - id: undo-two
    sh: echo undo-two >> journal.txt
",
    );
    let (run, output) = rota.run_json(&["run", file.to_str().expect("utf-8")]);
    assert_code(&output, 1);
    assert_eq!(journal(&rota), ["one", "undo-one"]);
    assert_reason_has(step(&run, "undo-two"), "did not succeed");
}

#[test]
fn a_failing_check_step_says_which_rollback_will_run() {
    // A `check` step against an address nothing listens on fails; its reason names the
    // rollback, as it names its absence in a job without one.
    let rota = Rota::new();
    let job = |rollback: &str| {
        format!(
            "id: checked
steps:
  - id: deploy
    sh: 'true'
    {rollback}
  - id: verify
    needs: [deploy]
    check:
      prometheus: http://127.0.0.1:9
      query: up
      above: 0
  - id: undeploy
    sh: 'true'
"
        )
    };
    let with = rota.write("with.yaml", &job("rollback: undeploy"));
    let (run, output) = rota.run_json(&["run", with.to_str().expect("utf-8")]);
    assert_code(&output, 1);
    assert_reason_has(step(&run, "verify"), "rollback to run: undeploy");
    assert_eq!(step(&run, "undeploy")["status"], "succeeded");

    let without = rota.write("without.yaml", &job(""));
    let (run, output) = rota.run_json(&["run", without.to_str().expect("utf-8")]);
    assert_code(&output, 1);
    assert_reason_has(step(&run, "verify"), "no rollback will run");
}

#[test]
fn rollback_mistakes_are_reported_where_they_are_written() {
    let rota = Rota::new();
    let file = rota.write(
        "bad.yaml",
        "id: bad
steps:
  - id: one
    sh: 'true'
    rollback: undo-on
  - id: two
    sh: 'true'
    rollback: two
  - id: three
    needs: [undo-one]
    sh: 'true'
  - id: undo-one
    sh: 'true'
  - id: last
    finally: true
    needs: [one]
    sh: 'true'
",
    );
    let output = rota.run(["validate", file.to_str().expect("utf-8")]);
    assert_code(&output, 2);
    assert_stderr_has(
        &output,
        "bad.yaml:5:15: step `one` names unknown rollback step `undo-on` (did you mean `undo-one`?)",
    );
    assert_stderr_has(
        &output,
        "bad.yaml:8:15: `rollback` of step `two`: a step cannot be its own rollback",
    );
    assert_stderr_has(&output, "`finally` step runs after every other step");
}

#[test]
fn a_markdown_runbook_declares_rollback_finally_and_confirm_in_its_info_strings() {
    let rota = Rota::new();
    let file = rota.write(
        "deploy.md",
        "---
id: md-deploy
---
# Deploy

```sh {id=deploy rollback=undeploy}
echo deploy >> journal.txt
```

```sh {id=check}
echo check-failed >> journal.txt; exit 1
```

## Rollback

```sh {id=undeploy}
echo undeploy >> journal.txt
```

## Cleanup

```sh {id=tidy finally=true}
echo tidy >> journal.txt
```

```sh {id=announce confirm=\"Announce it?\"}
echo announce >> journal.txt
```
",
    );
    let (run, output) = rota.run_json(&["run", file.to_str().expect("utf-8")]);
    // `announce` follows `check` in the main pass (the rollback and finally blocks are
    // out of the chain), so it never asks: `check` failed first.
    assert_code(&output, 1);
    assert_eq!(
        journal(&rota),
        ["deploy", "check-failed", "undeploy", "tidy"]
    );
    assert_eq!(step(&run, "announce")["status"], "skipped", "{run:#}");
}

/// A deploy that hangs after it succeeded once, with a rollback and a `finally` step.
const HANGS: &str = "\
id: hangs
steps:
  - id: deploy
    sh: echo deploy >> journal.txt
    rollback: undeploy
  - id: wait
    needs: [deploy]
    sh: echo $$ > wait.pid; sleep 600
  - id: undeploy
    sh: echo undeploy >> journal.txt
  - id: tidy
    finally: true
    sh: echo tidy >> journal.txt
";

#[test]
fn a_cancelled_run_does_not_roll_back_but_runs_its_finally_steps() {
    use nix::sys::signal::Signal;

    use crate::util::{finish, json, read_pid, signal, wait_gone};

    let rota = Rota::new();
    rota.write("hangs.yaml", HANGS);
    let child = rota.spawn(["run", "hangs.yaml", "--output", "json"]);
    let pid = read_pid(&rota.path("wait.pid"));
    signal(child.id(), Signal::SIGINT);
    let output = finish(child, "rota run");
    assert_code(&output, 130);
    let run = json(&output);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_eq!(step(&run, "wait")["status"], "cancelled");
    assert_eq!(step(&run, "undeploy")["status"], "skipped", "{run:#}");
    assert_eq!(step(&run, "tidy")["status"], "succeeded", "{run:#}");
    assert_eq!(journal(&rota), ["deploy", "tidy"]);
    wait_gone(pid, "the cancelled step");
    rota.assert_no_processes_left();
}
