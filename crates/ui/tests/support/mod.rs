//! What the tests share: patience for things that happen "soon", the `rota` binary cargo
//! just built serving a fresh `ROTA_HOME` (killed when dropped; both from `rota-testkit`),
//! and a WebDriver client.

pub mod webdriver;

use std::path::Path;
use std::time::{Duration, Instant};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Generous bound for things that happen "soon" on a loaded 2-core machine; tests wait for
/// states, never assert durations.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub use rota_testkit::wait_for;

/// A `rota serve` child on a free port in a fresh `ROTA_HOME`, with the given job files.
pub struct Server {
    serve: rota_testkit::Serve,
    /// The temp dir holding `home/` and `jobs/`.
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Extra arguments of `rota serve`, kept for a restart.
    extra: Vec<String>,
}

impl Server {
    /// Writes `jobs` (file name, text) and starts the server on them, on a free port, with
    /// extra arguments for `rota serve` (e.g. `--auth none`).
    pub fn start_with(
        jobs: &[(&str, &str)],
        extra: &[&str],
    ) -> Result<Server, Box<dyn std::error::Error>> {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let dir = tempfile::tempdir()?;
        let jobs_dir = dir.path().join("jobs");
        std::fs::create_dir_all(dir.path().join("home"))?;
        std::fs::create_dir_all(&jobs_dir)?;
        for (name, text) in jobs {
            std::fs::write(jobs_dir.join(name), text)?;
        }
        // A fixed port (free now) lets a restarted server answer at the same address.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let serve = Server::spawn(dir.path(), port, &extra)?;
        let base = serve.url();
        Ok(Server {
            serve,
            dir,
            base,
            extra,
        })
    }

    fn spawn(dir: &Path, port: u16, extra: &[String]) -> std::io::Result<rota_testkit::Serve> {
        rota_testkit::Serve::builder(dir.join("home"), dir.join("jobs"))
            .listen(format!("127.0.0.1:{port}"))
            .grace(5)
            .args(extra.iter().cloned())
            .log(dir.join("serve.log"))
            .start()
    }

    /// Kills the server with SIGKILL (as a crash would) and starts it again on the same
    /// home, jobs and address.
    pub fn crash_and_restart(&mut self) -> TestResult {
        self.serve.kill9()?;
        let port = self
            .base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or("no port in the server's address")?;
        self.serve = Server::spawn(self.dir.path(), port, &self.extra)?;
        assert_eq!(
            self.serve.url(),
            self.base,
            "the restarted server listens where it did"
        );
        Ok(())
    }

    /// The admin token the server wrote on its first start.
    pub fn admin_token(&self) -> Result<String, std::io::Error> {
        // Read, not waited for: under `--auth none` there is none.
        Ok(
            std::fs::read_to_string(self.serve.home().join("admin.token"))?
                .trim()
                .to_owned(),
        )
    }

    /// Creates an API token with one role, in one namespace or (None) in every namespace,
    /// and returns its text.
    pub async fn create_token(
        &self,
        role: &str,
        namespace: Option<&str>,
    ) -> Result<String, Box<dyn std::error::Error>> {
        self.create_named_token(&format!("ui test {role}"), role, namespace)
            .await
    }

    /// Creates an API token named `name` (the name `approval:` rules list approvers by)
    /// with one role, in one namespace or (None) in every namespace, and returns its text.
    pub async fn create_named_token(
        &self,
        name: &str,
        role: &str,
        namespace: Option<&str>,
    ) -> Result<String, Box<dyn std::error::Error>> {
        let created: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/api/v1/tokens", self.base))
            .bearer_auth(self.admin_token()?)
            .json(&serde_json::json!({
                "name": name,
                "grants": [{"role": role, "namespace": namespace}],
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(created["secret"]
            .as_str()
            .ok_or("no token text in the answer")?
            .to_owned())
    }

    /// Cancels a run through the API, as another user would.
    pub async fn cancel(&self, run: &str) -> TestResult {
        reqwest::Client::new()
            .post(format!("{}/api/v1/runs/{run}/cancel", self.base))
            .bearer_auth(self.admin_token()?)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Waits until the API lists `job` in `default` (the job directory is loaded).
    pub async fn wait_for_jobs(&self, jobs: &[&str]) -> TestResult {
        // Under `--auth none` there may be no admin token, and none is needed.
        let token = self.admin_token().ok();
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            let mut request = http.get(format!("{}/api/v1/namespaces/default/jobs", self.base));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let list: serde_json::Value = request.send().await?.json().await?;
            let ids: Vec<&str> = list["items"]
                .as_array()
                .map(|a| a.iter().filter_map(|j| j["id"].as_str()).collect())
                .unwrap_or_default();
            if jobs.iter().all(|j| ids.contains(j)) {
                return Ok(());
            }
            if start.elapsed() > PATIENCE {
                return Err(format!("the server never loaded {jobs:?} (has {ids:?})").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
