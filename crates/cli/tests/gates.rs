//! `approval:` gates in the middle of a run: the run waits as `awaiting_approval` with no
//! process, `rota approve` / `rota reject RUN` decide the gate under its rules, locally
//! (the actor is `local:$USER`) and through a real `rota serve`, whose waiting runs survive
//! a restart.

use serde_json::Value;

use crate::util::{
    Rota, as_user, assert_code, assert_stderr_has, example, json, remote_as, step, wait_until,
};

/// The example gated deploy, copied into the working directory (its steps touch files
/// next to the job file).
fn gated_example(rota: &Rota) -> String {
    let source = std::fs::read_to_string(example("gate.yaml")).expect("the example");
    let file = rota.write("gate.yaml", &source);
    file.to_str().expect("utf-8 path").to_owned()
}

fn run_id(run: &Value) -> String {
    run["id"].as_str().expect("a run id").to_owned()
}

#[test]
fn a_local_gate_waits_without_a_process_for_two_other_users_then_the_run_continues() {
    let rota = Rota::new();
    let file = gated_example(&rota);

    let (run, output) = as_user(&rota, "carol", &["run", &file, "-p", "env=prod"]);
    assert_code(&output, 3);
    assert_eq!(run["status"], "awaiting_approval", "{run:#}");
    assert_eq!(run["started_by"], "local:carol");
    assert_eq!(step(&run, "build")["status"], "succeeded");
    assert_eq!(step(&run, "approve-deploy")["status"], "awaiting_approval");
    assert_eq!(step(&run, "deploy")["status"], "pending");
    let gate = &run["gates"][0];
    assert_eq!(gate["status"], "awaiting_approval");
    assert_eq!(gate["message"], "Deploy 1.4.2 to prod?");
    assert_eq!(gate["quorum"], 2);
    let id = run_id(&run);
    // Nothing waits in a process: `rota run` exited, and nothing of the run is left.
    rota.assert_no_processes_left();
    assert!(!rota.path("deployed").exists());

    let (_, stranger) = as_user(&rota, "mallory", &["approve", &id]);
    assert_code(&stranger, 2);
    assert_stderr_has(
        &stranger,
        "as one of the approvers of the gate approve-deploy",
    );

    let (first, output) = as_user(&rota, "alice", &["approve", &id, "-m", "looks right"]);
    assert_code(&output, 0);
    assert_eq!(first["status"], "awaiting_approval");
    assert_eq!(first["gates"][0]["decisions"][0]["actor"], "local:alice");
    let (_, twice) = as_user(&rota, "alice", &["approve", &id]);
    assert_code(&twice, 2);
    assert_stderr_has(&twice, "already decided");
    let (_, stale) = as_user(&rota, "bob", &["approve", &id, "--hash", &"0".repeat(64)]);
    assert_code(&stale, 2);
    assert_stderr_has(&stale, "has hash");

    // The quorum'th approval continues the run here, from the gate on.
    let hash = gate["hash"].as_str().expect("a gate hash");
    let (done, output) = as_user(&rota, "bob", &["approve", &id, "--hash", hash]);
    assert_code(&output, 0);
    assert_eq!(done["id"], id.as_str());
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let gate_step = step(&done, "approve-deploy");
    assert_eq!(gate_step["status"], "succeeded");
    assert_eq!(gate_step["outputs"]["approved_by"], "local:alice,local:bob");
    assert_eq!(
        step(&done, "build")["attempts"],
        1,
        "build did not run again"
    );
    assert_eq!(step(&done, "rollback")["status"], "skipped");
    assert!(rota.path("deployed").exists());
    assert_eq!(done["gates"][0]["status"], "approved");

    let logs = rota.run(["logs", &id, "deploy"]);
    assert!(
        String::from_utf8_lossy(&logs.stdout)
            .contains("deploying 1.4.2 to prod, approved by local:alice,local:bob"),
        "{}",
        String::from_utf8_lossy(&logs.stdout)
    );
}

#[test]
fn a_local_gate_refuses_its_starter_unless_allowed() {
    let rota = Rota::new();
    let file = rota.write(
        "self.yaml",
        "id: self-gate\nsteps:\n  - id: gate\n    approval: { approvers: [carol, dave] }\n  \
         - id: after\n    needs: [gate]\n    sh: echo after\n",
    );
    let file = file.to_str().expect("utf-8 path");
    let (run, output) = as_user(&rota, "carol", &["run", file]);
    assert_code(&output, 3);
    let id = run_id(&run);
    let (_, own) = as_user(&rota, "carol", &["approve", &id]);
    assert_code(&own, 2);
    assert_stderr_has(&own, "allow_self");
    let (done, output) = as_user(&rota, "dave", &["approve", &id]);
    assert_code(&output, 0);
    assert_eq!(done["status"], "succeeded", "{done:#}");
}

