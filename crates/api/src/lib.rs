//! Rota's HTTP API under `/api/v1`, as an axum [`Router`] the server mounts.
//!
//! [`app`] builds the router; it binds no socket. Every route but the OpenAPI document
//! (`/api/v1/openapi.json`) needs a bearer token whose role fits the call
//! ([`auth`] explains tokens and roles), unless the server runs with [`AuthMode::None`].
//! Every error is an RFC 9457 `application/problem+json` body ([`ApiError`]); every
//! mutating call appends an entry to the hash-chained audit log, which
//! `rota_ops::audit::verify_audit` checks. `GET /metrics` serves Prometheus metrics
//! ([`metrics`]) to `viewer`s of every namespace.
//!
//! This crate holds no rule of the product and no SQL: each handler extracts, asks the
//! application layer ([`rota_ops::Session`]) and answers with the record it returns.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tower::ServiceExt;
//! let home = tempfile::tempdir()?;
//! let store = rota_ops::Store::open(home.path()).await?;
//! let token = rota_api::ensure_admin_token(&store, home.path()).await?;
//! assert!(token.is_some(), "the first start creates an admin token");
//! let ops = rota_ops::Ops::new(store);
//! let app = rota_api::app(rota_api::ApiState::new(ops, rota_api::AuthMode::Tokens));
//! let request = axum::http::Request::get("/api/v1/namespaces")
//!     .header("authorization", format!("Bearer {}", token.unwrap_or_default()))
//!     .body(axum::body::Body::empty())?;
//! assert_eq!(app.oneshot(request).await?.status(), 200);
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?
//! #     .block_on(demo()).map_err(|e| e.to_string())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod auth;
mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
mod routes;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub use auth::{AuthMode, Caller};
pub use error::{ApiError, PROBLEM_BASE};
pub use metrics::SchedulerMetrics;
pub use rota_ops::auth::Role;
pub use rota_ops::auth::{
    ADMIN_TOKEN_FILE, AdminTokenError, Principal, Scope, ensure_admin_token, issue_token,
};

/// Largest request body accepted, in bytes; larger ones get a 413 problem.
pub const BODY_LIMIT: usize = 1 << 20;

/// What every handler shares: the application layer (over the store; it knows where the
/// secrets key lives and computes fire times) and how callers are authenticated.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The application layer.
    pub ops: rota_ops::Ops,
    /// How callers are authenticated.
    pub auth: AuthMode,
    /// Where the scheduler reports its lateness, exported at `/metrics`; the server clones
    /// it and feeds it.
    pub scheduler_metrics: SchedulerMetrics,
    /// API latency, recorded by a layer of [`app`] and exported at `/metrics`.
    pub(crate) api_metrics: metrics::ApiMetrics,
}

impl ApiState {
    /// State over the application layer `ops` with authentication `auth`.
    pub fn new(ops: rota_ops::Ops, auth: AuthMode) -> ApiState {
        ApiState {
            ops,
            auth,
            scheduler_metrics: SchedulerMetrics::default(),
            api_metrics: metrics::ApiMetrics::default(),
        }
    }
}

/// The `/api/v1` router, plus `GET /metrics` ([`metrics`]); every request is timed
/// for `rota_api_request_duration_seconds`. It binds no socket: the server mounts it (merge it into the
/// server's router) and serves it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so the audit log records client
/// addresses.
pub fn app(state: ApiState) -> Router {
    use routes::*;
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .merge(openapi::routes().0)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.api_metrics,
            metrics::record_latency,
        ))
}
