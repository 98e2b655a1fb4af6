//! Notifications end to end in one process: runs through the engine's front door on a real
//! SQLite store queue outbox rows, and a `Deliverer` posts them to a real HTTP server on
//! 127.0.0.1 that counts requests and keeps their bodies. Waits have generous upper
//! bounds, never timing assertions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::RunStatus;
use rota_core::parse::{Format, parse_str};
use rota_engine::notify::{Deliverer, DeliveryReport, SecretSource};
use rota_engine::run::{EngineConfig, RunRequest, RunStop, RunSummary, execute};
use rota_store::{NewJobRevision, NotificationStatus, RunEvent, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A generous bound on any one run or delivery; a test that hits it has hung.
const LIMIT: Duration = Duration::from_secs(120);

/// A request as the server received it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: String,
}

impl Seen {
    fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// A server on 127.0.0.1:0 answering the `statuses` in turn (the last one repeats); a
/// status of 0 never answers.
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(statuses: Vec<u16>) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task_seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some(request) = read_request(&mut stream).await else {
                    continue;
                };
                let count = {
                    let mut seen = task_seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.push(request);
                    seen.len()
                };
                let status = statuses
                    .get(count - 1)
                    .or(statuses.last())
                    .copied()
                    .unwrap_or(200);
                if status == 0 {
                    // Never answer: hold the connection open.
                    tokio::spawn(async move {
                        let _keep = stream;
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    });
                    continue;
                }
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Ok(Server { base, seen })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned();
                return Some(Seen { head, body });
            }
        }
    }
}

/// One store for several runs of the same job.
struct Home {
    dir: tempfile::TempDir,
    store: Store,
    runs: u32,
}

impl Home {
    async fn new() -> Result<Home, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("home")).await?;
        Ok(Home {
            dir,
            store,
            runs: 0,
        })
    }

    /// Runs `source` to its end with `secrets`; returns the summary.
    async fn run(
        &mut self,
        source: &str,
        secrets: &[(&str, &str)],
    ) -> Result<RunSummary, Box<dyn std::error::Error>> {
        let job = parse_str(source, "notify.yaml", Format::Yaml)
            .map_err(|d| format!("{d}"))?
            .remove(0);
        let revision = NewJobRevision::new(
            "ops",
            job.id.clone(),
            source,
            serde_json::to_value(&job)?,
            Timestamp::now(),
        );
        let revision = self.store.save_job_revision(&revision).await?.revision;
        self.runs += 1;
        let request = RunRequest {
            run_id: format!("run-{}", self.runs),
            job,
            job_revision: revision,
            namespace: "ops".to_owned(),
            params: BTreeMap::from([("env".to_owned(), serde_json::json!("prod"))]),
            secrets: secrets
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dry_run: false,
            trigger: "cli".to_owned(),
            started_by: None,
            scheduled_at: None,
            base_dir: self.dir.path().to_owned(),
            prior: Vec::new(),
            gates: Default::default(),
            confirmations: Default::default(),
            resume: None,
            parent: None,
        };
        let config = EngineConfig {
            artifacts_dir: self.dir.path().join("runs"),
            grace: Duration::from_secs(5),
            log_cap_bytes: 1 << 20,
            guardian: None,
            durable_step_starts: false,
            remote: None,
            children: None,
            artifacts: None,
        };
        let run = execute(&self.store, &config, request, RunStop::new(), None);
        Ok(tokio::time::timeout(LIMIT, run).await??)
    }
}

/// A secret source that knows these values.
fn secrets(values: &[(&str, &str)]) -> SecretSource {
    let known: BTreeMap<String, String> = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Arc::new(move |_ns: String, names: Vec<String>| {
        let found = names
            .iter()
            .map(|n| {
                known
                    .get(n)
                    .map(|v| (n.clone(), v.clone()))
                    .ok_or_else(|| format!("no secret {n}"))
            })
            .collect();
        Box::pin(async move { found })
    })
}

