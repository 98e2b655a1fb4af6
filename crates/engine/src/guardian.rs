//! A watchdog that kills a runner's step process groups if the runner itself dies.
//!
//! Every step runs in its own process group, so a runner killed with SIGKILL would leave its
//! steps running. The [`Guardian`] is a small child process (the `rota` binary started as
//! `rota __guardian`, whose body is [`guardian_main`]) in a process group of its own, so a
//! terminal's Ctrl-C does not reach it. The runner holds the only write end of the guardian's
//! stdin and sends it one line per event: `+<pgid>` when a step's group starts (`+<pgid>
//! <cgroup dir>` when the step also runs in a cgroup of its own, see [`crate::cgroup`]) and
//! `-<pgid>` when it is finished. When the runner dies, for whatever reason, the kernel closes
//! that pipe; the guardian reads end-of-file, sends SIGTERM to every group still watched, waits
//! a short grace, sends SIGKILL to what is left, kills whatever is left in the watched cgroups
//! (which catches processes that left the group: `setsid`, daemons), removes those cgroups, and
//! exits.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;

/// How long the guardian waits between SIGTERM and SIGKILL once its runner is gone.
pub const GUARDIAN_GRACE: Duration = Duration::from_secs(2);

/// The runner's handle on its watchdog process.
///
/// [`watch`](Guardian::watch) and [`unwatch`](Guardian::unwatch) write one short line to a
/// pipe the guardian drains continuously; they do not wait for it. Dropping the handle closes
/// the pipe, which tells the guardian to clean up whatever is still watched and exit, and then
/// reaps it.
#[derive(Debug)]
pub struct Guardian {
    inner: Mutex<Inner>,
    pid: u32,
}

