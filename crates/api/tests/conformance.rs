//! What schemathesis relies on (issue 6): keyset pages with `limit`/`cursor`/`next_cursor`
//! on every list, a token that cannot revoke itself, and an OpenAPI document that states
//! the checks the server applies (id patterns, `limit` bounds, closed bodies, enums).

use axum::http::Method;
use jiff::Timestamp;
use rota_core::parse::Format;
use rota_store::NewJobRevision;
use serde_json::{Value, json};

use crate::support::{Answer, Env, PERSONA_COUNT, job_source};

/// Walks a listing page by page with `limit`; returns every item's `key` and how many
/// pages it took. Each page but the last is full; the last has a null `next_cursor`.
async fn walk(
    env: &Env,
    path: &str,
    limit: usize,
    persona: &str,
    key: &str,
) -> (Vec<String>, usize) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut uri = format!("{path}{sep}limit={limit}");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = env.get(&uri, persona).await;
        assert_eq!(page.status, 200, "{uri}: {}", page.body);
        pages += 1;
        let items = page.body["items"].as_array().expect("items");
        assert!(items.len() <= limit, "{uri}: page larger than limit");
        seen.extend(items.iter().map(|item| match &item[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }));
        match &page.body["next_cursor"] {
            Value::String(cursor) => {
                assert_eq!(items.len(), limit, "{uri}: a page before the last is full");
                uri = format!("{path}{sep}limit={limit}&cursor={cursor}");
            }
            Value::Null => break,
            other => panic!("{uri}: next_cursor is {other}"),
        }
        assert!(pages < 100, "{uri}: the walk does not end");
    }
    (seen, pages)
}

/// Saves `count` more jobs (`job-00`, …) in `namespace`, straight into the store.
async fn seed_jobs(env: &Env, namespace: &str, count: usize) {
    for n in 0..count {
        save(env, namespace, &format!("job-{n:02}"), "seeded").await;
    }
}

async fn save(env: &Env, namespace: &str, job: &str, description: &str) {
    let source = job_source(namespace, job, description);
    let parsed = rota_core::parse::parse_str(&source, "<seed>", Format::Yaml)
        .expect("seed job parses")
        .remove(0);
    let definition = serde_json::to_value(&parsed).expect("definition");
    let revision = NewJobRevision::new(namespace, job, source, definition, Timestamp::now());
    env.store.save_job_revision(&revision).await.expect("save");
}

#[tokio::test]
async fn namespaces_page_by_name() {
    let env = Env::new().await;
    seed_jobs(&env, "zeta", 1).await;
    let (names, pages) = walk(&env, "/api/v1/namespaces", 2, "admin", "name").await;
    assert_eq!(names, ["default", "ops", "web", "zeta"]);
    assert_eq!(pages, 2);
    let (one_by_one, pages) = walk(&env, "/api/v1/namespaces", 1, "viewer_all", "name").await;
    assert_eq!(one_by_one, names);
    assert_eq!(
        pages, 4,
        "a full last page is still followed by one empty page at most"
    );
}

#[tokio::test]
async fn a_namespace_viewer_pages_through_its_namespaces_only() {
    let env = Env::new().await;
    seed_jobs(&env, "aaa", 1).await;
    // `viewer_web` holds a grant in `web` only: pages have no holes for hidden namespaces.
    let (names, pages) = walk(&env, "/api/v1/namespaces", 1, "viewer_web", "name").await;
    assert_eq!(names, ["web"]);
    assert_eq!(pages, 1);
}

