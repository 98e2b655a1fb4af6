//! `http:` steps run through the engine's front door against a real HTTP server on
//! 127.0.0.1 (a tokio listener answering canned responses), on a real SQLite store.
//! Waits have generous upper bounds, never timing assertions.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rota_core::model::{RunStatus, StepStatus};
use rota_engine::run::RunStop;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod support;

use support::{Options, TestResult, run_job};

// ---------------------------------------------------------------------------------------------
// a canned HTTP server

/// What the server does with a request.
enum Reply {
    /// Send this status, content type and body, then close.
    Respond(u16, &'static str, String),
    /// Answer `302 Found` pointing at this location.
    Redirect(&'static str),
    /// Never answer (the connection stays open).
    Hang,
}

/// A request as the server received it.
#[derive(Debug, Clone)]
struct Seen {
    /// Request line and headers, as sent.
    head: String,
    body: String,
}

impl Seen {
    fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or_default()
    }

    /// A header's value (names compared without case).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

type Handler = dyn Fn(usize, &Seen) -> Reply + Send + Sync;

/// A server on 127.0.0.1:0 that records every request and answers with `handler`
/// (given the request's number, from 0).
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Sends once per request received, for tests that act mid-request.
    arrivals: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl Server {
    async fn start(
        handler: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, arrivals) = tokio::sync::mpsc::unbounded_channel();
        let handler: Arc<Handler> = Arc::new(handler);
        let task_seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, handler, tx) =
                    (Arc::clone(&task_seen), Arc::clone(&handler), tx.clone());
                tokio::spawn(async move {
                    let _ = answer(stream, &seen, &*handler, &tx).await;
                });
            }
        });
        Ok(Server {
            base,
            seen,
            arrivals,
        })
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn answer(
    mut stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    handler: &Handler,
    arrivals: &tokio::sync::mpsc::UnboundedSender<()>,
) -> std::io::Result<()> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut request = Seen {
        head,
        body: String::new(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    request.body = String::from_utf8_lossy(&body).into_owned();
    let number = {
        let mut seen = seen.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        seen.push(request.clone());
        seen.len() - 1
    };
    let _ = arrivals.send(());
    match handler(number, &request) {
        Reply::Hang => {
            // Hold the connection open until the client goes away.
            let _ = stream.read(&mut buf).await;
            Ok(())
        }
        Reply::Redirect(location) => {
            let response = format!(
                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\
                 connection: close\r\n\r\n"
            );
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        }
        Reply::Respond(status, content_type, body) => {
            let response = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                reason_phrase(status),
                body.len()
            );
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

fn text(status: u16, body: &str) -> Reply {
    Reply::Respond(status, "text/plain", body.to_owned())
}

fn json(status: u16, body: &str) -> Reply {
    Reply::Respond(status, "application/json", body.to_owned())
}

// ---------------------------------------------------------------------------------------------
// running a job

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// tests

#[tokio::test]
async fn expectations_pass_and_outputs_reach_a_downstream_step() -> TestResult {
    let server = Server::start(|_, _| {
        json(
            200,
            r#"{"data":{"status":"up","items":[{"id":7},{"id":8}]}}"#,
        )
    })
    .await?;
    let source = format!(
        r#"id: http-ok
steps:
  - id: health
    http:
      url: "{base}/health"
      expect:
        status: [200, 204]
        body_contains: '"up"'
        json: {{ data.status: up, data.items.1.id: 8 }}
  - id: after
    needs: [health]
    sh: |
      echo "{{{{ steps.health.outputs.status }}}}" > status.out
      echo '{{{{ steps.health.outputs.body }}}}' > body.out
"#,
        base = server.base
    );
    let ran = run_job(&source, Options::default()).await?;
    ran.assert_status(RunStatus::Succeeded);
    let health = ran.step("health");
    assert_eq!(
        health.outputs.get("status").map(String::as_str),
        Some("200")
    );
    assert_eq!(health.exit_code, None);
    assert_eq!(read(&ran.dir.path().join("status.out")), "200\n");
    assert_eq!(
        read(&ran.dir.path().join("body.out")),
        "{\"data\":{\"status\":\"up\",\"items\":[{\"id\":7},{\"id\":8}]}}\n"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path(), "/health");
    assert!(
        requests[0]
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("rota/")),
        "{requests:?}"
    );
    let log = ran.log().await?;
    assert!(
        log.contains(&format!("> GET {}/health", server.base)),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("< 200 OK (") && l.ends_with(" bytes)")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains(r#""status":"up""#)),
        "{log:?}"
    );
    Ok(())
}

#[tokio::test]
async fn failed_expectations_name_what_failed() -> TestResult {
    let server = Server::start(|_, req| match req.path() {
        "/down" => text(503, "maintenance"),
        "/nope" => text(200, "all bad"),
        "/json" => json(200, r#"{"data":{"status":"down"}}"#),
        "/text" => text(200, "not json"),
        _ => text(404, ""),
    })
    .await?;
    let source = format!(
        r#"id: http-fail
steps:
  - id: status
    http: {{ url: "{base}/down" }}
  - id: contains
    http: {{ url: "{base}/nope", expect: {{ body_contains: ok }} }}
  - id: json
    http: {{ url: "{base}/json", expect: {{ json: {{ data.status: up, data.missing: 1 }} }} }}
  - id: notjson
    http: {{ url: "{base}/text", expect: {{ status: 2xx, json: {{ a: 1 }} }} }}
  - id: listed
    http: {{ url: "{base}/down", expect: {{ status: [200, "4xx"] }} }}
"#,
        base = server.base
    );
    let ran = run_job(&source, Options::default()).await?;
    ran.assert_status(RunStatus::Failed);
    let reason = |id: &str| {
        let step = ran.step(id);
        assert_eq!(step.status, StepStatus::Failed, "{step:?}");
        step.reason.clone().unwrap_or_default()
    };
    assert_eq!(reason("status"), "expected status 2xx, got 503");
    assert_eq!(reason("contains"), r#"body does not contain "ok""#);
    assert_eq!(
        reason("json"),
        r#"json data.missing: not found in the body; json data.status: expected "up", got "down""#
    );
    assert!(
        reason("notjson").starts_with("json a: the body is not JSON"),
        "{}",
        reason("notjson")
    );
    assert_eq!(reason("listed"), "expected status 200 or 4xx, got 503");
    // A failed expectation still publishes what came back.
    assert_eq!(
        ran.step("status").outputs.get("body").map(String::as_str),
        Some("maintenance")
    );
    Ok(())
}

#[tokio::test]
async fn a_secret_reaches_the_server_but_never_the_log() -> TestResult {
    const TOKEN: &str = "tok-3f9a61c2d8e4";
    // The server echoes what it received, so the body would carry the secret too.
    let server = Server::start(|_, req| {
        text(
            200,
            &format!(
                "auth={}\npath={}\n",
                req.header("authorization").unwrap_or_default(),
                req.path()
            ),
        )
    })
    .await?;
    let source = format!(
        r#"id: http-secret
params:
  env: {{ type: string }}
secrets: [API_TOKEN]
steps:
  - id: call
    http:
      url: "{base}/check?env={{{{ params.env }}}}&t={{{{ secrets.API_TOKEN }}}}"
      headers: {{ Authorization: "Bearer {{{{ secrets.API_TOKEN }}}}" }}
      expect: {{ body_contains: "Bearer {{{{ secrets.API_TOKEN }}}}" }}
"#,
        base = server.base
    );
    let ran = run_job(
        &source,
        Options {
            params: vec![("env", "prod")],
            secrets: vec![("API_TOKEN", TOKEN)],
            ..Options::default()
        },
    )
    .await?;
    ran.assert_status(RunStatus::Succeeded);
    let requests = server.requests();
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(requests[0].path(), format!("/check?env=prod&t={TOKEN}"));

    let log = ran.log().await?;
    assert!(log.iter().all(|l| !l.contains(TOKEN)), "{log:?}");
    assert!(
        log.contains(&format!("> GET {}/check?env=prod&t=***", server.base)),
        "{log:?}"
    );
    assert!(log.contains(&"auth=Bearer ***".to_owned()), "{log:?}");
    let body = ran
        .step("call")
        .outputs
        .get("body")
        .cloned()
        .unwrap_or_default();
    assert!(
        body.contains("auth=Bearer ***") && !body.contains(TOKEN),
        "{body:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_post_sends_its_rendered_json_body() -> TestResult {
    let server = Server::start(|_, _| text(201, "")).await?;
    let source = format!(
        r#"id: http-post
params:
  env: {{ type: string }}
steps:
  - id: post
    http:
      url: "{base}/deploy"
      method: POST
      headers: {{ X-Run: "{{{{ run.id }}}}" }}
      json: {{ env: "{{{{ params.env }}}}", replicas: 3 }}
      insecure: true
"#,
        base = server.base
    );
    let ran = run_job(
        &source,
        Options {
            params: vec![("env", "staging")],
            ..Options::default()
        },
    )
    .await?;
    ran.assert_status(RunStatus::Succeeded);
    let requests = server.requests();
    assert!(
        requests[0].head.starts_with("POST /deploy "),
        "{requests:?}"
    );
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(requests[0].header("x-run"), Some("run-1"));
    let sent: serde_json::Value = serde_json::from_str(&requests[0].body)?;
    assert_eq!(sent, serde_json::json!({ "env": "staging", "replicas": 3 }));
    let log = ran.log().await?;
    assert!(
        log.iter()
            .any(|l| l.starts_with("! TLS certificate verification is off")),
        "{log:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_attempt_is_retried_until_the_server_answers() -> TestResult {
    let server = Server::start(|n, _| {
        if n == 0 {
            text(503, "warming up")
        } else {
            text(200, "ok")
        }
    })
    .await?;
    let source = format!(
        r#"id: http-retry
steps:
  - id: flaky
    http: {{ url: "{base}/", expect: {{ body_contains: ok }} }}
    retry: {{ attempts: 3, initial: 10ms }}
"#,
        base = server.base
    );
    let ran = run_job(&source, Options::default()).await?;
    ran.assert_status(RunStatus::Succeeded);
    assert_eq!(ran.step("flaky").attempts, 2);
    assert_eq!(server.requests().len(), 2);
    let attempts: Vec<_> = ran
        .store
        .step_attempts("run-1", "flaky")
        .await?
        .iter()
        .map(|a| (a.attempt, a.status))
        .collect();
    assert_eq!(
        attempts,
        [(1, StepStatus::Failed), (2, StepStatus::Succeeded)]
    );
    Ok(())
}

#[tokio::test]
async fn a_server_that_never_answers_times_the_step_out() -> TestResult {
    let server = Server::start(|_, _| Reply::Hang).await?;
    let source = format!(
        r#"id: http-timeout
steps:
  - id: stuck
    http: {{ url: "{base}/slow" }}
    timeout: 1s
"#,
        base = server.base
    );
    let ran = run_job(&source, Options::default()).await?;
    ran.assert_status(RunStatus::Failed);
    let stuck = ran.step("stuck");
    assert_eq!(stuck.status, StepStatus::TimedOut);
    assert_eq!(stuck.reason.as_deref(), Some("timed out after 1s"));
    assert_eq!(server.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_cancel_mid_request_cancels_the_step() -> TestResult {
    let mut server = Server::start(|_, _| Reply::Hang).await?;
    let source = format!(
        r#"id: http-cancel
steps:
  - id: stuck
    http: {{ url: "{base}/slow" }}
  - id: later
    needs: [stuck]
    sh: touch later.ran
"#,
        base = server.base
    );
    let stop = RunStop::new();
    let stopper = stop.clone();
    let mut arrivals = std::mem::replace(
        &mut server.arrivals,
        tokio::sync::mpsc::unbounded_channel().1,
    );
    tokio::spawn(async move {
        // The request is at the server: the step is mid-request.
        if arrivals.recv().await.is_some() {
            stopper.stop(rota_engine::run::StopReason::Cancelled("test".into()));
        }
    });
    let ran = run_job(
        &source,
        Options {
            stop: Some(stop),
            ..Options::default()
        },
    )
    .await?;
    ran.assert_status(RunStatus::Cancelled);
    assert_eq!(ran.step("stuck").status, StepStatus::Cancelled);
    assert_eq!(
        ran.step("stuck").reason.as_deref(),
        Some("cancelled by test")
    );
    assert!(!ran.dir.path().join("later.ran").exists());
    Ok(())
}

#[tokio::test]
async fn a_dry_run_sends_only_what_is_marked_run() -> TestResult {
    let server = Server::start(|_, _| text(200, "ok")).await?;
    let source = format!(
        r#"id: http-dry
steps:
  - id: deploy
    http: {{ url: "{base}/deploy", method: POST, body: go }}
  - id: health
    http: {{ url: "{base}/health" }}
    dry_run: run
  - id: purge
    http: {{ url: "{base}/purge", method: DELETE }}
    dry_run: skip
"#,
        base = server.base
    );
    let ran = run_job(
        &source,
        Options {
            dry_run: true,
            ..Options::default()
        },
    )
    .await?;
    ran.assert_status(RunStatus::Succeeded);
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
    assert_eq!(paths, ["/health"]);
    assert_eq!(ran.step("deploy").status, StepStatus::Succeeded);
    assert_eq!(ran.step("health").status, StepStatus::Succeeded);
    assert_eq!(ran.step("purge").status, StepStatus::Skipped);
    let log = ran.log().await?;
    assert!(
        log.contains(&format!("dry run: would send POST {}/deploy", server.base)),
        "{log:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_connection_fails_the_step_with_the_url() -> TestResult {
    // A port that was just free: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    let source = format!(
        r#"id: http-refused
steps:
  - id: call
    http: {{ url: "http://{addr}/x" }}
"#
    );
    let ran = run_job(&source, Options::default()).await?;
    let call = ran.step("call");
    assert_eq!(call.status, StepStatus::Failed);
    assert_eq!(
        call.reason.as_deref(),
        Some(format!("connection refused to http://{addr}/x").as_str())
    );
    Ok(())
}

#[tokio::test]
async fn a_large_body_is_capped_in_the_log_and_left_out_of_the_outputs() -> TestResult {
    // 200 lines of 1 KiB: more than the 64 KiB the log shows.
    let line = "x".repeat(1023);
    let body: String = (0..200).map(|_| format!("{line}\n")).collect();
    let server = Server::start(move |_, _| text(200, &body)).await?;
    let source = format!(
        r#"id: http-large
steps:
  - id: big
    http: {{ url: "{base}/big", expect: {{ body_contains: xxx }} }}
"#,
        base = server.base
    );
    let ran = run_job(&source, Options::default()).await?;
    let big = ran.step("big");
    assert_eq!(big.status, StepStatus::Succeeded, "{big:?}");
    assert_eq!(big.outputs.get("status").map(String::as_str), Some("200"));
    assert_eq!(big.outputs.get("body"), None);
    let log = ran.log().await?;
    let body_lines = log.iter().filter(|l| l.starts_with("xxx")).count();
    assert_eq!(body_lines, 64, "64 KiB of 1 KiB lines");
    assert!(
        log.contains(&"! body truncated in the log: first 65536 of 204800 bytes".to_owned()),
        "{:?}",
        log.iter()
            .filter(|l| !l.starts_with("xxx"))
            .collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn redirects_are_followed_unless_the_step_says_not_to() -> TestResult {
    let server = Server::start(|_, req| match req.path() {
        "/old" => Reply::Redirect("/new"),
        "/loop" => Reply::Redirect("/loop"),
        _ => text(200, "moved here"),
    })
    .await?;
    let source = format!(
        r#"id: http-redirect
steps:
  - id: followed
    http: {{ url: "{base}/old", expect: {{ body_contains: moved }} }}
  - id: kept
    needs: [followed]
    http: {{ url: "{base}/old", follow_redirects: false, expect: {{ status: 302 }} }}
  - id: head
    needs: [kept]
    http: {{ url: "{base}/new", method: HEAD }}
  - id: looping
    needs: [head]
    http: {{ url: "{base}/loop" }}
"#,
        base = server.base
    );
    let ran = run_job(&source, Options::default()).await?;
    assert_eq!(ran.step("followed").status, StepStatus::Succeeded);
    assert_eq!(ran.step("kept").status, StepStatus::Succeeded);
    assert_eq!(
        ran.step("kept").outputs.get("status").map(String::as_str),
        Some("302")
    );
    assert_eq!(ran.step("head").status, StepStatus::Succeeded);
    let looping = ran.step("looping");
    assert_eq!(looping.status, StepStatus::Failed);
    assert_eq!(
        looping.reason.as_deref(),
        Some(format!("too many redirects from {}/loop (at most 10)", server.base).as_str())
    );
    let seen: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.head.lines().next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        seen[..4],
        [
            "GET /old HTTP/1.1",
            "GET /new HTTP/1.1",
            "GET /old HTTP/1.1",
            "HEAD /new HTTP/1.1"
        ]
    );
    // The first request and ten redirects, then the step gives up.
    assert_eq!(seen.len(), 4 + 11);
    Ok(())
}