#[test]
fn a_rejected_gate_fails_with_its_reason_and_runs_the_failure_steps() {
    let rota = Rota::new();
    let file = gated_example(&rota);
    let (run, output) = as_user(&rota, "carol", &["run", &file]);
    assert_code(&output, 3);
    let id = run_id(&run);

    let (done, output) = as_user(
        &rota,
        "alice",
        &[
            "reject",
            &id,
            "--step",
            "approve-deploy",
            "--reason",
            "freeze week",
        ],
    );
    assert_code(&output, 1);
    assert_eq!(done["status"], "failed", "{done:#}");
    let gate = step(&done, "approve-deploy");
    assert_eq!(gate["status"], "failed");
    assert_eq!(gate["reason"], "rejected by local:alice: freeze week");
    assert_eq!(step(&done, "deploy")["status"], "skipped");
    assert_eq!(step(&done, "rollback")["status"], "succeeded");
    assert!(rota.path("not-deployed").exists());
    assert!(!rota.path("deployed").exists());
    assert_eq!(done["gates"][0]["status"], "rejected");

    // An ended run's gates take no more decisions.
    let (_, late) = as_user(&rota, "bob", &["approve", &id]);
    assert_code(&late, 2);
    assert_stderr_has(&late, "has ended (failed)");
}

#[test]
fn a_waiting_run_is_cancelled_where_it_stands() {
    let rota = Rota::new();
    let file = gated_example(&rota);
    let (run, output) = as_user(&rota, "carol", &["run", &file]);
    assert_code(&output, 3);
    let id = run_id(&run);

    let cancel = rota.run(["cancel", &id]);
    assert_code(&cancel, 0);
    let shown = rota.json_ok(&["runs", "show", &id]);
    assert_eq!(shown["status"], "cancelled", "{shown:#}");
    assert_eq!(step(&shown, "approve-deploy")["status"], "cancelled");
    assert_eq!(step(&shown, "deploy")["status"], "cancelled");
    assert_eq!(shown["gates"][0]["status"], "cancelled");
    let (_, late) = as_user(&rota, "alice", &["approve", &id]);
    assert_code(&late, 2);
}

/// A token with `role` in every namespace, as `rota tokens create` prints it.
fn token(rota: &Rota, name: &str, role: &str) -> String {
    let created = rota.run(["tokens", "create", name, "--role", role]);
    assert_code(&created, 0);
    String::from_utf8_lossy(&created.stdout).trim().to_owned()
}

