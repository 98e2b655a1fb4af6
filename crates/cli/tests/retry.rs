//! `rota retry RUN [--from STEP]`: a new run of the same job revision that reruns the step
//! and everything downstream of it, keeping the results of the steps before it, on the
//! local store and through a server.

use serde_json::Value;

use crate::util::{
    Rota, assert_code, assert_reason_has, assert_stderr_has, describe, json, stdout, step,
};

/// `b` fails until the file `ok` exists next to the job; `a`'s output feeds `b`.
fn job(rota: &Rota) -> String {
    let ok = rota.path("ok");
    format!(
        "id: flaky\nsteps:\n  - id: a\n    sh: echo ran-a; echo x=41 >> $ROTA_OUTPUT\n  - id: b\n    needs: [a]\n    sh: 'echo got {{{{ steps.a.outputs.x }}}}; test -e {}'\n  - id: c\n    needs: [b]\n    sh: echo ran-c\n",
        ok.display()
    )
}

fn failed_run(rota: &Rota, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let output = rota.run(&all);
    assert_code(&output, 1);
    let run = json(&output);
    assert_eq!(step(&run, "b")["status"], "failed", "{run:#}");
    run
}

#[test]
fn local_retry_from_a_step_keeps_earlier_steps_and_reruns_the_rest() {
    let rota = Rota::new();
    let file = rota.write("flaky.yaml", &job(&rota));
    let original = failed_run(&rota, &["run", file.to_str().expect("utf-8")]);
    let id = original["id"].as_str().expect("run id");
    rota.write("ok", "");
    let output = rota.run(["retry", id, "--from", "b"]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(
        !text.contains("ran-a"),
        "a was run again: {}",
        describe(&output)
    );
    assert!(
        text.contains("b | got 41"),
        "a's output reaches b: {}",
        describe(&output)
    );
    assert!(text.contains("c | ran-c"), "{}", describe(&output));
    let runs = rota.runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["trigger"], "retry");
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(step(&runs[0], "a")["outputs"]["x"], "41");
    // The original is unchanged.
    assert_eq!(runs[1]["status"], "failed");
    let unknown = rota.run(["retry", id, "--from", "nope"]);
    assert_code(&unknown, 2);
    assert_stderr_has(&unknown, "no step \"nope\"");
}

#[test]
fn remote_retry_is_queued_on_the_server_and_followed() {
    let rota = Rota::new();
    rota.write("jobs/flaky.yaml", &job(&rota));
    let server = rota.serve(&rota.path("jobs"));
    let over = |args: &[&str]| {
        let mut all = vec!["--server", &server.url, "--token", &server.admin_token];
        all.extend(args);
        rota.run(&all)
    };
    let output = over(&["run", "flaky", "--output", "json"]);
    assert_code(&output, 1);
    let id = json(&output)["id"].as_str().expect("run id").to_owned();
    rota.write("ok", "");
    let output = over(&["retry", &id, "--from", "b"]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(
        !text.contains("a | ▶"),
        "a is not shown as run again: {text}"
    );
    assert!(text.contains("b | got 41"), "{}", describe(&output));
    assert!(text.contains("c | ■ succeeded"), "{}", describe(&output));
    let unknown = over(&["retry", &id, "--from", "nope"]);
    assert_code(&unknown, 2);
    assert_stderr_has(&unknown, "nope");
}

#[test]
fn a_local_retry_whose_secret_is_gone_fails_by_name_and_is_not_left_running() {
    let rota = Rota::new();
    let file = rota.write(
        "secret.yaml",
        "id: needs-secret\nsecrets: [ROTA_TEST_RETRY_TOKEN]\nsteps:\n  - id: s\n    sh: test -n \"$ROTA_TEST_RETRY_TOKEN\"\n",
    );
    let with_secret =
        Rota::new_with_home(rota.home().to_owned()).env("ROTA_TEST_RETRY_TOKEN", "t0ken");
    let (run, output) = with_secret.run_json(&["run", file.to_str().expect("utf-8")]);
    assert_code(&output, 0);
    let id = run["id"].as_str().expect("run id");
    // Without the variable, the retry is claimed, cannot be prepared, and ends failed with
    // the reason, instead of staying `running` for a process that gave up on it.
    let output = rota.run(["retry", id]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "ROTA_TEST_RETRY_TOKEN");
    let runs = rota.runs();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0]["trigger"], "retry");
    assert_eq!(runs[0]["status"], "failed", "{:#}", runs[0]);
    assert_reason_has(&runs[0], "ROTA_TEST_RETRY_TOKEN");
}
