//! A `container:` step under `rota serve` killed with SIGKILL: its container outlives the
//! server, and the next start removes it (the containers of a dead owner, by their labels).
//! Real Docker engine, real binary; without an engine the test says so loudly and returns.

use std::path::Path;
use std::process::Command;

use crate::support::{Server, TestResult, server_dirs_with_job, wait_for};

/// Ids of the containers (running or not) carrying label `key=value`.
fn containers_with(key: &str, value: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let output = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={key}={value}")])
        .output()?;
    if !output.status.success() {
        return Err("docker ps failed".into());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

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

#[test]
fn a_sigkilled_servers_container_is_removed_on_its_next_start() -> TestResult {
    if !docker_ready() {
        return Ok(());
    }
    let job = "crash-box";
    let (_dir, home, jobs) = server_dirs_with_job(
        "crash-box.yaml",
        format!(
            "id: {job}\nsteps:\n  - id: slow\n    container:\n      image: rota-test-busybox:1\n      \
             pull: never\n      command: [\"sleep\", \"600\"]\n"
        ),
    )?;
    let mut server = Server::start(&home, &jobs, &[])?;
    let run_id = server.start_run(job)?;
    wait_for("the step's container to run", || {
        containers_with("rota.run", &run_id).is_ok_and(|ids| !ids.is_empty())
    })?;
    server.kill9()?;
    // Nothing removed it with the server: the container outlives a SIGKILL.
    assert!(
        !containers_with("rota.run", &run_id)?.is_empty(),
        "the container went with the server; this test proves nothing"
    );

    let mut server = Server::start(&home, &jobs, &[])?;
    wait_for("the dead server's container to be removed", || {
        containers_with("rota.run", &run_id).is_ok_and(|ids| ids.is_empty())
    })?;
    server.terminate()?;
    Ok(())
}
