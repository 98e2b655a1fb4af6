//! `confirm:` on a step: asked at an interactive terminal (driven here through a real
//! pseudo-terminal with `script`), confirmed beforehand with `--yes`, and otherwise waiting
//! as an approval gate that `rota approve|reject RUN --step STEP` settles.

use crate::util::{Rota, as_user, assert_code, assert_reason_has, run_at_a_terminal, step};

const JOB: &str = "\
id: confirmed
steps:
  - id: prepare
    sh: echo version=3 >> \"$ROTA_OUTPUT\"
  - id: restart
    needs: [prepare]
    confirm: 'Restart prod on version {{ steps.prepare.outputs.version }}?'
    sh: echo restarted >> restarted.txt
";

fn job(rota: &Rota) -> String {
    let file = rota.write("confirmed.yaml", JOB);
    file.to_str().expect("utf-8 path").to_owned()
}

fn restarted(rota: &Rota) -> bool {
    rota.path("restarted.txt").exists()
}

#[test]
fn without_a_terminal_the_step_waits_as_a_gate_until_someone_confirms_it() {
    let rota = Rota::new();
    let file = job(&rota);
    let (run, output) = as_user(&rota, "carol", &["run", &file]);
    assert_code(&output, 3);
    assert_eq!(run["status"], "awaiting_approval", "{run:#}");
    assert_eq!(step(&run, "restart")["status"], "awaiting_approval");
    assert_eq!(run["gates"][0]["message"], "Restart prod on version 3?");
    assert!(!restarted(&rota));

    // The starter may confirm their own step (a confirmation, not a second pair of eyes).
    let id = run["id"].as_str().expect("run id");
    let (done, output) = as_user(&rota, "carol", &["approve", id, "--step", "restart"]);
    assert_code(&output, 0);
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert!(restarted(&rota));
}

#[test]
fn a_rejected_confirmation_fails_the_step_with_its_reason() {
    let rota = Rota::new();
    let file = job(&rota);
    let (run, output) = rota.run_json(&["run", &file]);
    assert_code(&output, 3);
    let id = run["id"].as_str().expect("run id");
    let (done, output) = rota.run_json(&["reject", id, "--step", "restart", "-m", "not today"]);
    assert_code(&output, 1);
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_reason_has(step(&done, "restart"), "not confirmed: rejected by");
    assert_reason_has(step(&done, "restart"), "not today");
    assert!(!restarted(&rota));
}

#[test]
fn yes_confirms_beforehand_as_the_starter() {
    let rota = Rota::new();
    let file = job(&rota);
    let (run, output) = rota.run_json(&["run", &file, "--yes"]);
    assert_code(&output, 0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert!(restarted(&rota));
    let logs = rota.run(["logs", run["id"].as_str().expect("run id")]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("confirmed beforehand by local:"), "{text}");
}

#[test]
fn at_a_terminal_the_resolved_step_is_shown_and_asked() {
    let rota = Rota::new();
    let file = job(&rota);
    let (code, screen) = run_at_a_terminal(&rota, &file, "n\n");
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("Restart prod on version 3?"), "{screen}");
    assert!(
        screen.contains("step restart: echo restarted >> restarted.txt"),
        "{screen}"
    );
    assert!(screen.contains("Proceed? [y/N]"), "{screen}");
    assert!(screen.contains("not confirmed at the terminal"), "{screen}");
    assert!(!restarted(&rota));

    let (code, screen) = run_at_a_terminal(&rota, &file, "y\n");
    assert_eq!(code, 0, "{screen}");
    assert!(restarted(&rota));
}

/// Fails until the file `fixed` exists beside it, counting its attempts in `tries.txt`.
const FLAKY: &str = "\
id: flaky
steps:
  - id: call-api
    on_failure: ask
    sh: echo try >> tries.txt; test -e fixed
  - id: after
    needs: [call-api]
    sh: echo after >> tries.txt
";

fn tries(rota: &Rota) -> usize {
    std::fs::read_to_string(rota.path("tries.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == "try")
        .count()
}

#[test]
fn a_failed_step_asks_at_the_terminal_to_retry_skip_or_abort() {
    let rota = Rota::new();
    let file = rota.write("flaky.yaml", FLAKY);
    let file = file.to_str().expect("utf-8");
    // Retry once (still failing), then skip: `after` runs, the run succeeds.
    let (code, screen) = run_at_a_terminal(&rota, file, "r\ns\n");
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("[r]etry, [s]kip or [a]bort?"), "{screen}");
    assert_eq!(tries(&rota), 2, "{screen}");
    assert!(screen.contains("skipped at the terminal"), "{screen}");

    // Abort: the step fails and the run with it.
    let (code, screen) = run_at_a_terminal(&rota, file, "a\n");
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("aborted at the terminal"), "{screen}");
}

