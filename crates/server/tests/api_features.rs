//! Retry, job delete, schedule backfill and live log follow through the API of a real
//! `rota serve`, with the first-start admin token, the way a client uses them.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{PATIENCE, Server, TestResult, send, server_dirs};

/// A JSON call with the token; the status and the decoded body (`null` when empty).
fn call(
    addr: &str,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, serde_json::Value), Box<dyn std::error::Error>> {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    let (status, text) = send(method, addr, path, &headers, body.as_bytes())?;
    let value = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{method} {path}: {e}: {text}"))?
    };
    Ok((status, value))
}

/// Polls the run until it has ended; its final JSON.
fn wait_ended(addr: &str, token: &str, id: &str) -> Result<serde_json::Value, String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, run) = call(addr, token, "GET", &format!("/api/v1/runs/{id}"), "")
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("GET run {id}: {status} {run}"));
        }
        let state = run["status"].as_str().unwrap_or_default();
        if !["queued", "running", "planned", "awaiting_approval"].contains(&state) {
            return Ok(run);
        }
        if Instant::now() > deadline {
            return Err(format!("run {id} never ended: {run}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn step_status<'a>(run: &'a serde_json::Value, step: &str) -> &'a str {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == step))
        .and_then(|s| s["status"].as_str())
        .unwrap_or("<missing>")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_from_a_failed_step_reruns_it_and_downstream_only() -> TestResult {
    let (_dir, home, jobs) = server_dirs()?;
    // b fails until the marker exists; c prints a's output.
    std::fs::write(
        jobs.join("chain.yaml"),
        "id: chain\nsteps:\n  \
         - id: a\n    sh: echo a >> a.txt; echo x=41 >> \"$ROTA_OUTPUT\"\n  \
         - id: b\n    needs: [a]\n    sh: echo b >> b.txt; test -f marker\n  \
         - id: c\n    needs: [b]\n    sh: echo 'c {{ steps.a.outputs.x }}' >> c.txt\n",
    )?;
    let server = Server::start(&home, &jobs, &[])?;
    let addr = server.addr()?;
    let token = server.admin_token()?;

    // The job is loaded from the directory by the server's first poll.
    let deadline = Instant::now() + PATIENCE;
    let first = loop {
        let (status, run) = call(
            &addr,
            &token,
            "POST",
            "/api/v1/namespaces/default/jobs/chain/runs",
            "{}",
        )?;
        if status == 202 {
            break run;
        }
        assert!(Instant::now() < deadline, "never accepted a run: {run}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let first_id = first["id"].as_str().ok_or("no run id")?.to_owned();
    let first = wait_ended(&addr, &token, &first_id)?;
    assert_eq!(first["status"], "failed", "{first}");
    assert_eq!(step_status(&first, "c"), "skipped", "{first}");

    // Unknown step: 422 naming it; unknown run: 404.
    let (status, problem) = call(
        &addr,
        &token,
        "POST",
        &format!("/api/v1/runs/{first_id}/retry"),
        r#"{"from": "nope"}"#,
    )?;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("nope"),
        "{problem}"
    );
    let (status, _) = call(
        &addr,
        &token,
        "POST",
        "/api/v1/runs/00000000000000000000000000/retry",
        "{}",
    )?;
    assert_eq!(status, 404);

    std::fs::write(jobs.join("marker"), "")?;
    let (status, retry) = call(
        &addr,
        &token,
        "POST",
        &format!("/api/v1/runs/{first_id}/retry"),
        r#"{"from": "b"}"#,
    )?;
    assert_eq!(status, 202, "{retry}");
    assert_eq!(retry["retry_of"], first_id.as_str());
    assert_eq!(retry["trigger"], "retry");
    let retry_id = retry["id"].as_str().ok_or("no retry id")?.to_owned();
    let retry = wait_ended(&addr, &token, &retry_id)?;
    assert_eq!(retry["status"], "succeeded", "{retry}");
    assert_eq!(lines(&jobs.join("a.txt")), ["a"], "a ran once in total");
    assert_eq!(lines(&jobs.join("b.txt")), ["b", "b"], "b ran in both runs");
    assert_eq!(
        lines(&jobs.join("c.txt")),
        ["c 41"],
        "c ran in the retry and saw a's output from the original run"
    );

    // The retried run is still history.
    let (status, original) = call(
        &addr,
        &token,
        "GET",
        &format!("/api/v1/runs/{first_id}"),
        "",
    )?;
    assert_eq!((status, original["status"].as_str()), (200, Some("failed")));

    // Without `from` (an empty body) every step runs again.
    let (status, all) = call(
        &addr,
        &token,
        "POST",
        &format!("/api/v1/runs/{first_id}/retry"),
        "",
    )?;
    assert_eq!(status, 202, "{all}");
    let all_id = all["id"].as_str().ok_or("no retry id")?.to_owned();
    let all = wait_ended(&addr, &token, &all_id)?;
    assert_eq!(all["status"], "succeeded", "{all}");
    assert_eq!(lines(&jobs.join("a.txt")), ["a", "a"]);
    assert_eq!(lines(&jobs.join("b.txt")), ["b", "b", "b"]);
    assert_eq!(lines(&jobs.join("c.txt")), ["c 41", "c 41"]);
    Ok(())
}

/// The body of a response read to its end, with chunked transfer coding removed.
fn dechunk(raw: &str) -> Result<String, String> {
    let (head, mut rest) = raw.split_once("\r\n\r\n").ok_or("no header end")?;
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(rest.to_owned());
    }
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("truncated chunk size")?;
        let size = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
        if size == 0 {
            return Ok(body);
        }
        body.push_str(after.get(..size).ok_or("truncated chunk")?);
        rest = after.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// One server-sent event: its name, `id` and `data`.
type Frame = (String, Option<String>, String);

/// Reads a run's log stream until the server closes it (after the `end` event); the
/// frames as (event, id, data).
fn log_stream(
    addr: &str,
    token: &str,
    run: &str,
    last_event_id: Option<&str>,
) -> Result<Vec<Frame>, Box<dyn std::error::Error>> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut request = format!(
        "GET /api/v1/runs/{run}/logs/stream HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Accept: text/event-stream\r\nAuthorization: Bearer {token}\r\n"
    );
    if let Some(id) = last_event_id {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let body = dechunk(&raw)?;
    let mut frames = Vec::new();
    for block in body.split("\n\n") {
        let (mut event, mut id, mut data) = ("message".to_owned(), None, None);
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(v.to_owned());
            }
        }
        if let Some(data) = data {
            frames.push((event, id, data));
        }
    }
    Ok(frames)
}

fn line_texts(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.0 == "message")
        .filter_map(|f| serde_json::from_str::<serde_json::Value>(&f.2).ok())
        .map(|v| v["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_stream_follows_a_live_run_and_resumes_with_last_event_id() -> TestResult {
    let (_dir, home, jobs) = server_dirs()?;
    // It prints for about a second, and waits for a go file first so the stream is open
    // before the first line.
    std::fs::write(
        jobs.join("talk.yaml"),
        "id: talk\ntriggers:\n  - cron: '0 0 1 1 *'\nsteps:\n  - id: main\n    sh: |\n      \
         while [ ! -f go ]; do sleep 0.05; done\n      \
         for i in 1 2 3 4 5; do echo \"line $i\"; sleep 0.2; done\n",
    )?;
    let server = Server::start(&home, &jobs, &[])?;
    let addr = server.addr()?;
    let token = server.admin_token()?;

    // The server installed the schedule routes' trigger arithmetic.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, shown) = call(
            &addr,
            &token,
            "GET",
            "/api/v1/namespaces/default/jobs/talk/schedule?count=2",
            "",
        )?;
        if status == 200 {
            assert_eq!(shown["next"].as_array().map(Vec::len), Some(2), "{shown}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "schedule never shown: {status} {shown}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (status, run) = call(
        &addr,
        &token,
        "POST",
        "/api/v1/namespaces/default/jobs/talk/runs",
        "{}",
    )?;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_str().ok_or("no run id")?.to_owned();
    let reader = {
        let (addr, token, run_id) = (addr.clone(), token.clone(), run_id.clone());
        std::thread::spawn(move || {
            log_stream(&addr, &token, &run_id, None).map_err(|e| e.to_string())
        })
    };
    std::fs::write(jobs.join("go"), "")?;
    let frames = reader.join().map_err(|_| "the reader panicked")??;
    assert_eq!(
        line_texts(&frames),
        ["line 1", "line 2", "line 3", "line 4", "line 5"]
    );
    let last = frames.last().ok_or("no frames")?;
    assert_eq!(last.0, "end", "{frames:?}");
    let end: serde_json::Value = serde_json::from_str(&last.2)?;
    assert_eq!(end["status"], "succeeded");
    let ids: Vec<i64> = frames
        .iter()
        .filter_map(|f| f.1.as_deref()?.parse().ok())
        .collect();
    assert_eq!(ids.len(), 5, "{frames:?}");

    let second = ids[1].to_string();
    let resumed = log_stream(&addr, &token, &run_id, Some(&second))?;
    assert_eq!(line_texts(&resumed), ["line 3", "line 4", "line 5"]);
    assert_eq!(resumed.last().map(|f| f.0.as_str()), Some("end"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deleted_through_the_api_is_no_longer_scheduled() -> TestResult {
    let (_dir, home, jobs) = server_dirs()?;
    let server = Server::start(&home, &jobs, &[])?;
    let addr = server.addr()?;
    let token = server.admin_token()?;
    let source =
        "id: tick\ntriggers:\n  - cron: '* * * * * *'\nsteps:\n  - id: main\n    sh: 'true'\n";
    let body = serde_json::json!({ "format": "yaml", "source": source }).to_string();
    let uri = "/api/v1/namespaces/default/jobs/tick";
    let (status, saved) = call(&addr, &token, "PUT", uri, &body)?;
    assert_eq!(status, 201, "{saved}");
    let runs = |token: &str| -> Result<usize, Box<dyn std::error::Error>> {
        let (_, page) = call(
            &addr,
            token,
            "GET",
            "/api/v1/runs?namespace=default&job=tick&limit=500",
            "",
        )?;
        Ok(page["items"].as_array().map_or(0, Vec::len))
    };
    let deadline = Instant::now() + PATIENCE;
    while runs(&token)? == 0 {
        assert!(Instant::now() < deadline, "the job never ran");
        std::thread::sleep(Duration::from_millis(100));
    }

    let (status, answer) = call(&addr, &token, "DELETE", uri, "")?;
    assert_eq!(status, 204, "{answer}");
    let log = home.join("serve.log");
    crate::support::wait_for("the server to unschedule the job", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("stored job no longer scheduled"))
    })?;
    let after_delete = runs(&token)?;
    // Three occurrences would be due meanwhile if the job were still scheduled.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(runs(&token)?, after_delete, "a deleted job queued runs");
    let (status, _) = call(&addr, &token, "GET", uri, "")?;
    assert_eq!(status, 404);
    Ok(())
}
