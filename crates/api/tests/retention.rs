//! Retention through the API and the application layer on a real SQLite store: `POST
//! /api/v1/prune` deletes old finished runs with everything they hold and nothing else;
//! pruning audit entries checkpoints the chain, which still verifies and still finds
//! tampering after it; a namespace's retention setting is applied as the server does.

use axum::http::Method;
use jiff::{SignedDuration, Timestamp};
use rota_ops::audit::{VerifyAuditError, verify_audit};
use rota_ops::auth::Principal;
use rota_ops::records::PruneRequest;
use rota_ops::service::Retention as _;
use rota_store::{AuditBreakKind, NewAuditEntry, Store};
use sqlx::sqlite::SqlitePoolOptions;

use crate::support::{Env, LOG_LINES, seed_run};

fn days_ago(days: i64) -> Timestamp {
    Timestamp::now() - SignedDuration::from_hours(24 * days)
}

/// A connection to the store's file beside the store, to look at (or tamper with) rows.
async fn raw(home: &std::path::Path) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}", home.join(rota_store::DB_FILE).display());
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("raw connection")
}

async fn rows(raw: &sqlx::SqlitePool, table: &str, run: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE run_id = $1"))
        .bind(run)
        .fetch_one(raw)
        .await
        .expect("count")
}

async fn tamper(raw: &sqlx::SqlitePool, sql: &str) {
    for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(statement).execute(raw).await.expect(statement);
    }
}

async fn last_audit(store: &Store) -> rota_store::AuditRecord {
    store
        .list_audit(0, 1000)
        .await
        .expect("audit")
        .pop()
        .expect("an entry")
}

/// Old finished runs in `ops` (two) and `web` (one), an old run still running, a recent
/// finished one; each with log lines.
async fn seed_old_runs(env: &Env) {
    let seeds = [
        ("oldops1", "ops", "deploy", 2, 40, false),
        ("oldops2", "ops", "deploy", 2, 35, false),
        ("oldweb", "web", "site", 1, 40, false),
        ("oldrunning", "ops", "deploy", 2, 40, true),
        ("recent", "ops", "deploy", 2, 1, false),
    ];
    for (id, ns, job, revision, age, running) in seeds {
        seed_run(
            &env.store,
            id,
            ns,
            job,
            revision,
            days_ago(age),
            running,
            true,
        )
        .await;
    }
}

