//! The CLI as a client of a Rota server's `/api/v1` (`rota --server URL`): one HTTP client
//! with timeouts and a bearer token, JSON in and out, and problem+json errors turned into
//! one readable message.
//!
//! [`Remote`] implements [`rota_ops::Rota`], one module per area (`client/<area>.rs`):
//! every command of the CLI is written once, generic over `Rota`, and its remote mode gets
//! the same records its local mode would have got. A refused call becomes
//! [`rota_ops::OpsError::Remote`] with the server's status and its problem rendered.
//!
//! The token is only ever put in the `Authorization` header: it is not part of any URL,
//! error or log line, and [`Remote`]'s `Debug` leaves it out.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, RequestBuilder, StatusCode};
use rota_ops::records::Problem;
use serde::Serialize;
use serde::de::DeserializeOwned;

mod artifacts;
mod audit;
mod jobs;
mod plans;
mod reports;
mod retention;
mod runs;
mod schedules;
mod secrets;
mod tokens;
mod workers;

/// How long one ordinary call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The API's largest page.
pub const PAGE: u32 = 500;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server is and how to authenticate to it.
#[derive(Clone)]
pub struct Remote {
    http: reqwest::Client,
    /// `http://host:port`, without a trailing slash.
    base: String,
    token: Option<String>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A call the server refused or could not answer: a message for people and the exit code.
#[derive(Debug)]
pub struct ApiFailure {
    /// The HTTP status, when the server answered.
    pub status: Option<StatusCode>,
    /// The full message: title, detail and each listed problem.
    pub message: String,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiFailure {}

impl From<ApiFailure> for rota_ops::OpsError {
    fn from(failure: ApiFailure) -> Self {
        rota_ops::OpsError::Remote {
            status: failure.status.map(|s| s.as_u16()),
            message: failure.message,
        }
    }
}

impl ApiFailure {
    /// Whether the server answered with this status.
    pub fn is(&self, status: StatusCode) -> bool {
        self.status == Some(status)
    }
}

impl Remote {
    /// A client for `server` (`http://` or `https://`), with `token` if given; with
    /// `ca_cert`, also trusting the CA certificates (PEM) of that file besides the system's
    /// roots: for a server whose certificate a private CA signed.
    pub fn new(
        server: &str,
        token: Option<String>,
        ca_cert: Option<&Path>,
    ) -> anyhow::Result<Remote> {
        let base = server.trim_end_matches('/');
        let url = reqwest::Url::parse(base).with_context(|| {
            format!("--server {base:?} is not a URL (e.g. http://127.0.0.1:8480)")
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            anyhow::bail!("--server {base:?} must be an http:// or https:// URL with a host");
        }
        let base = base.strip_suffix("/api/v1").unwrap_or(base).to_owned();
        let mut builder = reqwest::Client::builder();
        if let Some(path) = ca_cert {
            for root in read_roots(path)? {
                builder = builder.add_root_certificate(root);
            }
        }
        let http = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("rota/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Remote {
            http,
            base,
            token: token.filter(|t| !t.trim().is_empty()),
        })
    }

    /// The token: `--token`, else the first line of `--token-file`, else `ROTA_TOKEN`.
    pub fn read_token(
        token: Option<String>,
        file: Option<&Path>,
        env: Option<String>,
    ) -> anyhow::Result<Option<String>> {
        if token.is_some() {
            return Ok(token);
        }
        let Some(file) = file else { return Ok(env) };
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the token file {}", file.display()))?;
        Ok(text.lines().next().map(|l| l.trim().to_owned()))
    }

    /// A request to `path` (which starts with `/api/v1/`), authenticated.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `GET path?query` answered with JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiFailure> {
        let request = self.request(Method::GET, path).query(query);
        self.json(request).await
    }

