//! The process supervisor: the one place where Rota starts a child process.
//!
//! It has two halves. [`start`] sets a child up (confinement, scrubbed environment, umask,
//! a cgroup per attempt, a process group, `PR_SET_PDEATHSIG`, the guardian's watch) and
//! returns a [`Supervised`] handle that owns all of it and kills it when dropped.
//! [`Supervised::stream`] then streams a step's stdout and stderr line by line
//! (timestamped, redacted, size-capped) to a callback, and races its exit against a timeout
//! and a cancellation token in one `select!`. Whatever ends the step, the whole group goes
//! with it: a timeout or a cancel sends SIGTERM to the group and SIGKILL after the grace
//! period; after a normal exit, processes the step left behind in its group (`sleep 100 &`)
//! get the same treatment, and so does what is left in its cgroup. The leader is always
//! reaped; orphans are reaped too when the runner is their subreaper (see [`adopt_orphans`]).
//! [`supervise`] is both halves in one call.
//!
//! A long-lived child its caller talks to and stops itself (a notebook kernel, see
//! [`crate::kernels`]) is started by [`start`] too and taken apart with
//! [`Supervised::into_parts`]: the caller gets the process and its pipes, the
//! [`ProcessGroup`] keeps the group, the cgroup and the guardian's watch until it is dropped.
//!
//! Known limits: without a cgroup, a process that leaves its group (`setsid`, `setpgid`)
//! escapes the kill, and the supervisor then stops waiting for the pipes it holds after
//! [`PIPE_DRAIN_LIMIT`].

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use rota_core::resources::Resources;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::cgroup::StepCgroup;
use crate::guardian::Guardian;
use crate::redact::Redactor;
use crate::resources::StepLimits;

/// Default time between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// Default cap on the log bytes kept per step (both streams together).
pub const DEFAULT_LOG_CAP: usize = 10 * 1024 * 1024;

/// Lines longer than this are split into several lines of at most this many bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// How long the supervisor keeps reading the pipes once the step's group is gone; only a
/// process that escaped the group can hold them open that long.
pub const PIPE_DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// How long the supervisor waits for a group to disappear after SIGKILL before it gives up
/// (zombies that nobody reaps keep a group "alive" to `kill(2)`).
const AFTER_KILL_LIMIT: Duration = Duration::from_secs(2);

/// What to run and under which limits.
#[derive(Clone)]
pub struct ProcessSpec {
    /// The program, looked up on `PATH` when it has no slash.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables added to (or replacing in) the inherited environment.
    pub env: Vec<(String, String)>,
    /// Working directory; the runner's own when `None`.
    pub cwd: Option<PathBuf>,
    /// Wall-clock limit; none when `None`.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Bytes of log kept per step; the rest is read and discarded.
    pub log_cap_bytes: usize,
    /// The step's own run directory: the one place inside `$ROTA_HOME` the process may
    /// reach when steps are confined (see [`crate::sandbox`]).
    pub run_dir: Option<PathBuf>,
    /// Limits on what its processes may use (see [`crate::resources`]).
    pub resources: Resources,
}

impl ProcessSpec {
    /// A spec with no extra environment, no timeout and the default grace and log cap.
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> ProcessSpec {
        ProcessSpec {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            timeout: None,
            grace: DEFAULT_GRACE,
            log_cap_bytes: DEFAULT_LOG_CAP,
            run_dir: None,
            resources: Resources::default(),
        }
    }
}

impl fmt::Debug for ProcessSpec {
    // Environment values may be secrets: show the names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ProcessSpec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env_names)
            .field("cwd", &self.cwd)
            .field("timeout", &self.timeout)
            .field("grace", &self.grace)
            .field("log_cap_bytes", &self.log_cap_bytes)
            .field("run_dir", &self.run_dir)
            .field("resources", &self.resources)
            .finish()
    }
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a step's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the supervisor read it.
    pub ts: jiff::Timestamp,
    /// Where it came from.
    pub stream: Stream,
    /// The text, already redacted, without its line ending; invalid UTF-8 is replaced.
    pub text: String,
}

/// Why a step's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited by itself with this code.
    Exited(i32),
    /// A signal the supervisor did not send ended it (its number).
    Signalled(i32),
    /// It ran past its timeout and the supervisor killed it.
    TimedOut,
    /// Its cancellation token fired and the supervisor killed it.
    Cancelled,
}

