//! Test helpers: a fresh data directory and working directory per test, the real `rota`
//! binary run inside them with every `ROTA_*` variable cleared, JSON parsing of its output,
//! and bounded polls for things that happen asynchronously (process exits, files appearing).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub use rota_testkit::PATIENCE;

/// One isolated `rota` installation: its own `ROTA_HOME` and its own working directory.
pub struct Rota {
    home: TempDir,
    /// `ROTA_HOME` when it is not `home` itself (see [`Rota::new_with_home`]).
    home_path: Option<PathBuf>,
    work: TempDir,
    envs: Vec<(String, String)>,
}

impl Rota {
    /// A fresh home and working directory.
    pub fn new() -> Rota {
        Rota {
            home: tempfile::Builder::new()
                .prefix("rota-home-")
                .tempdir()
                .expect("temp home"),
            work: tempfile::Builder::new()
                .prefix("rota-work-")
                .tempdir()
                .expect("temp work dir"),
            home_path: None,
            envs: Vec::new(),
        }
    }

    /// Like [`Rota::new`], with `ROTA_HOME` at `home` (created by the first command).
    pub fn new_with_home(home: PathBuf) -> Rota {
        Rota {
            home_path: Some(home),
            ..Rota::new()
        }
    }

    /// Sets an environment variable for every later command.
    pub fn env(mut self, name: &str, value: &str) -> Rota {
        self.envs.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `ROTA_HOME`.
    pub fn home(&self) -> &Path {
        self.home_path.as_deref().unwrap_or(self.home.path())
    }

    /// A path inside the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// Writes a file into the working directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// The `rota` command, ready to run in this installation.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        // The binary cargo built for this package's tests, never a stale one.
        let mut command =
            rota_testkit::rota_command(Path::new(env!("CARGO_BIN_EXE_rota")), self.home());
        command.args(args).current_dir(self.work.path());
        for (name, value) in &self.envs {
            command.env(name, value);
        }
        command
    }

    /// Runs `rota ARGS` to completion.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        finish(self.spawn(args), "rota")
    }

    /// Starts `rota ARGS` with `input` on its stdin (closed once written, as a pipe's writer
    /// would), stdout and stderr piped.
    pub fn spawn_with_stdin<I, S>(&self, args: I, input: &str) -> Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rota");
        let mut stdin = child.stdin.take().expect("piped stdin");
        std::io::Write::write_all(&mut stdin, input.as_bytes()).expect("write rota's stdin");
        child
    }

    /// Starts `rota ARGS` with stdout and stderr piped.
    pub fn spawn<I, S>(&self, args: I) -> Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rota")
    }

    /// Runs `rota ARGS --output json` and parses stdout, whatever the exit code.
    pub fn run_json(&self, args: &[&str]) -> (Value, Output) {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "json"]);
        let output = self.run(&all);
        (json(&output), output)
    }

    /// Runs `rota ARGS --output json`, which must exit with code 0, and parses stdout.
    #[track_caller]
    pub fn json_ok(&self, args: &[&str]) -> Value {
        let (value, output) = self.run_json(args);
        assert_code(&output, 0);
        value
    }

    /// `rota runs --output json`: every run, newest first.
    pub fn runs(&self) -> Vec<Value> {
        let (value, output) = self.run_json(&["runs"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "rota runs failed: {}",
            describe(&output)
        );
        value.as_array().expect("rota runs prints an array").clone()
    }

    /// Pids of live processes started for this installation: `rota` itself, its guardian
    /// and every step process, all of which inherit this `ROTA_HOME` in their environment.
    pub fn processes(&self) -> Vec<i32> {
        let needle = format!("ROTA_HOME={}", self.home().display()).into_bytes();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_slice()))
            })
            .filter(|&pid| pid_alive(pid))
            .collect()
    }

    /// Waits until no process of this installation is left (see [`Rota::processes`]).
    #[track_caller]
    pub fn assert_no_processes_left(&self) {
        let start = Instant::now();
        let left = loop {
            let left = self.processes();
            if left.is_empty() {
                return;
            }
            if start.elapsed() > PATIENCE {
                break left;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let described: Vec<String> = left
            .iter()
            .map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                format!(
                    "{pid}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                )
            })
            .collect();
        panic!("processes left behind after {PATIENCE:?}: {described:?}");
    }

    /// Polls `rota runs --status running` until a run shows up, and returns its id.
    pub fn wait_for_running_run(&self) -> String {
        let mut id = None;
        wait_until("a run in state running", || {
            let (value, _) = self.run_json(&["runs", "--status", "running"]);
            id = value
                .as_array()
                .and_then(|runs| runs.first())
                .and_then(|run| run["id"].as_str())
                .map(str::to_owned);
            id.is_some()
        });
        id.expect("polled until present")
    }
}

/// Parses stdout as JSON, failing with everything the binary printed.
pub fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {}", describe(output)))
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that the binary printed `text` on stderr, showing everything it printed otherwise.
#[track_caller]
pub fn assert_stderr_has(output: &Output, text: &str) {
    assert!(stderr(output).contains(text), "{}", describe(output));
}

/// Asserts that the binary printed `text` on stdout, showing everything it printed otherwise.
#[track_caller]
pub fn assert_stdout_has(output: &Output, text: &str) {
    assert!(stdout(output).contains(text), "{}", describe(output));
}

/// Asserts the exit code, showing everything the binary printed otherwise.
#[track_caller]
pub fn assert_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "unexpected exit: {}",
        describe(output)
    );
}

/// Asserts that a run's or step's JSON has a `reason` containing `text`.
#[track_caller]
pub fn assert_reason_has(record: &Value, text: &str) {
    assert!(
        record["reason"].as_str().is_some_and(|r| r.contains(text)),
        "{record:#}"
    );
}