const SERVER_GATED: &str = "\
id: gated
steps:
  - id: build
    sh: echo \"version=7\" >> \"$ROTA_OUTPUT\"
  - id: gate
    needs: [build]
    approval: { approvers: [\"role:operator\"], quorum: 2, message: \"ship {{ steps.build.outputs.version }}?\" }
  - id: deploy
    needs: [gate]
    sh: echo shipped {{ steps.build.outputs.version }} && touch shipped
";

const SERVER_EXPIRING: &str = "\
id: expiring
steps:
  - id: gate
    approval: { approvers: [\"role:operator\"], expires: 1s }
  - id: deploy
    needs: [gate]
    sh: touch expired-but-deployed
  - id: on-expiry
    needs: [gate]
    when: failure
    sh: touch expiry-handled
";

#[test]
fn a_server_gate_is_approved_by_two_other_tokens_across_a_restart() {
    let rota = Rota::new();
    rota.write("jobs/gated.yaml", SERVER_GATED);
    let server = rota.serve(&rota.path("jobs"));
    let admin = server.admin_token.clone();
    let alice = token(&rota, "alice", "operator");
    let bob = token(&rota, "bob", "operator");

    // `rota run --server` follows the run until it waits at the gate.
    let started = remote_as(&rota, &server, &admin, &["run", "gated"]);
    assert_code(&started, 3);
    let run = json(&started);
    assert_eq!(run["status"], "awaiting_approval", "{run:#}");
    let id = run_id(&run);

    // The run waits in the store, not in the server: a new server finds it waiting.
    drop(server);
    let server = rota.serve_again(&rota.path("jobs"), &admin);
    let shown = remote_as(&rota, &server, &alice, &["runs", "show", &id]);
    assert_code(&shown, 0);
    assert_eq!(json(&shown)["status"], "awaiting_approval");

    // The admin started the run: an operator role matches, but self-approval does not.
    let own = remote_as(&rota, &server, &admin, &["approve", &id]);
    assert_code(&own, 2);
    assert_stderr_has(&own, "allow_self");

    let first = remote_as(&rota, &server, &alice, &["approve", &id]);
    assert_code(&first, 0);
    assert_eq!(json(&first)["status"], "awaiting_approval");
    let second = remote_as(&rota, &server, &bob, &["approve", &id, "--step", "gate"]);
    assert_code(&second, 0);

    let mut last = Value::Null;
    wait_until("the approved run to finish on the server", || {
        last = json(&remote_as(&rota, &server, &alice, &["runs", "show", &id]));
        last["status"] == "succeeded" || last["status"] == "failed"
    });
    assert_eq!(last["status"], "succeeded", "{last:#}");
    let gate = step(&last, "gate");
    // Token actors are `token:<id>:<name>`.
    let approved_by = gate["outputs"]["approved_by"].as_str().unwrap_or_default();
    let names: Vec<&str> = approved_by
        .split(',')
        .filter_map(|actor| actor.rsplit(':').next())
        .collect();
    assert_eq!(names, ["alice", "bob"], "{approved_by}");
    assert!(rota.path("jobs/shipped").exists());
    assert_eq!(
        last["gates"][0]["decisions"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn a_server_gate_nobody_decides_expires_and_fails() {
    let rota = Rota::new();
    rota.write("jobs/expiring.yaml", SERVER_EXPIRING);
    let server = rota.serve(&rota.path("jobs"));
    let admin = server.admin_token.clone();
    let started = remote_as(&rota, &server, &admin, &["run", "expiring"]);
    assert_code(&started, 3);
    let id = run_id(&json(&started));

    let mut last = Value::Null;
    wait_until("the expired gate to fail the run", || {
        last = json(&remote_as(&rota, &server, &admin, &["runs", "show", &id]));
        last["status"] == "failed" || last["status"] == "succeeded"
    });
    assert_eq!(last["status"], "failed", "{last:#}");
    assert_eq!(
        step(&last, "gate")["reason"],
        "not approved within 1s (the gate's `expires`)"
    );
    assert_eq!(step(&last, "on-expiry")["status"], "succeeded");
    assert!(!rota.path("jobs/expired-but-deployed").exists());
    assert_eq!(last["gates"][0]["status"], "expired");
}

#[test]
fn a_dry_run_shows_the_gate_and_passes_it() {
    let rota = Rota::new();
    let file = gated_example(&rota);
    let (run, output) = as_user(&rota, "carol", &["run", &file, "--dry-run"]);
    assert_eq!(
        step(&run, "approve-deploy")["status"],
        "succeeded",
        "{run:#}"
    );
    assert!(
        run["gates"].as_array().is_none_or(Vec::is_empty),
        "no gate opened"
    );
    let id = run_id(&run);
    let logs = rota.run(["logs", &id, "approve-deploy"]);
    let text = String::from_utf8_lossy(&logs.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("would wait for approval by 2 of alice, bob"),
        "{text}"
    );
}

#[test]
fn a_parent_waits_for_a_child_run_that_stops_at_a_gate_until_it_is_approved() {
    let rota = Rota::new();
    let child = rota.write(
        "gated-child.yaml",
        "id: gated-child\nsteps:\n  - id: gate\n    approval: { approvers: [alice] }\n  \
         - id: after\n    needs: [gate]\n    sh: echo \"done=yes\" >> \"$ROTA_OUTPUT\"\n",
    );
    let put = rota.run(["jobs", "put", child.to_str().expect("utf-8 path")]);
    assert_code(&put, 0);
    let parent = rota.write(
        "calls-gated.yaml",
        "id: calls-gated\nsteps:\n  - id: call\n    job: { id: gated-child }\n",
    );
    let parent = parent.to_str().expect("utf-8 path").to_owned();
    let mut waiting = rota
        .command(["run", "-n", "default", &parent, "--output", "json"])
        .env("USER", "carol")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start rota run");

    let mut child_id = String::new();
    wait_until("the child run to wait at its gate", || {
        let runs = rota.runs();
        match runs.iter().find(|r| r["job"] == "gated-child") {
            Some(run) if run["status"] == "awaiting_approval" => {
                child_id = run_id(run);
                true
            }
            _ => false,
        }
    });
    // The parent still waits for its child.
    assert!(waiting.try_wait().expect("poll rota run").is_none());
    let (approved, output) = as_user(&rota, "alice", &["approve", &child_id]);
    assert_code(&output, 0);
    assert_eq!(approved["status"], "succeeded", "{approved:#}");

    let parent_output = crate::util::finish(waiting, "the parent run");
    assert_code(&parent_output, 0);
    let run = json(&parent_output);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(
        step(&run, "call")["outputs"]["after.done"],
        "yes",
        "{run:#}"
    );
}
