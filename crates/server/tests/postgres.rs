//! `rota serve` on a PostgreSQL store (`--store postgres://…` / `ROTA_STORE`), on a fresh
//! database of the test cluster `scripts/setup` starts (`ROTA_TEST_POSTGRES`; without it these
//! tests fail, saying so): a run started through the API runs to success, and two servers
//! started at once on one database both come up (their migrations race) and both serve it,
//! and a run queued through one server runs on a worker that long-polls the other (woken by
//! `LISTEN/NOTIFY`).

use rota_testkit::Serve;
use rota_testkit::postgres::TestDatabase;

use crate::support::{TestResult, get, post, rota_bin, server_dirs_with_job, wait_for};

const JOB: &str = "id: hello\nsteps:\n  - id: greet\n    sh: echo hello from postgres\n  \
                   - id: after\n    sh: echo done\n    needs: [greet]\n";

/// The run `id` as the API shows it, once it has ended.
fn ended_run(addr: &str, token: &str, id: &str) -> Result<serde_json::Value, String> {
    let mut run = serde_json::Value::Null;
    wait_for("the run to end", || {
        run = get(addr, &format!("/api/v1/runs/{id}"), Some(token))
            .ok()
            .and_then(|(_, _, body)| serde_json::from_str(&body).ok())
            .unwrap_or(serde_json::Value::Null);
        run["status"]
            .as_str()
            .is_some_and(|s| !matches!(s, "queued" | "running"))
    })?;
    Ok(run)
}

/// Starts a run of `default/hello` through the API; its id.
fn start_hello(addr: &str, token: &str) -> Result<String, Box<dyn std::error::Error>> {
    start_job(addr, token, "hello")
}

/// Starts a run of `default/<job>` through the API once the job is loaded; its id.
fn start_job(addr: &str, token: &str, job: &str) -> Result<String, Box<dyn std::error::Error>> {
    let path = format!("/api/v1/namespaces/default/jobs/{job}");
    wait_for("the job to load", || {
        get(addr, &path, Some(token)).is_ok_and(|(status, _, _)| status == 200)
    })?;
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, body) = post(addr, &format!("{path}/runs"), &headers, b"{}")?;
    if status != 202 {
        return Err(format!("starting {job}: {status} {body}").into());
    }
    let run: serde_json::Value = serde_json::from_str(&body)?;
    Ok(run["id"].as_str().ok_or("no run id")?.to_owned())
}

#[tokio::test]
async fn a_run_started_through_the_api_succeeds_on_a_postgres_store() -> TestResult {
    let db = TestDatabase::create()?;
    let (_dir, home, jobs) = server_dirs_with_job("hello.yaml", JOB)?;
    let server = Serve::builder(&home, &jobs)
        .args(["--store", db.url()])
        .env("ROTA_LOG", "info")
        .start()?;
    let token = server.admin_token()?;
    let id = start_hello(server.addr(), &token)?;
    let run = ended_run(server.addr(), &token, &id)?;
    assert_eq!(run["status"], "succeeded", "{run}\n{}", server.log_text());
    let (status, _, body) = get(
        server.addr(),
        &format!("/api/v1/runs/{id}/logs?step=greet"),
        Some(&token),
    )?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hello from postgres"), "{body}");
    // Everything is in the database; the data directory holds no SQLite store.
    assert_eq!(
        db.query(&format!("SELECT status FROM runs WHERE id = '{id}'"))?,
        "succeeded"
    );
    assert_eq!(
        db.query(&format!(
            "SELECT count(*) FROM step_runs WHERE run_id = '{id}' AND status = 'succeeded'"
        ))?,
        "2"
    );
    assert!(!home.join("rota.db").exists());
    Ok(())
}