fn job(server: &Server, body: &str, rules: &str) -> String {
    format!(
        "id: rotate-certs\nparams:\n  env: {{ type: string }}\nsecrets: [HOOK_TOKEN]\nsteps:\n  - id: rotate\n    sh: {body}\nnotify:\n{rules}",
    )
    .replace("BASE", &server.base)
}

/// Delivers every due notification of `home` with no secrets, as the server's loop does.
async fn deliver_due(home: &Home) -> Result<DeliveryReport, Box<dyn std::error::Error>> {
    Ok(Deliverer::new(secrets(&[]))
        .deliver_due(&home.store, None)
        .await?)
}

/// A server answering `statuses` in turn, and a home where one run failed under `rules`:
/// its notifications are queued, not yet delivered.
async fn failed_run_under(
    statuses: Vec<u16>,
    rules: &str,
) -> Result<(Server, Home), Box<dyn std::error::Error>> {
    let server = Server::start(statuses).await?;
    let mut home = Home::new().await?;
    home.run(&job(&server, "exit 1", rules), &[]).await?;
    Ok((server, home))
}

/// A failed run under a single failure rule posting to `BASE/x`.
async fn failed_run_with_a_webhook(
    statuses: Vec<u16>,
) -> Result<(Server, Home), Box<dyn std::error::Error>> {
    failed_run_under(
        statuses,
        "  - on: [failure]\n    webhook: { url: \"BASE/x\" }\n",
    )
    .await
}

#[tokio::test]
async fn a_failed_run_delivers_one_webhook_with_the_documented_json() -> TestResult {
    let server = Server::start(vec![200]).await?;
    let mut home = Home::new().await?;
    let source = job(
        &server,
        "exit 3",
        "  - on: [failure]\n    webhook: { url: \"BASE/hook/{{ params.env }}\" }\n",
    );
    let summary = home.run(&source, &[("HOOK_TOKEN", "t")]).await?;
    assert_eq!(summary.status, RunStatus::Failed);

    let queued = home.store.notifications_of_run("run-1").await?;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].status, NotificationStatus::Pending);

    let report = deliver_due(&home).await?;
    assert_eq!(report.sent, 1);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target(), "/hook/prod");
    assert!(seen[0].head.starts_with("POST "));
    let id = &queued[0].queued.id;
    assert_eq!(seen[0].header("idempotency-key"), Some(id.as_str()));
    assert_eq!(seen[0].header("x-rota-notification-id"), Some(id.as_str()));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    let body = seen[0].json();
    assert_eq!(body["event"], "failure");
    assert_eq!(body["failed_steps"], serde_json::json!(["rotate"]));
    let run = &body["run"];
    assert_eq!(run["id"], "run-1");
    assert_eq!(run["namespace"], "ops");
    assert_eq!(run["job"], "rotate-certs");
    assert_eq!(run["revision"], 1);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["reason"], "failed steps: rotate");
    assert_eq!(run["trigger"], "cli");
    for key in ["created_at", "started_at", "finished_at"] {
        assert!(
            run[key]
                .as_str()
                .is_some_and(|t| t.parse::<Timestamp>().is_ok()),
            "{key}: {run}"
        );
    }
    assert!(run["duration_ms"].as_i64().is_some_and(|d| d >= 0), "{run}");

    let after = home.store.notifications_of_run("run-1").await?;
    assert_eq!(after[0].status, NotificationStatus::Sent);
    assert_eq!(after[0].attempts, 1);
    // Delivered once: a second pass finds nothing due.
    let again = deliver_due(&home).await?;
    assert_eq!(again.sent, 0);
    assert_eq!(server.seen().len(), 1);

    let events = home.store.events_after(0, 1000).await?;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let finished = kinds.iter().position(|k| *k == "run.finished");
    let queued_at = kinds.iter().position(|k| *k == "notification.queued");
    assert!(finished.is_some() && queued_at > finished, "{kinds:?}");
    assert!(kinds.contains(&"notification.sent"), "{kinds:?}");
    let audit = home.store.list_audit(0, 1000).await?;
    assert!(
        audit.iter().any(|a| a.action == "notification.sent"
            && a.actor == "engine"
            && a.target == "run/run-1"
            && a.result == "ok"),
        "{audit:?}"
    );
    assert_eq!(home.store.check_audit_chain().await?, None);
    Ok(())
}

