//! `http: {url, method, headers, body | json, expect, follow_redirects, insecure}`: one
//! HTTP request, with expectations on its response; no process runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KindSite, NoProcess, Sites, StepKindDef, collect_strings, encode, normalize, text};
use crate::convert::{Cx, boolean, check_url, get, is_header_name};
use crate::model::Value;
use crate::tree::{Kind, Node};

pub(crate) struct Http;

impl StepKindDef for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value> {
        let (cx, value, step, sites) = (site.cx, site.value, site.step, site.sites);
        http_step(cx, value, step.label, sites).and_then(|h| encode(&h))
    }

    fn no_process(&self) -> Option<NoProcess> {
        Some(NoProcess {
            article: "an",
            templated: "`url`, `headers` or `body`",
        })
    }

    fn normalize(&self, config: Value) -> Result<Value, String> {
        normalize::<HttpStep>(config)
    }

    fn describe(&self, config: &Value) -> String {
        format!(
            "{} {}",
            text(config, "method").unwrap_or("GET").to_uppercase(),
            text(config, "url").unwrap_or_default()
        )
    }
}

/// An `http:` step: the request to send and what its response must look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpStep {
    /// `http://` or `https://` URL (template).
    pub url: String,
    /// Request method.
    pub method: HttpMethod,
    /// Request headers; values are templates. Never logged.
    pub headers: BTreeMap<String, String>,
    /// Request body, if any.
    pub body: Option<HttpBody>,
    /// What the response must look like for the attempt to succeed.
    pub expect: HttpExpect,
    /// Follow redirects (at most [`HTTP_MAX_REDIRECTS`]); off, a 3xx is the response.
    pub follow_redirects: bool,
    /// Skip TLS certificate verification (logged as a warning on every attempt).
    pub insecure: bool,
}

/// The most redirects an `http` step follows before it fails.
pub const HTTP_MAX_REDIRECTS: usize = 10;

/// Methods an `http` step may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `GET` (the default).
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl HttpMethod {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// The body of an `http` step's request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpBody {
    /// `body:` raw text (template), sent as is.
    Text(String),
    /// `json:` any value (its strings are templates), sent as JSON with
    /// `content-type: application/json`.
    Json(Value),
}

/// Expectations on an `http` step's response; every one must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpExpect {
    /// The status must match one of these (any 2xx when the file says nothing).
    pub status: Vec<StatusMatch>,
    /// Text (template) the body must contain.
    pub body_contains: Option<String>,
    /// Dotted paths into the JSON body (`data.items.0.id`) and the value each must equal;
    /// string values are templates.
    pub json: BTreeMap<String, Value>,
}

impl Default for HttpExpect {
    fn default() -> Self {
        HttpExpect {
            status: vec![StatusMatch::Class(2)],
            body_contains: None,
            json: BTreeMap::new(),
        }
    }
}

/// One accepted response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusMatch {
    /// Exactly this code (100–599).
    Code(u16),
    /// Any code of this class: `2` is `2xx` (1–5).
    Class(u8),
}

impl StatusMatch {
    /// Whether `code` is accepted.
    pub fn matches(self, code: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == code,
            StatusMatch::Class(class) => code / 100 == u16::from(class),
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Code(c) => write!(f, "{c}"),
            StatusMatch::Class(class) => write!(f, "{class}xx"),
        }
    }
}

/// Keys an `http:` step mapping may hold.
const HTTP_KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "json",
    "expect",
    "follow_redirects",
    "insecure",
];

const HTTP_METHODS: &[(&str, HttpMethod)] = &[
    ("GET", HttpMethod::Get),
    ("HEAD", HttpMethod::Head),
    ("POST", HttpMethod::Post),
    ("PUT", HttpMethod::Put),
    ("PATCH", HttpMethod::Patch),
    ("DELETE", HttpMethod::Delete),
];

/// Converts the mapping under `http:`.
fn http_step(cx: &mut Cx, node: &Node, label: &str, site: &mut Sites<'_>) -> Option<HttpStep> {
    let what = format!("`http` in {label}");
    let fields = cx.map(node, &what)?;
    cx.unknown_keys(fields, HTTP_KEYS, &what);

    let url = match get(fields, "url") {
        Some(n) => {
            let url = cx.string(n, &format!("`url` in {label}"));
            if let Some(url) = &url {
                site(url, n.pos, false);
                if let Err(problem) = check_url(url) {
                    cx.err(n.pos, format!("invalid URL {url:?} in {label}: {problem}"));
                }
            }
            url
        }
        None => {
            cx.err(node.pos, format!("missing required key `url` in {what}"));
            None
        }
    };
    let method = get(fields, "method")
        .and_then(|n| match &n.kind {
            Kind::Str(s) => {
                let upper = s.to_ascii_uppercase();
                let found = HTTP_METHODS.iter().find(|(name, _)| *name == upper);
                if found.is_none() {
                    let names: Vec<&str> = HTTP_METHODS.iter().map(|(n, _)| *n).collect();
                    cx.err(
                        n.pos,
                        format!(
                            "invalid value {s:?} for `method` in {label} (expected one of: {})",
                            names.join(", ")
                        ),
                    );
                }
                found.map(|(_, m)| *m)
            }
            _ => {
                cx.expected(n, "an HTTP method", &format!("`method` in {label}"));
                None
            }
        })
        .unwrap_or(HttpMethod::Get);

    let headers = get(fields, "headers")
        .map(|n| header_map(cx, n, label, site))
        .unwrap_or_default();

    let body = match (get(fields, "body"), get(fields, "json")) {
        (Some(_), Some(j)) => {
            cx.err(
                j.pos,
                format!("{what} has both `body` and `json`; give at most one"),
            );
            None
        }
        (Some(b), None) => cx
            .scalar_string(b, &format!("`body` in {label}"))
            .inspect(|text| site(text, b.pos, false))
            .map(HttpBody::Text),
        (None, Some(j)) => {
            collect_strings(j, site);
            Some(HttpBody::Json(j.to_json()))
        }
        (None, None) => None,
    };
    if body.is_some() && method == HttpMethod::Head {
        let pos = get(fields, "body")
            .or(get(fields, "json"))
            .map_or(node.pos, |n| n.pos);
        cx.err(pos, format!("{what}: a HEAD request has no body"));
    }

    let expect = get(fields, "expect")
        .map(|n| http_expect(cx, n, label, site))
        .unwrap_or_default();
    let follow_redirects = get(fields, "follow_redirects")
        .and_then(|n| boolean(cx, n, &format!("`follow_redirects` in {label}")))
        .unwrap_or(true);
    let insecure = get(fields, "insecure")
        .and_then(|n| boolean(cx, n, &format!("`insecure` in {label}")))
        .unwrap_or(false);
    Some(HttpStep {
        url: url?,
        method,
        headers,
        body,
        expect,
        follow_redirects,
        insecure,
    })
}