#[derive(Debug)]
struct Inner {
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Guardian {
    /// Starts the watchdog: `program args…` must end up calling [`guardian_main`].
    ///
    /// The child gets its own process group (so Ctrl-C in a terminal does not reach it), a
    /// pipe as stdin, stdout discarded and stderr inherited for its diagnostics.
    pub fn spawn(program: &Path, args: &[&str]) -> io::Result<Guardian> {
        let mut command = Command::new(program);
        // The watchdog needs none of Rota's credentials.
        for name in crate::sandbox::scrubbed_env() {
            command.env_remove(name);
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        let pid = child.id();
        Ok(Guardian {
            inner: Mutex::new(Inner { stdin, child }),
            pid,
        })
    }

    /// The watchdog's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Tells the guardian that process group `pgid` (and the cgroup at `cgroup`, if any)
    /// belongs to a running step.
    pub fn watch(&self, pgid: u32, cgroup: Option<&Path>) {
        let dir = cgroup
            .and_then(Path::to_str)
            .filter(|d| !d.contains('\n'))
            .map(|d| format!(" {d}"))
            .unwrap_or_default();
        self.send_line(&format!("+{pgid}{dir}\n"));
    }

    /// Tells the guardian that process group `pgid` is finished and must be left alone.
    pub fn unwatch(&self, pgid: u32) {
        self.send_line(&format!("-{pgid}\n"));
    }

    /// From now on the guardian also acts as if its runner died when the runner goes silent
    /// for `after`; a thread of the runner says it is alive four times as often. A server
    /// sharing its store with others uses it: stopped (SIGSTOP) or frozen, it can neither
    /// stop its steps nor tell the others, who take it for dead a little later and run its
    /// steps again; the guardian, a process of its own, stops them first.
    pub fn keep_alive(self: &Arc<Self>, after: Duration) {
        self.send_line(&format!("!{}\n", after.as_millis()));
        let guardian = Arc::downgrade(self);
        let every = after / 4;
        thread::spawn(move || {
            loop {
                thread::sleep(every);
                let Some(guardian) = guardian.upgrade() else {
                    return;
                };
                guardian.send_line(".\n");
            }
        });
    }

    fn send_line(&self, line: &str) {
        // A line this short is written atomically, and the guardian reads continuously, so the
        // write returns at once. A dead guardian only loses its protection: the step still runs.
        // The line is built first: `writeln!` on the unbuffered pipe would make one `write`
        // (and wake the guardian) per piece.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stdin) = inner.stdin.as_mut()
            && let Err(err) = stdin.write_all(line.as_bytes())
        {
            tracing::warn!(pid = self.pid, %err, "the guardian process is gone");
            inner.stdin = None;
        }
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        // Closing stdin is the guardian's signal to finish; it exits promptly when nothing
        // is watched, and within its grace otherwise.
        inner.stdin = None;
        if let Err(err) = inner.child.wait() {
            tracing::warn!(pid = self.pid, %err, "cannot reap the guardian process");
        }
    }
}

/// The watchdog's body: call it from `main` of the process [`Guardian::spawn`] starts, and
/// exit with its return value.
///
/// Reads `+<pgid>` / `-<pgid>` lines from stdin until end-of-file (or, after a `!<millis>`
/// line, until no line came for that long: [`Guardian::keep_alive`]), then SIGTERMs every
/// group still watched, waits up to [`GUARDIAN_GRACE`] for them to go, SIGKILLs the rest and
/// returns 0. SIGINT and SIGHUP are ignored so that a terminal closing or a Ctrl-C aimed at the
/// runner cannot take the guardian down before the runner.
pub fn guardian_main() -> i32 {
    for sig in [Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: installing SIG_IGN runs no handler code, so no async-signal-safety rules apply.
        if let Err(err) = unsafe { signal::signal(sig, SigHandler::SigIgn) } {
            eprintln!("rota guardian: cannot ignore {sig}: {err}");
        }
    }
    let mut watched: BTreeMap<i32, Option<PathBuf>> = BTreeMap::new();
    let (lines_tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in io::stdin().lock().split(b'\n') {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut silence: Option<Duration> = None;
    loop {
        let line = match silence {
            None => lines.recv().ok(),
            Some(limit) => match lines.recv_timeout(limit) {
                Ok(line) => Some(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!(
                        "rota guardian: the runner said nothing for {}ms; stopping its steps",
                        limit.as_millis()
                    );
                    None
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
        };
        let Some(line) = line else { break };
        if let Some(limit) = parse_keep_alive(&line) {
            silence = Some(limit);
            continue;
        }
        match parse_command(&line) {
            Some(('+', pgid, cgroup)) => {
                watched.insert(pgid, cgroup);
            }
            Some((_, pgid, _)) => {
                watched.remove(&pgid);
            }
            None => {}
        }
    }
    if !watched.is_empty() {
        let groups: BTreeSet<i32> = watched.keys().copied().collect();
        kill_groups(&groups);
        for dir in watched.values().flatten() {
            kill_cgroup(dir);
        }
    }
    0
}

/// Kills what is left in a step's cgroup and removes it.
fn kill_cgroup(dir: &Path) {
    // Only a cgroup Rota made: a garbled line must not make the guardian kill elsewhere.
    let ours = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("rota-"));
    if !ours {
        return;
    }
    crate::cgroup::kill_dir(dir);
    let mut pause = Duration::from_millis(5);
    while std::fs::remove_dir(dir).is_err() && pause < Duration::from_secs(1) {
        thread::sleep(pause);
        pause *= 2;
    }
}

/// Parses a `!<millis>` line: the longest silence the runner allows itself.
fn parse_keep_alive(line: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(line).ok()?.trim().strip_prefix('!')?;
    let millis: u64 = text.parse().ok()?;
    (millis > 0).then(|| Duration::from_millis(millis))
}

/// Parses one `+<pgid>`, `+<pgid> <cgroup dir>` or `-<pgid>` line; anything else (or a
/// pgid ≤ 1, or a cgroup dir that is not absolute) is ignored.
fn parse_command(line: &[u8]) -> Option<(char, i32, Option<PathBuf>)> {
    let text = std::str::from_utf8(line).ok()?.trim();
    let mut chars = text.chars();
    let op = chars.next()?;
    if op != '+' && op != '-' {
        return None;
    }
    let (pgid, cgroup) = match chars.as_str().split_once(' ') {
        Some((pgid, dir)) => {
            let dir = PathBuf::from(dir);
            if !dir.is_absolute() {
                return None;
            }
            (pgid, Some(dir))
        }
        None => (chars.as_str(), None),
    };
    let pgid: i32 = pgid.parse().ok()?;
    (pgid > 1).then_some((op, pgid, cgroup))
}

fn kill_groups(groups: &BTreeSet<i32>) {
    let mut alive: Vec<i32> = groups
        .iter()
        .copied()
        .filter(|&g| signal::killpg(Pid::from_raw(g), Signal::SIGTERM) != Err(Errno::ESRCH))
        .collect();
    let deadline = Instant::now() + GUARDIAN_GRACE;
    let mut pause = Duration::from_millis(5);
    while !alive.is_empty() && Instant::now() < deadline {
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
        alive.retain(|&g| signal::killpg(Pid::from_raw(g), None) != Err(Errno::ESRCH));
    }
    for g in alive {
        let _ = signal::killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_junk_is_ignored() {
        assert_eq!(parse_command(b"+1234"), Some(('+', 1234, None)));
        assert_eq!(parse_command(b"-77\r"), Some(('-', 77, None)));
        assert_eq!(
            parse_command(b"+88 /sys/fs/cgroup/freezer/rota-5-1"),
            Some((
                '+',
                88,
                Some(PathBuf::from("/sys/fs/cgroup/freezer/rota-5-1"))
            ))
        );
        assert_eq!(parse_command(b"+88 relative/dir"), None);
        assert_eq!(parse_command(b"+1"), None);
        assert_eq!(parse_command(b"+-5"), None);
        assert_eq!(parse_command(b"*12"), None);
        assert_eq!(parse_command(b""), None);
    }
}
