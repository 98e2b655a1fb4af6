//! Rota's web UI: a handful of hand-written ES modules, one stylesheet and one HTML page,
//! embedded in the binary and served by [`router`] under `/ui/`.
//!
//! The UI is a client of `/api/v1` like any other: it holds no business logic, and every
//! piece of data it shows comes from the API with the signed-in user's bearer token.
//! The static routes here need no token (they hold no data).
//! What this crate deliberately does not do: server-side rendering, templating, or any
//! JavaScript build step; the assets are served exactly as they are in `assets/`.
//!
//! Every response carries a strict Content-Security-Policy (no inline script or style,
//! only same-origin fetches), `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer`. Assets carry a strong `ETag` (a hash of their bytes)
//! with `Cache-Control: no-cache`, so browsers revalidate and a new binary's assets are
//! picked up at once.
//!
//! ```
//! let app: axum::Router = rota_ui::router();
//! # let _ = app;
//! ```

#![warn(missing_docs)]

mod assets;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Response, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

pub use assets::{Asset, asset, asset_names};

/// The Content-Security-Policy sent with every UI response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The UI's routes: `GET /` redirects to `/ui/`; `/ui/assets/<name>` serves an embedded
/// asset (404 if there is none of that name); any other `/ui/…` path serves the page,
/// so deep links work. Merge it with the API's router.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/assets/{*name}", get(serve_asset))
        .route("/ui/{*rest}", get(deep_link))
        .layer(axum::middleware::map_response(security_headers))
}

/// The page (`index.html`) for `/ui/` and every deep link under it.
async fn index(headers: HeaderMap) -> Response<axum::body::Body> {
    // The page is embedded; its absence would be a build defect caught by the tests.
    match asset("index.html") {
        Some(page) => respond(page, &headers),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A deep link (`/ui/runs/…`) serves the page; anything under `/ui/assets/` that is not
/// an asset is 404, so a missing asset never comes back as HTML.
async fn deep_link(Path(rest): Path<String>, headers: HeaderMap) -> Response<axum::body::Body> {
    if rest == "assets" || rest.starts_with("assets/") {
        return not_found();
    }
    index(headers).await
}

fn not_found() -> Response<axum::body::Body> {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "no such asset",
    )
        .into_response()
}

/// One embedded asset, or 404.
async fn serve_asset(Path(name): Path<String>, headers: HeaderMap) -> Response<axum::body::Body> {
    match asset(&name) {
        Some(found) => respond(found, &headers),
        None => not_found(),
    }
}

/// The asset's bytes, or 304 when the browser's `If-None-Match` names its ETag.
fn respond(found: &Asset, request: &HeaderMap) -> Response<axum::body::Body> {
    let etag = found.etag();
    let cached = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag == etag
        });
    let headers = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_TYPE, found.content_type),
    ];
    if cached {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (StatusCode::OK, headers, found.bytes).into_response()
    }
}

/// Adds the security headers to every response of the UI's routes, errors included.
async fn security_headers(mut response: Response<axum::body::Body>) -> Response<axum::body::Body> {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