/// What happened to a supervised process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutcome {
    /// Why it ended.
    pub ending: Ending,
    /// Its process id, which was also its process group id.
    pub pid: u32,
    /// True when the log cap was reached and output was discarded.
    pub log_truncated: bool,
    /// From spawn until the group was gone and the pipes drained.
    pub duration: Duration,
    /// Whether the kernel killed one of its processes for going over the memory limit of
    /// `spec.resources`.
    pub memory_exceeded: bool,
}

/// A process could not be started or waited for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The program could not be started (not found, not executable, bad cwd…).
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program as given in the spec.
        program: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The step could not be confined (see [`crate::sandbox`]); it was not started.
    #[error(transparent)]
    Confine(#[from] crate::sandbox::ConfineError),
    /// Waiting for the program failed; its group was killed.
    #[error("cannot wait for `{program}` (pid {pid}): {source}")]
    Wait {
        /// The program as given in the spec.
        program: String,
        /// Its process id.
        pid: u32,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
}

/// Makes this process the reaper of orphans among its descendants (Linux'
/// `PR_SET_CHILD_SUBREAPER`), so that processes a step leaves behind in its group become the
/// runner's children when the step's leader exits and [`supervise`] can reap them.
///
/// Call it once at start-up. Without it, such orphans go to PID 1, which on some systems
/// (minimal containers, micro-VMs) never reaps them.
pub fn adopt_orphans() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// Starts `spec`'s program under Rota's supervision and returns without waiting for it.
///
/// This is the one place a child of Rota is set up (see [`Supervised`] for what its handle
/// owns). The child gets, before `exec`:
/// - the Landlock ruleset of its run directory (see [`crate::sandbox`]), when [`crate::sandbox::init`]
///   found Landlock;
/// - an environment without Rota's own `ROTA_*` variables (but `ROTA_HOME`), plus `spec.env`;
/// - the user's umask back (Rota's own is 077);
/// - a cgroup of its own, when [`crate::cgroup::init`] found a writable hierarchy, so that
///   processes leaving its group (`setsid`) can still be killed;
/// - a process group of its own, whose id is its pid;
/// - SIGKILL when Rota dies (`PR_SET_PDEATHSIG`), which reaches the child alone; its group and
///   cgroup are registered with `guardian`, which kills the rest;
/// - a null stdin, and piped stdout and stderr.
pub fn start(
    spec: &ProcessSpec,
    guardian: Option<&Arc<Guardian>>,
) -> Result<Supervised, SpawnError> {
    let started = Instant::now();
    let confinement = crate::sandbox::Confinement::for_step(spec.run_dir.as_deref())?;
    let cgroup = match crate::cgroup::StepCgroup::create() {
        Some(Ok(cgroup)) => Some(cgroup),
        Some(Err(err)) => {
            tracing::warn!(%err, "cannot make a cgroup for a step; only its process group will be killed");
            None
        }
        None => None,
    };
    let limits = StepLimits::apply(&spec.resources, cgroup.as_ref());
    let user_umask = crate::sandbox::user_umask();
    let parent = nix::unistd::getpid().as_raw();
    let mut command = tokio::process::Command::new(&spec.program);
    command.args(&spec.args);
    // Rota's own variables (the secret key, API tokens…) stay with Rota.
    for name in crate::sandbox::scrubbed_env() {
        command.env_remove(name);
    }
    command
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    // SAFETY: the closure only makes async-signal-safe calls (umask, write, prctl, getppid,
    // syscall) on values prepared before the fork; it allocates nothing.
    // The descriptors stay open (owned by `cgroup` and `confinement`) until after the spawn.
    let procs_fd = cgroup.as_ref().map(crate::cgroup::StepCgroup::procs_fd);
    let limit_fds = limits.procs_fds();
    let ruleset_fd = confinement.as_ref().map(|c| c.ruleset_fd());
    unsafe {
        command.pre_exec(move || {
            // Rota runs with umask 077 for its own files; the step gets the user's back.
            if let Some(mask) = user_umask {
                libc::umask(mask);
            }
            if let Some(fd) = procs_fd {
                crate::cgroup::join_in_child(fd)?;
            }
            for &fd in &limit_fds {
                crate::cgroup::join_in_child(fd)?;
            }
            // The signal comes when the thread that forked exits: Rota forks on its runtime's
            // threads (or its main thread), which live as long as the process.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Rota died between the fork and the prctl: no signal will come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            if let Some(fd) = ruleset_fd {
                crate::sandbox::restrict_in_child(fd)?;
            }
            Ok(())
        });
    }
    let spawned = command.spawn();
    // The child holds its own copies of the descriptors now.
    drop(confinement);
    let child = match spawned {
        Ok(child) => child,
        Err(source) => {
            if let Some(cgroup) = &cgroup {
                cgroup.remove();
            }
            return Err(SpawnError::Spawn {
                program: spec.program.clone(),
                source,
            });
        }
    };
    let pid = child
        .id()
        .expect("a child that has not been waited for has a pid");
    let group = ProcessGroup::new(pid, cgroup, limits, guardian.cloned());
    Ok(Supervised {
        child,
        group,
        program: spec.program.clone(),
        timeout: spec.timeout,
        grace: spec.grace,
        log_cap_bytes: spec.log_cap_bytes,
        started,
    })
}

