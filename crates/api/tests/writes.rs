//! The write routes: saving and validating job files, starting runs, pausing and resuming
//! schedules, and secrets. Each checks what the store holds afterwards, the 4xx problems
//! of bad input, and the audit entries written.

use axum::http::Method;
use jiff::Timestamp;
use rota_store::{NewOccurrence, OccurrenceKind, Owner};

use crate::support::{Env, SEEDED_SECRET_VALUE, job_source};

/// A `{"format": …, "source": …}` body.
fn submission(format: &str, source: &str) -> String {
    serde_json::json!({ "format": format, "source": source }).to_string()
}

#[tokio::test]
async fn a_job_file_is_saved_as_a_new_revision_once() {
    let env = Env::new().await;
    let uri = "/api/v1/namespaces/ops/jobs/deploy";
    let body = submission("yaml", &job_source("ops", "deploy", "from the API"));
    let created = env
        .call(Method::PUT, uri, Some("editor_ops"), Some(&body))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["revision"], 3);
    assert_eq!(created.body["definition"]["description"], "from the API");
    assert!(created.body["source_path"].is_null());

    let again = env
        .call(Method::PUT, uri, Some("editor_ops"), Some(&body))
        .await;
    assert_eq!(again.status, 200, "unchanged text: {}", again.body);
    assert_eq!(again.body["revision"], 3);
    assert_eq!(again.body["hash"], created.body["hash"]);

    let latest = env.get(uri, "viewer_ops").await;
    assert_eq!(latest.body["revision"], 3);
    let revisions = env.store.list_job_revisions("ops", "deploy").await;
    assert_eq!(revisions.expect("revisions").len(), 3);

    // A job file in TOML for a new job, without a namespace of its own.
    let toml = "id = \"nightly\"\n[[steps]]\nid = \"main\"\nsh = \"true\"\n";
    let new = env
        .call(
            Method::PUT,
            "/api/v1/namespaces/ops/jobs/nightly",
            Some("editor_ops"),
            Some(&submission("toml", toml)),
        )
        .await;
    assert_eq!(new.status, 201, "{}", new.body);
    assert_eq!(new.body["revision"], 1);
    assert_eq!(new.body["namespace"], "ops");

    let entries = crate::support::api_audit(&env).await;
    let puts: Vec<_> = entries.iter().filter(|e| e.0 == "job.put").collect();
    assert_eq!(puts.len(), 3);
    assert_eq!(puts[0].1, "job/ops/deploy");
    assert!(puts.iter().all(|e| e.2 == "ok"));
}

