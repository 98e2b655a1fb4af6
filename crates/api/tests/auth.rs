//! Every route: no token → 401, a token without the role → 403, the right role → 2xx.
//! Plus revoked tokens, role inclusion, `AuthMode::None` and the first admin token.

use std::collections::BTreeSet;

use axum::http::Method;
use rota_api::{ADMIN_TOKEN_FILE, AuthMode};

use crate::support::Env;

/// A valid job file for `ops/deploy`, as a `PUT`/`validate` body.
const VALID_JOB: &str = r#"{"format": "yaml", "source": "id: deploy\nnamespace: ops\nsteps:\n  - id: build\n    sh: echo new\n"}"#;

/// A worker's call about an attempt, as a lease-call body.
const LEASE_CALL: &str = r#"{"worker": {"id": "w1", "name": "w1", "slots": 1}, "epoch": 1}"#;

/// One route's permission case.
struct Case {
    method: Method,
    /// The path template, as in the OpenAPI document.
    template: &'static str,
    /// The concrete URI called.
    uri: String,
    body: Option<&'static str>,
    /// A persona lacking the role.
    denied: &'static str,
    /// A persona holding it, and what it gets.
    allowed: &'static str,
    ok: u16,
}

/// Plans of `ops/gated` (approvers: `role:operator`, quorum 1), made by `seed`: two
/// awaiting approval, one approved.
struct SeededPlans {
    to_approve: String,
    to_reject: String,
    to_apply: String,
    /// Runs of `ops/deploy` waiting at a gate `hold` (approvers: `role:operator`).
    gate_to_approve: String,
    gate_to_reject: String,
    gate_to_skip: String,
}

impl SeededPlans {
    /// Ids for calls that never reach a plan (the route list only).
    fn placeholders() -> SeededPlans {
        SeededPlans {
            to_approve: "none".into(),
            to_reject: "none".into(),
            to_apply: "none".into(),
            gate_to_approve: "none".into(),
            gate_to_reject: "none".into(),
            gate_to_skip: "none".into(),
        }
    }

    async fn seed(env: &Env) -> SeededPlans {
        let source = "id: gated\nnamespace: ops\napproval: { approvers: [\"role:operator\"] }\n\
                      steps:\n  - id: go\n    sh: echo go\n";
        let job = rota_core::parse::parse_str(source, "<seed>", rota_core::parse::Format::Yaml)
            .expect("gated job parses")
            .remove(0);
        let rev = rota_store::NewJobRevision::new(
            "ops",
            "gated",
            source,
            serde_json::to_value(&job).expect("definition"),
            jiff::Timestamp::now(),
        );
        env.store.save_job_revision(&rev).await.expect("save gated");
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (content, job) = env
                .store
                .resolve_plan("ops", "gated", &Default::default())
                .await
                .expect("resolve")
                .expect("gated exists");
            let plan = env
                .store
                .create_plan(&rota_store::NewPlan {
                    id: rota_store::ids::new_run_id(),
                    content,
                    approval: job.approval,
                    created_by: "seed".into(),
                    created_at: jiff::Timestamp::now(),
                    dry_run: None,
                })
                .await
                .expect("plan");
            ids.push(plan.id);
        }
        let approver = rota_store::Approver {
            actor: "seed-approver".into(),
            name: "seed-approver".into(),
            role: Some(rota_api::Role::Admin),
        };
        env.store
            .decide_plan(
                &ids[2],
                &approver,
                rota_store::Decision::Approve,
                None,
                None,
                jiff::Timestamp::now(),
            )
            .await
            .expect("approve");
        SeededPlans {
            to_approve: ids[0].clone(),
            to_reject: ids[1].clone(),
            to_apply: ids[2].clone(),
            gate_to_approve: seed_gated_run(env, "gated1", "hold").await,
            gate_to_reject: seed_gated_run(env, "gated2", "hold").await,
            // A failed step's question (`on_failure: ask`): the one kind of gate skipped.
            gate_to_skip: seed_gated_run(env, "gated3", "hold#failed-1").await,
        }
    }
}

