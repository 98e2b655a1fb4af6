//! `rota logs`: stored lines, one step's lines, following a live run, and secret redaction
//! in both the stored and the live output.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use crate::util::{
    PATIENCE, Rota, assert_code, assert_stderr_has, assert_stdout_has, describe, finish, json,
    stderr, stdout,
};

#[test]
fn logs_prints_stored_lines_of_a_run_and_of_one_step() {
    let rota = Rota::new();
    rota.write(
        "logs.yaml",
        "id: logs-job\nsteps:\n  - id: one\n    sh: echo line-from-one; echo err-from-one >&2\n  - id: two\n    needs: [one]\n    sh: echo line-from-two\n",
    );
    let run = rota.json_ok(&["run", "logs.yaml"]);
    let run_id = run["id"].as_str().expect("run id");

    let all = rota.run(["logs", run_id]);
    assert_code(&all, 0);
    let text = stdout(&all);
    assert!(text.contains("one | line-from-one"), "{text}");
    assert!(text.contains("one ! err-from-one"), "{text}");
    assert!(text.contains("two | line-from-two"), "{text}");
    let first = text.find("line-from-one").expect("present");
    let second = text.find("line-from-two").expect("present");
    assert!(first < second, "lines come in order: {text}");

    let only_two = rota.run(["logs", run_id, "two"]);
    assert_code(&only_two, 0);
    let text = stdout(&only_two);
    assert!(text.contains("line-from-two"), "{text}");
    assert!(!text.contains("line-from-one"), "{text}");

    assert_code(&rota.run(["logs", run_id, "no-such-step"]), 2);
    assert_code(&rota.run(["logs", "no-such-run"]), 2);
}

#[test]
fn logs_follow_prints_new_lines_until_the_run_ends() {
    let rota = Rota::new();
    rota.write(
        "follow.yaml",
        r#"id: follow-job
steps:
  - id: slow
    sh: |
      echo first-line
      i=0
      while [ ! -e go ]; do
        i=$((i+1)); [ $i -gt 600 ] && exit 1
        sleep 0.1
      done
      echo second-line
"#,
    );
    let runner = rota.spawn(["run", "follow.yaml"]);
    let run_id = rota.wait_for_running_run();

    let mut follower = rota.spawn(["logs", "-f", &run_id]);
    let reader = BufReader::new(follower.stdout.take().expect("piped stdout"));
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || {
        lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("`rota logs -f` printed nothing more within {PATIENCE:?}"))
    };
    assert_eq!(next_line(), "slow | first-line");
    // The step is blocked on the `go` file, so the run is live and the follower must be too.
    assert!(
        follower.try_wait().expect("try_wait").is_none(),
        "`logs -f` exited while the run was live"
    );

    rota.write("go", "");
    assert_eq!(next_line(), "slow | second-line");
    let runner = finish(runner, "rota run");
    assert_code(&runner, 0);
    let follower = finish(follower, "rota logs -f");
    assert_code(&follower, 0);
    // Nothing else arrives, and the stream ends.
    assert!(
        matches!(
            lines.recv_timeout(Duration::from_secs(5)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ),
        "unexpected extra output from `rota logs -f`"
    );
}

const SECRET: &str = "s3cr3t-value";
/// A secret whose percent-encoded form differs from the plain one.
const ODD_SECRET: &str = "p@ss w/rd+x";

fn secret_job(rota: &Rota) {
    rota.write(
        "secret.yaml",
        r#"id: secret-job
secrets: [MY_TOKEN, ODD_TOKEN]
steps:
  - id: leak
    env:
      TEMPLATED: "{{ secrets.MY_TOKEN }}"
    sh: |
      [ "$MY_TOKEN" = "{{ secrets.MY_TOKEN }}" ] && echo "token-reached-the-step"
      echo "plain $MY_TOKEN end"
      echo "templated $TEMPLATED end"
      echo "base64 $(printf %s "$MY_TOKEN" | base64) end"
      echo "odd $ODD_TOKEN end"
      echo "odd-base64 $(printf %s "$ODD_TOKEN" | base64) end"
      echo "odd-url p%40ss%20w%2Frd%2Bx end"
      echo "to stderr $MY_TOKEN" >&2
"#,
    );
}

/// Asserts no form of either secret appears, and that the masked lines are there.
#[track_caller]
fn assert_redacted(text: &str) {
    let forms = [
        SECRET.to_owned(),
        "czNjcjN0LXZhbHVl".to_owned(), // base64 of SECRET, unpadded prefix
        ODD_SECRET.to_owned(),
        "cEBzcyB3L3JkK3g".to_owned(), // base64 of ODD_SECRET, unpadded prefix
        "p%40ss%20w%2Frd%2Bx".to_owned(),
    ];
    for form in &forms {
        assert!(
            !text.contains(form.as_str()),
            "secret form {form:?} leaked:\n{text}"
        );
    }
    assert!(text.contains("token-reached-the-step"), "{text}");
    for line in [
        "plain *** end",
        "templated *** end",
        "odd *** end",
        "odd-url *** end",
        "to stderr ***",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        text.contains("base64 ") && text.contains("odd-base64 "),
        "{text}"
    );
}

