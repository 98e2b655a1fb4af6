//! Keeping step processes away from the data directory (`$ROTA_HOME`).
//!
//! A step runs as the same user as Rota, so file permissions alone cannot keep it from the
//! store (`rota.db` and its WAL/SHM), the secret key, the admin token or other runs' files.
//! Three things do:
//!
//! - **Landlock** (Linux 5.13+): each step process is confined, just before `exec`, to a
//!   ruleset that allows everything on the file system *except* `$ROTA_HOME`, with one hole:
//!   the step's own run directory (where `$ROTA_OUTPUT` lives). Landlock only knows allow
//!   rules, so the ruleset grants, at each level on the way down from `/` to `$ROTA_HOME`,
//!   every sibling of the next path component, and grants the run directory explicitly. The
//!   directories on that way down are themselves not granted: a step cannot list them or
//!   create entries directly inside them (it can in every sibling). From ABI 6 on, a step
//!   also cannot signal a process outside its domain nor reach an abstract UNIX socket
//!   created outside it. (Landlock's ptrace scoping did not stop a step reading its
//!   parent's `/proc/PID/environ` on the 6.18 kernel Rota is tested on: see below.)
//! - **The environment**: variables named `ROTA_*` that Rota's own process inherited
//!   (`ROTA_SECRET_KEY`, `ROTA_TOKEN`, `ROTA_SERVER`…) are not passed on, but `ROTA_HOME`
//!   (a path); a step gets only the other `ROTA_*` variables Rota sets for it.
//! - **A non-dumpable runner**: [`init`] marks Rota's own process non-dumpable, so that
//!   another process of the same (non-root) user cannot read its `/proc/PID/environ` or
//!   memory; a step of a `rota` running as root still can (docs/security.md).
//!
//! [`init`] also sets the process umask to 077 (everything Rota writes under `$ROTA_HOME` is
//! private whatever the user's umask) and remembers the original, which step processes get
//! back before `exec`.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, path_beneath_rules,
};

/// What [`init`] found and set up, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct Protection {
    /// The data directory, canonical.
    pub home: PathBuf,
    /// What steps must not reach, canonical: `home`, and the cgroup hierarchy when steps run
    /// in cgroups (a step that could write there could leave its cgroup).
    pub protected: Vec<PathBuf>,
    /// The Landlock ABI version of the kernel; `None` when Landlock is unavailable.
    pub landlock_abi: Option<i32>,
}

static PROTECTION: OnceLock<Protection> = OnceLock::new();

/// The umask Rota's process had before [`init`]; `u32::MAX` until then.
static USER_UMASK: AtomicU32 = AtomicU32::new(u32::MAX);

/// Sets up the protection of `home` for this process: umask 077 (the original is kept for
/// step processes), `home` itself created mode 0700 (an existing one is made 0700),
/// non-dumpable, Landlock and cgroup detection. Later calls return the first result;
/// [`announce`] says what is missing.
pub fn init(home: &Path) -> io::Result<&'static Protection> {
    if let Some(done) = PROTECTION.get() {
        return Ok(done);
    }
    private_umask();
    make_private_dir(home)?;
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        tracing::warn!(err = %io::Error::last_os_error(), "cannot make rota non-dumpable");
    }
    let home = home.canonicalize()?;
    let landlock_abi = landlock_version();
    let mut protected = vec![home.clone()];
    if crate::cgroup::init().is_some()
        && let Some(root) = crate::cgroup::hierarchy_root()
    {
        protected.push(root);
    }
    Ok(PROTECTION.get_or_init(|| Protection {
        home,
        protected,
        landlock_abi,
    }))
}

/// Says once, on stderr and in the log, which protection of the data directory and of the
/// host is missing on this machine and what then does not hold. For the commands that run
/// steps (`rota serve`, `rota run`); call it after [`init`].
pub fn announce() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(protection) = protection() else {
            return;
        };
        let mut missing = Vec::new();
        if protection.landlock_abi.is_none() {
            missing.push(
                "Landlock is not available on this kernel: step processes can read and write \
                 $ROTA_HOME (the store, the secret key, the admin token, other runs' files)",
            );
        }
        if crate::cgroup::hierarchy_root().is_none() {
            missing.push(
                "no writable cgroup hierarchy (v2, or v1 with the freezer controller): processes \
                 of a step that leave its process group (setsid, setpgid, daemons) survive its \
                 timeout and cancel",
            );
        }
        for text in missing {
            tracing::warn!("{text}");
            eprintln!("rota: WARNING: {text}; see docs/security.md");
        }
    });
}

