//! `rota run`: the JSON contract, exit codes, ad-hoc commands, step kinds, parameters,
//! environment, working directories, outputs and dry runs.

use crate::util::{
    Rota, assert_code, assert_stderr_has, assert_stdout_has, describe, example, stderr, stdout,
    step,
};

#[test]
fn hello_example_succeeds_with_the_json_contract() {
    let rota = Rota::new();
    let hello = example("hello.yaml");
    let (run, output) = rota.run_json(&["run", hello.to_str().expect("utf-8 path")]);
    assert_code(&output, 0);
    assert_eq!(run["job"], "hello");
    assert_eq!(run["status"], "succeeded");
    assert!(
        run["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{run:#}"
    );
    assert!(
        run["namespace"].as_str().is_some_and(|ns| !ns.is_empty()),
        "{run:#}"
    );
    let ids: Vec<&str> = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["id"].as_str().expect("step id"))
        .collect();
    assert_eq!(ids, ["disk", "kernel", "greet", "summary", "cleanup"]);
    for s in run["steps"].as_array().expect("steps") {
        assert_eq!(s["status"], "succeeded", "{s:#}");
        assert_eq!(s["exit_code"], 0, "{s:#}");
        assert_eq!(s["attempts"], 1, "{s:#}");
        assert!(s["outputs"].is_object(), "{s:#}");
    }
    assert!(
        step(&run, "kernel")["outputs"]["kernel"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    // Live lines go to stderr in JSON mode, so stdout held exactly one JSON document.
    assert_stderr_has(&output, "summary | running on kernel");
}

#[test]
fn failed_step_fails_the_run_with_exit_code_1() {
    let rota = Rota::new();
    rota.write(
        "fail.yaml",
        "id: fail-job\nsteps:\n  - id: bad\n    sh: exit 7\n  - id: after\n    needs: [bad]\n    sh: echo never\n",
    );
    let (run, output) = rota.run_json(&["run", "fail.yaml"]);
    assert_code(&output, 1);
    assert_eq!(run["status"], "failed");
    assert_eq!(step(&run, "bad")["status"], "failed");
    assert_eq!(step(&run, "bad")["exit_code"], 7);
    assert_eq!(step(&run, "after")["status"], "skipped");
}

#[test]
fn ad_hoc_shell_command_runs_one_step() {
    let rota = Rota::new();
    let run = rota.json_ok(&["run", "--command", "echo hi > made-by-command"]);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["steps"].as_array().map(Vec::len), Some(1));
    let made =
        std::fs::read_to_string(rota.path("made-by-command")).expect("file made by the step");
    assert_eq!(made, "hi\n");
}

#[test]
fn ad_hoc_argv_runs_without_a_shell() {
    let rota = Rota::new();
    // With no shell, `>` is an ordinary argument that echo prints.
    let output = rota.run(["run", "--", "echo", "a > b", "$HOME"]);
    assert_code(&output, 0);
    assert_stdout_has(&output, "main | a > b $HOME");
    assert!(!rota.path("b").exists());
    let failing = rota.run(["run", "--", "false"]);
    assert_code(&failing, 1);
}

#[test]
fn human_output_prints_live_lines_and_a_summary() {
    let rota = Rota::new();
    let output = rota.run(["run", "--command", "echo visible-line"]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("main | visible-line"), "{text}");
    assert!(text.contains("succeeded"), "{text}");
}

#[test]
fn missing_file_is_a_usage_error() {
    let rota = Rota::new();
    let output = rota.run(["run", "no-such-file.yaml"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "no-such-file.yaml");
    assert!(rota.runs().is_empty());
}

#[test]
fn unknown_subcommand_and_missing_target_are_usage_errors() {
    let rota = Rota::new();
    assert_code(&rota.run(["frobnicate"]), 2);
    assert_code(&rota.run(["run"]), 2);
}

#[test]
fn params_are_coerced_to_declared_types() {
    let rota = Rota::new();
    rota.write(
        "params.yaml",
        r#"id: params-job
params:
  count: { type: int, default: 1 }
  loud: { type: bool, default: false }
  who: { type: string, default: world }
  ratio: { type: float, default: 0.5 }
steps:
  - id: show
    sh: |
      echo "count={{ params.count + 1 }}" >> "$ROTA_OUTPUT"
      echo "loud={{ 'yes' if params.loud else 'no' }}" >> "$ROTA_OUTPUT"
      echo "who={{ params.who }}" >> "$ROTA_OUTPUT"
      echo "ratio={{ params.ratio * 2 }}" >> "$ROTA_OUTPUT"
"#,
    );
    let run = rota.json_ok(&[
        "run",
        "params.yaml",
        "-p",
        "count=41",
        "-p",
        "loud=true",
        "-p",
        "who=rota",
        "-p",
        "ratio=1.25",
    ]);
    let outputs = &step(&run, "show")["outputs"];
    assert_eq!(outputs["count"], "42");
    assert_eq!(outputs["loud"], "yes");
    assert_eq!(outputs["who"], "rota");
    assert_eq!(outputs["ratio"], "2.5");
    assert_eq!(run["params"]["count"], 41);
    assert_eq!(run["params"]["loud"], true);

    let defaults = rota.run_json(&["run", "params.yaml"]).0;
    assert_eq!(step(&defaults, "show")["outputs"]["count"], "2");
    assert_eq!(step(&defaults, "show")["outputs"]["who"], "world");
}

#[test]
fn param_of_the_wrong_type_is_a_usage_error_naming_it() {
    let rota = Rota::new();
    rota.write(
        "typed.yaml",
        "id: typed-job\nparams:\n  count: { type: int, default: 1 }\nsteps:\n  - id: s\n    sh: touch ran\n",
    );
    let output = rota.run(["run", "typed.yaml", "-p", "count=many"]);
    assert_code(&output, 2);
    let err = stderr(&output);
    assert!(
        err.contains("count") && err.contains("many"),
        "{}",
        describe(&output)
    );
    assert!(!rota.path("ran").exists());
    assert!(
        rota.runs().is_empty(),
        "a rejected run must not be recorded"
    );

    let unknown = rota.run(["run", "typed.yaml", "-p", "nope=1"]);
    assert_code(&unknown, 2);
    assert_stderr_has(&unknown, "nope");
}

#[test]
fn params_file_supplies_values_and_dash_p_wins() {
    let rota = Rota::new();
    rota.write(
        "pf.yaml",
        r#"id: pf-job
params:
  who: { type: string }
  hosts: { type: list, default: [] }
  n: { type: int, default: 0 }
steps:
  - id: show
    sh: |
      echo "who={{ params.who }}" >> "$ROTA_OUTPUT"
      echo "hosts={{ params.hosts | join(',') }}" >> "$ROTA_OUTPUT"
      echo "n={{ params.n }}" >> "$ROTA_OUTPUT"
"#,
    );
    rota.write(
        "params.json",
        r#"{"who": "file", "hosts": ["a", "b"], "n": 3}"#,
    );
    let run = rota.json_ok(&["run", "pf.yaml", "--params-file", "params.json"]);
    let outputs = &step(&run, "show")["outputs"];
    assert_eq!(outputs["who"], "file");
    assert_eq!(outputs["hosts"], "a,b");
    assert_eq!(outputs["n"], "3");

    let run = rota.json_ok(&[
        "run",
        "pf.yaml",
        "--params-file",
        "params.json",
        "-p",
        "who=flag",
    ]);
    assert_eq!(step(&run, "show")["outputs"]["who"], "flag");

    rota.write("wrong.json", r#"{"who": "x", "n": "three"}"#);
    let output = rota.run(["run", "pf.yaml", "--params-file", "wrong.json"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "n");
}

#[test]
fn missing_required_param_is_a_usage_error() {
    let rota = Rota::new();
    rota.write(
        "req.yaml",
        "id: req-job\nparams:\n  who: { type: string }\nsteps:\n  - id: s\n    sh: echo {{ params.who }}\n",
    );
    let output = rota.run(["run", "req.yaml"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "who");
}

#[test]
fn outputs_flow_into_later_steps_and_conditions() {
    let rota = Rota::new();
    rota.write(
        "outputs.yaml",
        r#"id: outputs-job
params:
  target: { type: string, default: staging }
steps:
  - id: produce
    sh: |
      echo "colour=blue" >> "$ROTA_OUTPUT"
      echo "count=3" >> "$ROTA_OUTPUT"
  - id: consume
    needs: [produce]
    sh: echo "seen={{ steps.produce.outputs.colour }}-{{ steps.produce.outputs.count }}" >> "$ROTA_OUTPUT"
  - id: only-blue
    needs: [produce]
    if: steps.produce.outputs.colour == "blue"
    sh: touch only-blue.ran
  - id: only-red
    needs: [produce]
    if: steps.produce.outputs.colour == "red"
    sh: touch only-red.ran
  - id: only-prod
    if: params.target == "prod"
    sh: touch only-prod.ran
  - id: after-skip
    needs: [only-red]
    sh: touch after-skip.ran
"#,
    );
    let run = rota.json_ok(&["run", "outputs.yaml"]);
    assert_eq!(step(&run, "produce")["outputs"]["colour"], "blue");
    assert_eq!(step(&run, "consume")["outputs"]["seen"], "blue-3");
    assert_eq!(step(&run, "only-blue")["status"], "succeeded");
    assert_eq!(step(&run, "only-red")["status"], "skipped");
    assert_eq!(step(&run, "only-prod")["status"], "skipped");
    // A step skipped by its own `if` does not block its dependents.
    assert_eq!(step(&run, "after-skip")["status"], "succeeded");
    assert!(rota.path("only-blue.ran").exists());
    assert!(!rota.path("only-red.ran").exists());
    assert!(!rota.path("only-prod.ran").exists());

    let run = rota.json_ok(&["run", "outputs.yaml", "-p", "target=prod"]);
    assert_eq!(step(&run, "only-prod")["status"], "succeeded");
}

#[test]
fn env_and_workdir_reach_the_step() {
    let rota = Rota::new();
    std::fs::create_dir_all(rota.path("sub/dir")).expect("mkdir");
    rota.write(
        "env.yaml",
        r#"id: env-job
env:
  JOB_LEVEL: from-job
  SHARED: job
params:
  name: { type: string, default: templated }
steps:
  - id: show
    workdir: sub/dir
    env:
      STEP_LEVEL: "{{ params.name }}"
      SHARED: step
    sh: |
      echo "job=$JOB_LEVEL" >> "$ROTA_OUTPUT"
      echo "step=$STEP_LEVEL" >> "$ROTA_OUTPUT"
      echo "shared=$SHARED" >> "$ROTA_OUTPUT"
      echo "pwd=$(pwd -P)" >> "$ROTA_OUTPUT"
      echo "step_id=$ROTA_STEP" >> "$ROTA_OUTPUT"
      echo "run_id=$ROTA_RUN_ID" >> "$ROTA_OUTPUT"
"#,
    );
    let run = rota.json_ok(&["run", "env.yaml"]);
    let outputs = &step(&run, "show")["outputs"];
    assert_eq!(outputs["job"], "from-job");
    assert_eq!(outputs["step"], "templated");
    assert_eq!(outputs["shared"], "step");
    let expected_dir = rota.path("sub/dir").canonicalize().expect("canonical dir");
    assert_eq!(outputs["pwd"], expected_dir.display().to_string());
    assert_eq!(outputs["step_id"], "show");
    assert_eq!(outputs["run_id"], run["id"]);
}

#[test]
fn exec_and_script_steps_run() {
    let rota = Rota::new();
    rota.write(
        "tools/greet.sh",
        "echo \"script got $1 $2\"\necho \"arg=$1\" >> \"$ROTA_OUTPUT\"\n",
    );
    rota.write(
        "kinds.yaml",
        r#"id: kinds-job
params:
  word: { type: string, default: "two words" }
steps:
  - id: exec-step
    exec: [sh, -c, 'echo "argc=$#" >> "$ROTA_OUTPUT"', x, "{{ params.word }}", b]
  - id: script-step
    script: { path: tools/greet.sh, interpreter: sh, args: ["{{ params.word }}", second] }
"#,
    );
    let (run, output) = rota.run_json(&["run", "kinds.yaml"]);
    assert_code(&output, 0);
    // The templated argument stays one argv entry: no shell splits it.
    assert_eq!(step(&run, "exec-step")["outputs"]["argc"], "2");
    assert_eq!(step(&run, "script-step")["outputs"]["arg"], "two words");
    assert_stderr_has(&output, "script got two words second");
}

#[test]
fn script_with_a_rota_header_runs_as_a_job() {
    let rota = Rota::new();
    rota.write(
        "nightly.sh",
        r#"#!/bin/sh
# /// rota
# id = "header-job"
# [params]
# who = { type = "string", default = "header" }
# ///
echo "hello from the script"
echo "who=${ROTA_STEP}" >> "$ROTA_OUTPUT"
touch script-ran
"#,
    );
    let (run, output) = rota.run_json(&["run", "nightly.sh"]);
    assert_code(&output, 0);
    assert_eq!(run["job"], "header-job");
    assert_eq!(run["status"], "succeeded");
    assert!(rota.path("script-ran").exists(), "{}", describe(&output));
    assert_stderr_has(&output, "hello from the script");
}

#[test]
fn dry_run_prints_commands_and_runs_only_safe_steps() {
    let rota = Rota::new();
    rota.write(
        "dry.yaml",
        r#"id: dry-job
params:
  name: { type: string, default: marker }
steps:
  - id: dangerous
    sh: touch {{ params.name }}-dangerous
  - id: safe
    dry_run: run
    sh: touch {{ params.name }}-safe
  - id: skipped
    dry_run: skip
    sh: touch {{ params.name }}-skipped
  - id: substitute
    dry_run: { command: "touch {{ params.name }}-substitute" }
    sh: touch {{ params.name }}-real
"#,
    );
    let output = rota.run(["run", "dry.yaml", "--dry-run", "-p", "name=m"]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(
        text.contains("touch m-dangerous"),
        "the resolved command is printed: {text}"
    );
    assert!(
        !rota.path("m-dangerous").exists(),
        "a dry run must not run the step"
    );
    assert!(
        rota.path("m-safe").exists(),
        "`dry_run: run` runs also in a dry run"
    );
    assert!(!rota.path("m-skipped").exists());
    assert!(
        rota.path("m-substitute").exists(),
        "`dry_run: {{command}}` runs its command"
    );
    assert!(!rota.path("m-real").exists());

    let runs = rota.runs();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["dry_run"], true);
    assert_eq!(step(run, "skipped")["status"], "skipped");
    assert_eq!(step(run, "dangerous")["status"], "succeeded");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let rota = Rota::new();
    for shell in ["bash", "zsh", "fish"] {
        let output = rota.run(["completions", shell]);
        assert_code(&output, 0);
        let text = stdout(&output);
        assert!(
            text.contains("rota") && text.contains("validate"),
            "{shell}: {text}"
        );
    }
    assert_code(&rota.run(["completions", "tcsh-like-nonsense"]), 2);
}

#[test]
fn help_and_version_exit_zero() {
    let rota = Rota::new();
    let help = rota.run(["--help"]);
    assert_code(&help, 0);
    assert_stdout_has(&help, "Exit codes");
    assert_code(&rota.run(["--version"]), 0);
}