#[tokio::test]
async fn jobs_page_by_id() {
    let env = Env::new().await;
    seed_jobs(&env, "ops", 6).await;
    let (ids, pages) = walk(&env, "/api/v1/namespaces/ops/jobs", 3, "viewer_ops", "id").await;
    let mut expected: Vec<String> = (0..6).map(|n| format!("job-{n:02}")).collect();
    expected.insert(0, "deploy".to_owned());
    assert_eq!(ids, expected);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn schedule_history_pages_newest_first_across_triggers_firing_together() {
    let env = Env::new().await;
    // Two triggers fire at each of 5 instants: ties are ordered by trigger key.
    for minute in 0..5i64 {
        for key in ["cron:*/1 * * * *@UTC", "cron:0/1 * * * *@Europe/Berlin"] {
            let at = Timestamp::from_second(1_800_000_000 + 60 * minute).expect("instant");
            let occurrence = rota_store::NewOccurrence {
                namespace: "ops".into(),
                job_id: "deploy".into(),
                trigger_key: key.into(),
                scheduled_at: at,
                recorded_at: at,
                kind: rota_store::OccurrenceKind::Skipped,
                reason: Some("paused".into()),
            };
            env.store
                .record_occurrence(&occurrence, None)
                .await
                .expect("occurrence");
        }
    }
    let path = "/api/v1/namespaces/ops/jobs/deploy/schedule/history";
    let all = env.get(&format!("{path}?limit=500"), "viewer_ops").await;
    let everything: Vec<String> = all.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| format!("{} {}", o["scheduled_at"], o["trigger"]))
        .collect();
    assert_eq!(everything.len(), 10);
    let mut walked = Vec::new();
    let mut uri = format!("{path}?limit=3");
    loop {
        let page = env.get(&uri, "viewer_ops").await;
        assert_eq!(page.status, 200, "{}", page.body);
        walked.extend(
            page.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|o| format!("{} {}", o["scheduled_at"], o["trigger"])),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("{path}?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, everything, "pages neither skip nor repeat");
    let bad = env.get(&format!("{path}?cursor=12.zz"), "viewer_ops").await;
    bad.assert_problem(400, "invalid-query");
    // Hex that is not UTF-8 is still a position (the schema allows it).
    let odd = env
        .get(&format!("{path}?cursor=4.e7bf"), "viewer_ops")
        .await;
    assert_eq!(odd.status, 200, "{}", odd.body);
}

#[tokio::test]
async fn revisions_page_newest_first() {
    let env = Env::new().await;
    for n in 0..5 {
        save(&env, "ops", "deploy", &format!("later {n}")).await;
    }
    let path = "/api/v1/namespaces/ops/jobs/deploy/revisions";
    let (revisions, pages) = walk(&env, path, 2, "viewer_ops", "revision").await;
    assert_eq!(revisions, ["7", "6", "5", "4", "3", "2", "1"]);
    assert_eq!(pages, 4);
    let unknown = env
        .get("/api/v1/namespaces/ops/jobs/nope/revisions", "viewer_ops")
        .await;
    unknown.assert_problem(404, "not-found");
    let past_the_end = env.get(&format!("{path}?cursor=1"), "viewer_ops").await;
    assert_eq!(past_the_end.status, 200);
    assert_eq!(past_the_end.body["items"], json!([]));
    assert!(past_the_end.body["next_cursor"].is_null());
}

#[tokio::test]
async fn tokens_page_oldest_first() {
    let env = Env::new().await;
    let (ids, pages) = walk(&env, "/api/v1/tokens", 3, "admin", "id").await;
    assert_eq!(ids.len(), PERSONA_COUNT);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), PERSONA_COUNT, "no token twice");
    assert_eq!(pages, PERSONA_COUNT.div_ceil(3));
    let all = env.get("/api/v1/tokens?limit=500", "admin").await;
    let listed: Vec<&str> = all.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(listed, ids, "pages keep the order of one big page");
}