#[tokio::test]
async fn prune_deletes_old_finished_runs_with_what_they_hold_and_nothing_else() {
    let env = Env::new().await;
    seed_old_runs(&env).await;
    let raw = raw(env._home.path()).await;
    let audited_before = last_audit(&env.store).await.id;

    let body = r#"{"older_than": "30d", "namespace": "ops", "dry_run": true}"#;
    let dry = env
        .call(Method::POST, "/api/v1/prune", Some("admin"), Some(body))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(dry.body["runs"], 2);
    assert_eq!(dry.body["log_lines"], 2 * LOG_LINES);
    assert_eq!(dry.body["step_runs"], 4);
    assert_eq!(dry.body["dry_run"], true);
    assert!(dry.body["log_bytes"].as_u64().is_some_and(|b| b > 0));
    // A dry run deletes nothing and is not audited.
    assert!(env.store.get_run("oldops1").await.expect("read").is_some());
    assert_eq!(last_audit(&env.store).await.id, audited_before);

    let body = r#"{"older_than": "30d", "namespace": "ops"}"#;
    let done = env
        .call(Method::POST, "/api/v1/prune", Some("admin"), Some(body))
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    for key in [
        "runs",
        "step_runs",
        "attempts",
        "log_lines",
        "log_bytes",
        "events",
    ] {
        assert_eq!(done.body[key], dry.body[key], "{key}");
    }
    assert_eq!(done.body["dry_run"], false);
    for gone in ["oldops1", "oldops2"] {
        assert!(env.store.get_run(gone).await.expect("read").is_none());
        for table in ["logs", "events", "step_runs", "step_attempts"] {
            assert_eq!(rows(&raw, table, gone).await, 0, "{table} of {gone}");
        }
        env.get(&format!("/api/v1/runs/{gone}"), "admin")
            .await
            .assert_problem(404, "not-found");
    }
    // Another namespace, a run still running and a recent one stay, with their logs.
    for kept in ["oldweb", "oldrunning", "recent"] {
        assert!(
            env.store.get_run(kept).await.expect("read").is_some(),
            "{kept}"
        );
        assert_eq!(rows(&raw, "logs", kept).await, LOG_LINES as i64, "{kept}");
    }
    for seeded in &env.ops_runs {
        assert!(env.store.get_run(seeded).await.expect("read").is_some());
    }

    // One audit entry, with the cut-off and the counts; the chain verifies.
    let entry = last_audit(&env.store).await;
    assert_eq!(entry.action, "runs.prune");
    assert_eq!(entry.result, "ok");
    assert_eq!(
        entry.actor,
        format!("token:{}:admin", env.token_ids["admin"])
    );
    assert!(
        entry.target.starts_with("runs/ops before "),
        "{}",
        entry.target
    );
    assert!(entry.target.contains(": 2 runs,"), "{}", entry.target);
    assert!(
        entry
            .target
            .contains(&format!("{} log lines", 2 * LOG_LINES)),
        "{}",
        entry.target
    );
    assert_eq!(entry.id, audited_before + 1);
    verify_audit(&env.store, None)
        .await
        .expect("the chain verifies");

    // Every namespace: the old web run goes too.
    let all = env
        .call(
            Method::POST,
            "/api/v1/prune",
            Some("admin"),
            Some(r#"{"older_than": "30d"}"#),
        )
        .await;
    assert_eq!(all.body["runs"], 1, "{}", all.body);
    assert!(env.store.get_run("oldweb").await.expect("read").is_none());
}

#[tokio::test]
async fn prune_is_for_admins_and_refusals_are_audited() {
    let env = Env::new().await;
    seed_old_runs(&env).await;
    let body = r#"{"older_than": "30d", "namespace": "ops"}"#;
    env.call(
        Method::POST,
        "/api/v1/prune",
        Some("editor_ops"),
        Some(body),
    )
    .await
    .assert_problem(403, "forbidden");
    let entry = last_audit(&env.store).await;
    assert_eq!(
        (
            entry.action.as_str(),
            entry.target.as_str(),
            entry.result.as_str()
        ),
        ("runs.prune", "runs/ops", "forbidden")
    );
    assert!(env.store.get_run("oldops1").await.expect("read").is_some());

    // Bad durations, and audit entries with one namespace, are refused.
    for body in [
        r#"{"older_than": "banana"}"#,
        r#"{"older_than": "0s"}"#,
        r#"{"older_than": "30d", "namespace": "ops", "audit": true}"#,
    ] {
        env.call(Method::POST, "/api/v1/prune", Some("admin"), Some(body))
            .await
            .assert_problem(422, "invalid-body");
    }
}

/// A store whose audit log has five entries from 40 days ago, then three from now.
async fn aged_chain() -> (tempfile::TempDir, Store, sqlx::SqlitePool) {
    let home = tempfile::tempdir().expect("temp dir");
    let store = Store::open(home.path()).await.expect("store");
    for n in 1..=8 {
        let entry = NewAuditEntry {
            at: if n <= 5 {
                days_ago(40)
            } else {
                Timestamp::now()
            },
            actor: format!("token:t{n}:someone"),
            action: "run.cancel".into(),
            target: format!("run/r{n}"),
            source: None,
            result: "ok".into(),
        };
        store.append_audit(&entry).await.expect("append");
    }
    let raw = raw(home.path()).await;
    (home, store, raw)
}

fn prune_audit(older_than: &str) -> PruneRequest {
    PruneRequest {
        older_than: older_than.into(),
        namespace: None,
        dry_run: false,
        audit: true,
    }
}

async fn broken_at(store: &Store) -> (i64, AuditBreakKind) {
    match verify_audit(store, None).await {
        Err(VerifyAuditError::Broken(b)) => (b.entry_id, b.what),
        other => panic!("expected a break, got {other:?}"),
    }
}

#[tokio::test]
async fn pruned_audit_entries_leave_a_checkpointed_chain_that_verifies() {
    let (_home, store, _raw) = aged_chain().await;
    let hash_of_5 = store.list_audit(4, 1).await.expect("audit")[0].hash.clone();
    let session = rota_ops::Ops::new(store.clone()).session(Principal::admin("ops-test"), None);

    let dry = PruneRequest {
        dry_run: true,
        ..prune_audit("30d")
    };
    assert_eq!(session.prune(dry).await.expect("dry run").audit_entries, 5);
    assert_eq!(store.list_audit(0, 100).await.expect("audit").len(), 8);

    let report = session.prune(prune_audit("30d")).await.expect("prune");
    assert_eq!(report.audit_entries, 5);
    let entries = store.list_audit(0, 100).await.expect("audit");
    let summary: Vec<(i64, &str)> = entries.iter().map(|e| (e.id, e.action.as_str())).collect();
    assert_eq!(
        summary,
        [
            (6, "run.cancel"),
            (7, "run.cancel"),
            (8, "run.cancel"),
            (9, "audit.checkpoint"),
            (10, "runs.prune"),
        ]
    );
    // The checkpoint names the new start and the last pruned entry's hash.
    assert_eq!(entries[3].target, format!("audit/6:{hash_of_5}"));
    assert!(
        entries[4].target.ends_with(", 5 audit entries"),
        "{}",
        entries[4].target
    );
    verify_audit(&store, None)
        .await
        .expect("the pruned chain verifies");

    // A second prune with nothing old enough moves nothing and still verifies.
    let again = session.prune(prune_audit("30d")).await.expect("prune");
    assert_eq!(again.audit_entries, 0);
    verify_audit(&store, None).await.expect("still verifies");
    // Pruning up to now moves the anchor past the first checkpoint: still verifies.
    let all = session.prune(prune_audit("1s")).await;
    // Entries appended within the last second stay; either way the chain holds.
    all.expect("prune");
    verify_audit(&store, None)
        .await
        .expect("verifies after a second checkpoint");
}

#[tokio::test]
async fn tampering_after_a_prune_is_still_found() {
    let (_home, store, raw) = aged_chain().await;
    let session = rota_ops::Ops::new(store.clone()).session(Principal::admin("ops-test"), None);
    session.prune(prune_audit("30d")).await.expect("prune");
    tamper(&raw, "UPDATE audit SET actor = 'mallory' WHERE id = 7").await;
    assert_eq!(broken_at(&store).await, (7, AuditBreakKind::Modified));
}

#[tokio::test]
async fn entries_removed_after_the_anchor_are_found() {
    let (_home, store, raw) = aged_chain().await;
    let session = rota_ops::Ops::new(store.clone()).session(Principal::admin("ops-test"), None);
    session.prune(prune_audit("30d")).await.expect("prune");
    tamper(&raw, "DELETE FROM audit WHERE id = 7").await;
    assert_eq!(broken_at(&store).await, (7, AuditBreakKind::Deleted));
}

#[tokio::test]
async fn a_forged_anchor_is_found() {
    let (_home, store, raw) = aged_chain().await;
    let session = rota_ops::Ops::new(store.clone()).session(Principal::admin("ops-test"), None);
    session.prune(prune_audit("30d")).await.expect("prune");
    // Entries 6 and 7 removed from the start, the anchor moved to hide it: every kept entry
    // links up, but no checkpoint records that anchor.
    tamper(
        &raw,
        "UPDATE audit_anchor SET first_id = 8, prev_hash = (SELECT hash FROM audit WHERE id = 7); \
         DELETE FROM audit WHERE id IN (6, 7)",
    )
    .await;
    assert_eq!(broken_at(&store).await, (7, AuditBreakKind::Deleted));
}

#[tokio::test]
async fn a_broken_chain_is_not_pruned() {
    let (_home, store, raw) = aged_chain().await;
    tamper(&raw, "UPDATE audit SET actor = 'mallory' WHERE id = 2").await;
    let session = rota_ops::Ops::new(store.clone()).session(Principal::admin("ops-test"), None);
    let refused = session.prune(prune_audit("30d")).await;
    assert!(
        matches!(refused, Err(rota_ops::OpsError::Conflict(_))),
        "{refused:?}"
    );
    // The evidence stays.
    assert_eq!(broken_at(&store).await, (2, AuditBreakKind::Modified));
}

#[tokio::test]
async fn a_namespace_retention_is_listed_and_applied_like_a_prune() {
    let env = Env::new().await;
    seed_old_runs(&env).await;
    let set = env
        .call(
            Method::PUT,
            "/api/v1/namespaces/ops/retention",
            Some("admin"),
            Some(r#"{"retention": "30 days"}"#),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["retention"], "30d");
    let listed = env.get("/api/v1/namespaces", "admin").await;
    let retention = |ns: &str| {
        listed.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|n| n["name"] == ns)
            .map(|n| n["retention"].clone())
    };
    assert_eq!(retention("ops"), Some(serde_json::json!("30d")));
    assert_eq!(retention("web"), Some(serde_json::Value::Null));
    for body in [r#"{"retention": "0s"}"#, r#"{"retention": "soon"}"#] {
        env.call(
            Method::PUT,
            "/api/v1/namespaces/ops/retention",
            Some("admin"),
            Some(body),
        )
        .await
        .assert_problem(422, "invalid-body");
    }

    // What `rota serve` does at start and hourly.
    let server =
        rota_ops::Ops::new(env.store.clone()).session(Principal::admin("rota serve"), None);
    let reports = server.apply_retention().await.expect("retention pass");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].namespace.as_deref(), Some("ops"));
    assert_eq!(reports[0].runs, 2);
    assert!(env.store.get_run("oldops1").await.expect("read").is_none());
    assert!(env.store.get_run("oldweb").await.expect("read").is_some());
    assert!(env.store.get_run("recent").await.expect("read").is_some());
    let entry = last_audit(&env.store).await;
    assert_eq!(
        (entry.actor.as_str(), entry.action.as_str()),
        ("rota serve", "runs.prune")
    );
    // A pass that deletes nothing adds no entry.
    server.apply_retention().await.expect("retention pass");
    assert_eq!(last_audit(&env.store).await.id, entry.id);
    verify_audit(&env.store, None)
        .await
        .expect("the chain verifies");

    // `null` keeps runs forever again.
    let cleared = env
        .call(
            Method::PUT,
            "/api/v1/namespaces/ops/retention",
            Some("admin"),
            Some(r#"{"retention": null}"#),
        )
        .await;
    assert_eq!(cleared.body["retention"], serde_json::Value::Null);
    assert!(
        env.store
            .retention_settings()
            .await
            .expect("settings")
            .is_empty()
    );
}
