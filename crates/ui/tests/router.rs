//! The router in-process with `oneshot`: redirects, content types, the security headers on
//! every response, ETag revalidation, 404 for unknown assets, deep links, and a guard
//! against HTML-parsing sinks in the assets.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::support::TestResult;

async fn get(
    path: &str,
    if_none_match: Option<&str>,
) -> Result<axum::response::Response, Box<dyn std::error::Error>> {
    let mut request = Request::get(path);
    if let Some(tag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    Ok(rota_ui::router()
        .oneshot(request.body(Body::empty())?)
        .await?)
}

fn header_of(response: &axum::response::Response, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn body_text(
    response: axum::response::Response,
) -> Result<String, Box<dyn std::error::Error>> {
    let bytes = axum::body::to_bytes(response.into_body(), 4 << 20).await?;
    Ok(String::from_utf8(bytes.to_vec())?)
}

fn assert_security_headers(path: &str, response: &axum::response::Response) {
    assert_eq!(
        header_of(response, header::CONTENT_SECURITY_POLICY),
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
        "CSP of {path}"
    );
    assert_eq!(
        header_of(response, header::X_CONTENT_TYPE_OPTIONS),
        "nosniff",
        "{path}"
    );
    assert_eq!(
        header_of(response, header::REFERRER_POLICY),
        "no-referrer",
        "{path}"
    );
}

#[tokio::test]
async fn root_and_bare_ui_redirect_to_the_ui() -> TestResult {
    for path in ["/", "/ui"] {
        let response = get(path, None).await?;
        assert!(
            response.status().is_redirection(),
            "{path}: {}",
            response.status()
        );
        assert_eq!(header_of(&response, header::LOCATION), "/ui/");
        assert_security_headers(path, &response);
    }
    Ok(())
}

#[tokio::test]
async fn the_page_and_deep_links_serve_index_html() -> TestResult {
    for path in [
        "/ui/",
        "/ui/runs/01abc",
        "/ui/jobs/default/nightly",
        "/ui/assetsfoo",
    ] {
        let response = get(path, None).await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_security_headers(path, &response);
        let page = body_text(response).await?;
        assert!(
            page.contains(r#"<script type="module" src="/ui/assets/app.js">"#),
            "{path}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn every_asset_is_served_with_its_content_type_etag_and_no_cache() -> TestResult {
    let mut names = 0;
    for name in rota_ui::asset_names() {
        names += 1;
        let path = format!("/ui/assets/{name}");
        let response = get(&path, None).await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("html") => "text/html; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("an asset with an unexpected extension: {other:?}"),
        };
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            expected,
            "{path}"
        );
        assert_eq!(
            header_of(&response, header::CACHE_CONTROL),
            "no-cache",
            "{path}"
        );
        let etag = header_of(&response, header::ETAG).to_owned();
        assert!(
            etag.len() > 10 && etag.starts_with('"') && etag.ends_with('"'),
            "{path}: {etag}"
        );
        assert_security_headers(&path, &response);
        let served = axum::body::to_bytes(response.into_body(), 4 << 20).await?;
        let on_disk = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("assets")
                .join(name),
        )?;
        assert_eq!(
            served.as_ref(),
            on_disk.as_slice(),
            "{path} is the file's bytes"
        );
    }
    assert!(names >= 10, "only {names} assets");
    Ok(())
}

#[tokio::test]
async fn a_matching_if_none_match_gives_304_and_a_stale_one_the_asset() -> TestResult {
    let first = get("/ui/assets/app.js", None).await?;
    let etag = header_of(&first, header::ETAG).to_owned();

    let cached = get("/ui/assets/app.js", Some(&etag)).await?;
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header_of(&cached, header::ETAG), etag);
    assert_security_headers("304", &cached);
    assert!(body_text(cached).await?.is_empty());

    let listed = get("/ui/assets/app.js", Some(&format!("\"stale\", {etag}"))).await?;
    assert_eq!(
        listed.status(),
        StatusCode::NOT_MODIFIED,
        "a tag in a list matches"
    );

    let stale = get("/ui/assets/app.js", Some("\"stale\"")).await?;
    assert_eq!(stale.status(), StatusCode::OK);
    assert!(!body_text(stale).await?.is_empty());

    let other = get("/ui/assets/app.css", None).await?;
    assert_ne!(
        header_of(&other, header::ETAG),
        etag,
        "different bytes, different tags"
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_asset_is_404_with_the_security_headers() -> TestResult {
    for path in [
        "/ui/assets/nope.js",
        "/ui/assets/pages/../app.js",
        "/ui/assets/",
    ] {
        let response = get(path, None).await?;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_security_headers(path, &response);
    }
    Ok(())
}

#[test]
fn every_file_in_assets_is_embedded() -> TestResult {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let mut on_disk = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                on_disk.push(
                    path.strip_prefix(&root)?
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    on_disk.sort();
    let mut embedded: Vec<String> = rota_ui::asset_names().map(str::to_owned).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
    Ok(())
}

/// A cheap guard for the XSS rule: data reaches the DOM only as text, so no asset uses an
/// HTML-parsing sink or evaluates strings, and no page carries inline script or style.
#[test]
fn no_asset_uses_html_sinks_eval_or_inline_code() -> TestResult {
    for name in rota_ui::asset_names() {
        let asset = rota_ui::asset(name).ok_or("listed asset missing")?;
        let text = std::str::from_utf8(asset.bytes)?;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "eval(",
            "document.write",
            "new Function",
        ] {
            // The browser tests read `innerText` of the page, never set HTML; they are not assets.
            assert!(!text.contains(sink), "{name} contains {sink}");
        }
        if name.ends_with(".html") {
            assert!(!text.contains(" style="), "{name} has an inline style");
            assert!(!text.contains("<style"), "{name} has an inline stylesheet");
            assert!(
                !text.contains(" on"),
                "{name} may have an inline event handler"
            );
            for script in text.split("<script").skip(1) {
                assert!(
                    script.trim_start().starts_with("type=\"module\" src="),
                    "{name}: inline script"
                );
            }
        }
    }
    Ok(())
}
