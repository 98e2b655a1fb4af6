//! Webhooks: `POST /hooks/<namespace>/<job>` on the serve listener.
//!
//! A request proves it knows the job's shared secret either GitHub-style
//! (`X-Hub-Signature-256: sha256=<hex HMAC-SHA-256 of the body>`) or with
//! `Authorization: Bearer <secret>`; both are compared in constant time. The secret is read
//! from the server's environment variable named by the trigger's `secret:` (until the secrets
//! store exists). Bodies are capped ([`MAX_BODY`], 413 beyond); a bad or missing signature is
//! 401 and queues nothing. The body reaches the run's steps as the file named by
//! `$ROTA_WEBHOOK_BODY_FILE`.
//!
//! Replays: a verified delivery is remembered for [`REPLAY_WINDOW`] by its keys
//! ([`delivery_keys`]): its `X-GitHub-Delivery` or `Idempotency-Key` header and, for
//! GitHub-signed hooks, the SHA-256 of the signed body (the signature covers only the body,
//! so a captured request could be sent again under a new delivery id). A delivery with a key
//! seen within the window is answered 409 with a problem body, audited, and makes no run.
//! Bearer hooks without either header cannot be told apart from a new request and are not
//! deduplicated; `X-Request-Id` is not used (proxies set a new one per hop).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use rota_core::model::WebhookSignature;
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a delivery's keys are remembered: the same delivery sent again within this
/// window is refused. GitHub redelivers failed deliveries for up to three days; a week
/// covers that and manual redeliveries with margin.
pub const REPLAY_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Longest delivery id accepted (`X-GitHub-Delivery` is a 36-character UUID).
pub const MAX_DELIVERY_ID: usize = 200;

/// The keys under which a verified delivery is remembered: `id:<delivery id>` from
/// `X-GitHub-Delivery`, else `Idempotency-Key`; and, under the GitHub scheme, `body:<hex
/// SHA-256 of the body>`. An id that is empty, longer than [`MAX_DELIVERY_ID`] or not
/// visible ASCII is an error (the request is refused with 400).
pub fn delivery_keys(
    scheme: WebhookSignature,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let id = headers
        .get("x-github-delivery")
        .map(|v| ("X-GitHub-Delivery", v))
        .or_else(|| {
            headers
                .get("idempotency-key")
                .map(|v| ("Idempotency-Key", v))
        });
    if let Some((name, value)) = id {
        let text = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= MAX_DELIVERY_ID)
            .filter(|t| t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                format!("{name} must be 1 to {MAX_DELIVERY_ID} visible ASCII characters")
            })?;
        keys.push(format!("id:{text}"));
    }
    if scheme == WebhookSignature::Github {
        use sha2::Digest;
        keys.push(format!("body:{}", hex::encode(Sha256::digest(body))));
    }
    Ok(keys)
}

/// A verified-or-not webhook request handed to the scheduler.
#[derive(Debug)]
pub struct HookRequest {
    /// Namespace from the path.
    pub namespace: String,
    /// Job id from the path.
    pub job: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// Where the answer goes.
    pub reply: oneshot::Sender<HookReply>,
}

/// The scheduler's answer to a webhook request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookReply {
    /// A run was queued.
    Queued {
        /// Its id.
        run_id: String,
    },
    /// The occurrence was recorded as skipped.
    Skipped {
        /// Why.
        reason: String,
    },
    /// The same delivery was accepted before, within [`REPLAY_WINDOW`]: nothing was queued.
    Replay {
        /// Which key matched, in words.
        detail: String,
    },
    /// The request is malformed (a bad delivery id).
    BadRequest(String),
    /// No such job, or it has no webhook trigger.
    NotFound,
    /// The signature or bearer secret is missing or wrong.
    Unauthorized,
    /// The server is shutting down or could not record the request.
    Unavailable(String),
}

impl IntoResponse for HookReply {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            HookReply::Queued { run_id } => (
                StatusCode::ACCEPTED,
                serde_json::json!({ "status": "queued", "run_id": run_id }),
            ),
            HookReply::Skipped { reason } => (
                StatusCode::OK,
                serde_json::json!({ "status": "skipped", "reason": reason }),
            ),
            HookReply::Replay { detail } => {
                return problem(
                    StatusCode::CONFLICT,
                    "webhook-replay",
                    "Webhook delivery already received",
                    detail,
                );
            }
            HookReply::BadRequest(detail) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-webhook",
                    "Invalid webhook request",
                    detail,
                );
            }
            HookReply::NotFound => (
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": "no such job with a webhook trigger" }),
            ),
            HookReply::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                serde_json::json!({ "error": "missing or invalid signature" }),
            ),
            HookReply::Unavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": why }),
            ),
        };
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// An RFC 9457 problem body, as the API answers its errors.
fn problem(status: StatusCode, slug: &str, title: &str, detail: String) -> Response {
    let body = serde_json::json!({
        "type": format!("{}{slug}", rota_api::PROBLEM_BASE),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The router of the serve listener: webhooks (the API joins later).
pub fn router(requests: mpsc::Sender<HookRequest>) -> Router {
    Router::new()
        .route("/hooks/{namespace}/{job}", post(hook))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(requests)
}

async fn hook(
    State(requests): State<mpsc::Sender<HookRequest>>,
    Path((namespace, job)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> HookReply {
    let (reply, answer) = oneshot::channel();
    let request = HookRequest {
        namespace,
        job,
        headers,
        body,
        reply,
    };
    if requests.send(request).await.is_err() {
        return HookReply::Unavailable("the scheduler is shutting down".to_owned());
    }
    answer
        .await
        .unwrap_or_else(|_| HookReply::Unavailable("the scheduler is shutting down".to_owned()))
}

/// Whether `headers` prove knowledge of `secret` for `body` under `scheme`. An empty secret
/// never verifies.
pub fn verify(scheme: WebhookSignature, secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    if secret.is_empty() {
        return false;
    }
    match scheme {
        WebhookSignature::Github => {
            let Some(given) = headers
                .get("x-hub-signature-256")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().strip_prefix("sha256="))
                .and_then(|hex_text| hex::decode(hex_text).ok())
            else {
                return false;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                return false;
            };
            mac.update(body);
            mac.verify_slice(&given).is_ok()
        }
        WebhookSignature::Bearer => {
            let Some(given) = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
            else {
                return false;
            };
            constant_time_eq(given.trim().as_bytes(), secret.as_bytes())
        }
    }
}

/// Compares two byte strings without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Comparing HMACs of both sides under a fixed key makes the lengths equal and the
    // comparison constant-time (`verify_slice` uses `subtle`).
    let digest = |data: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"rota bearer compare")
            .expect("HMAC accepts keys of any length");
        mac.update(data);
        mac
    };
    let theirs = digest(a).finalize().into_bytes();
    digest(b).verify_slice(&theirs).is_ok()
}

/// GitHub's signature header value for `body` under `secret`: `sha256=<hex>`.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