/// The step called `id` in a run's JSON.
#[track_caller]
pub fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("run has no step {id:?}: {run:#}"))
}

/// Polls `condition` every 50 ms until it holds; fails after [`PATIENCE`] naming `what`.
#[track_caller]
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < PATIENCE,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `condition` every 50 ms until it holds (true) or [`PATIENCE`] passed (false).
pub fn wait_until_or(mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > PATIENCE {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a child to exit, killing it and failing if it takes longer than [`PATIENCE`].
#[track_caller]
pub fn wait_for_exit(child: &mut Child, what: &str) {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if start.elapsed() < PATIENCE => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                panic!(
                    "{what} (pid {}) did not exit within {PATIENCE:?}",
                    child.id()
                );
            }
            Err(error) => panic!("cannot wait for {what}: {error}"),
        }
    }
}

/// Waits for the child to exit and collects what it printed. The pipes are drained while
/// it runs: a child that prints more than a pipe holds (64 KiB) would otherwise block forever.
#[track_caller]
pub fn finish(mut child: Child, what: &str) -> Output {
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    wait_for_exit(&mut child, what);
    let status = child.wait().expect("collect exit status");
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

pub use rota_testkit::{pid_alive, processes_with};

/// Reads a pid a step wrote to a file, waiting until the file holds one.
#[track_caller]
pub fn read_pid(path: &Path) -> i32 {
    let mut pid = None;
    wait_until(&format!("a pid in {}", path.display()), || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok());
        pid.is_some()
    });
    pid.expect("polled until present")
}

/// Waits until the process is gone (or a zombie), failing with its pid otherwise.
#[track_caller]
pub fn wait_gone(pid: i32, what: &str) {
    wait_until(&format!("{what} (pid {pid}) to end"), || !pid_alive(pid));
}

/// Sends a signal to a process.
pub fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
    nix::sys::signal::kill(pid, signal).expect("send signal");
}

/// The workspace's `examples/` directory.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// A `rota serve` of a [`Rota`] installation on a free loopback port, stopped (SIGTERM,
/// then waited for) when dropped.
pub struct Server {
    _serve: rota_testkit::Serve,
    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub url: String,
    /// The admin token the first start wrote to `$ROTA_HOME/admin.token`.
    pub admin_token: String,
}

impl Rota {
    /// Starts `rota serve --listen 127.0.0.1:0 --jobs DIR` and waits until it listens.
    pub fn serve(&self, jobs_dir: &Path) -> Server {
        self.serve_with(jobs_dir, &[])
    }

    /// [`Rota::serve`] with more arguments of `rota serve`; with `--tls-cert`, the URL is
    /// `https://`.
    pub fn serve_with(&self, jobs_dir: &Path, args: &[&str]) -> Server {
        self.start_serve(jobs_dir, args, None)
    }

    /// Starts `rota serve` again on this home, after a first start wrote the admin token
    /// (`admin_token`; a later start removes the file).
    pub fn serve_again(&self, jobs_dir: &Path, admin_token: &str) -> Server {
        self.start_serve(jobs_dir, &[], Some(admin_token.to_owned()))
    }

    fn start_serve(&self, jobs_dir: &Path, args: &[&str], admin_token: Option<String>) -> Server {
        let mut builder = rota_testkit::Serve::builder(self.home(), jobs_dir)
            .bin(env!("CARGO_BIN_EXE_rota"))
            .grace(5)
            .log(self.path("serve.log"))
            .args(args.iter().copied())
            .sigterm_on_drop();
        for (name, value) in &self.envs {
            builder = builder.env(name, value);
        }
        let serve = builder
            .start()
            .unwrap_or_else(|error| panic!("rota serve did not start listening: {error}"));
        let admin_token =
            admin_token.unwrap_or_else(|| serve.admin_token().expect("the admin token file"));
        let url = if args.contains(&"--tls-cert") {
            format!("https://{}", serve.addr())
        } else {
            serve.url()
        };
        Server {
            url,
            admin_token,
            _serve: serve,
        }
    }
}

impl Server {
    /// `GET path` with the admin token over a plain HTTP/1.1 connection: the body.
    pub fn get(&self, path: &str) -> String {
        use std::io::{Read as _, Write as _};
        let addr = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect to rota serve");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("set a read timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.admin_token
        )
        .expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }
}

/// `rota ARGS --output json` as local user `user` (`USER`): its JSON, and its output.
pub fn as_user(rota: &Rota, user: &str, args: &[&str]) -> (Value, Output) {
    let mut command = rota.command(args.iter().chain(&["--output", "json"]));
    let output = command.env("USER", user).output().expect("run rota");
    let value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (value, output)
}

/// `rota --server URL --token TOKEN ARGS --output json`.
pub fn remote_as(rota: &Rota, server: &Server, token: &str, args: &[&str]) -> Output {
    let mut all = vec!["--server", &server.url, "--token", token];
    all.extend(args);
    all.extend(["--output", "json"]);
    rota.run(&all)
}

/// `rota run FILE` on a pseudo-terminal (util-linux `script`), typing `typed`: its exit
/// code and what the terminal showed.
pub fn run_at_a_terminal(rota: &Rota, file: &str, typed: &str) -> (i32, String) {
    use std::process::{Command, Stdio};
    let command = format!("{} run {file}", env!("CARGO_BIN_EXE_rota"));
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("ROTA_HOME", rota.home())
        .current_dir(rota.path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start script(1)");
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, typed.as_bytes()).expect("type");
    }
    let output = child.wait_with_output().expect("script(1) ends");
    let code = output.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&output.stdout).into_owned())
}
