//! The real `rota serve` process: catch-up after SIGTERM and SIGKILL downtimes, jobs whose
//! file leaves the job directory, webhook replays, and the listener's connection limits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{
    PATIENCE, Server, TestResult, get, post, server_dirs, server_dirs_with_job, wait_for,
};
use jiff::Timestamp;
use rota_store::{OccurrenceKind, OccurrenceRecord, Store};

/// One job per catch-up mode, each firing every second.
const MODES: [(&str, &str); 4] = [
    ("none", "catchup: { mode: none }"),
    ("last", "catchup: { mode: last }"),
    ("window", "catchup: { window: 3s, mode: all }"),
    ("all", "catchup: { mode: all }"),
];

async fn occurrences_of(
    store: &Store,
    job: &str,
) -> Result<Vec<OccurrenceRecord>, rota_store::StoreError> {
    let mut all = store.occurrences("default", job, 1000).await?;
    all.sort_by_key(|o| o.scheduled_at);
    Ok(all)
}

/// Stops the server (`kill`: SIGKILL, else SIGTERM), stays down past the misfire grace,
/// restarts it and checks what each mode did with the occurrences due while it was down.
async fn downtime_round(
    server: &mut Server,
    home: &Path,
    jobs: &Path,
    store: &Store,
    kill: bool,
) -> Result<Server, Box<dyn std::error::Error>> {
    if kill {
        server.kill9()?;
    } else {
        let status = server.terminate()?;
        assert!(status.success(), "{status:?}");
    }
    let mut before = std::collections::BTreeMap::new();
    for (job, _) in MODES {
        let last = occurrences_of(store, job)
            .await?
            .last()
            .map(|o| o.scheduled_at)
            .ok_or("no occurrence before the downtime")?;
        before.insert(job, last);
    }
    // Six seconds down: more than the 5 s misfire grace, so the old code ran most of them.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let up = Timestamp::now();
    let restarted = Server::start(home, jobs, &[])?;
    // Until every job has fired on time after the restart (its catch-up is decided).
    let deadline = Instant::now() + PATIENCE;
    for (job, _) in MODES {
        loop {
            let fired = occurrences_of(store, job)
                .await?
                .iter()
                .any(|o| o.scheduled_at > up + jiff::SignedDuration::from_secs(2));
            if fired {
                break;
            }
            assert!(Instant::now() < deadline, "{job} never fired after restart");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let how = if kill { "SIGKILL" } else { "SIGTERM" };
    for (job, _) in MODES {
        // The occurrences due while no server ran.
        let down: Vec<OccurrenceRecord> = occurrences_of(store, job)
            .await?
            .into_iter()
            .filter(|o| o.scheduled_at > before[job] && o.scheduled_at < up)
            .collect();
        assert!(down.len() >= 5, "{how} {job}: {down:?}");
        let runs: Vec<&OccurrenceRecord> = down
            .iter()
            .filter(|o| o.kind == OccurrenceKind::Run)
            .collect();
        let reasons = |o: &OccurrenceRecord| o.reason.clone().unwrap_or_default();
        match job {
            "none" => {
                assert!(runs.is_empty(), "{how} none ran {runs:?}");
                assert!(
                    down.iter().all(|o| reasons(o) == "catch-up mode none"),
                    "{how}: {down:?}"
                );
            }
            "last" => {
                // One run at most (none if an occurrence fell due during start-up, as that
                // one is then the latest of the catch-up), every other one superseded.
                assert!(runs.len() <= 1, "{how} last ran {runs:?}");
                assert!(
                    down.iter()
                        .filter(|o| o.kind != OccurrenceKind::Run)
                        .all(|o| reasons(o).starts_with("catch-up mode last")),
                    "{how}: {down:?}"
                );
            }
            "window" => {
                let outside: Vec<_> = down
                    .iter()
                    .filter(|o| reasons(o) == "outside catch-up window")
                    .collect();
                assert!(!outside.is_empty(), "{how}: {down:?}");
                for o in &outside {
                    assert!(
                        o.scheduled_at < o.recorded_at - jiff::SignedDuration::from_secs(3),
                        "{how}: {o:?}"
                    );
                }
                for o in &runs {
                    assert!(
                        o.scheduled_at >= o.recorded_at - jiff::SignedDuration::from_secs(4),
                        "{how}: ran outside the window: {o:?}"
                    );
                }
            }
            _ => assert_eq!(runs.len(), down.len(), "{how} all: {down:?}"),
        }
    }
    Ok(restarted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catchup_modes_decide_every_occurrence_due_during_sigterm_and_sigkill_downtimes()
-> TestResult {
    let (_dir, home, jobs) = server_dirs()?;
    for (job, catchup) in MODES {
        std::fs::write(
            jobs.join(format!("{job}.yaml")),
            format!(
                "id: {job}\ntriggers:\n  - interval: 1s\npolicy:\n  overlap: allow\n  {catchup}\n\
                 steps:\n  - id: main\n    sh: 'true'\n"
            ),
        )?;
    }
    let mut server = Server::start(&home, &jobs, &[])?;
    let store = Store::open(&home).await?;
    wait_for("every job to fire", || {
        futures_block(async {
            for (job, _) in MODES {
                if occurrences_of(&store, job)
                    .await
                    .unwrap_or_default()
                    .is_empty()
                {
                    return false;
                }
            }
            true
        })
    })?;
    let mut server2 = downtime_round(&mut server, &home, &jobs, &store, false).await?;
    let mut server3 = downtime_round(&mut server2, &home, &jobs, &store, true).await?;
    let status = server3.terminate()?;
    assert!(status.success(), "{status:?}");
    store.close().await;
    Ok(())
}

/// Runs a future to completion from a synchronous closure inside the multi-thread runtime.
fn futures_block<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

const DAILY: &str = "triggers:\n  - cron: '0 12 * * *'\nsteps:\n  - id: main\n    sh: 'true'\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_file_leaves_the_job_directory_is_deleted_with_its_history_kept() -> TestResult
{
    let (_dir, home, jobs) = server_dirs_with_job("gone.yaml", format!("id: gone\n{DAILY}"))?;
    std::fs::write(jobs.join("renamed.yaml"), format!("id: old\n{DAILY}"))?;
    std::fs::write(jobs.join("later.yaml"), format!("id: later\n{DAILY}"))?;
    let mut server = Server::start(&home, &jobs, &[])?;
    // The token file is written just after the address file.
    wait_for("the admin token", || home.join("admin.token").exists())?;
    let (addr, bearer) = (server.addr()?, server.admin_bearer()?);
    let token = bearer.trim_start_matches("Bearer ").to_owned();
    let job_status = |addr: &str, job: &str| {
        get(
            addr,
            &format!("/api/v1/namespaces/default/jobs/{job}"),
            Some(&token),
        )
        .map(|(status, _, _)| status)
        .unwrap_or(0)
    };
    let gone_schedule = || {
        get(
            &addr,
            "/api/v1/namespaces/default/jobs/gone/schedule",
            Some(&token),
        )
    };
    for job in ["gone", "old", "later"] {
        wait_for("the job to load", || job_status(&addr, job) == 200)?;
    }
    let (status, _, body) = gone_schedule()?;
    assert_eq!(status, 200, "{body}");

    std::fs::remove_file(jobs.join("gone.yaml"))?;
    std::fs::write(jobs.join("renamed.yaml"), format!("id: fresh\n{DAILY}"))?;
    wait_for("the removed jobs to go", || {
        job_status(&addr, "gone") == 404 && job_status(&addr, "old") == 404
    })?;
    assert_eq!(job_status(&addr, "fresh"), 200);
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, body) = post(
        &addr,
        "/api/v1/namespaces/default/jobs/gone/runs",
        &headers,
        b"{}",
    )?;
    assert_eq!(status, 404, "not startable by hand: {body}");
    let (status, _, body) = gone_schedule()?;
    assert_ne!(status, 200, "no fire times for a deleted job: {body}");
    let (_, _, listing) = get(&addr, "/api/v1/namespaces/default/jobs", Some(&token))?;
    assert!(
        !listing.contains("\"gone\"") && !listing.contains("\"old\""),
        "{listing}"
    );

    let store = Store::open(&home).await?;
    assert!(store.job_deleted("default", "gone").await?);
    assert!(store.job_deleted("default", "old").await?);
    assert!(
        store.job_revision("default", "gone", 1).await?.is_some(),
        "history stays"
    );
    let audit = store.list_audit(0, 1000).await?;
    assert!(
        audit
            .iter()
            .any(|a| a.action == "job.delete" && a.target == "job/default/gone"),
        "{audit:?}"
    );

    // Removed while no server ran: deleted at the next start.
    let status = server.terminate()?;
    assert!(status.success(), "{status:?}");
    std::fs::remove_file(jobs.join("later.yaml"))?;
    let server = Server::start(&home, &jobs, &[])?;
    let addr = server.addr()?;
    wait_for("the job removed during downtime to go", || {
        job_status(&addr, "later") == 404
    })?;
    assert!(store.job_deleted("default", "later").await?);
    assert_eq!(job_status(&addr, "fresh"), 200);

    // The file coming back revives the job as a new revision.
    std::fs::write(jobs.join("gone.yaml"), format!("id: gone\n{DAILY}"))?;
    wait_for("the job to come back", || job_status(&addr, "gone") == 200)?;
    assert!(!store.job_deleted("default", "gone").await?);
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_delivery_sent_again_is_refused_and_audited() -> TestResult {
    let (_dir, home, jobs) = server_dirs_with_job(
        "ghub.yaml",
        "id: ghub\ntriggers:\n  - webhook: { secret: HOOK_SECRET, signature: github }\n\
         policy:\n  overlap: allow\nsteps:\n  - id: main\n    sh: 'true'\n",
    )?;
    std::fs::write(
        jobs.join("bearer.yaml"),
        "id: bearer\ntriggers:\n  - webhook: { secret: HOOK_SECRET, signature: bearer }\n\
         policy:\n  overlap: allow\nsteps:\n  - id: main\n    sh: 'true'\n",
    )?;
    let server = Server::start(&home, &jobs, &[("HOOK_SECRET", "s3cret")])?;
    let addr = server.addr()?;
    let store = Store::open(&home).await?;
    let signed = |body: &[u8], delivery: &str| -> std::io::Result<(u16, String)> {
        let signature = rota_server::hooks::github_signature("s3cret", body);
        post(
            &addr,
            "/hooks/default/ghub",
            &[
                ("X-Hub-Signature-256", signature.as_str()),
                ("X-GitHub-Delivery", delivery),
            ],
            body,
        )
    };
    wait_for("the hooks to load", || {
        signed(b"{\"n\":0}", "warm-up").is_ok_and(|(status, _)| status == 202)
    })?;

    let (status, answer) = signed(b"{\"n\":1}", "d-1")?;
    assert_eq!(status, 202, "{answer}");
    let run: serde_json::Value = serde_json::from_str(&answer)?;
    let run_id = run["run_id"].as_str().ok_or("no run id")?.to_owned();
    wait_for("the run to finish", || {
        futures_block(async {
            store
                .get_run(&run_id)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.status.is_terminal())
        })
    })?;
    // The same delivery again, after its run finished.
    let (status, answer) = signed(b"{\"n\":1}", "d-1")?;
    assert_eq!(status, 409, "{answer}");
    let problem: serde_json::Value = serde_json::from_str(&answer)?;
    assert_eq!(problem["status"], 409);
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("webhook-replay")),
        "{problem}"
    );
    // The same signed body under a new delivery id, and a new body under the old id.
    assert_eq!(signed(b"{\"n\":1}", "d-2")?.0, 409);
    assert_eq!(signed(b"{\"n\":2}", "d-1")?.0, 409);
    // A new delivery is accepted.
    assert_eq!(signed(b"{\"n\":3}", "d-3")?.0, 202);
    let gh_runs = store
        .occurrences("default", "ghub", 100)
        .await?
        .into_iter()
        .filter(|o| o.kind == OccurrenceKind::Run)
        .count();
    assert_eq!(gh_runs, 3, "warm-up, d-1 and d-3 ran; nothing else");

    // Bearer hooks: an Idempotency-Key is honoured; without one each request is new.
    let bearer = |key: Option<&str>| -> std::io::Result<(u16, String)> {
        let mut headers = vec![("Authorization", "Bearer s3cret")];
        if let Some(key) = key {
            headers.push(("Idempotency-Key", key));
        }
        post(&addr, "/hooks/default/bearer", &headers, b"")
    };
    assert_eq!(bearer(Some("k-1"))?.0, 202);
    assert_eq!(bearer(Some("k-1"))?.0, 409);
    assert_eq!(bearer(None)?.0, 202);
    assert_eq!(bearer(None)?.0, 202);
    let (status, _) = post(
        &addr,
        "/hooks/default/bearer",
        &[("Authorization", "Bearer s3cret"), ("Idempotency-Key", " ")],
        b"",
    )?;
    assert_eq!(status, 400, "an empty key is refused");

    let audit = store.list_audit(0, 1000).await?;
    let refused = audit
        .iter()
        .filter(|a| a.action == "webhook.replay" && a.result == "refused")
        .count();
    assert_eq!(refused, 4, "{audit:?}");
    drop(server);
    store.close().await;
    Ok(())
}

/// Opens a connection and sends half a request head.
fn stalled(addr: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n")?;
    Ok(stream)
}

/// Whether the server closes `stream` within `within` (EOF or reset).
fn closed_within(stream: &mut TcpStream, within: Duration) -> std::io::Result<bool> {
    stream.set_read_timeout(Some(within))?;
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(true),
            // A 408-style answer before closing is fine; keep reading to the end.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed_and_the_api_keeps_answering() -> TestResult {
    use rota_server::http::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
    let (_dir, home, jobs) = server_dirs_with_job(
        "hello.yaml",
        "id: hello\nsteps:\n  - id: main\n    sh: echo hello\n",
    )?;
    let server = Server::start(&home, &jobs, &[])?;
    let addr = server.addr()?;
    let token = server
        .admin_bearer()?
        .trim_start_matches("Bearer ")
        .to_owned();

    // A live event stream, open across several header timeouts.
    let mut events = TcpStream::connect(&addr)?;
    events.write_all(
        format!(
            "GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .as_bytes(),
    )?;

    // An idle keep-alive connection (one full request answered) is closed too.
    let mut idle = TcpStream::connect(&addr)?;
    idle.write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")?;

    // One stalled connection is closed after the header timeout (generously bounded).
    let mut one = stalled(&addr)?;
    assert!(
        closed_within(&mut one, HEADER_READ_TIMEOUT * 4)?,
        "a half-sent header kept its connection open"
    );
    // It read its whole answer, then stayed idle: closed as well.
    assert!(
        closed_within(&mut idle, HEADER_READ_TIMEOUT * 4)?,
        "an idle keep-alive connection stayed open"
    );

    // More stalled connections than the cap: once they are cleaned up, a normal client
    // is answered.
    let mut many = Vec::new();
    for _ in 0..MAX_CONNECTIONS + 44 {
        many.push(stalled(&addr)?);
    }
    let started = Instant::now();
    let answered = loop {
        let mut client = TcpStream::connect(&addr)?;
        client.set_read_timeout(Some(HEADER_READ_TIMEOUT * 4))?;
        client.write_all(
            b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )?;
        let mut head = [0u8; 12];
        if client.read_exact(&mut head).is_ok() {
            break head.starts_with(b"HTTP/1.1 200");
        }
        if started.elapsed() > HEADER_READ_TIMEOUT * 6 {
            break false;
        }
    };
    assert!(answered, "the API never answered after the stalls");
    for mut stream in many {
        assert!(
            closed_within(&mut stream, HEADER_READ_TIMEOUT * 4)?,
            "a stalled connection stayed open"
        );
    }

    // The event stream outlived all of that: a run started now reaches it.
    server.start_run("hello")?;
    events.set_read_timeout(Some(PATIENCE))?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("run.created") {
        let n = events.read(&mut buf)?;
        assert!(n > 0, "the event stream was closed");
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(())
}