/// The protection set up by [`init`], if it was called.
pub fn protection() -> Option<&'static Protection> {
    PROTECTION.get()
}

/// Sets the umask to 077 and remembers the original (once).
pub fn private_umask() {
    // SAFETY: umask cannot fail.
    let old = unsafe { libc::umask(0o077) };
    let _ = USER_UMASK.compare_exchange(u32::MAX, old, Ordering::SeqCst, Ordering::SeqCst);
}

/// The umask the user started Rota with, when [`private_umask`] changed it.
pub fn user_umask() -> Option<libc::mode_t> {
    match USER_UMASK.load(Ordering::SeqCst) {
        u32::MAX => None,
        mask => libc::mode_t::try_from(mask).ok(),
    }
}

/// Creates `dir` (and its parents) and makes `dir` itself mode 0700.
pub fn make_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The kernel's Landlock ABI version, or `None` without Landlock (or when it is disabled).
pub fn landlock_version() -> Option<i32> {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attribute and size 0 only queries.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    (version >= 1).then(|| i32::try_from(version).unwrap_or(i32::MAX))
}

/// Inherited environment variables a step must not see: every `ROTA_*` variable of Rota's
/// own process (the secret key, API tokens, the server's address…) but `ROTA_HOME`, whose
/// value is only a path (and which Landlock keeps the step out of).
pub fn scrubbed_env() -> Vec<OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            let name = name.as_encoded_bytes();
            name.starts_with(b"ROTA_") && name != b"ROTA_HOME"
        })
        .collect()
}

/// Rota's variables whose values are credentials.
const SENSITIVE_VARIABLES: [&str; 2] = ["ROTA_SECRET_KEY", "ROTA_TOKEN"];

/// Takes the values of [`SENSITIVE_VARIABLES`] out of the environment block the kernel
/// shows as `/proc/PID/environ`, keeping them readable through `std::env`.
///
/// That block is the memory `exec` filled, and `/proc` reads it, not the C library's view of
/// the environment. A step is kept from it by Landlock and by Rota being non-dumpable, but
/// not everywhere: a step of a root `rota`, or of a kernel whose Landlock lets a child read
/// its parent's `/proc`, still could. So each value is copied out (`setenv` allocates the
/// copy) and its bytes in the original block are overwritten with zeros.
///
/// Call it first thing in `main`, before any thread starts: it changes the environment.
pub fn hide_sensitive_environment() {
    for name in SENSITIVE_VARIABLES {
        let Some(value) = std::env::var_os(name) else {
            continue;
        };
        let original = original_value(name);
        // SAFETY: called while the process has a single thread (see above).
        unsafe { std::env::set_var(name, &value) };
        if let Some((start, len)) = original {
            // SAFETY: `start..start + len` is the value part of an entry of the environment
            // block `exec` wrote, which the C library no longer points to after `setenv`.
            unsafe { std::ptr::write_bytes(start, 0, len) };
        }
    }
}

/// Where the value of `name` lies in the environment as `exec` set it up, if it is there.
fn original_value(name: &str) -> Option<(*mut u8, usize)> {
    let prefix = format!("{name}=");
    // SAFETY: `environ` is a null-terminated array of C strings; nothing changes it while
    // this single-threaded caller reads it.
    unsafe {
        let mut entry = libc::environ as *const *mut libc::c_char;
        while !entry.is_null() && !(*entry).is_null() {
            let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
            if let Some(value) = text.strip_prefix(prefix.as_bytes()) {
                let start = (*entry as *mut u8).add(prefix.len());
                return Some((start, value.len()));
            }
            entry = entry.add(1);
        }
    }
    None
}

/// How many run directories' rulesets [`Confinement::for_step`] keeps.
const CACHED_RULESETS: usize = 32;

/// The rulesets of recent run directories, oldest first.
static RULESETS: Mutex<Vec<(Option<PathBuf>, Arc<Confinement>)>> = Mutex::new(Vec::new());

/// A ruleset ready to be applied in a child between `fork` and `exec`.
#[derive(Debug)]
pub struct Confinement {
    ruleset: OwnedFd,
}

/// The Landlock ruleset could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the Landlock ruleset that keeps steps out of {home}: {reason}")]
pub struct ConfineError {
    home: PathBuf,
    reason: String,
}

