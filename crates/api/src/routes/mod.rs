//! The route handlers, one module per area. Each handler extracts, checks the caller's
//! role, calls one store function and maps the result to a wire type.

pub(crate) mod audit;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod namespaces;
pub(crate) mod plans;
pub(crate) mod runs;
pub(crate) mod schedules;
pub(crate) mod secrets;
pub(crate) mod tokens;

use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiError;

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: u32 = 50;

/// Largest `limit` accepted.
const MAX_LIMIT: u32 = 500;

/// The checked page size: 1 to 500, 50 by default.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(ApiError::InvalidQuery("`limit` must be at least 1".into())),
        n if n > MAX_LIMIT => Err(ApiError::InvalidQuery(format!(
            "`limit` must be at most {MAX_LIMIT}"
        ))),
        n => Ok(n),
    }
}

/// `?after=&limit=` for listings that continue after a position.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AfterQuery {
    /// Only entries after this position (exclusive); 0 or absent for the start.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

impl AfterQuery {
    fn checked(&self) -> Result<(i64, u32), ApiError> {
        let after = self.after.unwrap_or(0);
        if after < 0 {
            return Err(ApiError::InvalidQuery(
                "`after` must not be negative".into(),
            ));
        }
        Ok((after, page_limit(self.limit)?))
    }
}

/// Cuts a page out of rows fetched with `limit + 1`: the first `limit` rows, and the
/// cursor of the next page (the last row's key) if a further row showed that one follows.
pub(crate) fn cut_page<T>(
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(key);
    (rows, next)
}

/// The 404 answer for routes no handler serves.
pub(crate) async fn no_route() -> ApiError {
    ApiError::NoRoute
}

/// The 405 answer for a route called with a method it does not serve.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
