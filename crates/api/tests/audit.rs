//! The audit log: mutating calls are recorded, and tampering with the SQLite file directly
//! (edit, delete, reorder, truncate) is detected and located.

use axum::http::Method;
use rota_ops::audit::{VerifyAuditError, verify_audit};
use rota_store::{AuditBreakKind, NewAuditEntry, Store};
use sqlx::sqlite::SqlitePoolOptions;

use crate::support::Env;

#[tokio::test]
async fn mutating_calls_are_audited_with_their_outcome() {
    let env = Env::new().await;
    let running = env.ops_runs[0].clone();
    let cancel = format!("/api/v1/runs/{running}/cancel");
    env.call(Method::POST, &cancel, Some("viewer_ops"), None)
        .await;
    env.call(Method::POST, &cancel, Some("operator_ops"), None)
        .await;
    create_viewer_token(&env).await;
    // Reads are not audited.
    env.get("/api/v1/runs", "admin").await;

    let page = env.get("/api/v1/audit?limit=500", "admin").await;
    // The engine's own entries (the seeded runs' state changes) come first; the calls follow.
    let entries: Vec<&serde_json::Value> = page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["actor"] != "engine")
        .collect();
    let summary: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (field("actor"), field("action"), field("result"))
        })
        .collect();
    let actor = |persona: &str| format!("token:{}:{persona}", env.token_ids[persona]);
    assert_eq!(
        summary,
        [
            (actor("viewer_ops"), "run.cancel".into(), "forbidden".into()),
            (actor("operator_ops"), "run.cancel".into(), "ok".into()),
            (actor("admin"), "token.create".into(), "ok".into()),
        ]
    );
    assert_eq!(entries[1]["target"], format!("run/{running}"));
    assert!(
        env.store
            .cancel_requested(&running)
            .await
            .expect("cancel flag")
    );
    verify_audit(&env.store, None)
        .await
        .expect("an untouched chain verifies");
}

/// A store with five audit entries, and a raw connection to its file.
async fn chain() -> (tempfile::TempDir, Store, sqlx::SqlitePool) {
    let home = tempfile::tempdir().expect("temp dir");
    let store = Store::open(home.path()).await.expect("store");
    for n in 1..=5 {
        let entry = NewAuditEntry {
            at: jiff::Timestamp::now(),
            actor: format!("token:t{n}:someone"),
            action: "run.cancel".into(),
            target: format!("run/r{n}"),
            source: Some("127.0.0.1:4000".into()),
            result: "ok".into(),
        };
        store.append_audit(&entry).await.expect("append");
    }
    verify_audit(&store, None).await.expect("intact");
    let raw = raw_connection(home.path()).await;
    (home, store, raw)
}

/// An admin's audited mutation: creating the viewer token `ci`.
async fn create_viewer_token(env: &Env) {
    env.create_token(r#"{"name": "ci", "grants": [{"role": "viewer"}]}"#)
        .await;
}

/// A connection to the store's file beside the store, to tamper with rows as an attacker
/// with file access would.
async fn raw_connection(home: &std::path::Path) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}", home.join(rota_store::DB_FILE).display());
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("raw connection")
}

async fn tamper(raw: &sqlx::SqlitePool, sql: &str) {
    for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(statement).execute(raw).await.expect(statement);
    }
}

/// Where verification finds the break after `sql` tampers with a five-entry chain.
async fn break_after(sql: &str) -> (i64, AuditBreakKind) {
    let (_home, store, raw) = chain().await;
    tamper(&raw, sql).await;
    broken_at(&store).await
}

async fn broken_at(store: &Store) -> (i64, AuditBreakKind) {
    match verify_audit(store, None).await {
        Err(VerifyAuditError::Broken(b)) => (b.entry_id, b.what),
        other => panic!("expected a break, got {other:?}"),
    }
}

/// One test per kind of tampering: each names what was done, the SQL doing it, and the
/// entry and kind of break verification must report.
macro_rules! tampering_is_found {
    ($($name:ident: $sql:expr => ($id:expr, $kind:ident);)*) => {$(
        #[tokio::test]
        async fn $name() {
            assert_eq!(break_after($sql).await, ($id, AuditBreakKind::$kind));
        }
    )*};
}

tampering_is_found! {
    an_edited_entry_is_found:
        "UPDATE audit SET actor = 'token:t9:mallory' WHERE id = 3" => (3, Modified);
    a_deleted_entry_is_found: "DELETE FROM audit WHERE id = 2" => (2, Deleted);
    reordered_entries_are_found:
        "UPDATE audit SET id = 100 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3; \
         UPDATE audit SET id = 3 WHERE id = 100" => (2, OutOfOrder);
    cutting_off_the_last_entries_is_found: "DELETE FROM audit WHERE id >= 4" => (4, Deleted);
    a_forged_hash_is_found:
        "UPDATE audit SET hash = (SELECT hash FROM audit WHERE id = 1) WHERE id = 2"
            => (2, Modified);
}

#[tokio::test]
async fn the_api_reports_where_the_chain_was_tampered_with() {
    let env = Env::new().await;
    create_viewer_token(&env).await;
    let intact = env.get("/api/v1/audit/verify", "admin").await;
    assert_eq!(intact.status, 200, "{}", intact.body);
    assert_eq!(intact.body["intact"], true, "{}", intact.body);

    let raw = raw_connection(env._home.path()).await;
    tamper(&raw, "UPDATE audit SET result = 'ok' WHERE id = 1").await;
    tamper(&raw, "UPDATE audit SET actor = 'someone-else' WHERE id = 1").await;
    let broken = env.get("/api/v1/audit/verify", "admin").await;
    assert_eq!(broken.status, 200, "{}", broken.body);
    assert_eq!(broken.body["intact"], false, "{}", broken.body);
    assert_eq!(broken.body["broken_entry"], 1, "{}", broken.body);
    assert!(
        broken.body["problem"]
            .as_str()
            .is_some_and(|p| p.contains("modified")),
        "{}",
        broken.body
    );
}
