//! A fresh store seeded through the store's own write API, tokens for each role, and one
//! helper that performs a request and decodes the answer.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use jiff::{SignedDuration, Timestamp};
use rota_api::{ApiState, AuthMode, Role, app, issue_token};
use rota_core::model::{RunStatus, StepStatus};
use rota_core::parse::Format;
use rota_store::{Grant, LogStream, NewJobRevision, NewRun, Owner, RunEvent, Store};
use tempfile::TempDir;
use tower::ServiceExt;

/// A seeded store, the router over it and a token per test persona.
pub struct Env {
    /// Keeps the store's directory alive.
    pub _home: TempDir,
    pub store: Store,
    pub app: Router,
    tokens: BTreeMap<&'static str, String>,
    /// Token ids by persona.
    pub token_ids: BTreeMap<&'static str, String>,
    /// Runs of `ops/deploy`, newest first: the first is running, the rest succeeded.
    pub ops_runs: Vec<String>,
    /// The one run of `web/site`.
    pub web_run: String,
}

/// What a call answered.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    /// Asserts a problem body of this status and slug.
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
        );
        assert_eq!(
            self.body["type"],
            format!("https://rota.dev/problems/{slug}"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

/// A grant: a namespace (or every one) and a role.
type SeedGrant = (Option<&'static str>, Role);

/// Personas and their grants.
const PERSONAS: &[(&str, &[SeedGrant])] = &[
    ("admin", &[(None, Role::Admin)]),
    ("viewer_all", &[(None, Role::Viewer)]),
    ("viewer_ops", &[(Some("ops"), Role::Viewer)]),
    ("operator_ops", &[(Some("ops"), Role::Operator)]),
    ("editor_ops", &[(Some("ops"), Role::Editor)]),
    ("viewer_web", &[(Some("web"), Role::Viewer)]),
    ("nobody", &[]),
    ("worker", &[(None, Role::Worker)]),
    ("spare", &[(Some("web"), Role::Viewer)]),
];

/// The value of the secret `ops/SEEDED`.
pub const SEEDED_SECRET_VALUE: &str = "seeded-value-4f9a";

/// How many tokens are seeded (one per persona).
pub const PERSONA_COUNT: usize = PERSONAS.len();

/// A valid YAML job file: two steps, `build` then `ship`, and two parameters with
/// defaults, `target` (string) and `replicas` (int).
pub fn job_source(namespace: &str, job: &str, description: &str) -> String {
    format!(
        "id: {job}\nnamespace: {namespace}\ndescription: {description}\nparams:\n  \
         target: {{ type: string, default: staging }}\n  \
         replicas: {{ type: int, default: 1 }}\nsteps:\n  - id: build\n    sh: echo build\n  \
         - id: ship\n    needs: [build]\n    sh: echo ship\n"
    )
}

/// Number of `ops/deploy` runs seeded.
pub const OPS_RUNS: usize = 7;

/// Number of log lines seeded on the newest `ops` run.
pub const LOG_LINES: usize = 5;

impl Env {
    pub async fn new() -> Env {
        Env::with_auth(AuthMode::Tokens).await
    }

    pub async fn with_auth(auth: AuthMode) -> Env {
        let home = tempfile::tempdir().expect("temp dir");
        let store = Store::open(home.path()).await.expect("open store");
        let base = Timestamp::from_second(1_800_000_000).expect("base time");
        for (ns, job, revisions) in [("ops", "deploy", 2), ("web", "site", 1)] {
            for r in 0..revisions {
                let source = job_source(ns, job, &format!("revision {r}"));
                let parsed = rota_core::parse::parse_str(&source, "<seed>", Format::Yaml)
                    .expect("seed job parses")
                    .remove(0);
                let definition = serde_json::to_value(&parsed).expect("definition");
                let rev = NewJobRevision::new(ns, job, source, definition, base);
                store.save_job_revision(&rev).await.expect("save revision");
            }
        }
        let key = rota_secrets::SecretKey::load_or_create(home.path()).expect("secret key");
        // Sealed and stored directly, so the audit log starts empty.
        let secret = rota_store::NewSecret {
            namespace: "ops".to_owned(),
            name: "SEEDED".to_owned(),
            created_at: base,
            created_by: "seed".to_owned(),
        };
        store
            .put_secret(&secret, |version| {
                rota_secrets::seal(
                    &key,
                    "ops",
                    "SEEDED",
                    version,
                    SEEDED_SECRET_VALUE.as_bytes(),
                )
            })
            .await
            .expect("seed secret");
        let mut ops_runs = Vec::new();
        for i in 0..OPS_RUNS {
            let id = format!("run{i:02}");
            let at = base + SignedDuration::from_secs(i as i64 * 60);
            let running = i == OPS_RUNS - 1;
            seed_run(&store, &id, "ops", "deploy", 2, at, running, running).await;
            ops_runs.push(id);
        }
        ops_runs.reverse();
        let web_run = "webrun".to_owned();
        seed_run(&store, &web_run, "web", "site", 1, base, true, false).await;

        let mut tokens = BTreeMap::new();
        let mut token_ids = BTreeMap::new();
        for (name, grants) in PERSONAS {
            let grants = grants
                .iter()
                .map(|(ns, role)| Grant {
                    namespace: ns.map(str::to_owned),
                    role: *role,
                })
                .collect();
            let (record, text) = issue_token(&store, name, grants).await.expect("token");
            tokens.insert(*name, text);
            token_ids.insert(*name, record.id);
        }
        let mut state = ApiState::new(rota_ops::Ops::new(store.clone()), auth);
        state.ops = state
            .ops
            .with_secrets_home(home.path())
            .with_schedules(std::sync::Arc::new(rota_server::backfill::Schedules::api()));
        let app = app(state);
        Env {
            _home: home,
            store,
            app,
            tokens,
            token_ids,
            ops_runs,
            web_run,
        }
    }

    /// The token text of a persona.
    pub fn token(&self, persona: &str) -> &str {
        self.tokens.get(persona).map_or("", String::as_str)
    }

    /// Performs a request; `token` is a persona, `body` JSON text.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(persona) = token {
            request = request.header("authorization", format!("Bearer {}", self.token(persona)));
        }
        let body = match body {
            Some(text) => {
                request = request.header("content-type", "application/json");
                Body::from(text.to_owned())
            }
            None => Body::empty(),
        };
        let request = request.body(body).expect("request");
        send(&self.app, request).await
    }

    /// The router over the same store without a secrets key location.
    pub fn app_without_secrets(&self) -> Router {
        app(ApiState::new(
            rota_ops::Ops::new(self.store.clone()),
            AuthMode::Tokens,
        ))
    }

    pub async fn get(&self, uri: &str, token: &str) -> Answer {
        self.call(Method::GET, uri, Some(token), None).await
    }

    /// Creates a token from `body` as the admin: the call most tests of tokens start with.
    pub async fn create_token(&self, body: &str) -> Answer {
        self.call(Method::POST, "/api/v1/tokens", Some("admin"), Some(body))
            .await
    }
}

/// Sends a request through the router and decodes a JSON (or empty) body.
pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    if is_event_stream(&headers) {
        // An event stream never ends; `sse_ids` reads it.
        return Answer {
            status,
            headers,
            body: serde_json::Value::Null,
        };
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else if is_text(&headers) {
        // Text (`/metrics`, a run's report): kept as one JSON string.
        serde_json::Value::String(String::from_utf8(bytes.to_vec()).expect("UTF-8 text"))
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A run of the two steps `build` and `ship`, created at `at` by a manual trigger.
pub fn new_run(id: &str, namespace: &str, job: &str, revision: i64, at: Timestamp) -> NewRun {
    NewRun {
        id: id.to_owned(),
        namespace: namespace.to_owned(),
        job_id: job.to_owned(),
        job_revision: revision,
        params: serde_json::json!({}),
        dry_run: false,
        trigger: "manual".to_owned(),
        started_by: None,
        scheduled_at: None,
        created_at: at,
        owner: Owner {
            host: "test".to_owned(),
            pid: std::process::id(),
            start_token: "t".to_owned(),
        },
        steps: vec!["build".to_owned(), "ship".to_owned()],
        parent: None,
    }
}

/// The event of run `id`'s first `build` attempt succeeding at `at`.
pub fn build_succeeded(id: &str, at: Timestamp) -> RunEvent {
    RunEvent::StepFinished {
        run_id: id.to_owned(),
        step_id: "build".to_owned(),
        attempt: 1,
        status: StepStatus::Succeeded,
        exit_code: Some(0),
        reason: None,
        outputs: BTreeMap::new(),
        at,
    }
}

/// Records a run of two steps; `running` leaves it running, `logs` adds log lines.
#[allow(clippy::too_many_arguments)]
pub async fn seed_run(
    store: &Store,
    id: &str,
    namespace: &str,
    job: &str,
    revision: i64,
    at: Timestamp,
    running: bool,
    logs: bool,
) {
    let run = new_run(id, namespace, job, revision, at);
    let mut batch = vec![
        RunEvent::RunCreated { run },
        RunEvent::RunStarted {
            run_id: id.to_owned(),
            at,
        },
        RunEvent::StepStarted {
            run_id: id.to_owned(),
            step_id: "build".to_owned(),
            attempt: 1,
            at,
            pgid: None,
        },
    ];
    if logs {
        for n in 0..LOG_LINES {
            batch.push(RunEvent::Log {
                run_id: id.to_owned(),
                step_id: "build".to_owned(),
                attempt: 1,
                ts: at,
                stream: LogStream::Stdout,
                text: format!("line {n}"),
            });
        }
    }
    if !running {
        batch.extend([
            build_succeeded(id, at),
            RunEvent::StepSkipped {
                run_id: id.to_owned(),
                step_id: "ship".to_owned(),
                status: StepStatus::Skipped,
                reason: "not needed".to_owned(),
                at,
            },
            RunEvent::RunFinished {
                run_id: id.to_owned(),
                status: RunStatus::Succeeded,
                reason: None,
                at,
            },
        ]);
    }
    store.record(&batch).await.expect("record run");
}

fn is_text(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        // `text/plain`: the Prometheus text of `/metrics`; `text/html`, `text/markdown`:
        // a run's report.
        .is_some_and(|v| {
            ["text/plain", "text/html", "text/markdown"]
                .iter()
                .any(|t| v.starts_with(t))
        })
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Sends a request for an event stream and returns the ids of its first `count` events
/// and their `data` documents.
pub async fn sse_ids(
    app: &Router,
    request: Request<Body>,
    count: usize,
) -> Vec<(i64, serde_json::Value)> {
    use futures_util::StreamExt;
    let response = app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(is_event_stream(response.headers()));
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = body.next().await.expect("stream open").expect("chunk");
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let mut id = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            if let (Some(id), Some(data)) = (id, data) {
                events.push((id, data));
            }
        }
    }
    events.truncate(count);
    events
}

/// The audit entries of API calls, oldest first: the engine's entries for run state
/// changes (actor `engine`) are left out.
pub async fn api_audit_records(env: &Env) -> Vec<rota_store::AuditRecord> {
    env.store
        .list_audit(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|a| a.actor != "engine")
        .collect()
}

/// [`api_audit_records`] as (action, target, result).
pub async fn api_audit(env: &Env) -> Vec<(String, String, String)> {
    api_audit_records(env)
        .await
        .into_iter()
        .map(|a| (a.action, a.target, a.result))
        .collect()
}