/// Records run `id` of `ops/deploy` as waiting at its gate `hold`.
async fn seed_gated_run(env: &Env, id: &str, gate: &str) -> String {
    use rota_core::model::{Approval, StepStatus};
    use rota_store::RunEvent;
    let at = jiff::Timestamp::now();
    let mut run = crate::support::new_run(id, "ops", "deploy", 2, at);
    run.steps = vec!["hold".into()];
    let rules = Approval {
        approvers: vec!["role:operator".into()],
        quorum: 1,
        allow_self: false,
        expires: None,
    };
    let run_id = id.to_owned();
    let step_id = "hold".to_owned();
    env.store
        .record(&[
            RunEvent::RunCreated { run },
            RunEvent::RunStarted {
                run_id: run_id.clone(),
                at,
            },
            RunEvent::StepStarted {
                run_id: run_id.clone(),
                step_id: step_id.clone(),
                attempt: 1,
                at,
                pgid: None,
            },
            RunEvent::StepFinished {
                run_id: run_id.clone(),
                step_id: step_id.clone(),
                attempt: 1,
                status: StepStatus::AwaitingApproval,
                exit_code: None,
                reason: None,
                outputs: Default::default(),
                at,
            },
            RunEvent::GateOpened {
                run_id: run_id.clone(),
                step_id: gate.to_owned(),
                hash: "0".repeat(64),
                rules,
                message: None,
                at,
            },
            RunEvent::RunAwaitingApproval {
                run_id: run_id.clone(),
                reason: "waiting for approval at hold".into(),
                at,
            },
        ])
        .await
        .expect("seed a gated run");
    run_id
}