/// Runs `spec` to completion, streaming its output lines to `on_line`: [`start`], then
/// [`Supervised::stream`].
pub async fn supervise(
    spec: &ProcessSpec,
    redactor: &Redactor,
    cancel: &CancellationToken,
    guardian: Option<&Arc<Guardian>>,
    on_line: &mut (dyn FnMut(LogLine) + Send),
) -> Result<ProcessOutcome, SpawnError> {
    start(spec, guardian)?
        .stream(redactor, cancel, on_line)
        .await
}

/// A child [`start`] started: the process and the [`ProcessGroup`] that owns its group, its
/// cgroup and its registration with the guardian.
///
/// Dropping it kills the child and whatever it started with SIGKILL. A step's process is
/// run to its end by [`Supervised::stream`]; a long-lived child that its caller talks to
/// and stops itself (a notebook kernel) is taken apart with [`Supervised::into_parts`].
#[derive(Debug)]
pub struct Supervised {
    // Declared first, dropped first: the leader goes before the group is killed.
    child: tokio::process::Child,
    group: ProcessGroup,
    program: String,
    timeout: Option<Duration>,
    grace: Duration,
    log_cap_bytes: usize,
    started: Instant,
}

impl Supervised {
    /// The child's process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.group.pgid()
    }

    /// The process (stdout and stderr piped, not yet taken) and the group that owns it.
    /// Dropping the group kills whatever is left of the child and of what it started; the
    /// process should be waited for first, so that the group can reap what it adopted.
    pub fn into_parts(self) -> (tokio::process::Child, ProcessGroup) {
        (self.child, self.group)
    }

    /// Streams the child's output lines to `on_line` until it ends, then stops its whole
    /// group.
    ///
    /// A timeout or `cancel` sends SIGTERM to the group and SIGKILL after the spec's grace;
    /// after a normal exit, whatever is left in the group is sent SIGTERM then SIGKILL as
    /// well. Returns once the group is gone and both pipes are drained (or
    /// [`PIPE_DRAIN_LIMIT`] passed). If the returned future is dropped early, the group is
    /// killed with SIGKILL.
    pub async fn stream(
        self,
        redactor: &Redactor,
        cancel: &CancellationToken,
        on_line: &mut (dyn FnMut(LogLine) + Send),
    ) -> Result<ProcessOutcome, SpawnError> {
        let Supervised {
            mut child,
            mut group,
            program,
            timeout: limit,
            grace,
            log_cap_bytes,
            started,
        } = self;
        let pid = group.pgid();
        if !group.limits.unenforced.is_empty() {
            // A limit is never dropped silently: the step's log says which did not apply.
            on_line(LogLine {
                ts: jiff::Timestamp::now(),
                stream: Stream::Stderr,
                text: format!(
                    "[rota] resources not enforced on this host: {}",
                    group.limits.unenforced.join(", ")
                ),
            });
        }
        let mut stdout = LineReader::new(child.stdout.take(), Stream::Stdout);
        let mut stderr = LineReader::new(child.stderr.take(), Stream::Stderr);
        let mut sink = LogSink {
            redactor,
            on_line,
            cap: log_cap_bytes,
            kept: 0,
            truncated: false,
        };

        let far_future = started + Duration::from_secs(100 * 365 * 24 * 3600);
        let mut timeout = pin!(sleep_until(limit.map_or(far_future, |t| started + t)));
        let mut cancelled = pin!(cancel.cancelled());
        // Armed when SIGTERM has gone to the group: SIGKILL follows when it fires.
        let mut kill_timer = pin!(sleep_until(far_future));
        // Armed after the leader exited: the next check whether the group is gone.
        let mut poll_timer = pin!(sleep_until(far_future));
        let mut poll_pause = Duration::from_millis(1);
        // Armed once the group is gone (or given up on): the limit for draining the pipes.
        let mut drain_timer = pin!(sleep_until(far_future));

        let mut reason: Option<Ending> = None;
        let mut term_sent = false;
        let mut kill_sent_at: Option<Instant> = None;
        let mut exit: Option<ExitStatus> = None;
        let mut group_gone = false;
        let mut drain_expired = false;

        loop {
            if exit.is_some() && group_gone && (drain_expired || (stdout.done() && stderr.done())) {
                break;
            }
            tokio::select! {
                biased;
                status = child.wait(), if exit.is_none() => {
                    let status = match status {
                        Ok(status) => status,
                        Err(source) => {
                            group.kill();
                            return Err(SpawnError::Wait { program, pid, source });
                        }
                    };
                    exit = Some(status);
                    // Anything still in the group is a straggler now; it goes too.
                    if !term_sent {
                        term_sent = group.signal(Signal::SIGTERM);
                        if term_sent {
                            kill_timer.as_mut().reset(Instant::now() + grace);
                        }
                    }
                    group_gone = group.is_gone();
                    if group_gone {
                        drain_timer.as_mut().reset(Instant::now() + PIPE_DRAIN_LIMIT);
                    } else {
                        poll_timer.as_mut().reset(Instant::now() + poll_pause);
                    }
                }
                read = stdout.read(), if !stdout.done() => stdout.after_read(read, &mut sink),
                read = stderr.read(), if !stderr.done() => stderr.after_read(read, &mut sink),
                () = &mut timeout, if reason.is_none() && exit.is_none() && limit.is_some() => {
                    reason = Some(Ending::TimedOut);
                    term_sent = group.signal(Signal::SIGTERM);
                    kill_timer.as_mut().reset(Instant::now() + grace);
                }
                () = &mut cancelled, if reason.is_none() && exit.is_none() => {
                    reason = Some(Ending::Cancelled);
                    term_sent = group.signal(Signal::SIGTERM);
                    kill_timer.as_mut().reset(Instant::now() + grace);
                }
                () = &mut kill_timer, if term_sent && kill_sent_at.is_none() && !group_gone => {
                    group.signal(Signal::SIGKILL);
                    kill_sent_at = Some(Instant::now());
                }
                () = &mut poll_timer, if exit.is_some() && !group_gone => {
                    group_gone = group.is_gone()
                        || kill_sent_at.is_some_and(|at| at.elapsed() >= AFTER_KILL_LIMIT);
                    if group_gone {
                        drain_timer.as_mut().reset(Instant::now() + PIPE_DRAIN_LIMIT);
                    } else {
                        poll_pause = (poll_pause * 2).min(Duration::from_millis(50));
                        poll_timer.as_mut().reset(Instant::now() + poll_pause);
                    }
                }
                () = &mut drain_timer, if group_gone && !drain_expired => {
                    drain_expired = true;
                    tracing::warn!(pid, %program, "gave up draining the output of a finished step; a process outside its group holds the pipe");
                }
            }
        }
        stdout.finish(&mut sink);
        stderr.finish(&mut sink);
        let memory_exceeded = group.limits.memory_exceeded();
        group.release();

        let status = exit.expect("the loop ends only after the leader exited");
        let ending = reason.unwrap_or_else(|| match (status.code(), status.signal()) {
            (Some(code), _) => Ending::Exited(code),
            (None, Some(sig)) => Ending::Signalled(sig),
            (None, None) => Ending::Signalled(0),
        });
        Ok(ProcessOutcome {
            ending,
            pid,
            log_truncated: sink.truncated,
            duration: started.elapsed(),
            memory_exceeded,
        })
    }
}

