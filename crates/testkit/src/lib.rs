//! Test plumbing shared by Rota's packages: the `rota` binary cargo just built, `rota serve`
//! servers in a fresh home, bounded waits, and notebook kernels started as Rota starts them.
//!
//! Only ever a dev-dependency. Inside the `rota-cli` package, tests pass
//! `env!("CARGO_BIN_EXE_rota")`; other packages call [`rota_bin`], which builds the binary
//! once per test process, so no test runs a stale `target/debug/rota`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod kernels;

/// The generous upper bound of every wait: long enough for a loaded 2-core machine, and
/// only ever reached when something is broken. Tests wait for states, never durations.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `ready` every 50 ms until it holds, or fails after [`PATIENCE`] naming `what`.
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        if start.elapsed() > PATIENCE {
            return Err(format!("gave up after {PATIENCE:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `rota` executable of this workspace, built now if it is not fresh.
///
/// Runs `cargo build -p rota-cli --bin rota --message-format=json` once per test process,
/// with the profile and target directory of the running test, and takes the executable's
/// path from cargo's output (a no-op build when nothing changed; cargo does not hold its
/// lock while tests run). Panics with cargo's errors when the build fails.
pub fn rota_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build_rota)
}

fn build_rota() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "-p",
            "rota-cli",
            "--bin",
            "rota",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    // The test runs from `<target dir>[/<triple>]/<profile dir>/deps/`.
    let exe = std::env::current_exe().expect("the test's own path");
    if let Some(profile_dir) = exe.parent().and_then(Path::parent)
        && let Some(name) = profile_dir.file_name().and_then(|n| n.to_str())
        && let Some(above) = profile_dir.parent()
    {
        match name {
            "debug" => {}
            "release" => {
                command.arg("--release");
            }
            other => {
                command.args(["--profile", other]);
            }
        }
        // A cross build puts the triple between the target directory and the profile's.
        let triple = !above.join("CACHEDIR.TAG").exists()
            && above
                .parent()
                .is_some_and(|t| t.join("CACHEDIR.TAG").exists());
        let target_dir = if triple {
            if let Some(triple) = above.file_name() {
                command.arg("--target").arg(triple);
            }
            above.parent().unwrap_or(above)
        } else {
            above
        };
        command.arg("--target-dir").arg(target_dir);
    }
    let output = command.output().expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "building rota failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "rota")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo named no rota executable:\n{stdout}"))
}

/// `bin` ready to run with `home` as `ROTA_HOME`: every inherited `ROTA_*` variable is
/// removed (a developer's token or server must not leak into a test) and stdin is null.
pub fn rota_command(bin: &Path, home: &Path) -> Command {
    let mut command = Command::new(bin);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ROTA_") {
            command.env_remove(name);
        }
    }
    command.env("ROTA_HOME", home).stdin(Stdio::null());
    command
}

/// The line `rota serve` prints on stderr once it listens, before the address.
pub const LISTENING: &str = "rota serve: listening on ";

/// How to start a `rota serve`: see [`Serve::builder`].
#[derive(Debug, Clone)]
pub struct ServeBuilder {
    /// `None`: [`rota_bin`], resolved only when the server starts. Resolving it earlier
    /// would run its `cargo build` even for a caller that names its own executable, and
    /// that build relinks `target/<profile>/rota` while other tests run it.
    bin: Option<PathBuf>,
    home: PathBuf,
    jobs: PathBuf,
    listen: String,
    grace: u32,
    env: Vec<(String, String)>,
    args: Vec<String>,
    log: Option<PathBuf>,
    sigterm_on_drop: bool,
}

