//! `rota audit verify|list` and `rota tokens create|list|revoke` on the local store: the
//! audit chain is checked against real edits of the database file, and a token's text is
//! shown once and never listed.

use serde_json::Value;

use crate::util::{
    Rota, assert_code, assert_stderr_has, assert_stdout_has, describe, finish, stdout,
};

/// `rota tokens create NAME ARGS…` in human mode; returns the token printed on stdout.
fn create_token(rota: &Rota, name: &str, args: &[&str]) -> String {
    let mut all = vec!["tokens", "create", name];
    all.extend(args);
    let output = rota.run(&all);
    assert_code(&output, 0);
    let token = stdout(&output);
    assert_eq!(
        token.lines().count(),
        1,
        "one line only: {}",
        describe(&output)
    );
    token.trim().to_owned()
}

/// The token ids of `rota tokens list --output json`, oldest first.
fn token_list(rota: &Rota) -> Vec<Value> {
    let list = rota.json_ok(&["tokens", "list"]);
    list.as_array().expect("an array of tokens").clone()
}

/// Runs one SQL statement on the store's database file, around `rota`, and checks that it
/// changed exactly one row.
pub fn tamper(rota: &Rota, statement: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection as _;
        let options =
            sqlx::sqlite::SqliteConnectOptions::new().filename(rota.home().join("rota.db"));
        let mut connection = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("open the store's database");
        let done = sqlx::query(statement)
            .execute(&mut connection)
            .await
            .expect("run the statement");
        assert_eq!(done.rows_affected(), 1, "{statement}");
        connection.close().await.expect("close the database");
    });
}

/// Four audit entries: two tokens created, one revoked, one secret set.
fn four_entries(rota: &Rota) {
    create_token(rota, "first", &["--role", "viewer"]);
    create_token(rota, "second", &["--role", "admin", "--all-namespaces"]);
    let id = token_list(rota)[0]["id"]
        .as_str()
        .expect("token id")
        .to_owned();
    assert_code(&rota.run(["tokens", "revoke", &id]), 0);
    let child = rota.spawn_with_stdin(["secrets", "set", "API_KEY"], "hunter2\n");
    assert_code(&finish(child, "rota secrets set"), 0);
}

#[test]
fn audit_verify_passes_then_names_the_modified_entry() {
    let rota = Rota::new();
    four_entries(&rota);

    let output = rota.run(["audit", "verify"]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "audit log intact: 4 entries\n");
    let report = rota.json_ok(&["audit", "verify"]);
    assert_eq!(
        report,
        serde_json::json!({ "intact": true, "entries": 4, "break": null })
    );

    let entries = rota.json_ok(&["audit", "list"]);
    let actions: Vec<&str> = entries
        .as_array()
        .expect("an array of entries")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        ["token.create", "token.create", "token.revoke", "secret.set"]
    );
    assert!(
        entries.as_array().expect("array").iter().all(|e| e["actor"]
            .as_str()
            .is_some_and(|actor| actor.starts_with("local:"))),
        "local commands are audited as local:<user>: {entries:#}"
    );
    let newest = rota.json_ok(&["audit", "list", "--limit", "2"]);
    let ids: Vec<i64> = newest
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [3, 4]);
    let table = stdout(&rota.run(["audit", "list"]));
    assert!(
        table.contains("ACTION") && table.contains("token.revoke"),
        "{table}"
    );

    tamper(&rota, "UPDATE audit SET action = 'token.list' WHERE id = 2");
    let output = rota.run(["audit", "verify"]);
    assert_code(&output, 1);
    assert_stderr_has(&output, "audit log broken at entry 2: modified");
    let (report, output) = rota.run_json(&["audit", "verify"]);
    assert_code(&output, 1);
    assert_eq!(report["intact"], false);
    assert_eq!(
        report["break"],
        serde_json::json!({ "entry_id": 2, "what": "modified" })
    );
}

#[test]
fn audit_verify_notices_a_deleted_entry() {
    let rota = Rota::new();
    four_entries(&rota);
    tamper(&rota, "DELETE FROM audit WHERE id = 3");
    let output = rota.run(["audit", "verify"]);
    assert_code(&output, 1);
    assert_stderr_has(&output, "audit log broken at entry 3: deleted");
}

#[test]
fn tokens_are_shown_once_listed_with_grants_and_revocable() {
    let rota = Rota::new();
    let token = create_token(&rota, "ci", &["--role", "operator", "-n", "team-a"]);
    assert!(token.starts_with("rota_"), "{token}");
    let secret = token.trim_start_matches("rota_");

    let list = token_list(&rota);
    assert_eq!(list.len(), 1);
    let listed = &list[0];
    assert_eq!(listed["name"], "ci");
    assert_eq!(
        listed["grants"],
        serde_json::json!([{ "namespace": "team-a", "role": "operator" }])
    );
    assert_eq!(listed["revoked_at"], Value::Null);
    assert!(listed.get("hash").is_none() && listed.get("token").is_none());
    let table = rota.run(["tokens", "list"]);
    assert_code(&table, 0);
    let all_listed = format!("{}{}", stdout(&table), listed);
    assert!(
        !all_listed.contains(secret),
        "the token leaked: {all_listed}"
    );
    assert_stdout_has(&table, "operator@team-a");

    let created = rota.json_ok(&[
        "tokens",
        "create",
        "robot",
        "--role",
        "admin",
        "--all-namespaces",
    ]);
    assert!(
        created["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("rota_"))
    );
    assert_eq!(
        created["grants"],
        serde_json::json!([{ "namespace": null, "role": "admin" }])
    );
    let robot = created["id"].as_str().expect("id").to_owned();

    assert_code(&rota.run(["tokens", "revoke", &robot]), 0);
    let list = token_list(&rota);
    let revoked = list
        .iter()
        .find(|t| t["id"] == robot.as_str())
        .expect("the revoked token is still listed");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert!(
        list.iter()
            .any(|t| t["name"] == "ci" && t["revoked_at"].is_null())
    );
    let again = rota.run(["tokens", "revoke", &robot]);
    assert_code(&again, 1);
}

#[test]
fn tokens_create_rejects_bad_input_with_exit_2() {
    let rota = Rota::new();
    for args in [
        &["tokens", "create", "x", "--role", "boss"][..],
        &["tokens", "create", "x"][..],
        &[
            "tokens",
            "create",
            "x",
            "--role",
            "viewer",
            "-n",
            "a",
            "--all-namespaces",
        ][..],
        &["tokens", "create", " ", "--role", "viewer"][..],
    ] {
        let output = rota.run(args);
        assert_code(&output, 2);
        assert!(stdout(&output).is_empty(), "{}", describe(&output));
    }
    assert!(token_list(&rota).is_empty());
}