/// A supervised child's process group and cgroup, and their registration with the
/// guardian.
///
/// Dropping it kills whatever is left in the group and the cgroup with SIGKILL, removes the
/// cgroup, reaps the processes of the cgroup Rota adopted (see [`adopt_orphans`]) and tells
/// the guardian to forget them.
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: Pid,
    cgroup: Option<StepCgroup>,
    /// The cgroups enforcing the step's `resources:` (v1), removed after its own.
    limits: StepLimits,
    /// Processes seen in the cgroup: those that became our children (orphans adopted by
    /// the subreaper) are reaped by pid, since they are not in the step's group.
    seen: Vec<i32>,
    guardian: Option<Arc<Guardian>>,
    released: bool,
}

impl ProcessGroup {
    fn new(
        pid: u32,
        cgroup: Option<StepCgroup>,
        limits: StepLimits,
        guardian: Option<Arc<Guardian>>,
    ) -> ProcessGroup {
        if let Some(g) = &guardian {
            g.watch(pid, cgroup.as_ref().map(StepCgroup::dir));
        }
        let raw = i32::try_from(pid).expect("pids fit in pid_t");
        ProcessGroup {
            pgid: Pid::from_raw(raw),
            cgroup,
            limits,
            seen: Vec::new(),
            guardian,
            released: false,
        }
    }