impl ServeBuilder {
    /// The `rota` executable (default: [`rota_bin`]).
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// `--listen` (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, listen: impl Into<String>) -> Self {
        self.listen = listen.into();
        self
    }

    /// `--grace SECS` (default 5).
    pub fn grace(mut self, secs: u32) -> Self {
        self.grace = secs;
        self
    }

    /// An environment variable of the server.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// More arguments of `rota serve` (e.g. `--auth none`).
    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Where the server's stderr goes, appended (default `<home>/serve.log`).
    pub fn log(mut self, log: impl Into<PathBuf>) -> Self {
        self.log = Some(log.into());
        self
    }

    /// Stop with SIGTERM (and wait) when dropped, instead of SIGKILL.
    pub fn sigterm_on_drop(mut self) -> Self {
        self.sigterm_on_drop = true;
        self
    }

    /// Starts the server and waits until it says where it listens.
    pub fn start(self) -> std::io::Result<Serve> {
        std::fs::create_dir_all(&self.home)?;
        let log_path = self
            .log
            .clone()
            .unwrap_or_else(|| self.home.join("serve.log"));
        // Stderr goes straight to the file, so a line is there as soon as it is written;
        // the listening line is looked for after what earlier starts left.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let offset = log.metadata()?.len();
        let bin = self.bin.clone().unwrap_or_else(|| rota_bin().to_owned());
        let mut command = rota_command(&bin, &self.home);
        command
            .args([
                "serve",
                "--listen",
                &self.listen,
                "--grace",
                &self.grace.to_string(),
                "--jobs",
            ])
            .arg(&self.jobs)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        let child = command.spawn()?;
        let mut serve = Serve {
            child,
            home: self.home,
            addr: String::new(),
            log: log_path,
            sigterm_on_drop: self.sigterm_on_drop,
        };
        let mut addr = None;
        let mut exited = None;
        let waited = wait_for("rota serve to listen", || {
            let text = std::fs::read(&serve.log).unwrap_or_default();
            let text = String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default());
            addr = text
                .lines()
                .find_map(|l| l.strip_prefix(LISTENING))
                .map(|a| a.trim().to_owned());
            exited = serve.child.try_wait().ok().flatten();
            addr.is_some() || exited.is_some()
        });
        match addr {
            Some(addr) => {
                serve.addr = addr;
                Ok(serve)
            }
            None => Err(std::io::Error::other(format!(
                "rota serve did not listen ({}; exit {exited:?}):\n{}",
                waited.err().unwrap_or_default(),
                serve.log_text()
            ))),
        }
    }
}

/// A `rota serve` child process, killed with SIGKILL (or stopped with SIGTERM, see
/// [`ServeBuilder::sigterm_on_drop`]) and reaped when dropped.
#[derive(Debug)]
pub struct Serve {
    child: Child,
    home: PathBuf,
    addr: String,
    log: PathBuf,
    sigterm_on_drop: bool,
}

impl Serve {
    /// A server of `bin` on `home` (created if missing) and the job directory `jobs`.
    pub fn builder(home: impl Into<PathBuf>, jobs: impl Into<PathBuf>) -> ServeBuilder {
        ServeBuilder {
            bin: None,
            home: home.into(),
            jobs: jobs.into(),
            listen: "127.0.0.1:0".to_owned(),
            grace: 5,
            env: Vec::new(),
            args: Vec::new(),
            log: None,
            sigterm_on_drop: false,
        }
    }

    /// `HOST:PORT` it listens on, from its `listening on` line.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its `ROTA_HOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Where its stderr goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything it wrote to stderr so far (with earlier starts on the same log).
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The admin token the first start wrote to `$ROTA_HOME/admin.token`, waited for.
    pub fn admin_token(&self) -> std::io::Result<String> {
        let file = self.home.join("admin.token");
        let mut token = String::new();
        wait_for("the admin token file", || {
            token = std::fs::read_to_string(&file)
                .unwrap_or_default()
                .trim()
                .to_owned();
            !token.is_empty()
        })
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, e))?;
        Ok(token)
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it.
    pub fn kill9(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Sends SIGTERM and waits for it to exit.
    pub fn terminate(&mut self) -> std::io::Result<std::process::ExitStatus> {
        signal(self.child.id(), nix::sys::signal::Signal::SIGTERM)?;
        self.child.wait()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.sigterm_on_drop
            && signal(self.child.id(), nix::sys::signal::Signal::SIGTERM).is_ok()
        {
            let _ = wait_for("rota serve to stop", || {
                self.child.try_wait().ok().flatten().is_some()
            });
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `sig` to process `pid`.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(std::io::Error::other)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(std::io::Error::from)
}

/// Whether a process runs: it exists and is not a zombie waiting to be reaped.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => match stat.rfind(')') {
            Some(end) => !matches!(stat[end + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// Live processes whose command line contains `marker`, as `pid: cmdline`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid_alive(pid))
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(marker)
                .then(|| format!("{pid}: {cmdline}"))
        })
        .collect()
}
pub mod postgres;
