//! Rota's HTTP API under `/api/v1`, as an axum [`Router`] the server mounts.
//!
//! [`app`] builds the router; it binds no socket. Every route but the OpenAPI document
//! (`/api/v1/openapi.json`) needs a bearer token whose role fits the call
//! ([`auth`] explains tokens and roles), unless the server runs with [`AuthMode::None`].
//! Every error is an RFC 9457 `application/problem+json` body ([`ApiError`]); every
//! mutating call appends an entry to the hash-chained audit log, which [`verify_audit`]
//! checks. `GET /metrics` serves Prometheus metrics ([`metrics`]) to `viewer`s of every
//! namespace.
//!
//! This crate holds no SQL (it calls [`rota_store::Store`]) and starts no processes.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tower::ServiceExt;
//! let home = tempfile::tempdir()?;
//! let store = rota_store::Store::open(home.path()).await?;
//! let token = rota_api::ensure_admin_token(&store, home.path()).await?;
//! assert!(token.is_some(), "the first start creates an admin token");
//! let app = rota_api::app(rota_api::ApiState::new(store, rota_api::AuthMode::Tokens));
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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use rota_store::{AuditBreak, Store, StoreError};

pub use auth::{AuthMode, Caller};
pub use error::{ApiError, PROBLEM_BASE};
pub use metrics::SchedulerMetrics;
pub use rota_ops::auth::{
    ADMIN_TOKEN_FILE, AdminTokenError, Principal, Scope, ensure_admin_token, issue_token,
};
pub use rota_store::Role;
pub use routes::schedules::{BoxFuture, NextFires, ScheduleOps};

/// Largest request body accepted, in bytes; larger ones get a 413 problem.
pub const BODY_LIMIT: usize = 1 << 20;

/// What every handler shares: the store, how callers are authenticated and where the
/// secrets key lives.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The store.
    pub store: Store,
    /// The application layer over the same store.
    pub ops: rota_ops::Ops,
    /// How callers are authenticated.
    pub auth: AuthMode,
    /// The data directory whose `secret.key` seals stored secrets (or `ROTA_SECRET_KEY`,
    /// which takes precedence). Without it, setting a secret answers 503.
    pub secrets_home: Option<PathBuf>,
    /// Where the scheduler reports its lateness, exported at `/metrics`; the server clones
    /// it and feeds it.
    pub scheduler_metrics: SchedulerMetrics,
    /// API latency, recorded by a layer of [`app`] and exported at `/metrics`.
    pub(crate) api_metrics: metrics::ApiMetrics,
    /// The scheduler's trigger arithmetic for fire times and backfill, handed in by the
    /// server; without it those routes answer 503.
    pub schedules: Option<Arc<dyn ScheduleOps>>,
}

impl ApiState {
    /// State over `store` with authentication `auth`, without secrets.
    pub fn new(store: Store, auth: AuthMode) -> ApiState {
        ApiState {
            ops: rota_ops::Ops::new(store.clone()),
            store,
            auth,
            secrets_home: None,
            scheduler_metrics: SchedulerMetrics::default(),
            api_metrics: metrics::ApiMetrics::default(),
            schedules: None,
        }
    }

    /// Enables a job's next fire times and backfill through `ops` (`rota-server` provides
    /// it).
    pub fn with_schedules(mut self, ops: Arc<dyn ScheduleOps>) -> ApiState {
        self.schedules = Some(ops);
        self
    }

    /// Enables setting secrets: their key is `ROTA_SECRET_KEY`, else `home/secret.key`,
    /// created (mode 0600) on the first secret set through the API.
    pub fn with_secrets_home(mut self, home: impl Into<PathBuf>) -> ApiState {
        self.secrets_home = Some(home.into());
        self
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

/// Appends the audit entry of a mutating call (`ok`, or the problem slug it failed
/// with) and passes its outcome on. If the entry cannot be written, the call answers 500:
/// an unaudited change must not look like a success.
pub(crate) async fn audited<T>(
    state: &ApiState,
    principal: &Principal,
    source: Option<SocketAddr>,
    action: &str,
    target: &str,
    outcome: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let actor = principal.actor(source.map(|a| a.to_string()));
    let result = match &outcome {
        Ok(_) => "ok",
        Err(e) => e.slug(),
    };
    state.ops.audit(&actor, action, target, result).await?;
    outcome
}

/// Why [`verify_audit`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyAuditError {
    /// The chain is broken at this entry.
    #[error("the audit log was tampered with: {0}")]
    Broken(AuditBreak),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the whole audit chain; names the first entry that was modified, deleted or
/// reordered.
pub async fn verify_audit(store: &Store) -> Result<(), VerifyAuditError> {
    match store.check_audit_chain().await? {
        None => Ok(()),
        Some(broken) => Err(VerifyAuditError::Broken(broken)),
    }
}
