//! Webhook signatures (GitHub HMAC and bearer) and the listener's limits.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use rota_core::model::WebhookSignature;
use rota_server::hooks::{self, HookReply, MAX_BODY, github_signature, verify};
use tower::ServiceExt;

fn headers(name: &'static str, value: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(name, HeaderValue::from_str(value).expect("header value"));
    map
}

#[test]
fn github_signature_accepts_the_right_hmac_only() {
    let body = br#"{"ref":"main"}"#;
    let good = github_signature("s3cret", body);
    assert!(good.starts_with("sha256=") && good.len() == 7 + 64);
    let ok = headers("x-hub-signature-256", &good);
    assert!(verify(WebhookSignature::Github, "s3cret", &ok, body));
    assert!(!verify(WebhookSignature::Github, "other", &ok, body));
    assert!(!verify(
        WebhookSignature::Github,
        "s3cret",
        &ok,
        b"tampered"
    ));
    assert!(!verify(
        WebhookSignature::Github,
        "s3cret",
        &HeaderMap::new(),
        body
    ));
    let not_hex = headers("x-hub-signature-256", "sha256=zz");
    assert!(!verify(WebhookSignature::Github, "s3cret", &not_hex, body));
    // An unset secret never verifies, even against an HMAC under the empty key.
    let empty = headers("x-hub-signature-256", &github_signature("", body));
    assert!(!verify(WebhookSignature::Github, "", &empty, body));
}

#[test]
fn github_signature_matches_a_known_vector() {
    // The widely published HMAC-SHA256 example (key "key", the quick brown fox).
    assert_eq!(
        github_signature("key", b"The quick brown fox jumps over the lazy dog"),
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
}

#[test]
fn bearer_secret_must_match_exactly() {
    let ok = headers("authorization", "Bearer tok-123");
    assert!(verify(WebhookSignature::Bearer, "tok-123", &ok, b""));
    assert!(!verify(WebhookSignature::Bearer, "tok-1234", &ok, b""));
    assert!(!verify(WebhookSignature::Bearer, "tok-12", &ok, b""));
    let basic = headers("authorization", "Basic tok-123");
    assert!(!verify(WebhookSignature::Bearer, "tok-123", &basic, b""));
}

#[tokio::test]
async fn the_router_hands_requests_to_the_scheduler_and_returns_its_answer() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let scheduler = tokio::spawn(async move {
        let request: hooks::HookRequest = rx.recv().await.expect("a request");
        assert_eq!(
            (request.namespace.as_str(), request.job.as_str()),
            ("ops", "deploy")
        );
        assert_eq!(&request.body[..], b"payload");
        let _ = request.reply.send(HookReply::Unauthorized);
    });
    let response = hooks::router(tx)
        .oneshot(
            Request::post("/hooks/ops/deploy")
                .body(Body::from("payload"))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    scheduler.await.expect("scheduler task");
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_before_reaching_the_scheduler() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let response = hooks::router(tx)
        .oneshot(
            Request::post("/hooks/ops/deploy")
                .body(Body::from(vec![b'x'; MAX_BODY + 1]))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(rx.try_recv().is_err(), "nothing reached the scheduler");
}
