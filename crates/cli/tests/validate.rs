//! `rota validate` and what `rota run` does with a file that does not validate: every
//! problem of a file is reported as `file:line:col: message`, exit code 2, and no run.

use crate::util::{Rota, assert_code, assert_stderr_has, assert_stdout_has, describe, stderr};

const INVALID_YAML: &str = include_str!("data/invalid.yaml");
const INVALID_TOML: &str = include_str!("data/invalid.toml");
const VALID_YAML: &str = include_str!("data/valid.yaml");

/// Asserts that stderr holds a diagnostic at `file:line:col` whose message has `needle`.
#[track_caller]
fn assert_diagnostic(stderr: &str, at: &str, needle: &str) {
    let found = stderr
        .lines()
        .any(|line| line.starts_with(&format!("{at}: ")) && line.contains(needle));
    assert!(found, "no diagnostic `{at}: …{needle}…` in:\n{stderr}");
}

/// `rota validate FILE` of a fresh file that does not validate: exit code 2, and its stderr.
fn validation_errors(file: &str, contents: &str) -> String {
    let rota = Rota::new();
    rota.write(file, contents);
    let output = rota.run(["validate", file]);
    assert_code(&output, 2);
    stderr(&output)
}

#[test]
fn validate_reports_every_problem_with_its_position() {
    let err = validation_errors("invalid.yaml", INVALID_YAML);
    assert_diagnostic(&err, "invalid.yaml:3:1", "unknown key `colour`");
    assert_diagnostic(&err, "invalid.yaml:4:14", "concurrency");
    assert_diagnostic(&err, "invalid.yaml:6:11", "cron");
    assert_diagnostic(&err, "invalid.yaml:8:32", "parameter `count`");
    assert_diagnostic(&err, "invalid.yaml:11:17", "params.nope");
    assert_diagnostic(&err, "invalid.yaml:12:13", "ghost");
    assert_diagnostic(&err, "invalid.yaml:13:9", "cycle");
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("invalid.yaml:"))
            .count(),
        7,
        "{err}"
    );
}

#[test]
fn validate_reports_toml_problems_with_positions_too() {
    let err = validation_errors("invalid.toml", INVALID_TOML);
    assert_diagnostic(&err, "invalid.toml:3:30", "unknown key `retries`");
    assert_diagnostic(&err, "invalid.toml:4:39", "zzz");
}

#[test]
fn valid_file_validates_with_exit_code_0() {
    let rota = Rota::new();
    rota.write("valid.yaml", VALID_YAML);
    let output = rota.run(["validate", "valid.yaml"]);
    assert_code(&output, 0);
    assert_stdout_has(&output, "valid-job");
    assert!(stderr(&output).is_empty(), "{}", describe(&output));
    // And it runs.
    let run = rota.json_ok(&["run", "valid.yaml"]);
    assert_eq!(run["status"], "succeeded");
}

#[test]
fn one_bad_file_among_several_fails_validation() {
    let rota = Rota::new();
    rota.write("valid.yaml", VALID_YAML);
    rota.write("invalid.toml", INVALID_TOML);
    let output = rota.run(["validate", "valid.yaml", "invalid.toml"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "invalid.toml:");
    assert!(
        !stderr(&output).contains("valid.yaml:"),
        "{}",
        describe(&output)
    );
}

#[test]
fn validate_json_lists_problems_per_file() {
    let rota = Rota::new();
    rota.write("invalid.yaml", INVALID_YAML);
    let (report, output) = rota.run_json(&["validate", "invalid.yaml"]);
    assert_code(&output, 2);
    let file = &report[0];
    assert_eq!(file["valid"], false);
    let problems = file["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 7, "{report:#}");
    assert_eq!(problems[0]["line"], 3);
    assert_eq!(problems[0]["column"], 1);
}

#[test]
fn running_an_invalid_file_exits_2_and_records_no_run() {
    let rota = Rota::new();
    rota.write("invalid.yaml", INVALID_YAML);
    let output = rota.run(["run", "invalid.yaml"]);
    assert_code(&output, 2);
    assert_diagnostic(&stderr(&output), "invalid.yaml:12:13", "ghost");
    assert!(
        rota.runs().is_empty(),
        "an invalid file must not create a run"
    );
}

#[test]
fn script_header_errors_are_positioned_in_the_script() {
    let err = validation_errors(
        "broken.sh",
        "#!/bin/sh\n# /// rota\n# id = \"broken-script\"\n# colour = \"red\"\n# ///\necho hi\n",
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("broken.sh:4:") && l.contains("colour")),
        "{err}"
    );
}