#[tokio::test]
async fn two_servers_start_together_on_one_postgres_database_and_both_serve_it() -> TestResult {
    let db = TestDatabase::create()?;
    let (_a_dir, a_home, a_jobs) = server_dirs_with_job("hello.yaml", JOB)?;
    let (_b_dir, b_home, b_jobs) = server_dirs_with_job("hello.yaml", JOB)?;
    // Started together, so both migrate the empty database at once; one by `--store`, the
    // other by `ROTA_STORE`.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            Serve::builder(&a_home, &a_jobs)
                .args(["--store", db.url()])
                .start()
        });
        let b = scope.spawn(|| {
            Serve::builder(&b_home, &b_jobs)
                .env("ROTA_STORE", db.url())
                .start()
        });
        (a.join(), b.join())
    });
    let a = a.map_err(|_| "starting server a panicked")??;
    let b = b.map_err(|_| "starting server b panicked")??;
    // Whichever created the first admin token, it is valid on both: they share the store.
    let mut token = String::new();
    wait_for("an admin token", || {
        token = [&a_home, &b_home]
            .iter()
            .find_map(|home| std::fs::read_to_string(home.join("admin.token")).ok())
            .unwrap_or_default()
            .trim()
            .to_owned();
        !token.is_empty()
    })?;
    let applied = db.query("SELECT count(*) FROM _sqlx_migrations WHERE success")?;
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../store/migrations/postgres"
    ))?
    .count();
    assert_eq!(applied, files.to_string());

    // A run started on one server is seen on the other, and ends (run by whichever server
    // took it; the other leaves it alone).
    let id = start_hello(a.addr(), &token)?;
    let run = ended_run(b.addr(), &token, &id)?;
    assert_eq!(
        run["status"],
        "succeeded",
        "{run}\n{}\n{}",
        a.log_text(),
        b.log_text()
    );
    for server in [&a, &b] {
        let (status, _, body) = get(server.addr(), "/api/v1/runs", Some(&token))?;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&id), "{body}");
    }
    let started = db.query(&format!(
        "SELECT count(*) FROM events WHERE run_id = '{id}' AND kind = 'run.started'"
    ))?;
    assert_eq!(started, "1", "one server claimed the run");
    Ok(())
}

/// A `rota worker` child, killed when dropped.
struct Worker(std::process::Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_run_queued_through_one_server_runs_on_a_worker_polling_another() -> TestResult {
    const JOB: &str = "id: remote\nsteps:\n  - id: there\n    runs_on: { pool: a }\n    \
                       sh: echo hello from a worker\n";
    // The servers seal attempts for workers with their shared secret key.
    const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let db = TestDatabase::create()?;
    let (dir, a_home, a_jobs) = server_dirs_with_job("remote.yaml", JOB)?;
    let (_b_dir, b_home, b_jobs) = server_dirs_with_job("remote.yaml", JOB)?;
    let a = Serve::builder(&a_home, &a_jobs)
        .args(["--store", db.url()])
        .env("ROTA_SECRET_KEY", KEY)
        .start()?;
    let token = a.admin_token()?;
    let b = Serve::builder(&b_home, &b_jobs)
        .args(["--store", db.url()])
        .env("ROTA_SECRET_KEY", KEY)
        .start()?;
    let out = rota_testkit::rota_command(rota_bin(), &dir.path().join("cli-home"))
        .args(["tokens", "create", "w", "--role", "worker", "--server"])
        .arg(format!("http://{}", a.addr()))
        .env("ROTA_TOKEN", &token)
        .output()?;
    if !out.status.success() {
        return Err(format!("tokens create: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let worker_token = String::from_utf8(out.stdout)?.trim().to_owned();
    let worker_log = dir.path().join("worker.log");
    let _worker = Worker(
        rota_testkit::rota_command(rota_bin(), &dir.path().join("worker-home"))
            .args(["worker", "--server"])
            .arg(format!("http://{}", a.addr()))
            .args(["--name", "w-a", "--label", "pool=a", "--slots", "1"])
            .env("ROTA_TOKEN", &worker_token)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&worker_log)?)
            .spawn()?,
    );
    let id = start_job(b.addr(), &token, "remote")?;
    let run = ended_run(b.addr(), &token, &id)?;
    assert_eq!(
        run["status"],
        "succeeded",
        "{run}\n{}\n{}\n{}",
        a.log_text(),
        b.log_text(),
        std::fs::read_to_string(&worker_log).unwrap_or_default()
    );
    assert_eq!(
        db.query(&format!(
            "SELECT w.name FROM dispatches d JOIN workers w ON w.id = d.worker_id \
             WHERE d.run_id = '{id}' AND d.state = 'done'"
        ))?,
        "w-a"
    );
    Ok(())
}
