//! One cgroup per step attempt, so that a step's processes can all be found and killed.
//!
//! A process group is not enough: `setsid`, `setpgid` and double-forked daemons leave it. A
//! cgroup cannot be left by an unprivileged process that cannot write the hierarchy (and a
//! confined step cannot: see [`crate::sandbox`]), and every descendant is born in it.
//!
//! [`init`] detects, once, a writable hierarchy:
//! - **cgroup v2** (`/sys/fs/cgroup/cgroup.controllers` exists): attempts get a directory
//!   beside Rota's own cgroup's children (`<own cgroup>/rota-<pid>-<n>`); killing writes
//!   `1` to `cgroup.kill`, which the kernel applies to every member at once.
//! - **cgroup v1 with the freezer controller** (`/sys/fs/cgroup/freezer`): the attempt's
//!   directory is made under Rota's own freezer cgroup; killing freezes it (no member can
//!   fork while frozen), sends SIGKILL to every member, and thaws it so the kills land.
//!
//! Without either (no cgroup file system, or not writable by Rota's user), [`StepCgroup::create`]
//! returns `None`, the supervisor falls back to killing the step's process group, and
//! [`init`] says so once.
//!
//! A child joins its cgroup between `fork` and `exec` ([`StepCgroup::join_in_child`]), so
//! nothing it runs is ever outside it.

use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// Which kind of hierarchy the attempts' cgroups live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The unified hierarchy, with `cgroup.kill`.
    V2,
    /// A v1 hierarchy with the freezer controller.
    V1Freezer,
}

/// The hierarchy found by [`init`].
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// v1 or v2.
    pub kind: Kind,
    /// The mount point of the hierarchy (`/sys/fs/cgroup` or `/sys/fs/cgroup/freezer`).
    pub root: PathBuf,
    /// Rota's own cgroup in it: attempts' cgroups are made here.
    pub base: PathBuf,
}

static HIERARCHY: OnceLock<Option<Hierarchy>> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Finds a writable cgroup hierarchy (once per process; later calls return the first
/// answer). [`crate::sandbox::announce`] says when there is none.
pub fn init() -> Option<&'static Hierarchy> {
    HIERARCHY
        .get_or_init(|| {
            let found = detect();
            match &found {
                Some(h) => {
                    tracing::debug!(kind = ?h.kind, base = %h.base.display(), "steps run in cgroups");
                    remove_stale(&h.base);
                }
                None => tracing::debug!("no writable cgroup hierarchy"),
            }
            found
        })
        .as_ref()
}

/// The mount point of the hierarchy in use, once [`init`] found one.
pub fn hierarchy_root() -> Option<PathBuf> {
    HIERARCHY.get()?.as_ref().map(|h| h.root.clone())
}

fn detect() -> Option<Hierarchy> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let v2_root = Path::new("/sys/fs/cgroup");
    if v2_root.join("cgroup.controllers").exists() {
        let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
        let base = v2_root.join(path.trim_start_matches('/'));
        return probe(Kind::V2, v2_root, base);
    }
    let v1_root = Path::new("/sys/fs/cgroup/freezer");
    let base = v1_root.join(v1_path_of(&own, "freezer")?.trim_start_matches('/'));
    probe(Kind::V1Freezer, v1_root, base)
}

/// In `/proc/self/cgroup`'s text `own`, this process's cgroup in the v1 hierarchy of
/// `controller`.
pub(crate) fn v1_path_of<'a>(own: &'a str, controller: &str) -> Option<&'a str> {
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        controllers
            .split(',')
            .any(|c| c == controller)
            .then_some(path)
    })
}

/// Whether a cgroup can be made (and used) under `base`.
fn probe(kind: Kind, root: &Path, base: PathBuf) -> Option<Hierarchy> {
    let hierarchy = Hierarchy {
        kind,
        root: root.to_owned(),
        base,
    };
    let probe = hierarchy
        .base
        .join(format!("rota-{}-probe", std::process::id()));
    std::fs::create_dir(&probe).ok()?;
    let usable = match kind {
        Kind::V2 => probe.join("cgroup.kill").exists(),
        Kind::V1Freezer => probe.join("freezer.state").exists(),
    };
    let _ = std::fs::remove_dir(&probe);
    usable.then_some(hierarchy)
}

