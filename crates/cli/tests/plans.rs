//! `rota plan`, `plans`, `approve`, `reject` and `apply`, locally (the actor is
//! `local:$USER`) and against a real `rota serve`.

use serde_json::Value;

use crate::util::{Rota, as_user, assert_code, assert_stderr_has, json, remote_as, stdout};

/// Touches `applied` in the working directory; two approvers of the local users.
const GATED: &str = "\
id: gated
params:
  target: { type: string, default: staging }
approval: { approvers: [alice, bob], quorum: 2 }
steps:
  - id: touch
    sh: echo deploying {{ params.target }} && touch applied
";

fn plan_id(plan: &Value) -> String {
    plan["id"].as_str().expect("a plan id").to_owned()
}

#[test]
fn local_plan_needs_two_other_users_then_applies_once() {
    let rota = Rota::new();
    let file = rota.write("gated.yaml", GATED);
    let file = file.to_str().expect("utf-8 path");

    // A job with approval rules does not run directly.
    let direct = rota.run(["run", file]);
    assert_code(&direct, 2);
    assert_stderr_has(&direct, "rota plan");

    let (plan, output) = as_user(&rota, "carol", &["plan", file, "-p", "target=prod"]);
    assert_code(&output, 0);
    assert_eq!(plan["status"], "awaiting_approval");
    assert_eq!(plan["created_by"], "local:carol");
    assert_eq!(
        plan["steps"][0]["resolved"]["kind"]["sh"]["command"],
        "echo deploying prod && touch applied"
    );
    let id = plan_id(&plan);

    let (_, early) = as_user(&rota, "carol", &["apply", &id]);
    assert_code(&early, 2);
    assert_stderr_has(&early, "needs 2 more approval");

    let (_, stranger) = as_user(&rota, "mallory", &["approve", &id]);
    assert_code(&stranger, 2);
    // Refused as the API refuses it (403): the same words locally and through a server.
    assert_stderr_has(&stranger, "as one of the approvers of plan");

    let (first, output) = as_user(&rota, "alice", &["approve", &id, "--comment", "ok"]);
    assert_code(&output, 0);
    assert_eq!(first["approvals_needed"], 1);
    let (_, twice) = as_user(&rota, "alice", &["approve", &id]);
    assert_code(&twice, 2);
    assert_stderr_has(&twice, "already decided");
    let (_, stale) = as_user(&rota, "bob", &["approve", &id, "--hash", &"0".repeat(64)]);
    assert_code(&stale, 2);
    assert_stderr_has(&stale, "has hash");
    let hash = plan["hash"].as_str().expect("a hash");
    let (second, output) = as_user(&rota, "bob", &["approve", &id, "--hash", hash]);
    assert_code(&output, 0);
    assert_eq!(second["status"], "approved");

    assert!(!rota.path("applied").exists(), "nothing ran before apply");
    let (run, output) = as_user(&rota, "carol", &["apply", &id]);
    assert_code(&output, 0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["params"]["target"], "prod");
    assert!(
        rota.path("applied").exists(),
        "the applied run ran its step"
    );

    let (_, again) = as_user(&rota, "carol", &["apply", &id]);
    assert_code(&again, 2);
    assert_stderr_has(&again, "already applied");

    let (shown, output) = as_user(&rota, "carol", &["plans", "show", &id]);
    assert_code(&output, 0);
    assert_eq!(shown["status"], "applied");
    assert_eq!(shown["run_id"], run["id"]);
    assert_eq!(shown["decisions"].as_array().map(Vec::len), Some(2));

    let (listed, output) = as_user(&rota, "carol", &["plans", "--status", "applied"]);
    assert_code(&output, 0);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // Every action is in the audit log with its local actor and outcome.
    let (audit, output) = as_user(&rota, "carol", &["audit", "list"]);
    assert_code(&output, 0);
    let text = audit.to_string();
    for expected in [
        "plan.create",
        "plan.approve",
        "plan.apply",
        "local:alice",
        "local:bob",
    ] {
        assert!(text.contains(expected), "audit lacks {expected}: {audit:#}");
    }
}

#[test]
fn local_self_approval_is_refused_unless_allowed() {
    let rota = Rota::new();
    let file = rota.write(
        "gated.yaml",
        &GATED.replace("quorum: 2 }", "quorum: 1, allow_self: false }"),
    );
    let file = file.to_str().expect("utf-8 path");
    let (plan, _) = as_user(&rota, "alice", &["plan", file]);
    let (_, own) = as_user(&rota, "alice", &["approve", &plan_id(&plan)]);
    assert_code(&own, 2);
    assert_stderr_has(&own, "allow_self");

    let allowed = rota.write(
        "allowed.yaml",
        &GATED
            .replace("id: gated", "id: allowed")
            .replace("quorum: 2 }", "quorum: 1, allow_self: true }"),
    );
    let (plan, _) = as_user(&rota, "alice", &["plan", allowed.to_str().expect("path")]);
    let (approved, output) = as_user(&rota, "alice", &["approve", &plan_id(&plan)]);
    assert_code(&output, 0);
    assert_eq!(approved["status"], "approved");
}

#[test]
fn local_reject_ends_the_plan() {
    let rota = Rota::new();
    let file = rota.write("gated.yaml", GATED);
    let (plan, _) = as_user(&rota, "carol", &["plan", file.to_str().expect("path")]);
    let id = plan_id(&plan);
    let (rejected, output) = as_user(&rota, "alice", &["reject", &id, "-m", "no"]);
    assert_code(&output, 0);
    assert_eq!(rejected["status"], "rejected");
    let (_, late) = as_user(&rota, "bob", &["approve", &id]);
    assert_code(&late, 2);
    assert_stderr_has(&late, "not awaiting approval");
}