fn cases(env: &Env, plans: &SeededPlans) -> Vec<Case> {
    let run = &env.ops_runs[1];
    let running = &env.ops_runs[0];
    let spare = &env.token_ids["spare"];
    let case = |method, template, uri: String, denied, allowed, ok| Case {
        method,
        template,
        uri,
        body: None,
        denied,
        allowed,
        ok,
    };
    vec![
        // Metrics span every namespace, so a viewer of one namespace may not read them.
        case(
            Method::GET,
            "/metrics",
            "/metrics".into(),
            "viewer_ops",
            "viewer_all",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/namespaces",
            "/api/v1/namespaces".into(),
            "nobody",
            "viewer_web",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/namespaces/{namespace}/jobs",
            "/api/v1/namespaces/ops/jobs".into(),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/namespaces/{namespace}/jobs/{job}",
            "/api/v1/namespaces/ops/jobs/deploy".into(),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/namespaces/{namespace}/jobs/{job}/revisions",
            "/api/v1/namespaces/ops/jobs/deploy/revisions".into(),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        Case {
            body: Some(VALID_JOB),
            ..case(
                Method::POST,
                "/api/v1/namespaces/{namespace}/jobs/validate",
                "/api/v1/namespaces/ops/jobs/validate".into(),
                "viewer_web",
                "viewer_ops",
                200,
            )
        },
        Case {
            body: Some(VALID_JOB),
            ..case(
                Method::PUT,
                "/api/v1/namespaces/{namespace}/jobs/{job}",
                "/api/v1/namespaces/ops/jobs/deploy".into(),
                "operator_ops",
                "editor_ops",
                201,
            )
        },
        Case {
            body: Some(r#"{"params": {}, "dry_run": true}"#),
            ..case(
                Method::POST,
                "/api/v1/namespaces/{namespace}/jobs/{job}/runs",
                "/api/v1/namespaces/ops/jobs/deploy/runs".into(),
                "viewer_ops",
                "operator_ops",
                202,
            )
        },
        case(
            Method::GET,
            "/api/v1/namespaces/{namespace}/jobs/{job}/schedule",
            "/api/v1/namespaces/ops/jobs/deploy/schedule?count=3".into(),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        Case {
            body: Some(r#"{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}"#),
            ..case(
                Method::POST,
                "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/backfill",
                "/api/v1/namespaces/ops/jobs/deploy/schedule/backfill".into(),
                "operator_ops",
                "editor_ops",
                201,
            )
        },
        case(
            Method::GET,
            "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/history",
            "/api/v1/namespaces/ops/jobs/deploy/schedule/history".into(),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        case(
            Method::POST,
            "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/pause",
            "/api/v1/namespaces/ops/jobs/deploy/schedule/pause".into(),
            "operator_ops",
            "editor_ops",
            200,
        ),
        case(
            Method::POST,
            "/api/v1/namespaces/{namespace}/jobs/{job}/schedule/resume",
            "/api/v1/namespaces/ops/jobs/deploy/schedule/resume".into(),
            "operator_ops",
            "editor_ops",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/namespaces/{namespace}/secrets",
            "/api/v1/namespaces/ops/secrets".into(),
            "operator_ops",
            "editor_ops",
            200,
        ),
        Case {
            body: Some(r#"{"value": "hunter2"}"#),
            ..case(
                Method::PUT,
                "/api/v1/namespaces/{namespace}/secrets/{name}",
                "/api/v1/namespaces/ops/secrets/DB_PASSWORD".into(),
                "operator_ops",
                "editor_ops",
                200,
            )
        },
        case(
            Method::DELETE,
            "/api/v1/namespaces/{namespace}/secrets/{name}",
            "/api/v1/namespaces/ops/secrets/SEEDED".into(),
            "viewer_all",
            "editor_ops",
            204,
        ),
        case(
            Method::GET,
            "/api/v1/runs",
            "/api/v1/runs".into(),
            "viewer_ops",
            "viewer_all",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/runs/{id}",
            format!("/api/v1/runs/{run}"),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/runs/{id}/logs",
            format!("/api/v1/runs/{run}/logs"),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/runs/{id}/artifacts",
            format!("/api/v1/runs/{run}/artifacts"),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        // Allowed to read, it finds no such artifact (none is seeded).
        case(
            Method::GET,
            "/api/v1/runs/{id}/artifacts/{step}/{path}",
            format!("/api/v1/runs/{run}/artifacts/a/dir/file.txt"),
            "viewer_web",
            "viewer_ops",
            404,
        ),
        case(
            Method::GET,
            "/api/v1/runs/{id}/report",
            format!("/api/v1/runs/{run}/report?format=md"),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/runs/{id}/logs/stream",
            format!("/api/v1/runs/{run}/logs/stream"),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        case(
            Method::POST,
            "/api/v1/runs/{id}/cancel",
            format!("/api/v1/runs/{running}/cancel"),
            "viewer_ops",
            "operator_ops",
            202,
        ),
        case(
            Method::POST,
            "/api/v1/runs/{id}/retry",
            format!("/api/v1/runs/{run}/retry"),
            "viewer_ops",
            "operator_ops",
            202,
        ),
        Case {
            body: Some(r#"{"params": {}}"#),
            ..case(
                Method::POST,
                "/api/v1/namespaces/{namespace}/jobs/{job}/plans",
                "/api/v1/namespaces/ops/jobs/deploy/plans".into(),
                "viewer_ops",
                "operator_ops",
                201,
            )
        },
        case(
            Method::GET,
            "/api/v1/plans",
            "/api/v1/plans".into(),
            "viewer_ops",
            "viewer_all",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/plans/{id}",
            format!("/api/v1/plans/{}", plans.to_approve),
            "viewer_web",
            "viewer_ops",
            200,
        ),
        case(
            Method::POST,
            "/api/v1/plans/{id}/approve",
            format!("/api/v1/plans/{}/approve", plans.to_approve),
            "viewer_ops",
            "operator_ops",
            200,
        ),
        Case {
            body: Some(r#"{"comment": "not today"}"#),
            ..case(
                Method::POST,
                "/api/v1/plans/{id}/reject",
                format!("/api/v1/plans/{}/reject", plans.to_reject),
                "viewer_ops",
                "operator_ops",
                200,
            )
        },
        case(
            Method::POST,
            "/api/v1/runs/{id}/approve",
            format!("/api/v1/runs/{}/approve", plans.gate_to_approve),
            "viewer_ops",
            "operator_ops",
            200,
        ),
        Case {
            body: Some(r#"{"comment": "not today", "step": "hold"}"#),
            ..case(
                Method::POST,
                "/api/v1/runs/{id}/reject",
                format!("/api/v1/runs/{}/reject", plans.gate_to_reject),
                "viewer_ops",
                "operator_ops",
                200,
            )
        },
        Case {
            body: Some(r#"{"comment": "done by hand", "step": "hold#failed-1"}"#),
            ..case(
                Method::POST,
                "/api/v1/runs/{id}/skip",
                format!("/api/v1/runs/{}/skip", plans.gate_to_skip),
                "viewer_ops",
                "operator_ops",
                200,
            )
        },
        case(
            Method::POST,
            "/api/v1/plans/{id}/apply",
            format!("/api/v1/plans/{}/apply", plans.to_apply),
            "viewer_ops",
            "operator_ops",
            202,
        ),
        case(
            Method::GET,
            "/api/v1/events",
            "/api/v1/events".into(),
            "viewer_ops",
            "viewer_all",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/events/stream",
            "/api/v1/events/stream".into(),
            "viewer_ops",
            "viewer_all",
            200,
        ),
        Case {
            body: Some(r#"{"name": "ci", "grants": [{"namespace": "ops", "role": "operator"}]}"#),
            ..case(
                Method::POST,
                "/api/v1/tokens",
                "/api/v1/tokens".into(),
                "viewer_all",
                "admin",
                201,
            )
        },
        case(
            Method::GET,
            "/api/v1/tokens",
            "/api/v1/tokens".into(),
            "operator_ops",
            "admin",
            200,
        ),
        case(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            format!("/api/v1/tokens/{spare}"),
            "viewer_all",
            "admin",
            204,
        ),
        case(
            Method::GET,
            "/api/v1/audit",
            "/api/v1/audit".into(),
            "viewer_all",
            "admin",
            200,
        ),
        case(
            Method::GET,
            "/api/v1/audit/verify",
            "/api/v1/audit/verify".into(),
            "editor_ops",
            "admin",
            200,
        ),
        Case {
            body: Some(r#"{"worker": {"id": "w1", "name": "w1", "slots": 1}, "wait_ms": 0}"#),
            ..case(
                Method::POST,
                "/api/v1/workers/claim",
                "/api/v1/workers/claim".into(),
                "viewer_all",
                "worker",
                200,
            )
        },
        // The lease calls about an attempt no worker holds: past the role check, the
        // attempt is not found.
        Case {
            body: Some(LEASE_CALL),
            ..case(
                Method::POST,
                "/api/v1/attempts/{run}/{step}/{attempt}/heartbeat",
                "/api/v1/attempts/none/build/1/heartbeat".into(),
                "viewer_all",
                "worker",
                404,
            )
        },
        Case {
            body: Some(
                r#"{"worker": {"id": "w1", "name": "w1", "slots": 1}, "epoch": 1, "lines": []}"#,
            ),
            ..case(
                Method::POST,
                "/api/v1/attempts/{run}/{step}/{attempt}/logs",
                "/api/v1/attempts/none/build/1/logs".into(),
                "operator_ops",
                "worker",
                404,
            )
        },
        Case {
            body: Some(
                r#"{"worker": {"id": "w1", "name": "w1", "slots": 1}, "epoch": 1, "status": "succeeded"}"#,
            ),
            ..case(
                Method::POST,
                "/api/v1/attempts/{run}/{step}/{attempt}/finish",
                "/api/v1/attempts/none/build/1/finish".into(),
                "editor_ops",
                "worker",
                404,
            )
        },
        case(
            Method::GET,
            "/api/v1/cluster",
            "/api/v1/cluster".into(),
            "worker",
            "viewer_ops",
            200,
        ),
        // Pruning deletes history: admins only (a dry run here, so the cases after it
        // still find their runs).
        Case {
            body: Some(r#"{"older_than": "30d", "namespace": "ops", "dry_run": true}"#),
            ..case(
                Method::POST,
                "/api/v1/prune",
                "/api/v1/prune".into(),
                "editor_ops",
                "admin",
                200,
            )
        },
        Case {
            body: Some(r#"{"retention": "30d"}"#),
            ..case(
                Method::PUT,
                "/api/v1/namespaces/{namespace}/retention",
                "/api/v1/namespaces/ops/retention".into(),
                "editor_ops",
                "admin",
                200,
            )
        },
        // Last: the cases before it use the job.
        case(
            Method::DELETE,
            "/api/v1/namespaces/{namespace}/jobs/{job}",
            "/api/v1/namespaces/ops/jobs/deploy".into(),
            "operator_ops",
            "editor_ops",
            204,
        ),
    ]
}

#[tokio::test]
async fn every_route_needs_a_token_and_the_right_role() {
    let env = Env::new().await;
    let plans = SeededPlans::seed(&env).await;
    for case in cases(&env, &plans) {
        let what = format!("{} {}", case.method, case.uri);
        let anonymous = env
            .call(case.method.clone(), &case.uri, None, case.body)
            .await;
        anonymous.assert_problem(401, "unauthorized");
        assert!(anonymous.headers.contains_key("www-authenticate"), "{what}");

        let denied = env
            .call(case.method.clone(), &case.uri, Some(case.denied), case.body)
            .await;
        denied.assert_problem(403, "forbidden");

        let allowed = env
            .call(
                case.method.clone(),
                &case.uri,
                Some(case.allowed),
                case.body,
            )
            .await;
        assert_eq!(allowed.status.as_u16(), case.ok, "{what}: {}", allowed.body);
    }
}

/// The document and the router come from the same declarations (`openapi::routes`, on
/// utoipa-axum), so walking the served document walks the real router: a route without a
/// permission case here fails, whoever adds it.
#[tokio::test]
async fn every_documented_route_has_a_permission_case() {
    let env = Env::new().await;
    let doc = env
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, 200, "the OpenAPI document is public");
    assert_eq!(doc.body["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc.body["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let tested: BTreeSet<String> = cases(&env, &SeededPlans::placeholders())
        .iter()
        .map(|c| format!("{} {}", c.method, c.template))
        .collect();
    assert_eq!(documented, tested);
}

#[tokio::test]
async fn stronger_roles_include_weaker_ones() {
    let env = Env::new().await;
    let run = &env.ops_runs[1];
    for persona in ["operator_ops", "admin", "viewer_all"] {
        let answer = env.get(&format!("/api/v1/runs/{run}/logs"), persona).await;
        assert_eq!(answer.status, 200, "{persona}");
    }
    // A viewer everywhere still cannot cancel.
    let answer = env
        .call(
            Method::POST,
            &format!("/api/v1/runs/{}/cancel", env.ops_runs[0]),
            Some("viewer_all"),
            None,
        )
        .await;
    answer.assert_problem(403, "forbidden");
}

#[tokio::test]
async fn namespaces_are_filtered_to_what_the_caller_may_view() {
    let env = Env::new().await;
    let names = |answer: &crate::support::Answer| -> Vec<String> {
        answer.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|n| n["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        names(&env.get("/api/v1/namespaces", "viewer_all").await),
        ["default", "ops", "web"]
    );
    let ops = env.get("/api/v1/namespaces", "viewer_ops").await;
    assert_eq!(names(&ops), ["ops"]);
    assert_eq!(ops.body["items"][0]["jobs"], 1);
    assert_eq!(ops.body["items"][0]["runs"], crate::support::OPS_RUNS);
}

#[tokio::test]
async fn unknown_malformed_and_revoked_tokens_are_unauthorized() {
    let env = Env::new().await;
    let request = |auth: &str| {
        axum::http::Request::get("/api/v1/runs")
            .header("authorization", auth)
            .body(axum::body::Body::empty())
            .expect("request")
    };
    for auth in [
        "Bearer rota_0000",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "rota_abc",
    ] {
        let answer = crate::support::send(&env.app, request(auth)).await;
        answer.assert_problem(401, "unauthorized");
    }
    let token = env.token("viewer_all").to_owned();
    let lower = crate::support::send(&env.app, request(&format!("bearer {token}"))).await;
    assert_eq!(lower.status, 200, "the scheme is case-insensitive");

    let id = &env.token_ids["viewer_all"];
    let revoked = env
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some("admin"),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    env.get("/api/v1/runs", "viewer_all")
        .await
        .assert_problem(401, "unauthorized");
    let again = env
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some("admin"),
            None,
        )
        .await;
    again.assert_problem(404, "not-found");
}

#[tokio::test]
async fn created_tokens_work_and_their_text_is_never_listed() {
    let env = Env::new().await;
    let created = env
        .create_token(r#"{"name": "ci", "grants": [{"namespace": "web", "role": "viewer"}]}"#)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("rota_"));
    assert_eq!(created.body["grants"][0]["role"], "viewer");

    let request = axum::http::Request::get(format!("/api/v1/runs/{}", env.web_run))
        .header("authorization", format!("Bearer {secret}"))
        .body(axum::body::Body::empty())
        .expect("request");
    assert_eq!(crate::support::send(&env.app, request).await.status, 200);

    let listed = env.get("/api/v1/tokens", "admin").await;
    let text = listed.body.to_string();
    assert!(!text.contains(&secret));
    assert!(
        !text.contains(&rota_ops::auth::hash_token(&secret)),
        "no hashes either"
    );
    assert!(text.contains("\"ci\""));
}

#[tokio::test]
async fn auth_mode_none_lets_every_caller_act_as_local_admin() {
    let env = Env::with_auth(AuthMode::None).await;
    let tokens = env.call(Method::GET, "/api/v1/tokens", None, None).await;
    assert_eq!(tokens.status, 200);
    let cancel = env
        .call(
            Method::POST,
            &format!("/api/v1/runs/{}/cancel", env.ops_runs[0]),
            None,
            None,
        )
        .await;
    assert_eq!(cancel.status, 202);
    let audit = crate::support::api_audit_records(&env).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "local");
}

#[tokio::test]
async fn the_first_start_writes_an_admin_token_once() {
    let home = tempfile::tempdir().expect("temp dir");
    let store = rota_store::Store::open(home.path()).await.expect("store");
    let token = rota_api::ensure_admin_token(&store, home.path())
        .await
        .expect("ensure")
        .expect("a token on first start");
    let path = home.path().join(ADMIN_TOKEN_FILE);
    let written = std::fs::read_to_string(&path).expect("token file");
    assert_eq!(written.trim(), token);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let app = rota_api::app(rota_api::ApiState::new(
        rota_ops::Ops::new(store.clone()),
        AuthMode::Tokens,
    ));
    let request = axum::http::Request::get("/api/v1/tokens")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .expect("request");
    let listed = crate::support::send(&app, request).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"][0]["grants"][0]["role"], "admin");
    assert!(listed.body["items"][0]["grants"][0]["namespace"].is_null());

    let again = rota_api::ensure_admin_token(&store, home.path())
        .await
        .expect("ensure");
    assert_eq!(again, None, "the token is handed out once");
    assert_eq!(store.list_tokens().await.expect("tokens").len(), 1);
}
