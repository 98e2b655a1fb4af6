//! The `http:` step kind: one request, sent with reqwest, and expectations on its response.
//!
//! No process runs, so the process-group machinery is bypassed as for notebook steps; the
//! request is raced against the step's stop and its `timeout` instead. Log lines go through
//! the step's redactor like a process's: `> GET <url>`, `< 200 OK (12 ms, 34 bytes)`, then
//! the first [`LOG_BODY_CAP`] bytes of the body. Request headers are never logged. At most
//! [`ASSERT_BODY_CAP`] bytes of a body are ever held in memory; the rest is not read.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue};
use rota_core::kinds::http::{HttpBody, HttpMethod, HttpStep, StatusMatch};
use rota_core::model::{Step, StepStatus, Value};
use rota_core::template::Context;
use tokio_util::sync::CancellationToken;

use super::{Executor, ResolveCx};
use crate::process::Stream;
use crate::run::Shared;
use crate::step::{
    Attempt, AttemptCx, Interrupted, Resolved, Work, log_redacted, race, render_text, render_value,
    stopped_reason, stopped_status,
};

pub(crate) struct Http;

impl Executor for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String> {
        // Sent without a process: no workdir, env or `$ROTA_OUTPUT` (validation refuses
        // the first two), and no shell command can stand in for it in a dry run.
        let http: HttpStep = r.step.kind.decode()?;
        let work = resolve(&http, r.step.timeout, r.ctx)?;
        let display = r.shared.redactor.redact(&work.display()).into_owned();
        Ok(Resolved::work_or_echo(
            Box::new(work),
            display,
            r.dry_run,
            "would send",
        ))
    }
}

impl Work for HttpWork {
    fn run<'a>(
        self: Box<Self>,
        at: AttemptCx<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Attempt> + Send + 'a>> {
        Box::pin(async move {
            let result = run(at.shared, at.step, at.attempt_no, *self, at.stop).await;
            Attempt {
                status: result.status,
                exit_code: None,
                outputs: result.outputs,
                reason: result.reason,
            }
        })
    }
}

/// Bytes of a response body kept for the expectations; a longer body is cut here.
pub const ASSERT_BODY_CAP: usize = 1024 * 1024;
/// Bytes of a response body written to the log, and the largest body published as the
/// `body` output.
pub const LOG_BODY_CAP: usize = 64 * 1024;
/// Time allowed to establish a connection, so a black-holed host fails instead of hanging
/// a step that has no `timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// An http step with its templates rendered, ready to send.
pub(crate) struct HttpWork {
    method: HttpMethod,
    url: reqwest::Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<HttpBody>,
    status: Vec<StatusMatch>,
    body_contains: Option<String>,
    json: Vec<(String, Value)>,
    follow_redirects: bool,
    insecure: bool,
    timeout: Option<Duration>,
}

impl HttpWork {
    /// `GET https://…`, before redaction.
    pub(crate) fn display(&self) -> String {
        format!("{} {}", self.method.as_str(), self.url)
    }
}

/// How the attempt ended.
pub(crate) struct HttpResult {
    pub status: StepStatus,
    pub outputs: BTreeMap<String, String>,
    pub reason: Option<String>,
}