    /// `GET path?query` answered with text (a report).
    pub async fn get_text(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<String, ApiFailure> {
        let response = self
            .call(self.request(Method::GET, path).query(query))
            .await?;
        response.text().await.map_err(|e| self.unreachable(e))
    }

    /// `method path` with a JSON body, answered with JSON.
    pub async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ApiFailure> {
        let request = self.request(method, path).json(body);
        self.json(request).await
    }

    /// `DELETE path`, answered with no body.
    pub async fn delete(&self, path: &str) -> Result<(), ApiFailure> {
        self.call(self.request(Method::DELETE, path))
            .await
            .map(drop)
    }

    /// A request whose answer streams (server-sent events): no overall time limit, only
    /// the connect timeout. `last_event_id` resumes after the last event seen.
    pub async fn stream(
        &self,
        path: &str,
        query: &[(&str, String)],
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, ApiFailure> {
        let mut request = self
            .request(Method::GET, path)
            .query(query)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.failure(response).await)
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ApiFailure> {
        let response = self.call(request).await?;
        self.decode(response).await
    }

    async fn decode<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, ApiFailure> {
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&bytes).map_err(|e| ApiFailure {
            status: None,
            message: format!(
                "the server at {} answered with JSON this rota does not understand: {e}",
                self.base
            ),
        })
    }

    /// `method path` with a JSON body, answered with no body, within `timeout`.
    pub async fn send_within<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<(), ApiFailure> {
        self.call_within(self.request(method, path).json(body), timeout)
            .await
            .map(drop)
    }

    /// `method path` with a JSON body, answered with JSON within `timeout`.
    pub async fn send_json_within<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, ApiFailure> {
        let response = self
            .call_within(self.request(method, path).json(body), timeout)
            .await?;
        self.decode(response).await
    }

    async fn call(&self, request: RequestBuilder) -> Result<reqwest::Response, ApiFailure> {
        self.call_within(request, CALL_TIMEOUT).await
    }

    async fn call_within(
        &self,
        request: RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, ApiFailure> {
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.failure(response).await)
    }

    /// A transport error: the server's address and the cause, never the request's headers.
    fn unreachable(&self, error: reqwest::Error) -> ApiFailure {
        let what = if error.is_timeout() {
            "timed out".to_owned()
        } else if error.is_connect() {
            "cannot connect".to_owned()
        } else {
            "request failed".to_owned()
        };
        // The source chain says why (refused, DNS, TLS) without the URL's query.
        let mut cause = String::new();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            cause = inner.to_string();
            source = inner.source();
        }
        let cause = if cause.is_empty() {
            String::new()
        } else {
            format!(": {cause}")
        };
        ApiFailure {
            status: None,
            message: format!("server {}: {what}{cause}", self.base),
        }
    }

    /// An error status: the problem body rendered, with a hint for missing credentials.
    async fn failure(&self, response: reqwest::Response) -> ApiFailure {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let mut message = match serde_json::from_slice::<Problem>(&body) {
            Ok(problem) => render_problem(&problem),
            Err(_) => format!(
                "server {} answered {status}{}",
                self.base,
                if body.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        String::from_utf8_lossy(&body[..body.len().min(500)]).trim()
                    )
                }
            ),
        };
        if status == StatusCode::UNAUTHORIZED {
            message.push_str(if self.token.is_some() {
                "\n(the server rejected the token given by --token, ROTA_TOKEN or --token-file)"
            } else {
                "\n(no token was given: pass --token, set ROTA_TOKEN or use --token-file)"
            });
        }
        ApiFailure {
            status: Some(status),
            message,
        }
    }
}

/// The certificates of a CA file (`--ca-cert`, `ROTA_CA_CERT`): one or more PEM blocks.
fn read_roots(path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the CA certificate file {}", path.display()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
        format!(
            "the CA certificate file {} is not PEM certificates",
            path.display()
        )
    })?;
    if roots.is_empty() {
        anyhow::bail!(
            "the CA certificate file {} holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)",
            path.display()
        );
    }
    Ok(roots)
}

/// `Title: detail`, then one line per listed problem (`line:col: message`, `param: message`).
pub fn render_problem(problem: &Problem) -> String {
    let mut text = if problem.detail.is_empty() {
        problem.title.clone()
    } else {
        format!("{}: {}", problem.title, problem.detail)
    };
    for item in &problem.problems {
        let place = match (item.line, item.column, &item.param) {
            (Some(line), Some(col), _) => format!("{line}:{col}: "),
            (Some(line), None, _) => format!("{line}: "),
            (_, _, Some(param)) => format!("parameter {param}: "),
            _ => String::new(),
        };
        text.push_str(&format!("\n  {place}{}", item.message));
    }
    text
}

/// Percent-encodes one path segment (ids are validated by the server; this keeps a stray
/// `/` or `?` from changing the route).
pub fn seg(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// What [`seg`] escapes: everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;
    use rota_ops::records::ProblemItem;

    #[test]
    fn problems_render_title_detail_and_each_item() {
        let problem = Problem {
            kind: "https://rota.dev/problems/invalid-job".into(),
            title: "Invalid job file".into(),
            status: 422,
            detail: "the job file has 2 problem(s)".into(),
            problems: vec![
                ProblemItem {
                    line: Some(3),
                    column: Some(5),
                    param: None,
                    message: "unknown key `stepz`".into(),
                },
                ProblemItem {
                    line: None,
                    column: None,
                    param: Some("n".into()),
                    message: "expected int".into(),
                },
            ],
        };
        assert_eq!(
            render_problem(&problem),
            "Invalid job file: the job file has 2 problem(s)\n  3:5: unknown key `stepz`\n  parameter n: expected int"
        );
    }

    #[test]
    fn path_segments_cannot_change_the_route() {
        assert_eq!(seg("job-1_a.b"), "job-1_a.b");
        assert_eq!(seg("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn debug_hides_the_token() {
        let remote = Remote::new("http://127.0.0.1:1/", Some("s3cret-token".into()), None)
            .expect("valid URL");
        let shown = format!("{remote:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("\"http://127.0.0.1:1\""), "{shown}");
    }

    #[test]
    fn server_must_be_an_http_url() {
        assert!(Remote::new("ftp://host", None, None).is_err());
        assert!(Remote::new("not a url", None, None).is_err());
        assert!(Remote::new("https://rota.example/api/v1", None, None).is_ok());
    }
}
