//! A step's `resources:` (cpus, memory, pids) enforced by the kernel's cgroups.
//!
//! - **cgroup v2**: the limits are written into the attempt's own cgroup
//!   ([`crate::cgroup::StepCgroup`]): `cpu.max`, `memory.max` (and `memory.swap.max` 0, so a
//!   step cannot swap its way past the limit), `pids.max`. A controller that Rota's cgroup does
//!   not delegate to its children has no such file there, and its limit is not enforced.
//! - **cgroup v1** (controllers mounted one per directory, as on these machines): the
//!   attempt gets a cgroup of its own in each hierarchy it needs (`memory`, `cpu`, `pids`),
//!   beside Rota's own cgroup there, with `memory.limit_in_bytes` (and `memsw` where swap is
//!   accounted), `cpu.cfs_quota_us` over a 100 ms period, `pids.max`; the child joins each
//!   between `fork` and `exec`, like its freezer cgroup.
//!
//! A limit that cannot be set (no such controller, not writable by Rota's user) is not
//! enforced, and the step's log says so at the start of the attempt: a limit is never
//! silently dropped. A memory limit that the kernel enforced by killing a process is read
//! back after the attempt (`oom_kill` in `memory.events` or `memory.oom_control`), so the
//! step's reason can say it was killed for memory.

use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rota_core::resources::Resources;

use crate::cgroup::{Kind, StepCgroup};

/// The CFS period the CPU quota is a share of (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

static NEXT: AtomicU64 = AtomicU64::new(1);

/// The cgroups enforcing one attempt's limits, and the limits left unenforced.
#[derive(Debug, Default)]
pub struct StepLimits {
    /// Cgroups made for the limits (v1), removed with [`StepLimits::remove`].
    made: Vec<PathBuf>,
    /// Their `cgroup.procs`, opened before the fork so the child only writes to them.
    procs: Vec<OwnedFd>,
    /// Where the kernel counts out-of-memory kills of the attempt, and how it words them.
    memory_events: Option<PathBuf>,
    /// The limits that could not be set, with why (`memory (no writable memory cgroup)`).
    pub unenforced: Vec<String>,
}

impl StepLimits {
    /// Sets `resources` up for one attempt whose own cgroup is `cgroup` (if it has one).
    pub fn apply(resources: &Resources, cgroup: Option<&StepCgroup>) -> StepLimits {
        let mut limits = StepLimits::default();
        if resources.is_empty() {
            return limits;
        }
        let v2 = cgroup.filter(|c| c.kind() == Kind::V2);
        for (controller, files) in settings(resources) {
            let result = match v2 {
                Some(cgroup) => {
                    write_settings(cgroup.dir(), &files).map(|()| cgroup.dir().to_owned())
                }
                None => limits.v1_group(controller, &files),
            };
            match result {
                Ok(dir) if controller == "memory" => {
                    limits.memory_events = Some(match v2 {
                        Some(_) => dir.join("memory.events"),
                        None => dir.join("memory.oom_control"),
                    });
                }
                Ok(_) => {}
                Err(why) => limits.unenforced.push(format!("{controller} ({why})")),
            }
        }
        limits
    }

    /// The `cgroup.procs` descriptors the child writes itself into before `exec`.
    pub fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Whether the kernel killed a process of the attempt for going over its memory limit.
    pub fn memory_exceeded(&self) -> bool {
        let Some(path) = &self.memory_events else {
            return false;
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().any(|line| {
            line.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    }

    /// Removes the cgroups made for the limits (their members are gone by then: they are
    /// also members of the attempt's own cgroup, which is emptied first).
    pub fn remove(&mut self) {
        self.procs.clear();
        for dir in self.made.drain(..) {
            let _ = std::fs::remove_dir(&dir);
        }
    }

    /// Makes the attempt's cgroup in the v1 hierarchy of `controller` and sets `files`.
    fn v1_group(&mut self, controller: &str, files: &[(&str, String)]) -> Result<PathBuf, String> {
        let base = v1_base(controller)
            .ok_or_else(|| format!("no writable {controller} cgroup on this host"))?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("rota-{}-limit-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot make a {controller} cgroup: {e}"))?;
        let opened = write_settings(&dir, files).and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .map_err(|e| format!("cannot join the {controller} cgroup: {e}"))
        });
        match opened {
            Ok(procs) => {
                self.procs.push(procs.into());
                self.made.push(dir.clone());
                Ok(dir)
            }
            Err(why) => {
                let _ = std::fs::remove_dir(&dir);
                Err(why)
            }
        }
    }
}