/// Renders every template of `http` into a request.
pub(crate) fn resolve(
    http: &HttpStep,
    timeout: Option<Duration>,
    ctx: &Context,
) -> Result<HttpWork, String> {
    let render = |text: &str| render_text(text, ctx);
    let rendered_url = render(&http.url)?;
    let url = reqwest::Url::parse(rendered_url.trim())
        .map_err(|e| format!("invalid URL {rendered_url:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid URL {rendered_url:?}: expected an http:// or https:// URL"
        ));
    }
    let headers = render_headers(&http.headers, ctx)?;
    let body = match &http.body {
        Some(HttpBody::Text(text)) => Some(HttpBody::Text(render(text)?)),
        Some(HttpBody::Json(value)) => Some(HttpBody::Json(render_value(value, ctx)?)),
        None => None,
    };
    let body_contains = http
        .expect
        .body_contains
        .as_deref()
        .map(render)
        .transpose()?;
    let json = http
        .expect
        .json
        .iter()
        .map(|(path, value)| Ok((path.clone(), render_value(value, ctx)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(HttpWork {
        method: http.method,
        url,
        headers,
        body,
        status: http.expect.status.clone(),
        body_contains,
        json,
        follow_redirects: http.follow_redirects,
        insecure: http.insecure,
        timeout,
    })
}

/// Renders header templates into request headers.
pub(crate) fn render_headers(
    headers: &BTreeMap<String, String>,
    ctx: &Context,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut rendered = Vec::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        // The value may hold a secret: the error names the header, not the value.
        let value = HeaderValue::from_str(&render_text(value, ctx)?)
            .map_err(|_| format!("header `{name}` renders to an invalid value"))?;
        rendered.push((header, value));
    }
    Ok(rendered)
}

/// One client per (redirect policy, TLS verification) pair for the whole process: a
/// client holds a connection pool and the system's root certificates, both worth sharing.
pub(crate) fn client(follow_redirects: bool, insecure: bool) -> Result<reqwest::Client, String> {
    static CLIENTS: [OnceLock<reqwest::Client>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let slot = &CLIENTS[usize::from(follow_redirects) * 2 + usize::from(insecure)];
    if let Some(client) = slot.get() {
        return Ok(client.clone());
    }
    let redirect = if follow_redirects {
        reqwest::redirect::Policy::limited(rota_core::kinds::http::HTTP_MAX_REDIRECTS)
    } else {
        reqwest::redirect::Policy::none()
    };
    let client = reqwest::Client::builder()
        .user_agent(concat!("rota/", env!("CARGO_PKG_VERSION")))
        .redirect(redirect)
        .danger_accept_invalid_certs(insecure)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", root_cause(&e)))?;
    Ok(slot.get_or_init(|| client).clone())
}

/// A response as far as it was read.
struct Received {
    status: reqwest::StatusCode,
    /// At most [`ASSERT_BODY_CAP`] bytes.
    body: Vec<u8>,
    /// The body was longer than `body` (and not read to its end).
    cut: bool,
    /// The body's declared length, when the server gave one.
    declared_len: Option<u64>,
    elapsed: Duration,
}

/// Sends the request and checks its response.
pub(crate) async fn run(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    work: HttpWork,
    stop: &CancellationToken,
) -> HttpResult {
    let log = |stream: Stream, text: &str| log_redacted(shared, step, attempt_no, stream, text);
    if work.insecure {
        log(
            Stream::Stderr,
            "! TLS certificate verification is off for this step (`insecure: true`)",
        );
    }
    log(Stream::Stderr, &format!("> {}", work.display()));
    let client = match client(work.follow_redirects, work.insecure) {
        Ok(client) => client,
        Err(reason) => return failed(reason),
    };
    let received = match race(exchange(&client, &work), stop, work.timeout).await {
        Ok(Ok(received)) => received,
        Err(Interrupted::Stopped) => {
            log(Stream::Stderr, "! request abandoned: the step was stopped");
            return HttpResult {
                status: stopped_status(shared),
                outputs: BTreeMap::new(),
                reason: Some(stopped_reason(shared)),
            };
        }
        Err(Interrupted::TimedOut) => {
            let reason = format!(
                "timed out after {}",
                crate::run::humantime(work.timeout.unwrap_or_default())
            );
            log(Stream::Stderr, &format!("! {reason}"));
            return HttpResult {
                status: StepStatus::TimedOut,
                outputs: BTreeMap::new(),
                reason: Some(reason),
            };
        }
        Ok(Err(reason)) => {
            log(Stream::Stderr, &format!("! {reason}"));
            return failed(reason);
        }
    };

    let size = if received.cut {
        match received.declared_len {
            Some(len) => format!("{len} bytes"),
            None => format!("more than {ASSERT_BODY_CAP} bytes"),
        }
    } else {
        format!("{} bytes", received.body.len())
    };
    log(
        Stream::Stderr,
        &format!(
            "< {} ({} ms, {size})",
            received.status,
            received.elapsed.as_millis()
        ),
    );
    let log_cap = LOG_BODY_CAP.min(shared.config.log_cap_bytes);
    let shown = &received.body[..received.body.len().min(log_cap)];
    match printable(shown) {
        Some(text) => {
            for line in text.lines() {
                log(Stream::Stdout, line);
            }
        }
        None => log(
            Stream::Stderr,
            &format!("! the body is not text: {} bytes not shown", shown.len()),
        ),
    }
    if received.cut || received.body.len() > shown.len() {
        log(
            Stream::Stderr,
            &format!(
                "! body truncated in the log: first {} of {size}",
                shown.len()
            ),
        );
    }

    let mut outputs = BTreeMap::new();
    outputs.insert("status".to_owned(), received.status.as_u16().to_string());
    if !received.cut
        && received.body.len() <= LOG_BODY_CAP
        && let Ok(text) = std::str::from_utf8(&received.body)
    {
        // Outputs are stored and passed on like log lines: redacted the same way.
        let text = shared.redactor.redact(text).into_owned();
        outputs.insert("body".to_owned(), text);
    }

    let problems = check_expectations(&work, &received);
    HttpResult {
        status: if problems.is_empty() {
            StepStatus::Succeeded
        } else {
            StepStatus::Failed
        },
        outputs,
        reason: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// The body as text, when it is UTF-8 (a character cut by the log cap at the very end is
/// dropped); `None` for a binary body, which would only litter the log.
fn printable(body: &[u8]) -> Option<&str> {
    match std::str::from_utf8(body) {
        Ok(text) => Some(text),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&body[..e.valid_up_to()]).ok(),
        Err(_) => None,
    }
}

fn failed(reason: String) -> HttpResult {
    HttpResult {
        status: StepStatus::Failed,
        outputs: BTreeMap::new(),
        reason: Some(reason),
    }
}

/// Sends the request and reads at most [`ASSERT_BODY_CAP`] bytes of the response body.
async fn exchange(client: &reqwest::Client, work: &HttpWork) -> Result<Received, String> {
    let method = reqwest::Method::from_bytes(work.method.as_str().as_bytes())
        .map_err(|e| format!("invalid method: {e}"))?;
    let mut request = client.request(method, work.url.clone());
    for (name, value) in &work.headers {
        request = request.header(name.clone(), value.clone());
    }
    request = match &work.body {
        Some(HttpBody::Text(text)) => request.body(text.clone()),
        Some(HttpBody::Json(value)) => request.json(value),
        None => request,
    };
    let started = Instant::now();
    let mut response = request
        .send()
        .await
        .map_err(|e| describe_error(&e, &work.url))?;
    let status = response.status();
    let declared_len = response.content_length();
    let (body, cut) = read_capped(&mut response, ASSERT_BODY_CAP)
        .await
        .map_err(|e| describe_error(&e, &work.url))?;
    Ok(Received {
        status,
        body,
        cut,
        declared_len,
        elapsed: started.elapsed(),
    })
}

/// Reads at most `cap` bytes of a response body; `true` when it was longer (the rest is
/// not read).
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// Every expectation the response fails, in the order the file lists them.
fn check_expectations(work: &HttpWork, received: &Received) -> Vec<String> {
    let mut problems = Vec::new();
    let code = received.status.as_u16();
    if !work.status.iter().any(|s| s.matches(code)) {
        let accepted: Vec<String> = work.status.iter().map(ToString::to_string).collect();
        problems.push(format!(
            "expected status {}, got {code}",
            accepted.join(" or ")
        ));
    }
    if let Some(needle) = &work.body_contains {
        let text = String::from_utf8_lossy(&received.body);
        if !text.contains(needle.as_str()) {
            let scope = if received.cut {
                format!(" (in its first {ASSERT_BODY_CAP} bytes)")
            } else {
                String::new()
            };
            problems.push(format!("body does not contain {needle:?}{scope}"));
        }
    }
    if !work.json.is_empty() {
        let document = if received.cut {
            Err(format!(
                "the body is longer than {ASSERT_BODY_CAP} bytes, too long to check as JSON"
            ))
        } else {
            serde_json::from_slice::<Value>(&received.body)
                .map_err(|e| format!("the body is not JSON ({e})"))
        };
        for (path, expected) in &work.json {
            let problem = match &document {
                Err(why) => Some(why.clone()),
                Ok(document) => match lookup(document, path) {
                    None => Some("not found in the body".to_owned()),
                    Some(actual) if !same_value(expected, actual) => Some(format!(
                        "expected {}, got {}",
                        shown(expected),
                        shown(actual)
                    )),
                    Some(_) => None,
                },
            };
            if let Some(problem) = problem {
                problems.push(format!("json {path}: {problem}"));
            }
        }
    }
    problems
}

/// The value at a dotted path: object keys, or array indexes for arrays.
fn lookup<'v>(document: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(document, |value, segment| match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// JSON equality where `7` and `7.0` are the same number (YAML writes one, a server may
/// send the other).
fn same_value(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => expected == actual,
    }
}

/// A value in a failure reason, cut to a readable length.
fn shown(value: &Value) -> String {
    const MAX: usize = 200;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        return text;
    }
    let mut cut: String = text.chars().take(MAX).collect();
    cut.push('…');
    cut
}

/// Names what failed, with the URL (redacted later with the rest of the reason).
pub(crate) fn describe_error(error: &reqwest::Error, url: &reqwest::Url) -> String {
    let cause = root_cause(error);
    if error.is_redirect() {
        return format!(
            "too many redirects from {url} (at most {})",
            rota_core::kinds::http::HTTP_MAX_REDIRECTS
        );
    }
    if error.is_connect() {
        if cause.to_ascii_lowercase().contains("connection refused") {
            return format!("connection refused to {url}");
        }
        return format!("cannot connect to {url}: {cause}");
    }
    if error.is_timeout() {
        return format!("request to {url} timed out: {cause}");
    }
    if error.is_body() || error.is_decode() {
        return format!("reading the response of {url} failed: {cause}");
    }
    format!("request to {url} failed: {cause}")
}

/// The innermost error's message: reqwest's outer ones only say "error sending request".
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_walk_objects_and_arrays() {
        let doc = json!({ "data": { "items": [{ "id": 7 }], "status": "up" } });
        assert_eq!(lookup(&doc, "data.status"), Some(&json!("up")));
        assert_eq!(lookup(&doc, "data.items.0.id"), Some(&json!(7)));
        assert_eq!(lookup(&doc, "data.items.1.id"), None);
        assert_eq!(lookup(&doc, "data.status.x"), None);
    }

    #[test]
    fn only_text_bodies_are_printable() {
        assert_eq!(printable(b"ok\n"), Some("ok\n"));
        // "é" cut in half by the cap: the whole characters before it remain.
        assert_eq!(printable(&[b'a', 0xc3]), Some("a"));
        assert_eq!(printable(&[0xff, 0x00, b'a']), None);
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(same_value(&json!(7), &json!(7.0)));
        assert!(same_value(&json!({ "a": [1] }), &json!({ "a": [1.0] })));
        assert!(!same_value(&json!("7"), &json!(7)));
        assert!(!same_value(&json!({ "a": 1 }), &json!({ "a": 1, "b": 2 })));
    }
}