#[test]
fn secrets_are_redacted_in_live_and_stored_logs() {
    let rota = Rota::new()
        .env("MY_TOKEN", SECRET)
        .env("ODD_TOKEN", ODD_SECRET);
    secret_job(&rota);

    let human = rota.run(["run", "secret.yaml"]);
    assert_code(&human, 0);
    assert_redacted(&stdout(&human));
    assert!(!stderr(&human).contains(SECRET), "{}", describe(&human));

    let live = rota.run(["run", "secret.yaml", "--output", "json"]);
    assert_code(&live, 0);
    assert_redacted(&stderr(&live));
    assert!(!stdout(&live).contains(SECRET), "{}", describe(&live));
    let run = json(&live);

    let stored = rota.run(["logs", run["id"].as_str().expect("run id")]);
    assert_code(&stored, 0);
    assert_redacted(&stdout(&stored));
}

#[test]
fn secrets_rendered_into_commands_are_redacted_in_dry_runs() {
    let rota = Rota::new()
        .env("MY_TOKEN", SECRET)
        .env("ODD_TOKEN", ODD_SECRET);
    secret_job(&rota);
    // The echoed command holds the rendered secret; it goes to the live output and the logs.
    let live = rota.run(["run", "secret.yaml", "--dry-run", "--output", "json"]);
    assert_code(&live, 0);
    assert_stderr_has(&live, r#"= "***" ]"#);
    assert!(!stderr(&live).contains(SECRET), "{}", describe(&live));
    let run = json(&live);
    let stored = rota.run(["logs", run["id"].as_str().expect("run id")]);
    assert_code(&stored, 0);
    assert_stdout_has(&stored, "dry run");
    assert!(!stdout(&stored).contains(SECRET), "{}", describe(&stored));
}

#[test]
fn missing_secret_is_a_usage_error() {
    let rota = Rota::new().env("MY_TOKEN", SECRET);
    secret_job(&rota);
    let output = rota.run(["run", "secret.yaml"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "ODD_TOKEN");
    assert!(rota.runs().is_empty());
}

#[test]
fn secrets_written_as_outputs_are_redacted_everywhere() {
    let rota = Rota::new().env("MY_TOKEN", SECRET);
    rota.write(
        "outputs.yaml",
        r#"id: output-secret-job
secrets: [MY_TOKEN]
steps:
  - id: produce
    sh: |
      echo "token=$MY_TOKEN" >> "$ROTA_OUTPUT"
      echo "plain=visible" >> "$ROTA_OUTPUT"
  - id: consume
    needs: [produce]
    sh: echo "got {{ steps.produce.outputs.token }} and {{ steps.produce.outputs.plain }}"
"#,
    );
    let (run, output) = rota.run_json(&["run", "outputs.yaml"]);
    assert_code(&output, 0);
    assert!(!stdout(&output).contains(SECRET), "{}", describe(&output));
    assert!(!stderr(&output).contains(SECRET), "{}", describe(&output));
    let outputs = &crate::util::step(&run, "produce")["outputs"];
    assert_eq!(outputs["token"], "***");
    assert_eq!(outputs["plain"], "visible");
    let listing = rota.run(["runs", "--output", "json"]);
    assert!(!stdout(&listing).contains(SECRET), "{}", describe(&listing));
    assert_stderr_has(&output, "consume | got *** and visible");
}

#[test]
fn a_secret_in_a_command_that_cannot_start_is_redacted_from_the_reason() {
    let rota = Rota::new().env("MY_TOKEN", SECRET);
    rota.write(
        "nostart.yaml",
        r#"id: nostart-job
secrets: [MY_TOKEN]
steps:
  - id: missing-program
    exec: ["/nonexistent/{{ secrets.MY_TOKEN }}"]
  - id: missing-workdir
    workdir: "/nonexistent/{{ secrets.MY_TOKEN }}"
    sh: echo unreachable
"#,
    );
    let (run, output) = rota.run_json(&["run", "nostart.yaml"]);
    assert_code(&output, 1);
    let everything = format!(
        "{}{}",
        describe(&output),
        rota.run([
            "runs",
            "show",
            run["id"].as_str().unwrap_or_default(),
            "--output",
            "json"
        ])
        .stdout
        .escape_ascii()
    );
    assert!(!everything.contains(SECRET), "{everything}");
    let reason = |step: &str| {
        crate::util::step(&run, step)["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        reason("missing-program").contains("/nonexistent/***"),
        "{}",
        reason("missing-program")
    );
    assert!(
        reason("missing-workdir").contains("workdir /nonexistent/*** does not exist"),
        "{}",
        reason("missing-workdir")
    );
}
