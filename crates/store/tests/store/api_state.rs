//! The API's tables (tokens, secrets, the notification outbox) and the listings and
//! aggregates the API reads (namespaces, pages, metrics), each query at least once, on both
//! backends with the same expectations.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::SignedDuration;
use rota_core::model::{RunStatus, StepStatus};
use rota_store::{
    Backend, DeliveryOutcome, Grant, NewNotification, NewSecret, NewToken, NotificationStatus,
    Role, RunEvent, SealedSecret, SecretUse, StoreError,
};

use super::{TestResult, at, create, finished, fresh, job, new_run, started};

both!(tokens_are_created_listed_paged_touched_and_revoked);
async fn tokens_are_created_listed_paged_touched_and_revoked(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    for (i, id) in ["t-b", "t-a", "t-c"].iter().enumerate() {
        store
            .create_token(&NewToken {
                id: (*id).to_owned(),
                name: format!("token {id}"),
                hash: format!("hash-{id}"),
                grants: vec![
                    Grant {
                        namespace: Some("ops".into()),
                        role: Role::Editor,
                    },
                    Grant {
                        namespace: None,
                        role: Role::Viewer,
                    },
                ],
                created_at: at(i64::try_from(i)? / 2),
            })
            .await?;
    }
    let token = store.token_by_hash("hash-t-a").await?.ok_or("no t-a")?;
    // The every-namespace grant first.
    assert_eq!(token.grants[0].namespace, None);
    assert_eq!(token.grants[1].role, Role::Editor);
    // Oldest first, ties by id; a page continues after its last (created_at, id).
    let ids = |tokens: Vec<rota_store::TokenRecord>| -> Vec<String> {
        tokens.into_iter().map(|t| t.id).collect()
    };
    assert_eq!(ids(store.list_tokens().await?), ["t-a", "t-b", "t-c"]);
    let first = store.list_tokens_page(None, 1).await?;
    let after = (first[0].created_at, first[0].id.as_str());
    assert_eq!(
        ids(store.list_tokens_page(Some(after), 5).await?),
        ["t-b", "t-c"]
    );
    store.touch_token("t-a", at(9)).await?;
    assert_eq!(
        store.token("t-a").await?.and_then(|t| t.last_used_at),
        Some(at(9))
    );
    assert!(store.revoke_token("t-a", at(10)).await?);
    assert!(!store.revoke_token("t-a", at(11)).await?);
    assert_eq!(store.count_live_tokens().await?, 2);
    Ok(())
}

both!(secrets_keep_versions_bytes_and_uses);
async fn secrets_keep_versions_bytes_and_uses(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    let secret = |name: &str, secs| NewSecret {
        namespace: "ops".into(),
        name: name.into(),
        created_at: at(secs),
        created_by: "local".into(),
    };
    // Every byte value survives the round trip.
    let bytes: Vec<u8> = (0..=255).collect();
    for (name, secs) in [("TOKEN", 1), ("TOKEN", 2), ("API", 3)] {
        let sealed = bytes.clone();
        store
            .put_secret::<_, StoreError>(&secret(name, secs), |version| {
                Ok(SealedSecret {
                    nonce: vec![u8::try_from(version).unwrap_or(0); 24],
                    ciphertext: sealed,
                })
            })
            .await?;
    }
    let latest = store
        .latest_secret("ops", "TOKEN")
        .await?
        .ok_or("no TOKEN")?;
    assert_eq!(latest.version, 2);
    assert_eq!(latest.sealed.ciphertext, bytes);
    assert_eq!(latest.sealed.nonce, vec![2; 24]);
    let listed: Vec<(String, i64, i64)> = store
        .list_secrets("ops")
        .await?
        .into_iter()
        .map(|s| (s.name, s.latest_version, s.versions))
        .collect();
    assert_eq!(listed, [("API".into(), 1, 1), ("TOKEN".into(), 2, 2)]);
    let page = store.list_secrets_page("ops", Some("API"), 10).await?;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].created_at, at(1));
    assert_eq!(store.delete_secret("ops", "TOKEN", at(4)).await?, 2);
    assert!(store.latest_secret("ops", "TOKEN").await?.is_none());
    // Versions are never reused.
    let again = store
        .put_secret::<_, StoreError>(&secret("TOKEN", 5), |_| {
            Ok(SealedSecret {
                nonce: vec![0; 24],
                ciphertext: vec![1],
            })
        })
        .await?;
    assert_eq!(again, 3);
    let uses = [
        SecretUse {
            namespace: "ops".into(),
            name: "TOKEN".into(),
            version: Some(3),
        },
        SecretUse {
            namespace: "ops".into(),
            name: "ENV_ONLY".into(),
            version: None,
        },
    ];
    store.record_secret_use("r-1", &uses, at(6)).await?;
    store.record_secret_use("r-1", &uses[..1], at(7)).await?;
    let used = store.run_secret_uses("r-1").await?;
    assert_eq!(used, [uses[1].clone(), uses[0].clone()]);
    assert_eq!(store.check_audit_chain().await?, None);
    Ok(())
}

