//! `container:` steps through the real `rota` binary and the real Docker engine: exit codes,
//! environment, bind mounts, outputs, stdout and stderr apart, a memory limit the kernel
//! enforces, a timeout, a cancel, dry runs, pull policies, and no container left behind.
//!
//! The image is built from the host's static busybox by `scripts/test-image` (no registry
//! is needed). Without a Docker engine every test says so loudly and returns.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::{
    Rota, assert_code, assert_reason_has, example, finish, json, stdout, step, wait_until,
};

/// The image `scripts/test-image` builds.
const IMAGE: &str = "rota-test-busybox:1";

/// Whether a Docker engine answers; builds the test image when it does.
fn docker_ready() -> bool {
    let answers = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !answers {
        eprintln!(
            "\n\n*** SKIPPED: no Docker engine answers (docker version failed); \
             container steps were NOT tested ***\n"
        );
        return false;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test-image");
    let built = Command::new(&script)
        .status()
        .expect("run scripts/test-image");
    assert!(built.success(), "scripts/test-image failed");
    true
}

/// Ids of the containers (running or not) labelled with run `run_id`.
fn containers_of(run_id: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=rota.run={run_id}")])
        .output()
        .expect("docker ps");
    assert!(output.status.success(), "docker ps failed");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The run's id from `rota run --output json`.
fn run_id(run: &Value) -> &str {
    run["id"].as_str().expect("run id")
}

#[test]
fn a_container_step_gets_env_mounts_and_publishes_outputs() {
    if !docker_ready() {
        return;
    }
    let rota = Rota::new();
    rota.write("in/data.txt", "from-the-host\n");
    std::fs::create_dir_all(rota.path("out")).expect("out dir");
    rota.write(
        "box.yaml",
        &format!(
            r#"id: box-job
params:
  who: {{ type: string, default: world }}
env:
  FROM_JOB: job-level
steps:
  - id: box
    container:
      image: {IMAGE}
      pull: never
      command:
        - sh
        - -c
        - |
          echo "greeting=$GREETING $FROM_JOB"
          echo on-stderr >&2
          cat /in/data.txt
          echo "rw-ok" > /out/result.txt
          if touch /in/written 2>/dev/null; then echo ro-broken; else echo ro-held; fi
          echo "greet=$GREETING" >> "$ROTA_OUTPUT"
          echo "run=$ROTA_RUN_ID" >> "$ROTA_OUTPUT"
      env:
        GREETING: "hello {{{{ params.who }}}}"
      mounts:
        - in:/in
        - {{ source: out, target: /out, readonly: false }}
      memory: 64m
  - id: after
    needs: [box]
    container:
      image: {IMAGE}
      pull: never
      command: ["sh", "-c", "echo \"seen=$SEEN\"; exit 3"]
      env:
        SEEN: "{{{{ steps.box.outputs.greet }}}}"
"#
        ),
    );
    let (run, output) = rota.run_json(&["run", "box.yaml"]);
    assert_code(&output, 1);
    let id = run_id(&run);

    let first = step(&run, "box");
    assert_eq!(first["status"], "succeeded", "{run:#}");
    assert_eq!(first["exit_code"], 0, "{run:#}");
    assert_eq!(first["outputs"]["greet"], "hello world", "{run:#}");
    assert_eq!(first["outputs"]["run"], id, "{run:#}");
    let second = step(&run, "after");
    assert_eq!(second["status"], "failed", "{run:#}");
    assert_eq!(second["exit_code"], 3, "{run:#}");
    assert_reason_has(second, "exited with code 3");

    // The writable mount was written, the read-only one was not.
    let written = std::fs::read_to_string(rota.path("out/result.txt")).expect("rw mount");
    assert_eq!(written, "rw-ok\n");
    assert!(!rota.path("in/written").exists());

    // Stdout and stderr are kept apart (`|` and `!` in `rota logs`).
    let logs = stdout(&rota.run(["logs", id]));
    for line in [
        "box | greeting=hello world job-level",
        "box ! on-stderr",
        "box | from-the-host",
        "box | ro-held",
        "after | seen=hello world",
    ] {
        assert!(logs.contains(line), "missing {line:?} in:\n{logs}");
    }
    assert!(containers_of(id).is_empty(), "containers were left behind");
}

#[test]
fn a_container_over_its_memory_limit_is_named_out_of_memory() {
    if !docker_ready() {
        return;
    }
    let rota = Rota::new();
    rota.write(
        "oom.yaml",
        &format!(
            r#"id: oom-job
steps:
  - id: hog
    container:
      image: {IMAGE}
      pull: never
      memory: 8m
      command: ["sh", "-c", "x=$(head -c 50000000 /dev/zero | tr '\\0' a); echo \"$x\" | wc -c"]
"#
        ),
    );
    let (run, output) = rota.run_json(&["run", "oom.yaml"]);
    assert_code(&output, 1);
    let hog = step(&run, "hog");
    assert_eq!(hog["status"], "failed", "{run:#}");
    assert_eq!(hog["exit_code"], 137, "{run:#}");
    assert_reason_has(
        hog,
        "out of memory: killed for going over its 8m memory limit",
    );
    assert!(containers_of(run_id(&run)).is_empty());
}

#[test]
fn a_container_step_times_out_and_its_container_goes() {
    if !docker_ready() {
        return;
    }
    let rota = Rota::new();
    rota.write(
        "slow.yaml",
        &format!(
            r#"id: slow-box
steps:
  - id: slow
    timeout: 2s
    container:
      image: {IMAGE}
      pull: never
      command: ["sleep", "300"]
"#
        ),
    );
    let (run, output) = rota.run_json(&["run", "slow.yaml"]);
    assert_code(&output, 1);
    let slow = step(&run, "slow");
    assert_eq!(slow["status"], "timed_out", "{run:#}");
    assert_reason_has(slow, "timed out after 2s");
    assert!(containers_of(run_id(&run)).is_empty());
}

#[test]
fn rota_cancel_stops_a_container_step_and_removes_its_container() {
    if !docker_ready() {
        return;
    }
    let rota = Rota::new();
    rota.write(
        "cancel.yaml",
        &format!(
            r#"id: cancel-box
steps:
  - id: slow
    container:
      image: {IMAGE}
      pull: never
      command: ["sleep", "300"]
"#
        ),
    );
    let child = rota.spawn(["run", "cancel.yaml", "--output", "json"]);
    let id = rota.wait_for_running_run();
    // The container exists before the cancel, so its absence after proves the removal.
    wait_until("the step's container to exist", || {
        !containers_of(&id).is_empty()
    });
    assert_code(&rota.run(["cancel", &id]), 0);
    let output = finish(child, "rota run");
    assert_code(&output, 130);
    let run = json(&output);
    assert_eq!(step(&run, "slow")["status"], "cancelled", "{run:#}");
    assert!(
        containers_of(&id).is_empty(),
        "the cancelled container was left"
    );
}

#[test]
fn pull_policies_say_what_is_missing() {
    if !docker_ready() {
        return;
    }
    let rota = Rota::new();
    rota.write(
        "pull.yaml",
        r#"id: pull-job
namespace: default
steps:
  - id: never
    container:
      image: rota-test-absent:1
      pull: never
      command: ["true"]
  - id: always
    container:
      image: 127.0.0.1:9/rota-test-absent:1
      pull: always
      auth: { username: someone, password: "{{ secrets.REG_PASS }}" }
      command: ["true"]
secrets: [REG_PASS]
"#,
    );
    let set = rota.spawn_with_stdin(["secrets", "set", "REG_PASS"], "pull-sesame-77\n");
    assert_code(&finish(set, "rota secrets set"), 0);
    let (run, output) = rota.run_json(&["run", "pull.yaml"]);
    assert_code(&output, 1);
    let never = step(&run, "never");
    assert_eq!(never["status"], "failed", "{run:#}");
    assert_reason_has(never, "image rota-test-absent:1 is not present");
    let always = step(&run, "always");
    assert_eq!(always["status"], "failed", "{run:#}");
    assert_reason_has(
        always,
        "pulling image 127.0.0.1:9/rota-test-absent:1 failed",
    );
    assert!(!run.to_string().contains("pull-sesame-77"));
}

#[test]
fn a_dry_run_shows_the_resolved_container_with_secrets_masked() {
    if !docker_ready() {
        return;
    }
    let rota = Rota::new();
    std::fs::create_dir_all(rota.path("data")).expect("data dir");
    rota.write(
        "dry.yaml",
        &format!(
            r#"id: dry-box
namespace: default
secrets: [API_TOKEN]
steps:
  - id: shown
    container:
      image: {IMAGE}
      pull: never
      command: ["sh", "-c", "touch /data/ran"]
      env: {{ TOKEN: "{{{{ secrets.API_TOKEN }}}}", MODE: plain }}
      mounts: ["data:/data:rw"]
      network: none
      memory: 64m
      cpus: 0.5
  - id: really
    dry_run: run
    container:
      image: {IMAGE}
      pull: never
      command: ["sh", "-c", "touch /data/really"]
      mounts: ["data:/data:rw"]
"#
        ),
    );
    let set = rota.spawn_with_stdin(["secrets", "set", "API_TOKEN"], "tok-secret-4242\n");
    assert_code(&finish(set, "rota secrets set"), 0);
    let output = rota.run(["run", "dry.yaml", "--dry-run"]);
    assert_code(&output, 0);
    let text = stdout(&output);
    let shown = text
        .lines()
        .find(|l| l.contains("would run container"))
        .unwrap_or_else(|| panic!("no resolved container in:\n{text}"));
    for part in [
        IMAGE,
        "touch /data/ran",
        "MODE=plain",
        "TOKEN=",
        "/data:rw",
        "network none",
        "memory 64m",
        "cpus 0.5",
    ] {
        assert!(shown.contains(part), "missing {part:?} in {shown:?}");
    }
    assert!(
        !text.contains("tok-secret-4242"),
        "a secret was shown:\n{text}"
    );
    assert!(
        !rota.path("data/ran").exists(),
        "a dry run ran the container"
    );
    assert!(
        rota.path("data/really").exists(),
        "`dry_run: run` did not run it"
    );
}

#[test]
fn validate_refuses_runs_on_and_bad_container_keys() {
    let rota = Rota::new();
    rota.write(
        "bad.yaml",
        r#"id: bad-box
steps:
  - id: remote
    runs_on: { pool: gpu }
    container: { image: busybox }
  - id: keys
    container:
      image: busybox
      network: wifi
      memory: lots
      mounts: ["relative-only"]
"#,
    );
    let output = rota.run(["validate", "bad.yaml"]);
    assert_code(&output, 2);
    let text = crate::util::describe(&output);
    for expected in [
        "bad.yaml:4:5: `runs_on` in step `remote`: container steps are not handed to workers",
        "bad.yaml:9:16: invalid value \"wifi\" for `network`",
        "bad.yaml:10:15: `memory` in `container` in step `keys`: invalid size `lots`",
        "bad.yaml:11:16: invalid mount \"relative-only\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn example_container_yaml_runs_as_its_comment_says() {
    if !docker_ready() {
        return;
    }
    let rota = Rota::new();
    let source = std::fs::read_to_string(example("container.yaml")).expect("example");
    rota.write("container.yaml", &source);
    let (run, output) = rota.run_json(&["run", "container.yaml"]);
    assert_code(&output, 0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(step(&run, "count")["outputs"]["lines"], "3", "{run:#}");
    assert!(containers_of(run_id(&run)).is_empty());
}
