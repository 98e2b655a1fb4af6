//! Bad input gets RFC 9457 problem bodies: malformed JSON, unknown fields, oversize bodies,
//! bad ids and queries, unknown routes; internal failures say nothing of their cause.

use axum::http::Method;

use crate::support::Env;

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let env = Env::new().await;
    let answer = env.create_token(r#"{"name": "#).await;
    answer.assert_problem(400, "malformed-json");
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_422_problems() {
    let env = Env::new().await;
    let unknown = env
        .create_token(r#"{"name": "ci", "grants": [{"role": "viewer"}], "colour": "red"}"#)
        .await;
    unknown.assert_problem(422, "invalid-body");
    assert!(
        unknown.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("colour"))
    );

    let nested = env
        .create_token(r#"{"name": "ci", "grants": [{"role": "viewer", "scope": "x"}]}"#)
        .await;
    nested.assert_problem(422, "invalid-body");

    let wrong_type = env.create_token(r#"{"name": 5, "grants": []}"#).await;
    wrong_type.assert_problem(422, "invalid-body");

    let bad_role = env
        .create_token(r#"{"name": "ci", "grants": [{"role": "root"}]}"#)
        .await;
    bad_role.assert_problem(422, "invalid-body");
    assert!(
        bad_role.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("root"))
    );
}

#[tokio::test]
async fn oversize_bodies_are_413_problems() {
    let env = Env::new().await;
    let name = "x".repeat(rota_api::BODY_LIMIT + 1);
    let body = format!(r#"{{"name": "{name}", "grants": [{{"role": "viewer"}}]}}"#);
    let answer = env
        .call(Method::POST, "/api/v1/tokens", Some("admin"), Some(&body))
        .await;
    answer.assert_problem(413, "payload-too-large");
    assert_eq!(
        env.store.list_tokens().await.expect("tokens").len(),
        crate::support::PERSONA_COUNT,
        "nothing created"
    );
}

#[tokio::test]
async fn a_body_without_json_content_type_is_a_415_problem() {
    let env = Env::new().await;
    let request = axum::http::Request::post("/api/v1/tokens")
        .header("authorization", format!("Bearer {}", env.token("admin")))
        .body(axum::body::Body::from(r#"{"name": "ci", "grants": []}"#))
        .expect("request");
    crate::support::send(&env.app, request)
        .await
        .assert_problem(415, "unsupported-media-type");
}

#[tokio::test]
async fn malformed_ids_are_400_problems() {
    let env = Env::new().await;
    for uri in [
        "/api/v1/runs/NOT_A_RUN",
        "/api/v1/runs/NOT_A_RUN/logs",
        "/api/v1/namespaces/Ops/jobs",
        "/api/v1/namespaces/ops/jobs/x",
        "/api/v1/namespaces/ops/jobs/-bad-/revisions",
    ] {
        let answer = env.get(uri, "admin").await;
        answer.assert_problem(400, "invalid-id");
    }
    let answer = env
        .call(Method::DELETE, "/api/v1/tokens/ABC", Some("admin"), None)
        .await;
    answer.assert_problem(400, "invalid-id");
}

#[tokio::test]
async fn missing_things_are_404_problems() {
    let env = Env::new().await;
    for uri in [
        "/api/v1/runs/nosuchrun",
        "/api/v1/runs/nosuchrun/logs",
        "/api/v1/namespaces/ops/jobs/nosuchjob",
        "/api/v1/namespaces/ops/jobs/nosuchjob/revisions",
    ] {
        env.get(uri, "admin").await.assert_problem(404, "not-found");
    }
    env.get("/api/v1/nothing-here", "admin")
        .await
        .assert_problem(404, "no-route");
    env.call(Method::PUT, "/api/v1/runs", Some("admin"), None)
        .await
        .assert_problem(405, "method-not-allowed");
}

#[tokio::test]
async fn bad_query_strings_are_400_problems() {
    let env = Env::new().await;
    for uri in [
        "/api/v1/runs?colour=red",
        "/api/v1/runs?status=exploded",
        "/api/v1/runs?limit=0",
        "/api/v1/runs?limit=501",
        "/api/v1/runs?limit=ten",
        "/api/v1/runs?cursor=garbage",
        "/api/v1/runs?cursor=12.NOT_AN_ID",
        "/api/v1/runs?namespace=Bad_Namespace",
        "/api/v1/events?after=-1",
        "/api/v1/events?since=3",
    ] {
        let answer = env.get(uri, "admin").await;
        assert_eq!(answer.status, 400, "{uri}: {}", answer.body);
        let kind = answer.body["type"].as_str().unwrap_or_default();
        assert!(kind.ends_with("/invalid-query"), "{uri}: {kind}");
    }
}

#[tokio::test]
async fn cancelling_a_finished_run_is_a_409_problem() {
    let env = Env::new().await;
    let finished = &env.ops_runs[1];
    let answer = env
        .call(
            Method::POST,
            &format!("/api/v1/runs/{finished}/cancel"),
            Some("operator_ops"),
            None,
        )
        .await;
    answer.assert_problem(409, "conflict");
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("succeeded"))
    );
}

#[tokio::test]
async fn internal_errors_do_not_reveal_their_cause() {
    let env = Env::with_auth(rota_api::AuthMode::None).await;
    env.store.close().await;
    let answer = env.call(Method::GET, "/api/v1/runs", None, None).await;
    answer.assert_problem(500, "internal");
    let detail = answer.body["detail"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        !detail.contains("pool") && !detail.contains("sql"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_secret_value_sent_in_the_wrong_shape_is_not_echoed() {
    let env = Env::new().await;
    let value = "hunter2-never-echoed";
    for body in [
        format!("{value:?}"),
        format!(r#"{{"value": {{"nested": {value:?}}}}}"#),
        format!(r#"[{value:?}]"#),
    ] {
        let answer = env
            .call(
                Method::PUT,
                "/api/v1/namespaces/ops/secrets/DB_PASSWORD",
                Some("admin"),
                Some(&body),
            )
            .await;
        answer.assert_problem(422, "invalid-body");
        assert!(
            !answer.body.to_string().contains(value),
            "{body} → {}",
            answer.body
        );
    }
}