#[tokio::test]
async fn success_does_not_fire_a_failure_rule_and_recovery_follows_only_a_failure() -> TestResult {
    let server = Server::start(vec![200]).await?;
    let mut home = Home::new().await?;
    let rules = "  - on: [failure]\n    webhook: { url: \"BASE/f\" }\n  - on: [recovery]\n    webhook: { url: \"BASE/r\" }\n";
    let ok = job(&server, "exit 0", rules);
    let bad = job(&server, "exit 1", rules);

    // run-1 succeeds with no run before it: neither failure nor recovery.
    home.run(&ok, &[]).await?;
    assert!(home.store.notifications_of_run("run-1").await?.is_empty());
    // run-2 fails: failure only.
    home.run(&bad, &[]).await?;
    let two = home.store.notifications_of_run("run-2").await?;
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].queued.event, "failure");
    // run-3 succeeds after a failure: recovery.
    home.run(&ok, &[]).await?;
    let three = home.store.notifications_of_run("run-3").await?;
    assert_eq!(three.len(), 1);
    assert_eq!(three[0].queued.event, "recovery");
    // run-4 succeeds after a success: nothing.
    home.run(&ok, &[]).await?;
    assert!(home.store.notifications_of_run("run-4").await?.is_empty());

    deliver_due(&home).await?;
    let targets: Vec<String> = server
        .seen()
        .iter()
        .map(|s| s.target().to_owned())
        .collect();
    assert_eq!(targets, ["/f", "/r"]);
    Ok(())
}

#[tokio::test]
async fn duration_exceeded_fires_once_for_a_long_run_and_not_for_a_short_one() -> TestResult {
    let server = Server::start(vec![200]).await?;
    let mut home = Home::new().await?;
    let rules = "  - on: [duration_exceeded]\n    after: 300ms\n    webhook: { url: \"BASE/slow\" }\n  - on: [duration_exceeded]\n    after: 1h\n    webhook: { url: \"BASE/never\" }\n";
    // The step waits until the notification is in the outbox, so the run is surely still
    // running when the rule fires, whatever the machine's speed.
    let db = home.dir.path().join("home").join(rota_store::DB_FILE);
    let wait = format!(
        "'for i in $(seq 1 1200); do if grep -q notification[.]queued {db}* 2>/dev/null; then exit 0; fi; sleep 0.1; done; exit 1'",
        db = db.display()
    );
    let long = job(&server, &format!("sh -c {wait}"), rules);
    let summary = home.run(&long, &[]).await?;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    let rows = home.store.notifications_of_run("run-1").await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].queued.event, "duration_exceeded");
    assert_eq!(rows[0].queued.rule, 0);

    let short = job(&server, "exit 0", rules);
    home.run(&short, &[]).await?;
    assert!(home.store.notifications_of_run("run-2").await?.is_empty());

    deliver_due(&home).await?;
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target(), "/slow");
    let body = seen[0].json();
    assert_eq!(body["event"], "duration_exceeded");
    assert_eq!(body["run"]["status"], "running");
    assert_eq!(body["run"]["finished_at"], serde_json::Value::Null);
    Ok(())
}

#[tokio::test]
async fn a_slack_rule_posts_a_one_line_summary() -> TestResult {
    let (server, home) = failed_run_under(
        vec![200],
        "  - on: [failure]\n    slack: { webhook: \"BASE/services/T0/B0\" }\n",
    )
    .await?;
    deliver_due(&home).await?;
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].json(),
        serde_json::json!({ "text": ":x: ops/rotate-certs run run-1 failed: failed steps: rotate" })
    );
    Ok(())
}

