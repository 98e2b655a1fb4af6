//! The route handlers, one module per area. Each handler extracts (path, query, body, the
//! caller), asks the application layer (`rota_ops::Session`, which checks the caller's role,
//! does the work and audits it) and answers with the record it returns.

pub(crate) mod artifacts;
pub(crate) mod audit;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod namespaces;
pub(crate) mod plans;
pub(crate) mod retention;
pub(crate) mod runs;
pub(crate) mod schedules;
pub(crate) mod secrets;
pub(crate) mod tokens;
pub(crate) mod workers;

use crate::ApiError;

/// The 404 answer for routes no handler serves.
pub(crate) async fn no_route() -> ApiError {
    ApiError::NoRoute
}

/// The 405 answer for a route called with a method it does not serve.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