#[tokio::test]
async fn secrets_page_by_name() {
    let env = Env::new().await;
    for name in ["B_TWO", "A_ONE", "C_THREE", "D_FOUR"] {
        let put = env
            .call(
                Method::PUT,
                &format!("/api/v1/namespaces/ops/secrets/{name}"),
                Some("editor_ops"),
                Some(r#"{"value":"v"}"#),
            )
            .await;
        assert_eq!(put.status, 200, "{}", put.body);
    }
    let (names, pages) = walk(
        &env,
        "/api/v1/namespaces/ops/secrets",
        2,
        "editor_ops",
        "name",
    )
    .await;
    assert_eq!(names, ["A_ONE", "B_TWO", "C_THREE", "D_FOUR", "SEEDED"]);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn bad_limits_and_cursors_are_400_problems() {
    let env = Env::new().await;
    for uri in [
        "/api/v1/namespaces?limit=0",
        "/api/v1/namespaces?limit=501",
        "/api/v1/namespaces?cursor=A",
        "/api/v1/namespaces/ops/jobs?cursor=-x",
        "/api/v1/namespaces/ops/jobs/deploy/revisions?cursor=0",
        "/api/v1/namespaces/ops/jobs/deploy/revisions?cursor=x",
        "/api/v1/tokens?cursor=12",
        "/api/v1/tokens?cursor=99999999999999999999.abc",
        "/api/v1/namespaces/ops/secrets?cursor=1A",
    ] {
        env.get(uri, "admin")
            .await
            .assert_problem(400, "invalid-query");
    }
}

#[tokio::test]
async fn a_token_cannot_revoke_itself() {
    let env = Env::new().await;
    let own = env.token_ids.get("admin").expect("admin id").clone();
    let refused = env
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{own}"),
            Some("admin"),
            None,
        )
        .await;
    refused.assert_problem(409, "conflict");
    // Still alive, and still audited as refused.
    assert_eq!(env.get("/api/v1/tokens", "admin").await.status, 200);
    let audit = env.get("/api/v1/audit", "admin").await;
    let last = audit.body["items"]
        .as_array()
        .and_then(|items| items.last())
        .expect("an audit entry");
    assert_eq!(last["action"], "token.revoke");
    assert_eq!(last["result"], "conflict");
    // Another admin token may revoke it.
    let created = env
        .create_token(r#"{"name":"second admin","grants":[{"role":"admin"}]}"#)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let second = created.body["secret"].as_str().expect("secret").to_owned();
    let request = axum::http::Request::delete(format!("/api/v1/tokens/{own}"))
        .header("authorization", format!("Bearer {second}"))
        .body(axum::body::Body::empty())
        .expect("request");
    let revoked = crate::support::send(&env.app, request).await;
    assert_eq!(revoked.status, 204);
    let locked_out = env.get("/api/v1/tokens", "admin").await;
    locked_out.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn a_namespace_granted_twice_keeps_the_stronger_role() {
    let env = Env::new().await;
    let created = env
        .create_token(
            r#"{"name":"twice","grants":[{"namespace":"ops","role":"viewer"},
                   {"namespace":"ops","role":"editor"},{"namespace":"ops","role":"operator"}]}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.body["grants"],
        json!([{"namespace": "ops", "role": "editor"}])
    );
}

#[tokio::test]
async fn token_names_must_have_more_than_spaces() {
    let env = Env::new().await;
    let long = "x".repeat(201);
    for name in ["", " \t\r\n", long.as_str()] {
        let body = json!({"name": name, "grants": [{"role": "viewer"}]}).to_string();
        env.call(Method::POST, "/api/v1/tokens", Some("admin"), Some(&body))
            .await
            .assert_problem(422, "invalid-body");
    }
    let body = json!({"name": "\u{a0}ok", "grants": [{"role": "viewer"}]}).to_string();
    let created = env
        .call(Method::POST, "/api/v1/tokens", Some("admin"), Some(&body))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
}

/// The served OpenAPI document.
async fn document(env: &Env) -> Value {
    let answer: Answer = env
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(answer.status, 200);
    answer.body
}

/// Follows a local `$ref` (`#/components/schemas/X`).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Every operation of the document as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            all.push((method.clone(), path.clone(), operation));
        }
    }
    all
}