impl Drop for StepLimits {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Per controller, the files that set `resources` on v2 and on v1. A file marked optional
/// (`?` prefix) is written when it exists (swap accounting is often off).
fn settings(resources: &Resources) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let v2 = crate::cgroup::init().is_some_and(|h| h.kind == Kind::V2);
    let mut out = Vec::new();
    if let Some(cpus) = resources.cpus {
        let quota = ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1_000);
        out.push((
            "cpu",
            if v2 {
                vec![("cpu.max", format!("{quota} {CPU_PERIOD_US}"))]
            } else {
                vec![
                    ("cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
                    ("cpu.cfs_quota_us", quota.to_string()),
                ]
            },
        ));
    }
    if let Some(memory) = resources.memory {
        out.push((
            "memory",
            if v2 {
                vec![
                    ("memory.max", memory.to_string()),
                    ("?memory.swap.max", "0".into()),
                ]
            } else {
                vec![
                    ("memory.limit_in_bytes", memory.to_string()),
                    ("?memory.memsw.limit_in_bytes", memory.to_string()),
                ]
            },
        ));
    }
    if let Some(pids) = resources.pids {
        out.push(("pids", vec![("pids.max", pids.to_string())]));
    }
    out
}

fn write_settings(dir: &Path, files: &[(&str, String)]) -> Result<(), String> {
    for (name, value) in files {
        let (name, optional) = match name.strip_prefix('?') {
            Some(name) => (name, true),
            None => (*name, false),
        };
        let path = dir.join(name);
        if optional && !path.exists() {
            continue;
        }
        if !path.exists() {
            return Err(format!("the controller is not delegated here (no {name})"));
        }
        write_file(&path, value).map_err(|e| format!("cannot set {name}: {e}"))?;
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(text.as_bytes())
}

/// Rota's own cgroup in the v1 hierarchy of `controller`, when it is writable (found once
/// per controller; attempts' limit cgroups left by Rota processes that are gone are removed
/// then).
fn v1_base(controller: &str) -> Option<&'static Path> {
    static MEMORY: OnceLock<Option<PathBuf>> = OnceLock::new();
    static CPU: OnceLock<Option<PathBuf>> = OnceLock::new();
    static PIDS: OnceLock<Option<PathBuf>> = OnceLock::new();
    let cell = match controller {
        "memory" => &MEMORY,
        "cpu" => &CPU,
        "pids" => &PIDS,
        _ => return None,
    };
    cell.get_or_init(|| {
        let base = detect_v1(controller)?;
        remove_stale(&base);
        Some(base)
    })
    .as_deref()
}

fn detect_v1(controller: &str) -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup").join(controller);
    if !root.join("cgroup.procs").exists() {
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = crate::cgroup::v1_path_of(&own, controller)?;
    let base = root.join(path.trim_start_matches('/'));
    let probe = base.join(format!("rota-{}-probe", std::process::id()));
    std::fs::create_dir(&probe).ok()?;
    let _ = std::fs::remove_dir(&probe);
    Some(base)
}

/// Removes the limit cgroups of Rota processes that are gone; one with members is kept
/// (the kernel refuses).
fn remove_stale(base: &Path) {
    for dir in crate::cgroup::left_by_dead_rotas(base) {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.contains("-limit-")) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