fn http_expect(cx: &mut Cx, node: &Node, label: &str, site: &mut Sites<'_>) -> HttpExpect {
    let what = format!("`expect` in {label}");
    let mut expect = HttpExpect::default();
    let Some(fields) = cx.map(node, &what) else {
        return expect;
    };
    cx.unknown_keys(fields, &["status", "body_contains", "json"], &what);
    if let Some(n) = get(fields, "status") {
        let what = format!("`status` in {what}");
        let items: Vec<&Node> = match &n.kind {
            Kind::Seq(items) => {
                if items.is_empty() {
                    cx.err(n.pos, format!("{what} must accept at least one status"));
                }
                items.iter().collect()
            }
            _ => vec![n],
        };
        let status: Vec<StatusMatch> = items
            .into_iter()
            .filter_map(|item| {
                let found = status_match(item);
                if found.is_none() {
                    cx.err(
                        item.pos,
                        format!(
                            "invalid status {} in {what}: expected a code from 100 to 599 or \
                             a class such as \"2xx\"",
                            item.describe()
                        ),
                    );
                }
                found
            })
            .collect();
        if !status.is_empty() {
            expect.status = status;
        }
    }
    if let Some(n) = get(fields, "body_contains") {
        expect.body_contains = cx
            .scalar_string(n, &format!("`body_contains` in {what}"))
            .inspect(|text| site(text, n.pos, false));
    }
    if let Some(n) = get(fields, "json") {
        let json_what = format!("`json` in {what}");
        for (key, value) in cx.map(n, &json_what).unwrap_or_default() {
            if key.name.is_empty() || key.name.split('.').any(str::is_empty) {
                cx.err(
                    key.pos,
                    format!(
                        "invalid path `{}` in {json_what}: expected dotted keys or indexes, \
                         e.g. `data.items.0.id`",
                        key.name
                    ),
                );
            }
            collect_strings(value, site);
            expect.json.insert(key.name.clone(), value.to_json());
        }
    }
    expect
}

/// The `headers:` of an `http` or `check` step: valid names, values as templates.
pub(crate) fn header_map(
    cx: &mut Cx,
    node: &Node,
    label: &str,
    site: &mut Sites<'_>,
) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    let what = format!("`headers` in {label}");
    for (key, value) in cx.map(node, &what).unwrap_or_default() {
        if !is_header_name(&key.name) {
            cx.err(
                key.pos,
                format!(
                    "invalid header name `{}` in {what}: expected letters, digits and \
                     !#$%&'*+-.^_`|~",
                    key.name
                ),
            );
        }
        if let Some(text) = cx.scalar_string(value, &format!("`{}` in {what}", key.name)) {
            site(&text, value.pos, false);
            headers.insert(key.name.clone(), text);
        }
    }
    headers
}

/// A status entry: an integer code, its text, or a class such as `2xx`.
fn status_match(node: &Node) -> Option<StatusMatch> {
    match &node.kind {
        Kind::Int(code) => u16::try_from(*code)
            .ok()
            .filter(|c| (100..=599).contains(c))
            .map(StatusMatch::Code),
        Kind::Str(text) => {
            let text = text.trim();
            if let Some(class) = text
                .strip_suffix("xx")
                .or_else(|| text.strip_suffix("XX"))
                .and_then(|d| d.parse::<u8>().ok())
                .filter(|d| (1..=5).contains(d))
            {
                return Some(StatusMatch::Class(class));
            }
            text.parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(StatusMatch::Code)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Pos;

    #[test]
    fn status_entries_are_codes_or_classes() {
        let node = |kind| Node {
            kind,
            pos: Pos::default(),
        };
        assert_eq!(
            status_match(&node(Kind::Int(204))),
            Some(StatusMatch::Code(204))
        );
        assert_eq!(
            status_match(&node(Kind::Str("3xx".into()))),
            Some(StatusMatch::Class(3))
        );
        assert_eq!(status_match(&node(Kind::Int(600))), None);
        assert_eq!(status_match(&node(Kind::Str("6xx".into()))), None);
        assert_eq!(status_match(&node(Kind::Bool(true))), None);
    }
}
