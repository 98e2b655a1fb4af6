//! `.env` files as secrets (`env_file:` in a job, `--env-file` on `rota run`): values reach
//! steps as environment variables and are redacted from logs, run JSON and a notebook's
//! kept output; bad files are clear errors. And prompting for missing parameters at a
//! terminal (a real pseudo-terminal through `script`), a clear error elsewhere.

use std::path::Path;

use crate::util::{
    Rota, assert_code, assert_stderr_has, example, run_at_a_terminal, stderr, stdout,
};

const VALUE: &str = "envf-s3cr3t-Value/7";
const OTHER: &str = "other-s3cr3t-Value/8";

/// A job that writes `$TOKEN` reversed to a file (so the test can see the step got it
/// without the log holding it) and prints it plainly (so redaction is exercised).
const JOB: &str = "\
id: env-job
env_file: job.env
steps:
  - id: show
    sh: |
      printf '%s' \"$TOKEN\" | rev > seen.txt
      echo \"token=$TOKEN user=$USER_NAME\"
";

fn setup(rota: &Rota) -> String {
    rota.write(
        "job.env",
        &format!("# test\nexport TOKEN='{VALUE}'\nUSER_NAME=alice\n"),
    );
    path_str(&rota.write("env-job.yaml", JOB))
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

fn seen(rota: &Rota) -> String {
    let reversed = std::fs::read_to_string(rota.path("seen.txt")).expect("the step ran");
    reversed.trim().chars().rev().collect()
}

/// Asserts `value` is in none of: the live output, the stored logs, `runs show` JSON.
fn assert_redacted(rota: &Rota, run_output: &str, run_id: &str, value: &str) {
    let logs = rota.run(["logs", run_id]);
    assert_code(&logs, 0);
    let shown = rota.run(["runs", "show", run_id, "--output", "json"]);
    assert_code(&shown, 0);
    for text in [run_output.to_owned(), stdout(&logs), stdout(&shown)] {
        assert!(!text.contains(value), "{value:?} leaked:\n{text}");
    }
    assert!(stdout(&logs).contains("token=***"), "{}", stdout(&logs));
}

#[test]
fn env_file_values_reach_steps_and_are_redacted() {
    let rota = Rota::new();
    let file = setup(&rota);
    let (run, output) = rota.run_json(&["run", &file]);
    assert_code(&output, 0);
    assert_eq!(seen(&rota), VALUE);
    let id = run["id"].as_str().expect("run id");
    let text = format!("{run}{}", stderr(&output));
    assert_redacted(&rota, &text, id, VALUE);
    // Not a secret by name only: the short, plain value is redacted too.
    let logs = stdout(&rota.run(["logs", id]));
    assert!(logs.contains("user=***"), "{logs}");
}

#[test]
fn env_file_flag_overrides_the_job_s_file_and_later_flags_win() {
    let rota = Rota::new();
    let file = setup(&rota);
    rota.write("first.env", "TOKEN=first-value-1\n");
    rota.write("second.env", &format!("TOKEN=\"{OTHER}\"\n"));
    let first = path_str(&rota.path("first.env"));
    let second = path_str(&rota.path("second.env"));
    let output = rota.run(["run", &file, "--env-file", &first, "--env-file", &second]);
    assert_code(&output, 0);
    assert_eq!(seen(&rota), OTHER);
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!text.contains(OTHER), "{text}");
    assert!(text.contains("token=***"), "{text}");
}

#[test]
fn env_file_flag_works_for_an_ad_hoc_command() {
    let rota = Rota::new();
    rota.write("adhoc.env", &format!("TOKEN={VALUE}\n"));
    let env = path_str(&rota.path("adhoc.env"));
    let (run, output) = rota.run_json(&[
        "run",
        "--env-file",
        &env,
        "-c",
        "printf '%s' \"$TOKEN\" | rev > seen.txt; echo \"got $TOKEN\"",
    ]);
    assert_code(&output, 0);
    assert_eq!(seen(&rota), VALUE);
    let id = run["id"].as_str().expect("run id");
    assert_redacted_plain(&rota, &format!("{run}"), id, VALUE);
}

fn assert_redacted_plain(rota: &Rota, run_output: &str, run_id: &str, value: &str) {
    let logs = stdout(&rota.run(["logs", run_id]));
    assert!(logs.contains("got ***"), "{logs}");
    assert!(
        !logs.contains(value) && !run_output.contains(value),
        "{logs}"
    );
}

