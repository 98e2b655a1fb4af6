//! Keyset pages: the one rule for a listing's page size and for cutting a page and its
//! next cursor out of the rows the store returned.

use crate::OpsError;

/// Page size when a listing's `limit` is absent.
pub const DEFAULT_PAGE: u32 = 50;

/// Largest `limit` a listing accepts (the API's largest page).
pub const MAX_PAGE: u32 = 500;

/// The checked page size of a listing: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] if none.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, OpsError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        0 => Err(OpsError::InvalidQuery("`limit` must be at least 1".into())),
        n if n > MAX_PAGE => Err(OpsError::InvalidQuery(format!(
            "`limit` must be at most {MAX_PAGE}"
        ))),
        n => Ok(n),
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