#[tokio::test]
async fn invalid_job_files_are_422_problems_with_positions() {
    let env = Env::new().await;
    let uri = "/api/v1/namespaces/ops/jobs/deploy";
    let broken = "id: deploy\nsteps:\n  - id: a\n    sh: echo\n    needs: [missing]\n";
    let answer = env
        .call(
            Method::PUT,
            uri,
            Some("editor_ops"),
            Some(&submission("yaml", broken)),
        )
        .await;
    answer.assert_problem(422, "invalid-job");
    let problems = answer.body["problems"].as_array().expect("problems");
    assert!(!problems.is_empty());
    assert_eq!(problems[0]["line"], 5, "{}", answer.body);
    assert!(problems[0]["column"].as_u64().is_some_and(|c| c > 0));
    assert!(
        problems[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing"))
    );

    // The same file through validate: same problems, nothing saved either way.
    let validated = env
        .call(
            Method::POST,
            "/api/v1/namespaces/ops/jobs/validate",
            Some("viewer_ops"),
            Some(&submission("yaml", broken)),
        )
        .await;
    validated.assert_problem(422, "invalid-job");
    assert_eq!(validated.body["problems"], answer.body["problems"]);

    // Another job's file, another namespace's file, two jobs in one file.
    let cases = [
        (job_source("ops", "other", "x"), "not \"deploy\""),
        (job_source("web", "deploy", "x"), "another namespace"),
        (
            "jobs:\n  - id: deploy\n    steps: [{id: a, sh: 'true'}]\n  \
             - id: second\n    steps: [{id: a, sh: 'true'}]\n"
                .to_owned(),
            "exactly one job",
        ),
    ];
    for (source, why) in cases {
        let answer = env
            .call(
                Method::PUT,
                uri,
                Some("editor_ops"),
                Some(&submission("yaml", &source)),
            )
            .await;
        answer.assert_problem(422, "invalid-job");
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(why), "{detail}");
    }
    // A format the API does not take, and a body that is not JSON.
    env.call(
        Method::PUT,
        uri,
        Some("editor_ops"),
        Some(&submission("xml", "<job/>")),
    )
    .await
    .assert_problem(422, "invalid-body");
    env.call(Method::PUT, uri, Some("editor_ops"), Some("{format"))
        .await
        .assert_problem(400, "malformed-json");

    let revisions = env.store.list_job_revisions("ops", "deploy").await;
    assert_eq!(revisions.expect("revisions").len(), 2, "nothing was saved");
    let failed: Vec<_> = crate::support::api_audit(&env)
        .await
        .into_iter()
        .filter(|e| e.0 == "job.put")
        .map(|e| e.2)
        .collect();
    assert_eq!(failed, ["invalid-job"; 4], "refused saves are audited");
}

#[tokio::test]
async fn validate_lists_the_jobs_of_a_valid_file() {
    let env = Env::new().await;
    let answer = env
        .call(
            Method::POST,
            "/api/v1/namespaces/ops/jobs/validate",
            Some("viewer_ops"),
            Some(&submission("yaml", &job_source("ops", "fresh", "new"))),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["valid"], true);
    assert_eq!(answer.body["jobs"][0]["id"], "fresh");
    assert_eq!(
        answer.body["jobs"][0]["params"],
        serde_json::json!(["target", "replicas"])
    );
    assert_eq!(
        answer.body["jobs"][0]["steps"],
        serde_json::json!(["build", "ship"])
    );
    let saved = env.store.latest_job_revision("ops", "fresh").await;
    assert!(saved.expect("read").is_none(), "validate saves nothing");
    assert!(
        crate::support::api_audit(&env).await.is_empty(),
        "validate is not audited"
    );
}