#[test]
fn a_bad_env_file_is_refused_with_its_line_before_the_run() {
    let rota = Rota::new();
    let file = setup(&rota);
    rota.write("job.env", &format!("TOKEN={VALUE}\nthis is not a pair\n"));
    let output = rota.run(["run", &file]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "job.env:2: expected NAME=VALUE");
    assert!(!stderr(&output).contains(VALUE));
    assert!(!rota.path("seen.txt").exists());

    let output = rota.run(["run", &file, "--env-file", "nowhere.env"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "cannot read env file nowhere.env");
}

#[test]
fn a_missing_env_file_is_refused_before_the_run() {
    let rota = Rota::new();
    let file = setup(&rota);
    std::fs::remove_file(rota.path("job.env")).expect("remove");
    let output = rota.run(["run", &file]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "env_file: cannot read env file");
    assert_stderr_has(&output, "job.env");
    assert!(!rota.path("seen.txt").exists());
}

#[test]
fn a_notebook_s_kept_output_holds_no_env_file_value() {
    let rota = Rota::new();
    let notebook = serde_json::json!({
        "cells": [{"cell_type": "code", "execution_count": null, "id": "c0", "metadata": {},
                   "outputs": [], "source": "import os\nprint('key', os.environ['NB_KEY'])"}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5
    });
    rota.write("show.ipynb", &notebook.to_string());
    rota.write("nb.env", &format!("NB_KEY={VALUE}\n"));
    let file = rota.write(
        "nb.yaml",
        "id: nb-env\nenv_file: nb.env\nsteps:\n  - id: nb\n    notebook: show.ipynb\n",
    );
    let (run, output) = rota.run_json(&["run", &path_str(&file)]);
    assert_code(&output, 0);
    let id = run["id"].as_str().expect("run id");
    let logs = stdout(&rota.run(["logs", id]));
    assert!(
        logs.contains("key ***"),
        "the cell printed it masked: {logs}"
    );
    assert_redacted_nb(&rota, &format!("{run}{}", stderr(&output)), id);
}

fn assert_redacted_nb(rota: &Rota, run_output: &str, id: &str) {
    let shown = stdout(&rota.run(["runs", "show", id, "--output", "json"]));
    let logs = stdout(&rota.run(["logs", id]));
    for text in [run_output, &shown, &logs] {
        assert!(!text.contains(VALUE), "{text}");
    }
    let mut kept = 0;
    let mut todo = vec![rota.home().to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).expect("read kept file");
            let text = String::from_utf8_lossy(&bytes);
            if path.extension().is_some_and(|e| e == "ipynb") {
                kept += 1;
                assert!(text.contains("key ***"), "{text}");
            }
            assert!(!text.contains(VALUE), "{VALUE:?} in {}", path.display());
        }
    }
    assert!(kept >= 1, "the output notebook is kept with the run");
}

#[test]
fn the_example_runs_with_its_env_file() {
    let rota = Rota::new();
    let output = rota.run(["run", &path_str(&example("env-file.yaml"))]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("deploying to staging as ***"), "{text}");
    assert!(text.contains("token in use: ***"), "{text}");
    assert!(!text.contains("example-token-0a1b2c3d"), "{text}");
}

#[test]
fn env_file_with_server_is_refused() {
    let rota = Rota::new();
    rota.write("any.env", "A=1\n");
    let output = rota.run([
        "run",
        "some-job",
        "--server",
        "http://127.0.0.1:9",
        "--env-file",
        "any.env",
    ]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "--env-file reads a file on this machine");
}

const PARAMS_JOB: &str = "\
id: asks
params:
  count: { type: int, help: How many copies }
  region: { type: string, enum: [eu, us], help: Where to run }
  note: { type: string, default: none }
steps:
  - id: main
    sh: echo \"count={{ params.count }} region={{ params.region }}\" > answers.txt
";

#[test]
fn a_missing_parameter_is_asked_at_a_terminal_until_it_fits() {
    let rota = Rota::new();
    let file = path_str(&rota.write("asks.yaml", PARAMS_JOB));
    let (code, screen) = run_at_a_terminal(&rota, &file, "many\n3\nasia\nus\n");
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("Parameter count (int, required): How many copies"),
        "{screen}"
    );
    assert!(
        screen.contains("expected int, got \"many\"; try again"),
        "{screen}"
    );
    assert!(
        screen.contains("Parameter region (string, required): Where to run"),
        "{screen}"
    );
    assert!(screen.contains("choices: eu, us"), "{screen}");
    assert!(
        !screen.contains("Parameter note"),
        "defaults are not asked: {screen}"
    );
    let answers = std::fs::read_to_string(rota.path("answers.txt")).expect("the step ran");
    assert_eq!(answers.trim(), "count=3 region=us");
}

#[test]
fn without_a_terminal_a_missing_parameter_is_a_clear_error() {
    let rota = Rota::new();
    let file = path_str(&rota.write("asks.yaml", PARAMS_JOB));
    let output = rota.run(["run", &file, "-p", "region=eu"]);
    assert_code(&output, 2);
    assert_stderr_has(
        &output,
        "parameter count: required (no default); pass -p count=<int>",
    );
    assert!(!rota.path("answers.txt").exists());

    // Given on the command line, nothing is asked at a terminal either.
    let (code, screen) = run_at_a_terminal(&rota, &format!("{file} -p count=2 -p region=eu"), "");
    assert_eq!(code, 0, "{screen}");
    assert!(!screen.contains("Parameter "), "{screen}");
}

#[test]
fn a_declared_secret_the_env_file_gives_is_not_asked_of_the_store() {
    let rota = Rota::new();
    rota.write("s.env", &format!("TOKEN={VALUE}\n"));
    let file = rota.write(
        "s.yaml",
        "id: s-job\nenv_file: s.env\nsecrets: [TOKEN]\nsteps:\n  - id: main\n    \
         sh: printf '%s' '{{ secrets.TOKEN }}' | rev > seen.txt\n",
    );
    let output = rota.run(["run", &path_str(&file)]);
    assert_code(&output, 0);
    assert_eq!(seen(&rota), VALUE);
}