#[test]
fn local_apply_refuses_after_the_job_file_changed() {
    let rota = Rota::new();
    let source = GATED.replace("quorum: 2 }", "quorum: 1 }");
    let file = rota.write("gated.yaml", &source);
    let (plan, _) = as_user(&rota, "carol", &["plan", file.to_str().expect("path")]);
    let id = plan_id(&plan);
    let (_, output) = as_user(&rota, "alice", &["approve", &id]);
    assert_code(&output, 0);
    rota.write(
        "gated.yaml",
        &source.replace("echo deploying", "echo shipping"),
    );
    let (_, refused) = as_user(&rota, "carol", &["apply", &id]);
    assert_code(&refused, 2);
    assert_stderr_has(&refused, "job revision 1 → 2");
    assert_stderr_has(&refused, "step touch changed");
    assert!(!rota.path("applied").exists());
}

#[test]
fn local_dry_run_plan_runs_every_step_in_its_dry_run_mode() {
    let rota = Rota::new();
    let file = rota.write("gated.yaml", GATED);
    let output = rota
        .command(["plan", file.to_str().expect("path"), "--dry-run"])
        .env("USER", "carol")
        .output()
        .expect("run rota");
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("dry run "), "{text}");
    assert!(!rota.path("applied").exists(), "a dry run touches nothing");
    let (plans, _) = as_user(&rota, "carol", &["plans"]);
    let run_id = plans[0]["dry_run_id"]
        .as_str()
        .expect("a dry run")
        .to_owned();
    let (run, output) = as_user(&rota, "carol", &["runs", "show", &run_id]);
    assert_code(&output, 0);
    assert_eq!(run["dry_run"], true);
    assert_eq!(run["status"], "succeeded");
    let logs = rota.run(["logs", &run_id]);
    assert!(stdout(&logs).contains("would run"), "{}", stdout(&logs));
    // The dry run does not apply the plan.
    assert_eq!(plans[0]["status"], "awaiting_approval");
}

#[test]
fn remote_plan_is_approved_by_another_token_and_applied() {
    let rota = Rota::new();
    rota.write(
        "jobs/gated.yaml",
        &GATED.replace(
            "approvers: [alice, bob], quorum: 2",
            "approvers: [\"role:operator\"], quorum: 1",
        ),
    );
    let server = rota.serve(&rota.path("jobs"));
    let admin = server.admin_token.clone();
    let created = rota.run(["tokens", "create", "alice", "--role", "operator"]);
    assert_code(&created, 0);
    let alice = stdout(&created).trim().to_owned();

    let direct = remote_as(&rota, &server, &admin, &["run", "gated"]);
    assert_code(&direct, 2);
    assert_stderr_has(&direct, "approval rules");

    let output = remote_as(
        &rota,
        &server,
        &admin,
        &["plan", "gated", "-p", "target=prod"],
    );
    assert_code(&output, 0);
    let plan = json(&output);
    let id = plan_id(&plan);
    assert_eq!(plan["params"]["target"], "prod");

    let own = remote_as(&rota, &server, &admin, &["approve", &id]);
    assert_code(&own, 2);
    assert_stderr_has(&own, "allow_self");

    let approved = remote_as(&rota, &server, &alice, &["approve", &id]);
    assert_code(&approved, 0);
    assert_eq!(json(&approved)["status"], "approved");

    let applied = remote_as(&rota, &server, &admin, &["apply", &id]);
    assert_code(&applied, 0);
    let run = json(&applied);
    assert_eq!(run["status"], "succeeded", "{run:#}");

    let shown = remote_as(&rota, &server, &alice, &["plans", "show", &id]);
    assert_code(&shown, 0);
    assert_eq!(json(&shown)["status"], "applied");
    // The same plan read from the server's store without --server.
    let local = rota.json_ok(&["plans", "show", &id]);
    assert_eq!(local, json(&shown));
}

/// Sets `ops/DB_PASS` through `rota secrets set` (value on stdin).
fn set_secret(rota: &Rota, value: &str) {
    let child = rota.spawn_with_stdin(
        ["secrets", "set", "DB_PASS", "-n", "ops"],
        &format!("{value}\n"),
    );
    assert_code(&crate::util::finish(child, "rota secrets set"), 0);
}

#[test]
fn local_plan_names_secrets_never_their_values_and_apply_sees_a_new_version() {
    let rota = Rota::new();
    set_secret(&rota, "hunter2-plan-secret");
    let file = rota.write(
        "secret.yaml",
        "id: uses-secret\nnamespace: ops\nsecrets: [DB_PASS]\n\
         approval: { approvers: [alice] }\n\
         steps:\n  - id: use\n    sh: echo connecting with {{ secrets.DB_PASS }}\n",
    );
    let file = file.to_str().expect("utf-8 path");
    let human = rota
        .command(["plan", file])
        .env("USER", "carol")
        .output()
        .expect("run rota");
    assert_code(&human, 0);
    let (plan, output) = as_user(&rota, "carol", &["plan", file]);
    assert_code(&output, 0);
    for text in [stdout(&human), stdout(&output), plan.to_string()] {
        assert!(!text.contains("hunter2-plan-secret"), "{text}");
    }
    assert!(stdout(&human).contains("{{ secrets.DB_PASS }}"));
    assert_eq!(plan["secrets"][0]["version"], 1);
    let id = plan_id(&plan);
    let (_, output) = as_user(&rota, "alice", &["approve", &id]);
    assert_code(&output, 0);
    set_secret(&rota, "rotated-plan-secret");
    let (_, refused) = as_user(&rota, "carol", &["apply", &id]);
    assert_code(&refused, 2);
    assert_stderr_has(&refused, "secret DB_PASS version 1 → 2");
}