    /// The process group's id: the pid of the child [`start`] started.
    pub fn pgid(&self) -> u32 {
        self.pgid.as_raw().unsigned_abs()
    }

    /// Whether the child runs in a cgroup of its own.
    pub fn has_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// Sends `sig` to the group and to every process in the step's cgroup (SIGKILL kills
    /// the cgroup as a whole); false when neither has a member left.
    pub fn signal(&mut self, sig: Signal) -> bool {
        let group_alive = match signal::killpg(self.pgid, sig) {
            Ok(()) => true,
            Err(Errno::ESRCH) => false,
            Err(err) => {
                tracing::warn!(pgid = %self.pgid, %sig, %err, "cannot signal a step's process group");
                false
            }
        };
        let Some(cgroup) = &self.cgroup else {
            return group_alive;
        };
        let pids = if sig == Signal::SIGKILL {
            cgroup.kill_all()
        } else {
            cgroup.signal_all(sig)
        };
        let any = !pids.is_empty();
        self.seen.extend(pids);
        group_alive || any
    }

    /// Reaps members of the group (and processes seen in the cgroup) that became our
    /// children (see [`adopt_orphans`]), then tells whether any member is left. Only valid
    /// once the leader has been reaped, so that this never takes an exit status tokio is
    /// waiting for.
    fn is_gone(&mut self) -> bool {
        let group = Pid::from_raw(-self.pgid.as_raw());
        loop {
            match waitpid(group, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        if let Some(cgroup) = &self.cgroup {
            self.seen.extend(cgroup.pids());
        }
        self.reap_seen();
        matches!(signal::killpg(self.pgid, None), Err(Errno::ESRCH))
            && self.cgroup.as_ref().is_none_or(StepCgroup::is_empty)
    }

    /// Reaps the processes seen in the cgroup that are our children and have ended; keeps
    /// the others (not our child, or still running) for the next look. Never the leader:
    /// its exit status belongs to whoever holds its `Child`.
    fn reap_seen(&mut self) {
        let leader = self.pgid.as_raw();
        self.seen.sort_unstable();
        self.seen.dedup();
        self.seen.retain(|&pid| {
            pid == leader
                || !matches!(
                    waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(Errno::ECHILD)
                )
        });
    }

    fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        self.release();
    }

    /// Kills what is left in the cgroup, removes it and ends the guardian's watch.
    fn release(&mut self) {
        if !self.released {
            self.released = true;
            if let Some(cgroup) = &self.cgroup {
                // Anything still inside (only after giving up on waiting) goes now.
                if !cgroup.is_empty() {
                    self.seen.extend(cgroup.kill_all());
                }
                remove_cgroup(cgroup);
            }
            self.limits.remove();
            // Once the cgroup is empty its former members have all ended.
            self.reap_seen();
            if let Some(g) = &self.guardian {
                g.unwatch(self.pgid());
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.released {
            self.kill();
        }
    }
}

/// Removes an attempt's cgroup, giving members just killed a moment to leave it.
fn remove_cgroup(cgroup: &StepCgroup) {
    let mut pause = Duration::from_millis(1);
    for _ in 0..8 {
        if cgroup.remove() {
            return;
        }
        std::thread::sleep(pause);
        pause *= 2;
    }
    tracing::warn!(dir = %cgroup.dir().display(), "cannot remove a step's cgroup");
}

/// Delivers lines to the caller: redacts them and enforces the log cap.
struct LogSink<'a> {
    redactor: &'a Redactor,
    on_line: &'a mut (dyn FnMut(LogLine) + Send),
    cap: usize,
    kept: usize,
    truncated: bool,
}

impl LogSink<'_> {
    fn line(&mut self, stream: Stream, raw: &[u8]) {
        if self.truncated {
            return;
        }
        // A line costs its bytes plus the newline it had.
        let cost = raw.len() + 1;
        if self.kept + cost > self.cap {
            self.truncated = true;
            (self.on_line)(LogLine {
                ts: jiff::Timestamp::now(),
                stream,
                text: format!("[rota] log truncated after {} bytes", self.kept),
            });
            return;
        }
        self.kept += cost;
        let text = String::from_utf8_lossy(raw);
        let text = match self.redactor.redact(&text) {
            std::borrow::Cow::Borrowed(_) => text.into_owned(),
            std::borrow::Cow::Owned(redacted) => redacted,
        };
        (self.on_line)(LogLine {
            ts: jiff::Timestamp::now(),
            stream,
            text,
        });
    }
}

/// Reads one pipe and cuts it into lines.
struct LineReader {
    pipe: Option<Box<dyn AsyncRead + Unpin + Send>>,
    stream: Stream,
    buf: Vec<u8>,
}

impl LineReader {
    fn new(pipe: Option<impl AsyncRead + Unpin + Send + 'static>, stream: Stream) -> LineReader {
        LineReader {
            pipe: pipe.map(|p| Box::new(p) as Box<dyn AsyncRead + Unpin + Send>),
            stream,
            buf: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.pipe.is_none()
    }

    /// Reads what is available; cancel-safe, as `select!` requires.
    async fn read(&mut self) -> io::Result<usize> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(0);
        };
        self.buf.reserve(8 * 1024);
        pipe.read_buf(&mut self.buf).await
    }