#[tokio::test]
async fn an_endpoint_answering_500_then_200_gets_it_on_the_retry() -> TestResult {
    let (server, home) = failed_run_with_a_webhook(vec![500, 200]).await?;
    let deliverer = Deliverer::new(secrets(&[])).with_retries(vec![Duration::from_millis(100)], 8);
    let (report, pending) =
        tokio::time::timeout(LIMIT, deliverer.deliver_run(&home.store, "run-1", LIMIT)).await??;
    assert_eq!((report.retrying, report.sent, pending), (1, 1, 0));
    assert_eq!(server.seen().len(), 2);
    // Both requests carry the same id, so the receiver can drop a repeat.
    let ids: Vec<Option<String>> = server
        .seen()
        .iter()
        .map(|s| s.header("idempotency-key").map(str::to_owned))
        .collect();
    assert_eq!(ids[0], ids[1]);
    let row = &home.store.notifications_of_run("run-1").await?[0];
    assert_eq!(row.status, NotificationStatus::Sent);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.last_error.as_deref(), Some("the endpoint answered 500"));
    let events = home.store.events_after(0, 1000).await?;
    let failed: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e.kind == "notification.failed")
        .map(|e| &e.data)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["final"], false);
    Ok(())
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_given_up_after_the_last_attempt() -> TestResult {
    let (server, home) = failed_run_with_a_webhook(vec![503]).await?;
    let deliverer = Deliverer::new(secrets(&[])).with_retries(vec![Duration::from_millis(50)], 3);
    let (report, pending) =
        tokio::time::timeout(LIMIT, deliverer.deliver_run(&home.store, "run-1", LIMIT)).await??;
    assert_eq!((report.retrying, report.failed, pending), (2, 1, 0));
    assert_eq!(server.seen().len(), 3);
    let row = &home.store.notifications_of_run("run-1").await?[0];
    assert_eq!(row.status, NotificationStatus::Failed);
    let audit = home.store.list_audit(0, 1000).await?;
    let results: Vec<&str> = audit
        .iter()
        .filter(|a| a.action == "notification.failed")
        .map(|a| a.result.as_str())
        .collect();
    assert_eq!(results, ["retrying", "retrying", "failed"]);
    Ok(())
}