#[tokio::test]
async fn a_started_run_is_queued_for_a_server_with_resolved_params() {
    let env = Env::new().await;
    let answer = env
        .call(
            Method::POST,
            "/api/v1/namespaces/ops/jobs/deploy/runs",
            Some("operator_ops"),
            Some(r#"{"params": {"replicas": 3}}"#),
        )
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = answer.body["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 26);
    assert_eq!(
        answer.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/api/v1/runs/{id}").as_str())
    );
    assert_eq!(answer.body["status"], "queued");
    assert_eq!(answer.body["trigger"], "api");
    assert_eq!(answer.body["job_revision"], 2);
    assert_eq!(answer.body["dry_run"], false);
    assert_eq!(
        answer.body["params"],
        serde_json::json!({"replicas": 3, "target": "staging"})
    );
    let steps: Vec<_> = answer.body["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["id"].clone(), s["status"].clone()))
        .collect();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].0, "build");

    let fetched = env.get(&format!("/api/v1/runs/{id}"), "viewer_ops").await;
    assert_eq!(fetched.body["status"], "queued");

    // What a server does with it: it finds it in the queue and claims it.
    let queued = env.store.queued_run_ids().await.expect("queue");
    assert!(queued.contains(&id));
    let owner = Owner {
        host: "server".to_owned(),
        pid: 1,
        start_token: "s".to_owned(),
    };
    let claimed = env
        .store
        .claim_queued_run(&id, &owner, Timestamp::now(), None);
    assert!(claimed.await.expect("claim"));

    let entries = crate::support::api_audit(&env).await;
    assert_eq!(
        entries,
        [(
            "run.create".to_owned(),
            format!("run/{id}"),
            "ok".to_owned()
        )]
    );
}

#[tokio::test]
async fn run_parameters_that_do_not_fit_are_422_problems_naming_each() {
    let env = Env::new().await;
    let uri = "/api/v1/namespaces/ops/jobs/deploy/runs";
    let answer = env
        .call(
            Method::POST,
            uri,
            Some("operator_ops"),
            Some(r#"{"params": {"replicas": "many", "colour": "red"}}"#),
        )
        .await;
    answer.assert_problem(422, "invalid-params");
    let mut named: Vec<_> = answer.body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["param"].as_str().unwrap_or_default().to_owned())
        .collect();
    named.sort();
    assert_eq!(named, ["colour", "replicas"]);

    env.call(
        Method::POST,
        uri,
        Some("operator_ops"),
        Some(r#"{"params": [1]}"#),
    )
    .await
    .assert_problem(422, "invalid-body");
    env.call(
        Method::POST,
        "/api/v1/namespaces/ops/jobs/nothing/runs",
        Some("operator_ops"),
        Some("{}"),
    )
    .await
    .assert_problem(404, "not-found");
    let queued = env.store.queued_run_ids().await.expect("queue");
    assert!(queued.is_empty(), "nothing was queued: {queued:?}");
    let results: Vec<_> = crate::support::api_audit(&env)
        .await
        .into_iter()
        .map(|e| e.2)
        .collect();
    assert_eq!(results, ["invalid-params", "not-found"]);
}

#[tokio::test]
async fn schedules_pause_resume_and_show_their_history() {
    let env = Env::new().await;
    let base = "/api/v1/namespaces/ops/jobs/deploy/schedule";
    let paused = env
        .call(
            Method::POST,
            &format!("{base}/pause"),
            Some("editor_ops"),
            None,
        )
        .await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.body["paused"], true);
    let states = env.store.schedule_states().await.expect("states");
    assert_eq!(states.len(), 1);
    assert!(states[0].paused);

    let from = "2030-01-02T03:04:05Z";
    let resumed = env
        .call(
            Method::POST,
            &format!("{base}/resume"),
            Some("editor_ops"),
            Some(&format!(r#"{{"from": "{from}"}}"#)),
        )
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(resumed.body["paused"], false);
    let states = env.store.schedule_states().await.expect("states");
    assert!(!states[0].paused);
    let expected: Timestamp = from.parse().expect("instant");
    assert_eq!(states[0].resume_from, Some(expected));

    env.call(
        Method::POST,
        &format!("{base}/resume"),
        Some("editor_ops"),
        Some(r#"{"from": "yesterday"}"#),
    )
    .await
    .assert_problem(422, "invalid-body");
    // An empty body declared as JSON resumes from now; text not declared as JSON is refused.
    let empty = env
        .call(
            Method::POST,
            &format!("{base}/resume"),
            Some("editor_ops"),
            Some(""),
        )
        .await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    let states = env.store.schedule_states().await.expect("states");
    assert!(states[0].resume_from.is_some_and(|t| t < expected));
    let request = axum::http::Request::post(format!("{base}/resume"))
        .header(
            "authorization",
            format!("Bearer {}", env.token("editor_ops")),
        )
        .body(axum::body::Body::from(r#"{"from": "now"}"#))
        .expect("request");
    crate::support::send(&env.app, request)
        .await
        .assert_problem(415, "unsupported-media-type");
    env.call(
        Method::POST,
        "/api/v1/namespaces/ops/jobs/nothing/schedule/pause",
        Some("editor_ops"),
        None,
    )
    .await
    .assert_problem(404, "not-found");

    let at = Timestamp::from_second(1_900_000_000).expect("instant");
    let occurrence = NewOccurrence {
        namespace: "ops".to_owned(),
        job_id: "deploy".to_owned(),
        trigger_key: "cron:0 * * * *@UTC".to_owned(),
        scheduled_at: at,
        recorded_at: at,
        kind: OccurrenceKind::Skipped,
        reason: Some("paused".to_owned()),
    };
    let recorded = env.store.record_occurrence(&occurrence, None).await;
    assert!(recorded.expect("record"));
    let history = env
        .get(&format!("{base}/history?limit=5"), "viewer_ops")
        .await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(history.body["items"][0]["outcome"], "skipped");
    assert_eq!(history.body["items"][0]["reason"], "paused");
    assert_eq!(history.body["items"][0]["trigger"], "cron:0 * * * *@UTC");
    env.get(&format!("{base}/history?limit=0"), "viewer_ops")
        .await
        .assert_problem(400, "invalid-query");

    let results: Vec<_> = crate::support::api_audit(&env)
        .await
        .into_iter()
        .map(|e| format!("{} {}", e.0, e.2))
        .collect();
    assert_eq!(
        results,
        [
            "schedule.pause ok",
            "schedule.resume ok",
            "schedule.resume invalid-body",
            "schedule.resume ok",
            "schedule.pause not-found"
        ]
    );
}

#[tokio::test]
async fn secret_values_never_leave_the_server() {
    let env = Env::new().await;
    let value = "s3cr3t-value-that-must-not-leak";
    let uri = "/api/v1/namespaces/ops/secrets/DB_PASSWORD";
    let body = serde_json::json!({ "value": value }).to_string();
    let first = env
        .call(Method::PUT, uri, Some("editor_ops"), Some(&body))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["version"], 1);
    let second = env
        .call(Method::PUT, uri, Some("editor_ops"), Some(&body))
        .await;
    assert_eq!(second.body["version"], 2);

    let listed = env
        .get("/api/v1/namespaces/ops/secrets", "editor_ops")
        .await;
    assert_eq!(listed.status, 200);
    let names: Vec<_> = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| (s["name"].clone(), s["versions"].clone()))
        .collect();
    assert_eq!(
        names,
        [
            (serde_json::json!("DB_PASSWORD"), serde_json::json!(2)),
            (serde_json::json!("SEEDED"), serde_json::json!(1)),
        ]
    );
    let audit_page = env.get("/api/v1/audit", "admin").await;
    for text in [
        first.body.to_string(),
        second.body.to_string(),
        listed.body.to_string(),
        audit_page.body.to_string(),
    ] {
        assert!(!text.contains(value), "value leaked: {text}");
        assert!(!text.contains(SEEDED_SECRET_VALUE), "value leaked: {text}");
    }
    assert!(audit_page.body.to_string().contains("ops/DB_PASSWORD@2"));

    // The stored value opens with the server's key to what was sent.
    let key = rota_secrets::SecretKey::load(env._home.path())
        .expect("key")
        .expect("key file created");
    let resolved = rota_secrets::resolve(&env.store, Some(&key), "ops", &["DB_PASSWORD".into()])
        .await
        .expect("resolve");
    assert_eq!(resolved.exposed()["DB_PASSWORD"], value);

    let deleted = env
        .call(Method::DELETE, uri, Some("editor_ops"), None)
        .await;
    assert_eq!(deleted.status, 204);
    env.call(Method::DELETE, uri, Some("editor_ops"), None)
        .await
        .assert_problem(404, "not-found");
    env.call(
        Method::PUT,
        "/api/v1/namespaces/ops/secrets/9lives",
        Some("editor_ops"),
        Some(&body),
    )
    .await
    .assert_problem(400, "invalid-id");

    let results: Vec<_> = crate::support::api_audit(&env)
        .await
        .into_iter()
        .map(|e| format!("{} {} {}", e.0, e.1, e.2))
        .collect();
    assert_eq!(
        results,
        [
            "secret.set ops/DB_PASSWORD@1 ok",
            "secret.set ops/DB_PASSWORD@2 ok",
            "secret.delete ops/DB_PASSWORD ok",
            "secret.delete ops/DB_PASSWORD not-found",
            "secret.set ops/9lives invalid-id",
        ]
    );
}

#[tokio::test]
async fn setting_a_secret_without_a_key_location_is_a_503_problem() {
    let env = Env::new().await;
    let request = axum::http::Request::put("/api/v1/namespaces/ops/secrets/TOKEN")
        .header("authorization", format!("Bearer {}", env.token("admin")))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"value": "v"}"#))
        .expect("request");
    let answer = crate::support::send(&env.app_without_secrets(), request).await;
    answer.assert_problem(503, "unavailable");
    let listed = env.store.list_secrets("ops").await.expect("list");
    assert_eq!(listed.len(), 1, "only the seeded secret");
}

/// Durations reach clients as the job file writes them, not as Rust's `{secs, nanos}`:
/// in a job's definition and in a plan's resolved steps.
#[tokio::test]
async fn durations_on_the_wire_are_texts() {
    let env = Env::new().await;
    let uri = "/api/v1/namespaces/ops/jobs/timed";
    let source = "id: timed\nnamespace: ops\npolicy:\n  timeout: 2h\nsteps:\n  - id: a\n    sh: echo a\n    timeout: 1m30s\n    retry: { attempts: 3, initial: 500ms, max: 1m }\n";
    let created = env
        .call(
            Method::PUT,
            uri,
            Some("editor_ops"),
            Some(&submission("yaml", source)),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let step = &created.body["definition"]["steps"][0];
    assert_eq!(step["timeout"], "1m30s", "{}", created.body);
    assert_eq!(step["retry"]["initial"], "500ms", "{}", created.body);
    assert_eq!(step["retry"]["max"], "1m", "{}", created.body);
    assert_eq!(created.body["definition"]["policy"]["timeout"], "2h");
    assert!(
        !created.body.to_string().contains("nanos"),
        "{}",
        created.body
    );
    let plan = env
        .call(
            Method::POST,
            &format!("{uri}/plans"),
            Some("admin"),
            Some(&serde_json::json!({}).to_string()),
        )
        .await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    assert_eq!(plan.body["steps"][0]["resolved"]["timeout"], "1m30s");
    assert!(!plan.body.to_string().contains("nanos"), "{}", plan.body);
}

#[tokio::test]
async fn a_markdown_runbook_is_a_job_file_too() {
    let env = Env::new().await;
    let uri = "/api/v1/namespaces/ops/jobs/rotate";
    let runbook = "---\nid: rotate\n---\n# Rotate\n\n```sh {id=check}\necho check\n```\n\n```python\nprint(1)\n```\n";
    let saved = env
        .call(
            Method::PUT,
            uri,
            Some("editor_ops"),
            Some(&submission("markdown", runbook)),
        )
        .await;
    assert_eq!(saved.status, 201, "{}", saved.body);
    let job = env.call(Method::GET, uri, Some("viewer_ops"), None).await;
    assert_eq!(job.status, 200, "{}", job.body);
    let text = job.body.to_string();
    assert!(text.contains("check") && text.contains("step-2"), "{text}");

    // A bad step key is a 422 problem at its line and column in the Markdown.
    let broken = "---\nid: rotate\n---\n# Rotate\n\n```sh {id=check retry=lots}\necho\n```\n";
    let answer = env
        .call(
            Method::POST,
            "/api/v1/namespaces/ops/jobs/validate",
            Some("viewer_ops"),
            Some(&submission("markdown", broken)),
        )
        .await;
    answer.assert_problem(422, "invalid-job");
    assert_eq!(answer.body["problems"][0]["line"], 6, "{}", answer.body);
    assert_eq!(answer.body["problems"][0]["column"], 23, "{}", answer.body);
}
