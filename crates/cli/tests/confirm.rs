//! `confirm:` on a step: asked at an interactive terminal (driven here through a real
//! pseudo-terminal with `script`), confirmed beforehand with `--yes`, and otherwise waiting
//! as an approval gate that `rota approve|reject RUN --step STEP` settles.

use std::process::{Command, Stdio};

use crate::util::{Rota, as_user, assert_code, assert_reason_has, step};

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

/// `rota run FILE` on a pseudo-terminal (util-linux `script`), answering `answer`.
fn run_at_a_terminal(rota: &Rota, file: &str, answer: &str) -> (i32, String) {
    let command = format!("{} run {file}", env!("CARGO_BIN_EXE_rota"));
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("ROTA_HOME", rota.home())
        .current_dir(rota.path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start script(1)");
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, answer.as_bytes()).expect("answer");
    }
    let output = child.wait_with_output().expect("script(1) ends");
    let code = output.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&output.stdout).into_owned())
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