#[tokio::test]
async fn secrets_reach_the_endpoint_but_never_the_store() -> TestResult {
    const SECRET: &str = "s3cr3t-Zq8wL1";
    const TOKEN: &str = "tok-Hv72pQ0x";
    // The first attempt fails, so an error is recorded too.
    let server = Server::start(vec![500, 200]).await?;
    let mut home = Home::new().await?;
    let source = format!(
        "id: rotate-certs\nparams:\n  env: {{ type: string }}\nsecrets: [HOOK_PATH, HOOK_TOKEN]\nsteps:\n  - id: rotate\n    sh: exit 1\nnotify:\n  - on: [failure]\n    webhook:\n      url: \"{}/{{{{ secrets.HOOK_PATH }}}}?k={{{{ secrets.HOOK_PATH }}}}\"\n      headers: {{ Authorization: \"Bearer {{{{ secrets.HOOK_TOKEN }}}}\" }}\n",
        server.base
    );
    let values = [("HOOK_PATH", SECRET), ("HOOK_TOKEN", TOKEN)];
    home.run(&source, &values).await?;
    let deliverer = Deliverer::new(secrets(&values)).with_retries(vec![Duration::ZERO], 8);
    let (report, _) =
        tokio::time::timeout(LIMIT, deliverer.deliver_run(&home.store, "run-1", LIMIT)).await??;
    assert_eq!(report.sent, 1);
    let seen = server.seen();
    assert_eq!(seen[1].target(), format!("/{SECRET}?k={SECRET}"));
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(seen[1].header("authorization"), Some(bearer.as_str()));

    let events = home.store.events_after(0, 1000).await?;
    let audit = home.store.list_audit(0, 1000).await?;
    let rows = home.store.notifications_of_run("run-1").await?;
    // Each attempt's use of each secret is audited, with the notification as its source.
    let source = format!("notification/{}", rows[0].queued.id);
    let mut uses: Vec<&str> = audit
        .iter()
        .filter(|e| e.action == "secret.use" && e.source.as_deref() == Some(source.as_str()))
        .map(|e| e.target.as_str())
        .collect();
    uses.sort_unstable();
    assert_eq!(
        uses,
        [
            "ops/HOOK_PATH",
            "ops/HOOK_PATH",
            "ops/HOOK_TOKEN",
            "ops/HOOK_TOKEN"
        ]
    );
    let shown = format!("{events:?}{audit:?}{rows:?}");
    home.store.close().await;
    for secret in [SECRET, TOKEN] {
        assert!(
            !shown.contains(secret),
            "a secret is in the events, audit or rows"
        );
        for entry in std::fs::read_dir(home.dir.path().join("home"))? {
            // SQLite may still be removing its WAL and SHM files as the pool closes.
            let bytes = match std::fs::read(entry?.path()) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                read => read?,
            };
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "a secret is in the store's files");
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_outbox_row_commits_with_the_runs_end_or_not_at_all() -> TestResult {
    let home = Home::new().await?;
    let notification = rota_store::NewNotification {
        id: "n-1".to_owned(),
        run_id: "no-such-run".to_owned(),
        namespace: "ops".to_owned(),
        job_id: "rotate-certs".to_owned(),
        rule: 0,
        event: "failure".to_owned(),
        channel: "webhook".to_owned(),
        url_template: "http://127.0.0.1:9/x".to_owned(),
        headers_template: BTreeMap::new(),
        render_context: serde_json::json!({}),
        secret_names: Vec::new(),
        payload: "{}".to_owned(),
        created_at: Timestamp::now(),
    };
    // The run's end fails (there is no such run), so its notification is not queued.
    let batch = [
        RunEvent::RunFinished {
            run_id: "no-such-run".to_owned(),
            status: RunStatus::Failed,
            reason: None,
            at: Timestamp::now(),
        },
        RunEvent::NotificationQueued { notification },
    ];
    assert!(home.store.record(&batch).await.is_err());
    assert!(
        home.store
            .notifications_of_run("no-such-run")
            .await?
            .is_empty()
    );
    assert_eq!(home.store.count_pending_notifications(None).await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_claimed_notification_is_not_taken_by_a_second_deliverer() -> TestResult {
    let (_server, home) = failed_run_with_a_webhook(vec![200]).await?;
    let lease = Duration::from_secs(60);
    let now = Timestamp::now();
    let first = home
        .store
        .claim_due_notifications(now, lease, 10, None)
        .await?;
    assert_eq!(first.len(), 1);
    let second = home
        .store
        .claim_due_notifications(now, lease, 10, None)
        .await?;
    assert!(second.is_empty(), "{second:?}");
    // A deliverer that died holding it: after the lease the row is due again.
    let later = now.checked_add(jiff::SignedDuration::from_secs(61))?;
    let again = home
        .store
        .claim_due_notifications(later, lease, 10, None)
        .await?;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].queued.id, first[0].queued.id);
    assert_eq!(again[0].status, NotificationStatus::Pending);
    Ok(())
}

#[tokio::test]
async fn delivery_by_a_run_stops_at_its_budget_and_leaves_the_row_pending() -> TestResult {
    let (_server, home) = failed_run_with_a_webhook(vec![0]).await?;
    let deliverer = Deliverer::new(secrets(&[]));
    let budget = Duration::from_millis(300);
    let (report, pending) =
        tokio::time::timeout(LIMIT, deliverer.deliver_run(&home.store, "run-1", budget)).await??;
    assert_eq!((report.sent, report.retrying, pending), (0, 0, 1));
    // The request was still waiting for an answer (its 10 s timeout had not passed): the
    // attempt was cut off, not recorded, and the row waits for its lease.
    let row = &home.store.notifications_of_run("run-1").await?[0];
    assert_eq!((row.status, row.attempts), (NotificationStatus::Pending, 0));
    Ok(())
}
