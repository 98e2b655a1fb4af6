//! Notifications through the real `rota` binary: a `rota run` whose endpoint is down
//! leaves its notification queued in the store, and a later `rota serve` on the same
//! `ROTA_HOME` delivers it, with the secret in its URL and header reaching the endpoint but
//! never the store's files or the server's log.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::support::{Server, TestResult, rota_bin, server_dirs, wait_for};
use rota_store::{NotificationStatus, Store};

const SECRET: &str = "k3y-Wm9xQ27";

/// Serves HTTP on `listener` in a thread: answers 200 and keeps each request's text.
fn endpoint(listener: TcpListener) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then the body its content-length announces.
            let text = loop {
                let Ok(n) = stream.read(&mut buf) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).into_owned();
                let Some(end) = text.find("\r\n\r\n") else {
                    continue;
                };
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    break Some(text);
                }
            };
            if let Some(text) = text {
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(text);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_rota_run_could_not_send_is_delivered_by_a_later_rota_serve() -> TestResult {
    let (dir, home, jobs) = server_dirs()?;
    // A free port with nothing listening: the endpoint is down while `rota run` runs.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let file = dir.path().join("failing.yaml");
    std::fs::write(
        &file,
        format!(
            "id: failing\nsecrets: [HOOK_KEY]\nsteps:\n  - id: rotate\n    sh: exit 4\n\
             notify:\n  - on: [failure]\n    webhook:\n      \
             url: \"http://127.0.0.1:{port}/hooks/{{{{ secrets.HOOK_KEY }}}}?run={{{{ run.id }}}}\"\n      \
             headers: {{ X-Key: \"{{{{ secrets.HOOK_KEY }}}}\" }}\n"
        ),
    )?;

    let run = Command::new(rota_bin())
        .arg("run")
        .arg(&file)
        .env("ROTA_HOME", &home)
        .env("HOOK_KEY", SECRET)
        .env_remove("ROTA_LOG")
        .output()?;
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not delivered yet"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");

    let run_id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split_whitespace().next())
        .ok_or("no run id on stderr")?
        .to_owned();
    let store = Store::open(&home).await?;
    let pending = store.count_pending_notifications(None).await?;
    assert_eq!(pending, 1);
    store.close().await;

    // The endpoint comes up, then a server starts on the same home.
    let seen = endpoint(TcpListener::bind(("127.0.0.1", port))?);
    let mut server = Server::start(&home, &jobs, &[("HOOK_KEY", SECRET)])?;
    wait_for("the notification to arrive", || {
        !seen.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    })?;
    let store = Store::open(&home).await?;
    let mut rows = Vec::new();
    for _ in 0..1200 {
        rows = store.notifications_of_run(&run_id).await?;
        if rows
            .first()
            .is_some_and(|r| r.status == NotificationStatus::Sent)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, NotificationStatus::Sent, "{:?}", rows[0]);
    server.terminate()?;

    let requests = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let request = &requests[0];
    assert!(
        request.starts_with(&format!("POST /hooks/{SECRET}?run={run_id} HTTP/1.1")),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains(&format!("x-key: {}", SECRET.to_ascii_lowercase()))
    );
    assert!(request.contains("\"event\":\"failure\""), "{request}");
    assert!(
        request.contains("\"failed_steps\":[\"rotate\"]"),
        "{request}"
    );

    let events = store.events_after(0, 1000).await?;
    let audit = store.list_audit(0, 1000).await?;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"notification.queued"), "{kinds:?}");
    assert!(kinds.contains(&"notification.failed"), "{kinds:?}");
    assert!(kinds.contains(&"notification.sent"), "{kinds:?}");
    assert!(!format!("{events:?}{audit:?}").contains(SECRET));
    store.close().await;
    for entry in std::fs::read_dir(&home)? {
        let path = entry?.path();
        if path.is_file() {
            let bytes = std::fs::read(&path)?;
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "the secret is in {}", path.display());
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_run_notifies_while_it_runs_too_long_and_when_it_fails() -> TestResult {
    let (dir, home, jobs) = server_dirs()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let seen = endpoint(listener);
    // The step runs until the `duration_exceeded` notification has arrived (so it is sent
    // while the run is still running, whatever the machine's speed), then fails.
    let flag = dir.path().join("arrived");
    std::fs::write(
        jobs.join("slow.yaml"),
        format!(
            "id: slow\nsteps:\n  - id: work\n    \
             sh: for i in $(seq 1 1200); do test -e {flag} && exit 5; sleep 0.1; done\n\
             notify:\n  - on: [duration_exceeded]\n    after: 1s\n    \
             webhook: {{ url: \"http://127.0.0.1:{port}/slow\" }}\n  \
             - on: [failure]\n    slack: {{ webhook: \"http://127.0.0.1:{port}/slack\" }}\n",
            flag = flag.display()
        ),
    )?;
    let mut server = Server::start(&home, &jobs, &[])?;
    let run_id = server.start_run("slow")?;
    let count = || seen.lock().unwrap_or_else(|e| e.into_inner()).len();
    wait_for("the duration_exceeded notification", || count() >= 1)?;
    std::fs::write(&flag, "")?;
    wait_for("the failure notification", || count() >= 2)?;
    server.terminate()?;

    let requests = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[0].starts_with("POST /slow "), "{}", requests[0]);
    assert!(requests[0].contains("\"event\":\"duration_exceeded\""));
    assert!(requests[0].contains("\"status\":\"running\""));
    assert!(requests[1].starts_with("POST /slack "), "{}", requests[1]);
    let text = format!(":x: default/slow run {run_id} failed: failed steps: work");
    assert!(requests[1].contains(&text), "{}", requests[1]);

    let store = Store::open(&home).await?;
    let rows = store.notifications_of_run(&run_id).await?;
    let states: Vec<(&str, NotificationStatus)> = rows
        .iter()
        .map(|r| (r.queued.event.as_str(), r.status))
        .collect();
    assert_eq!(
        states,
        [
            ("duration_exceeded", NotificationStatus::Sent),
            ("failure", NotificationStatus::Sent)
        ]
    );
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_stops_at_an_approval_gate_notifies_its_approvers() -> TestResult {
    let (_dir, home, jobs) = server_dirs()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let seen = endpoint(listener);
    std::fs::write(
        jobs.join("gated.yaml"),
        format!(
            "id: gated\nsteps:\n  - id: gate\n    \
             approval: {{ approvers: [alice], message: \"ship it?\" }}\n\
             notify:\n  - on: [awaiting_approval]\n    \
             slack: {{ webhook: \"http://127.0.0.1:{port}/slack\" }}\n"
        ),
    )?;
    let mut server = Server::start(&home, &jobs, &[])?;
    let run_id = server.start_run("gated")?;
    let count = || seen.lock().unwrap_or_else(|e| e.into_inner()).len();
    wait_for("the awaiting_approval notification", || count() >= 1)?;
    server.terminate()?;

    let requests = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let text = format!(
        ":raised_hand: default/gated run {run_id} is awaiting approval: waiting for approval at gate"
    );
    assert!(requests[0].contains(&text), "{}", requests[0]);
    let store = Store::open(&home).await?;
    let run = store.get_run(&run_id).await?.ok_or("the run")?;
    assert_eq!(run.status, rota_core::model::RunStatus::AwaitingApproval);
    store.close().await;
    Ok(())
}
