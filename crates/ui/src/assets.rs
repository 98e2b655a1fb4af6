//! The embedded assets: each file of `assets/` with its content type and a strong ETag
//! computed once from its bytes (SHA-256, shortened), so a changed file gets a new tag.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its name under `/ui/assets/` (`index.html` is served as the page instead).
    pub name: &'static str,
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// Its bytes, as built into the binary.
    pub bytes: &'static [u8],
    etag: String,
}

impl Asset {
    /// The strong ETag, quotes included (`"<hex>"`).
    pub fn etag(&self) -> &str {
        &self.etag
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Declares the embedded files: (name, content type).
macro_rules! embedded {
    ($(($name:literal, $ty:expr)),* $(,)?) => {
        &[$(($name, $ty, include_bytes!(concat!("../assets/", $name)) as &[u8])),*]
    };
}

/// Every file of `assets/`; a test checks that none is missing from this list.
const FILES: &[(&str, &str, &[u8])] = embedded![
    ("index.html", HTML),
    ("app.css", CSS),
    ("favicon.svg", SVG),
    ("app.js", JS),
    ("api.js", JS),
    ("dom.js", JS),
    ("dag.js", JS),
    ("sse.js", JS),
    ("filters.js", JS),
    ("gates.js", JS),
    ("artifacts.js", JS),
    ("pages/signin.js", JS),
    ("pages/jobs.js", JS),
    ("pages/job.js", JS),
    ("pages/runs.js", JS),
    ("pages/run.js", JS),
    ("pages/plans.js", JS),
    ("pages/plan.js", JS),
    ("pages/secrets.js", JS),
    ("pages/audit.js", JS),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, bytes)| {
            let digest = Sha256::digest(bytes);
            Asset {
                name,
                content_type,
                bytes,
                etag: format!("\"{}\"", hex::encode(&digest[..16])),
            }
        })
        .collect()
});

/// The embedded asset of this name (a path under `assets/`, e.g. `pages/run.js`).
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The names of every embedded asset.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|&(name, _, _)| name)
}
