//! What the process tests share: the `rota` binary cargo just built and a `rota serve` child
//! process that is killed when dropped (both from `rota-testkit`), waiting for states, and a
//! minimal HTTP/1.1 client (the tests speak to the listener the way any client would, byte
//! for byte).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub use rota_testkit::{PATIENCE, rota_bin, wait_for};

/// A server's directories under one temporary root (kept alive by the first element, removed
/// when it drops): `home` (its state, created by the server) and `jobs` (created empty).
pub fn server_dirs() -> std::io::Result<(tempfile::TempDir, PathBuf, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let (home, jobs) = (dir.path().join("home"), dir.path().join("jobs"));
    std::fs::create_dir_all(&jobs)?;
    Ok((dir, home, jobs))
}

/// Like [`server_dirs`], with the job directory holding one job file.
pub fn server_dirs_with_job(
    file: &str,
    source: impl AsRef<[u8]>,
) -> std::io::Result<(tempfile::TempDir, PathBuf, PathBuf)> {
    let (dir, home, jobs) = server_dirs()?;
    std::fs::write(jobs.join(file), source)?;
    Ok((dir, home, jobs))
}

/// A `rota serve` of the freshly built binary (see [`rota_testkit::Serve`]), logging at
/// `info` to `<home>/serve.log`, killed when dropped.
pub struct Server {
    serve: rota_testkit::Serve,
}

impl Server {
    pub fn start(
        home: &Path,
        jobs: &Path,
        extra_env: &[(&str, &str)],
    ) -> Result<Server, Box<dyn std::error::Error>> {
        Server::start_with_grace(home, jobs, extra_env, 30)
    }

    /// Like [`Server::start`], with `--grace SECS` for shutdown.
    pub fn start_with_grace(
        home: &Path,
        jobs: &Path,
        extra_env: &[(&str, &str)],
        grace_secs: u32,
    ) -> Result<Server, Box<dyn std::error::Error>> {
        let mut builder = rota_testkit::Serve::builder(home, jobs)
            .grace(grace_secs)
            .env("ROTA_LOG", "info");
        for (k, v) in extra_env {
            builder = builder.env(*k, *v);
        }
        Ok(Server {
            serve: builder.start()?,
        })
    }

    pub fn addr(&self) -> Result<String, std::io::Error> {
        Ok(self.serve.addr().to_owned())
    }

    /// The server's process.
    pub fn child(&mut self) -> &mut std::process::Child {
        self.serve.child()
    }

    /// The admin token the server wrote on its first start.
    pub fn admin_token(&self) -> Result<String, std::io::Error> {
        self.serve.admin_token()
    }

    /// `Bearer <token>` for the admin token the server wrote on its first start.
    pub fn admin_bearer(&self) -> Result<String, std::io::Error> {
        Ok(format!("Bearer {}", self.serve.admin_token()?))
    }

    /// Waits until the server has loaded job `default/<job>`, starts a run of it through
    /// the API and returns the run's id.
    pub fn start_run(&self, job: &str) -> Result<String, Box<dyn std::error::Error>> {
        let (addr, bearer) = (self.addr()?, self.admin_bearer()?);
        let token = bearer.trim_start_matches("Bearer ");
        wait_for("the job to load", || {
            get(
                &addr,
                &format!("/api/v1/namespaces/default/jobs/{job}"),
                Some(token),
            )
            .is_ok_and(|(status, _, _)| status == 200)
        })?;
        let headers = [
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/json"),
        ];
        let path = format!("/api/v1/namespaces/default/jobs/{job}/runs");
        let (status, body) = post(&addr, &path, &headers, b"{}")?;
        if status != 202 {
            return Err(format!("starting {job}: {status} {body}").into());
        }
        let run: serde_json::Value = serde_json::from_str(&body)?;
        Ok(run["id"].as_str().ok_or("no run id")?.to_owned())
    }

    pub fn kill9(&mut self) -> Result<(), std::io::Error> {
        self.serve.kill9()
    }

    pub fn terminate(&mut self) -> Result<std::process::ExitStatus, Box<dyn std::error::Error>> {
        Ok(self.serve.terminate()?)
    }
}

/// A minimal HTTP/1.1 POST; returns the status code and the body.
pub fn post(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    send("POST", addr, path, headers, body)
}

/// A minimal HTTP/1.1 request with a body; returns the status code and the body.
pub fn send(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Ok((status, body))
}

/// A minimal HTTP/1.1 GET; returns the status code, the raw head and the body.
pub fn get(addr: &str, path: &str, token: Option<&str>) -> std::io::Result<(u16, String, String)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_owned(), body.to_owned()))
}