#[test]
fn without_a_terminal_a_failed_step_waits_for_an_operator_to_retry_or_abort_it() {
    let rota = Rota::new();
    let file = rota.write("flaky.yaml", FLAKY);
    let file = file.to_str().expect("utf-8");
    let (run, output) = rota.run_json(&["run", file]);
    assert_code(&output, 3);
    assert_eq!(run["status"], "awaiting_approval", "{run:#}");
    assert_eq!(step(&run, "call-api")["status"], "awaiting_approval");
    assert_eq!(run["gates"][0]["step"], "call-api#failed-1", "{run:#}");
    let id = run["id"].as_str().expect("run id");

    // The operator fixes the cause and asks for a retry: attempt 2 succeeds.
    std::fs::write(rota.path("fixed"), "").expect("fix");
    let (done, output) = rota.run_json(&["approve", id, "--step", "call-api#failed-1"]);
    assert_code(&output, 0);
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(step(&done, "call-api")["attempts"], 2);
    assert_eq!(tries(&rota), 2);

    // Another run that fails is aborted with a reason.
    std::fs::remove_file(rota.path("fixed")).expect("unfix");
    let (run, output) = rota.run_json(&["run", file]);
    assert_code(&output, 3);
    let id = run["id"].as_str().expect("run id");
    let (done, output) = rota.run_json(&[
        "reject",
        id,
        "--step",
        "call-api#failed-1",
        "-m",
        "API down",
    ]);
    assert_code(&output, 1);
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_reason_has(step(&done, "call-api"), "aborted by");
    assert_reason_has(step(&done, "call-api"), "API down");
    assert_eq!(step(&done, "after")["status"], "skipped");
}

#[test]
fn without_a_terminal_a_failed_step_is_skipped_by_an_operator_and_its_dependents_run() {
    let rota = Rota::new();
    let file = rota.write("flaky.yaml", FLAKY);
    let file = file.to_str().expect("utf-8");
    let (run, output) = rota.run_json(&["run", file]);
    assert_code(&output, 3);
    let id = run["id"].as_str().expect("run id");
    let (done, output) = rota.run_json(&[
        "skip",
        id,
        "--step",
        "call-api#failed-1",
        "-m",
        "done by hand",
    ]);
    assert_code(&output, 0);
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(step(&done, "call-api")["status"], "skipped");
    assert_reason_has(step(&done, "call-api"), "skipped by");
    assert_reason_has(step(&done, "call-api"), "done by hand");
    assert_eq!(step(&done, "after")["status"], "succeeded");
    assert_eq!(tries(&rota), 1, "a skip runs no other attempt");
    assert_eq!(done["gates"][0]["status"], "skipped", "{done:#}");
}

#[test]
fn only_a_failed_step_s_question_is_skipped() {
    let rota = Rota::new();
    let file = job(&rota);
    let (run, output) = rota.run_json(&["run", &file]);
    assert_code(&output, 3);
    let id = run["id"].as_str().expect("run id");
    let refused = rota.run(["skip", id, "--step", "restart"]);
    assert_code(&refused, 2);
    crate::util::assert_stderr_has(&refused, "is not a failed step's question");
    // Without --step, the one waiting gate is the one judged.
    let refused = rota.run(["skip", id]);
    assert_code(&refused, 2);
    crate::util::assert_stderr_has(&refused, "gate restart");
    let (still, _) = rota.run_json(&["runs", "show", id]);
    assert_eq!(still["status"], "awaiting_approval", "{still:#}");
    assert!(!restarted(&rota));
}

#[test]
fn a_server_run_s_failed_step_question_outlives_a_restart_and_a_retry_continues_it() {
    use serde_json::Value;

    use crate::util::{json, remote_as, wait_until};

    let rota = Rota::new();
    // `fixed` is looked for beside the job files, where the server runs the steps.
    rota.write("jobs/flaky.yaml", FLAKY);
    let server = rota.serve(&rota.path("jobs"));
    let admin = server.admin_token.clone();
    let started = remote_as(&rota, &server, &admin, &["run", "flaky"]);
    assert_code(&started, 3);
    let run = json(&started);
    assert_eq!(run["gates"][0]["step"], "call-api#failed-1", "{run:#}");
    let id = run["id"].as_str().expect("run id").to_owned();

    // The question waits in the store: a new server finds it, and the retry runs there.
    drop(server);
    std::fs::write(rota.path("jobs/fixed"), "").expect("fix");
    let server = rota.serve_again(&rota.path("jobs"), &admin);
    let retried = remote_as(
        &rota,
        &server,
        &admin,
        &["approve", &id, "--step", "call-api#failed-1"],
    );
    assert_code(&retried, 0);
    let mut last = Value::Null;
    wait_until("the retried run to finish on the new server", || {
        last = json(&remote_as(&rota, &server, &admin, &["runs", "show", &id]));
        last["status"] == "succeeded" || last["status"] == "failed"
    });
    assert_eq!(last["status"], "succeeded", "{last:#}");
    assert_eq!(step(&last, "call-api")["attempts"], 2, "{last:#}");
    assert_eq!(step(&last, "after")["status"], "succeeded");
}

#[test]
fn yes_through_a_server_confirms_beforehand_as_the_token_and_is_kept_with_the_run() {
    use crate::util::{json, remote_as};

    let rota = Rota::new();
    rota.write("jobs/confirmed.yaml", JOB);
    let server = rota.serve(&rota.path("jobs"));
    let admin = server.admin_token.clone();
    let done = remote_as(&rota, &server, &admin, &["run", "confirmed", "--yes"]);
    assert_code(&done, 0);
    let run = json(&done);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert!(rota.path("jobs/restarted.txt").exists());
    let id = run["id"].as_str().expect("run id");
    let logs = remote_as(&rota, &server, &admin, &["logs", id]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("confirmed beforehand by token:"), "{text}");
    // Without it, the server's run waits at the step.
    let waits = remote_as(&rota, &server, &admin, &["run", "confirmed"]);
    assert_code(&waits, 3);
    assert_eq!(json(&waits)["status"], "awaiting_approval");
}