/// Removes attempts' cgroups left by Rota processes that are gone (they died before
/// cleaning up, and had no guardian); a cgroup with members is kept (the kernel refuses).
fn remove_stale(base: &Path) {
    for dir in left_by_dead_rotas(base) {
        kill_dir(&dir);
        let _ = std::fs::remove_dir(dir);
    }
}

/// The cgroups under `base` that Rota processes made (`rota-<pid>-…`) and that outlived them.
pub(crate) fn left_by_dead_rotas(base: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            name.to_str()
                .and_then(|n| n.strip_prefix("rota-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<i32>().ok())
                .is_some_and(|pid| {
                    signal::kill(Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH)
                })
        })
        .map(|entry| entry.path())
        .collect()
}

/// The cgroup of one step attempt.
#[derive(Debug)]
pub struct StepCgroup {
    dir: PathBuf,
    kind: Kind,
    /// `cgroup.procs`, opened before the fork so the child only writes to it.
    procs: OwnedFd,
}

impl StepCgroup {
    /// Makes a fresh cgroup for an attempt; `None` when [`init`] found no hierarchy (or was
    /// not called).
    pub fn create() -> Option<io::Result<StepCgroup>> {
        let hierarchy = HIERARCHY.get()?.as_ref()?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = hierarchy
            .base
            .join(format!("rota-{}-{n}", std::process::id()));
        Some((|| {
            std::fs::create_dir(&dir)?;
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .inspect_err(|_| {
                    let _ = std::fs::remove_dir(&dir);
                })?;
            Ok(StepCgroup {
                dir,
                kind: hierarchy.kind,
                procs: procs.into(),
            })
        })())
    }

    /// Which kind of hierarchy it is in.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The open `cgroup.procs` for [`join_in_child`]; valid while `self` lives.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// The processes in the cgroup now.
    pub fn pids(&self) -> Vec<i32> {
        pids_of(&self.dir)
    }

    /// Whether no process is left in the cgroup.
    pub fn is_empty(&self) -> bool {
        self.pids().is_empty()
    }

    /// Sends `sig` to every member; returns the pids it was sent to.
    pub fn signal_all(&self, sig: Signal) -> Vec<i32> {
        let pids = self.pids();
        for &pid in &pids {
            let _ = signal::kill(Pid::from_raw(pid), sig);
        }
        pids
    }

    /// Kills every member with SIGKILL, with no chance for any to fork away first; returns
    /// the pids that were members.
    pub fn kill_all(&self) -> Vec<i32> {
        kill_dir_as(&self.dir, self.kind)
    }

    /// Removes the (empty) cgroup; false if it still has members.
    pub fn remove(&self) -> bool {
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(_) => false,
        }
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is open as `procs_fd`.
/// Async-signal-safe: meant for `pre_exec`.
pub fn join_in_child(procs_fd: RawFd) -> io::Result<()> {
    // "0" means the writing process.
    // SAFETY: write(2) on an open fd from a static buffer.
    let written = unsafe { libc::write(procs_fd, b"0".as_ptr().cast(), 1) };
    if written == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn pids_of(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills every process in the cgroup at `dir`, whichever kind it is (for the guardian,
/// which only has the path).
pub fn kill_dir(dir: &Path) -> Vec<i32> {
    let kind = if dir.join("cgroup.kill").exists() {
        Kind::V2
    } else {
        Kind::V1Freezer
    };
    kill_dir_as(dir, kind)
}

fn kill_dir_as(dir: &Path, kind: Kind) -> Vec<i32> {
    let pids = pids_of(dir);
    match kind {
        Kind::V2 => {
            if write_file(&dir.join("cgroup.kill"), "1").is_err() {
                for &pid in &pids {
                    let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            pids
        }
        Kind::V1Freezer => {
            let state = dir.join("freezer.state");
            let frozen = write_file(&state, "FROZEN").is_ok() && wait_frozen(&state);
            // Frozen members cannot fork, so this list is complete; unfrozen (the freeze
            // failed) it is the best there is.
            let pids = pids_of(dir);
            for &pid in &pids {
                let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if frozen {
                let _ = write_file(&state, "THAWED");
            }
            pids
        }
    }
}

/// Waits (briefly) until a v1 freezer cgroup reports FROZEN rather than FREEZING.
fn wait_frozen(state: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match std::fs::read_to_string(state) {
            Ok(s) if s.trim() == "FROZEN" => return true,
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => return false,
        }
    }
}

fn write_file(path: &Path, text: &str) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(text.as_bytes())
}