fn notification(id: &str, run: &str, event: &str, secs: i64) -> NewNotification {
    NewNotification {
        id: id.into(),
        run_id: run.into(),
        namespace: "ops".into(),
        job_id: "deploy".into(),
        rule: 0,
        event: event.into(),
        channel: "webhook".into(),
        url_template: "https://example.test/{{ secrets.HOOK }}".into(),
        headers_template: BTreeMap::from([("X-Run".to_owned(), "{{ run.id }}".to_owned())]),
        render_context: serde_json::json!({ "run": { "id": run } }),
        secret_names: vec!["HOOK".into()],
        payload: "{\"text\":\"done\"}".into(),
        created_at: at(secs),
    }
}

both!(notifications_are_queued_once_claimed_under_a_lease_and_delivered);
async fn notifications_are_queued_once_claimed_under_a_lease_and_delivered(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    create(&store, new_run("r-1", "ops", "deploy", 1, &["a"])).await?;
    create(&store, new_run("r-2", "ops", "deploy", 2, &["a"])).await?;
    let queue = |n: NewNotification| RunEvent::NotificationQueued { notification: n };
    store
        .record(&[
            queue(notification("n-1", "r-1", "failure", 3)),
            // The same rule and event of the same run again: ignored.
            queue(notification("n-dup", "r-1", "failure", 3)),
            queue(notification("n-2", "r-2", "success", 4)),
        ])
        .await?;
    assert_eq!(store.count_pending_notifications(None).await?, 2);
    assert_eq!(store.count_pending_notifications(Some("r-1")).await?, 1);
    let lease = Duration::from_secs(60);
    let claimed = store
        .claim_due_notifications(at(10), lease, 10, Some("r-1"))
        .await?;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].queued, notification("n-1", "r-1", "failure", 3));
    // Held for the lease: not due again meanwhile, for anyone.
    let others = store
        .claim_due_notifications(at(11), lease, 10, None)
        .await?;
    let ids: Vec<&str> = others.iter().map(|n| n.queued.id.as_str()).collect();
    assert_eq!(ids, ["n-2"]);
    store
        .record_delivery(
            "n-1",
            at(12),
            &DeliveryOutcome::Retry {
                error: "503".into(),
                next_attempt_at: at(20),
            },
        )
        .await?;
    store
        .record_delivery("n-1", at(21), &DeliveryOutcome::Sent)
        .await?;
    let n1 = store.notifications_of_run("r-1").await?;
    assert_eq!(n1.len(), 1);
    assert_eq!(n1[0].status, NotificationStatus::Sent);
    assert_eq!(n1[0].attempts, 2);
    assert_eq!(n1[0].last_error.as_deref(), Some("503"));
    assert_eq!(n1[0].sent_at, Some(at(21)));
    assert_eq!(store.count_pending_notifications(None).await?, 1);
    assert_eq!(store.check_audit_chain().await?, None);
    Ok(())
}