impl Confinement {
    /// The ruleset for a step whose own run directory is `run_dir`, or `None` when [`init`]
    /// was not called or Landlock is unavailable.
    ///
    /// Building one walks the directories down to `$ROTA_HOME` and adds a rule per entry
    /// (about 900 system calls), so the rulesets of the last [`CACHED_RULESETS`] run
    /// directories are kept and shared by their steps: a ruleset is only read when a child
    /// applies it.
    pub fn for_step(run_dir: Option<&Path>) -> Result<Option<Arc<Confinement>>, ConfineError> {
        let Some(protection) = protection() else {
            return Ok(None);
        };
        if protection.landlock_abi.is_none() {
            return Ok(None);
        }
        let key = run_dir.map(Path::to_path_buf);
        let mut cache = RULESETS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, ruleset)) = cache.iter().find(|(dir, _)| *dir == key) {
            return Ok(Some(Arc::clone(ruleset)));
        }
        let ruleset = build(&protection.protected, run_dir)
            .map(Arc::new)
            .map_err(|reason| ConfineError {
                home: protection.home.clone(),
                reason,
            })?;
        if cache.len() >= CACHED_RULESETS {
            cache.remove(0);
        }
        cache.push((key, Arc::clone(&ruleset)));
        Ok(Some(ruleset))
    }

    /// The ruleset's descriptor for [`restrict_in_child`]; valid while `self` lives.
    pub fn ruleset_fd(&self) -> RawFd {
        self.ruleset.as_raw_fd()
    }
}

/// Confines the calling process with the Landlock ruleset open as `ruleset_fd`. Only
/// async-signal-safe calls: meant for `pre_exec`.
pub fn restrict_in_child(ruleset_fd: RawFd) -> io::Result<()> {
    // SAFETY: prctl and the landlock syscall take integers only.
    unsafe {
        // Required by Landlock for a process without CAP_SYS_ADMIN; it also keeps set-uid
        // programs from gaining privileges inside the step.
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, ruleset_fd, 0u32) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The paths a step may reach: everything except the `protected` paths (canonical), with
/// `run_dir` granted back when it lies strictly inside one of them. Landlock rules only
/// allow, so this walks down from `/` and grants every entry that is neither protected nor on
/// the way to a protected path.
pub fn granted_paths(protected: &[PathBuf], run_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut granted = Vec::new();
    grant_below(Path::new("/"), protected, &mut granted);
    if let Some(run_dir) = run_dir.and_then(|d| d.canonicalize().ok())
        && protected
            .iter()
            .any(|p| run_dir.starts_with(p) && &run_dir != p)
    {
        granted.push(run_dir);
    }
    granted
}

fn grant_below(dir: &Path, protected: &[PathBuf], granted: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if protected.iter().any(|p| p == &path) {
            continue;
        }
        if protected.iter().any(|p| p.starts_with(&path)) {
            grant_below(&path, protected, granted);
            continue;
        }
        // A symlink is granted as its target; one that leads into a protected path, or to
        // one of its ancestors, would open it all.
        let Ok(target) = path.canonicalize() else {
            continue;
        };
        if protected
            .iter()
            .any(|p| target.starts_with(p) || p.starts_with(&target))
        {
            continue;
        }
        granted.push(target);
    }
}

fn build(protected: &[PathBuf], run_dir: Option<&Path>) -> Result<Confinement, String> {
    // The crate adapts these to what the running kernel supports (best effort).
    let abi = ABI::V6;
    let created = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                granted_paths(protected, run_dir),
                AccessFs::from_all(abi),
            ))
        })
        .map_err(|e| e.to_string())?;
    let ruleset: Option<OwnedFd> = created.into();
    ruleset
        .map(|ruleset| Confinement { ruleset })
        .ok_or_else(|| "the kernel does not enforce Landlock".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grant_leaves_out_the_protected_path_and_links_to_it_but_gives_back_the_run_dir() {
        let root = tempfile::tempdir().expect("temp dir");
        let root = root.path().canonicalize().expect("canonical");
        let home = root.join("home");
        let run_dir = home.join("runs").join("r1");
        std::fs::create_dir_all(&run_dir).expect("run dir");
        std::fs::create_dir_all(root.join("sibling")).expect("sibling");
        std::os::unix::fs::symlink(&home, root.join("link-to-home")).expect("symlink");
        std::os::unix::fs::symlink(&root, root.join("link-to-ancestor")).expect("symlink");
        let granted = granted_paths(std::slice::from_ref(&home), Some(&run_dir));
        assert!(granted.contains(&root.join("sibling")), "{granted:?}");
        assert!(granted.contains(&run_dir), "{granted:?}");
        for path in &granted {
            assert!(
                !(path.starts_with(&home) && path != &run_dir),
                "{path:?} lies in the protected directory"
            );
            assert!(
                !home.starts_with(path),
                "{path:?} contains the protected directory"
            );
        }
    }
}