    fn after_read(&mut self, read: io::Result<usize>, sink: &mut LogSink<'_>) {
        match read {
            Ok(0) => self.finish(sink),
            Ok(_) => self.emit_complete_lines(sink),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                tracing::warn!(stream = ?self.stream, %err, "cannot read a step's output");
                self.finish(sink);
            }
        }
    }

    fn emit_complete_lines(&mut self, sink: &mut LogSink<'_>) {
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let line = &self.buf[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            sink.line(self.stream, line);
            start = end + 1;
        }
        while self.buf.len() - start >= MAX_LINE_BYTES {
            let cut = split_point(&self.buf[start..start + MAX_LINE_BYTES]);
            sink.line(self.stream, &self.buf[start..start + cut]);
            start += cut;
        }
        self.buf.drain(..start);
    }

    /// Stops reading and emits an unterminated last line, if any.
    fn finish(&mut self, sink: &mut LogSink<'_>) {
        self.pipe = None;
        self.emit_complete_lines(sink);
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            sink.line(self.stream, line);
        }
    }
}

/// Where to cut an over-long line: at `chunk.len()`, or a little before it so that a UTF-8
/// character is not split in two.
fn split_point(chunk: &[u8]) -> usize {
    match std::str::from_utf8(chunk) {
        Err(e) if e.error_len().is_none() && e.valid_up_to() + 4 > chunk.len() => {
            // An incomplete character at the end; cut before it unless that leaves nothing.
            e.valid_up_to().max(1)
        }
        _ => chunk.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_not_cut_inside_a_character() {
        let mut chunk = vec![b'a'; 10];
        chunk.extend_from_slice(&"é".as_bytes()[..1]);
        assert_eq!(split_point(&chunk), 10);
        assert_eq!(split_point(b"abc"), 3);
        // Invalid bytes in the middle do not move the cut.
        assert_eq!(split_point(b"a\xffb"), 3);
    }
}