both!(metrics_and_the_previous_finished_status_are_read_in_one_query_each);
async fn metrics_and_the_previous_finished_status_are_read_in_one_query_each(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    job(&store, "dev", "deploy").await?;
    for (id, ns, secs, status) in [
        ("r-1", "ops", 1, RunStatus::Failed),
        ("r-2", "ops", 2, RunStatus::Succeeded),
        ("r-3", "dev", 3, RunStatus::Succeeded),
    ] {
        create(&store, new_run(id, ns, "deploy", secs, &["a"])).await?;
        store
            .record(&[
                started(id, "a", 1, secs, None),
                finished(id, "a", 1, StepStatus::Succeeded, 0, secs + 2),
                RunEvent::RunFinished {
                    run_id: id.into(),
                    status,
                    reason: None,
                    at: at(secs + 2),
                },
            ])
            .await?;
    }
    create(&store, new_run("r-4", "ops", "deploy", 4, &["a"])).await?;
    let counts: Vec<(String, String, u64)> = store
        .run_counts_by_status()
        .await?
        .into_iter()
        .map(|c| (c.namespace, c.status, c.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("dev".into(), "succeeded".into(), 1),
            ("ops".into(), "failed".into(), 1),
            ("ops".into(), "queued".into(), 1),
            ("ops".into(), "succeeded".into(), 1),
        ]
    );
    let durations = store.recent_step_durations(at(0)).await?;
    assert_eq!(durations, [Duration::from_secs(2); 3]);
    assert_eq!(
        store
            .previous_finished_status("ops", "deploy", "r-4")
            .await?,
        Some(RunStatus::Succeeded)
    );
    assert_eq!(
        store
            .previous_finished_status("dev", "deploy", "r-3")
            .await?,
        None
    );
    Ok(())
}

both!(namespaces_jobs_and_revisions_are_listed_in_keyset_pages);
async fn namespaces_jobs_and_revisions_are_listed_in_keyset_pages(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    // Text sorts by code point on both backends: upper case before lower case, digits first.
    for (ns, id) in [
        ("ops", "b"),
        ("ops", "a"),
        ("ops", "B"),
        ("Zed", "x"),
        ("dev", "1"),
    ] {
        job(&store, ns, id).await?;
    }
    let names = |page: Vec<rota_store::NamespaceRecord>| -> Vec<(String, u64)> {
        page.into_iter().map(|n| (n.name, n.jobs)).collect()
    };
    assert_eq!(
        names(store.list_namespaces().await?),
        [
            ("Zed".into(), 1),
            ("default".into(), 0),
            ("dev".into(), 1),
            ("ops".into(), 3)
        ]
    );
    assert_eq!(
        names(store.list_namespaces_page(Some("default"), None, 1).await?),
        [("dev".into(), 1)]
    );
    let only = ["ops".to_owned(), "nope".to_owned(), "default".to_owned()];
    assert_eq!(
        names(store.list_namespaces_page(None, Some(&only), 10).await?),
        [("default".into(), 0), ("ops".into(), 3)]
    );
    let ids: Vec<String> = store
        .list_jobs_page("ops", Some("B"), 10)
        .await?
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
    for text in ["v2", "v3"] {
        let rev = rota_store::NewJobRevision::new(
            "ops",
            "a",
            format!("id: a # {text}\n"),
            serde_json::json!({ "id": "a" }),
            at(1) + SignedDuration::from_secs(1),
        );
        store.save_job_revision(&rev).await?;
    }
    let revisions: Vec<i64> = store
        .list_job_revisions_page("ops", "a", Some(3), 10)
        .await?
        .into_iter()
        .map(|r| r.revision)
        .collect();
    assert_eq!(revisions, [2, 1]);
    assert_eq!(store.list_job_revisions("ops", "a").await?.len(), 3);
    Ok(())
}