#[tokio::test]
async fn every_path_parameter_states_the_id_check() {
    let env = Env::new().await;
    let doc = document(&env).await;
    for (method, path, operation) in operations(&doc) {
        for param in operation["parameters"].as_array().into_iter().flatten() {
            if param["in"] != "path" {
                continue;
            }
            let schema = resolve(&doc, &param["schema"]);
            assert!(
                schema["pattern"].is_string()
                    && schema["minLength"].is_u64()
                    && schema["maxLength"].is_u64(),
                "{method} {path}: path parameter {} has no checked-id schema: {schema}",
                param["name"]
            );
        }
    }
}

#[tokio::test]
async fn every_list_is_paged_and_every_limit_bounded() {
    let env = Env::new().await;
    let doc = document(&env).await;
    for (method, path, operation) in operations(&doc) {
        let params = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let named = |name: &str| {
            params
                .iter()
                .find(|p| p["name"] == name && p["in"] == "query")
        };
        if let Some(limit) = named("limit") {
            assert_eq!(
                limit["schema"]["minimum"], 1,
                "{method} {path}: limit minimum"
            );
            assert_eq!(
                limit["schema"]["maximum"], 500,
                "{method} {path}: limit maximum"
            );
        }
        let ok = &operation["responses"]["200"]["content"]["application/json"]["schema"];
        let body = resolve(&doc, ok);
        let Some(properties) = body["properties"].as_object() else {
            continue;
        };
        if !properties.contains_key("items") {
            continue;
        }
        // A list continues either by `cursor` (`next_cursor`) or by position (`after`).
        let by_cursor = properties.contains_key("next_cursor") && named("cursor").is_some();
        let by_position = properties.contains_key("next_after") && named("after").is_some();
        assert!(
            by_cursor || by_position,
            "{method} {path}: a list without pagination"
        );
        assert!(named("limit").is_some(), "{method} {path}: no limit");
    }
}

#[tokio::test]
async fn closed_bodies_say_additional_properties_false() {
    let env = Env::new().await;
    let doc = document(&env).await;
    let schemas = &doc["components"]["schemas"];
    for name in [
        "CreateToken",
        "TokenGrant",
        "JobSubmission",
        "CreateRun",
        "PutSecret",
    ] {
        assert_eq!(
            schemas[name]["additionalProperties"], false,
            "{name}: {}",
            schemas[name]
        );
    }
    assert_eq!(
        schemas["TokenGrant"]["properties"]["role"]["enum"],
        json!(["worker", "viewer", "operator", "editor", "admin"])
    );
    assert_eq!(schemas["Run"]["properties"]["status"]["enum"][0], "planned");
    assert_eq!(
        schemas["CreateToken"]["properties"]["grants"]["minItems"],
        1
    );
    // A response field serde always writes, null or not, is required (and nullable).
    let run_required = schemas["Run"]["required"].as_array().expect("required");
    assert!(run_required.contains(&json!("finished_at")));
    assert_eq!(
        schemas["Run"]["properties"]["finished_at"]["type"],
        json!(["string", "null"])
    );
    let list_required = schemas["TokenList"]["required"]
        .as_array()
        .expect("required");
    assert!(list_required.contains(&json!("next_cursor")));
}

#[tokio::test]
async fn a_null_optional_body_means_no_body() {
    let env = Env::new().await;
    let resumed = env
        .call(
            Method::POST,
            "/api/v1/namespaces/ops/jobs/deploy/schedule/resume",
            Some("editor_ops"),
            Some("null"),
        )
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(resumed.body["paused"], false);
    let array = env
        .call(
            Method::POST,
            "/api/v1/namespaces/ops/jobs/deploy/schedule/resume",
            Some("editor_ops"),
            Some("[]"),
        )
        .await;
    array.assert_problem(422, "invalid-body");
}

