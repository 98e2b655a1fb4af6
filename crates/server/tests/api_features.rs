//! Retry, job delete, schedule backfill and live log follow through the API of a real
//! `rota serve`, with the first-start admin token, the way a client uses them.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{PATIENCE, Server, TestResult, send};

/// The admin token the server wrote on its first start.
fn admin_token(home: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(home.join("admin.token"))
            && !text.trim().is_empty()
        {
            return Ok(text.trim().to_owned());
        }
        if Instant::now() > deadline {
            return Err("no admin token was written".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

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
    let dir = tempfile::tempdir()?;
    let (home, jobs) = (dir.path().join("home"), dir.path().join("jobs"));
    std::fs::create_dir_all(&jobs)?;
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
    let token = admin_token(&home)?;

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