#[tokio::test]
async fn an_unusable_secrets_key_is_503_not_500() {
    let env = Env::new().await;
    let home = tempfile::tempdir().expect("temp dir");
    std::fs::write(home.path().join("secret.key"), "not a key\n").expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(home.path().join("secret.key"), private).expect("chmod");
    }
    let mut state = rota_api::ApiState::new(
        rota_ops::Ops::new(env.store.clone()),
        rota_api::AuthMode::Tokens,
    );
    state.ops = state.ops.with_secrets_home(home.path());
    let app = rota_api::app(state);
    let request = axum::http::Request::put("/api/v1/namespaces/ops/secrets/TOKEN")
        .header("authorization", format!("Bearer {}", env.token("admin")))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"value":"v"}"#))
        .expect("request");
    let answer = crate::support::send(&app, request).await;
    answer.assert_problem(503, "unavailable");
    let detail = answer.body["detail"].as_str().unwrap_or_default();
    assert!(
        !detail.contains("secret.key"),
        "no path in the detail: {detail}"
    );
}

#[tokio::test]
async fn event_frames_state_their_data_schema() {
    let env = Env::new().await;
    let doc = document(&env).await;
    let schemas = &doc["components"]["schemas"];
    let data = &schemas["EventFrame"]["properties"]["data"];
    assert_eq!(data["contentMediaType"], "application/json");
    assert_eq!(data["contentSchema"]["$ref"], "#/components/schemas/Event");
    let log_data = &schemas["LogFrame"]["properties"]["data"];
    assert_eq!(
        log_data["contentSchema"]["anyOf"][0]["$ref"],
        "#/components/schemas/LogLine"
    );
    let stream = &doc["paths"]["/api/v1/events/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"];
    assert_eq!(stream["$ref"], "#/components/schemas/EventFrame");
}

#[tokio::test]
async fn client_errors_are_spelled_out_per_operation() {
    let env = Env::new().await;
    let doc = document(&env).await;
    for (method, path, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            !responses.contains_key("4XX"),
            "{method} {path}: a catch-all 4XX is left"
        );
        if operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
        {
            assert!(responses.contains_key("401") && responses.contains_key("403"));
        }
        if operation.get("requestBody").is_some() {
            for code in ["400", "413", "415", "422"] {
                assert!(responses.contains_key(code), "{method} {path}: no {code}");
            }
        }
    }
    let revoke = &doc["paths"]["/api/v1/tokens/{id}"]["delete"]["responses"];
    assert!(
        revoke["409"].is_object(),
        "a token revoking itself is a 409"
    );
    assert_eq!(
        doc["paths"]["/api/v1/namespaces"]["get"]["responses"]
            .as_object()
            .map(|r| r.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["200".into(), "400".into(), "401".into(), "403".into()])
    );
}

/// The OpenAPI specification requires operation ids unique in a document; client
/// generators name their functions after them (and refuse or rename duplicates).
#[tokio::test]
async fn every_operation_has_its_own_stable_id() {
    let env = Env::new().await;
    let doc = document(&env).await;
    let mut seen: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for (method, path, operation) in operations(&doc) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric()) && id.starts_with(char::is_lowercase),
            "{method} {path}: operationId {id:?} is not a lowerCamelCase word"
        );
        if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
            panic!("operationId {id:?} is used by both {other} and {method} {path}");
        }
    }
    // A few ids clients already call by name.
    for (id, at) in [
        ("listRuns", "get /api/v1/runs"),
        ("getRun", "get /api/v1/runs/{id}"),
        ("listJobs", "get /api/v1/namespaces/{namespace}/jobs"),
        (
            "createRun",
            "post /api/v1/namespaces/{namespace}/jobs/{job}/runs",
        ),
    ] {
        assert_eq!(seen.get(id).map(String::as_str), Some(at), "{id}");
    }
}
