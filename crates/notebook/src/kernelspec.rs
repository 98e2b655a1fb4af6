//! Kernelspec discovery: find `kernels/<name>/kernel.json` the way Jupyter does.
//!
//! The search order follows `jupyter --paths`: every entry of `JUPYTER_PATH` (split on `:`),
//! the user data dir, the active virtualenv or conda prefix, then the system dirs. When the
//! kernel is still not found, the data dirs of `jupyter --paths --json` and the prefix of the
//! `python3` on `PATH` are searched, so kernels installed with `--sys-prefix` into a
//! pyenv/venv Python are found without `jupyter` being configured.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jupyter_protocol::JupyterKernelspec;

use crate::error::{NotebookError, Result};

/// How the kernel wants to be interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptMode {
    /// Send SIGINT to the kernel's process group.
    Signal,
    /// Send an `interrupt_request` on the control channel.
    Message,
}

/// A resolved kernelspec: how to launch one kind of kernel.
#[derive(Debug, Clone)]
pub struct KernelSpec {
    /// The kernel's name (its directory name), e.g. `python3`.
    pub name: String,
    /// The directory holding `kernel.json`.
    pub dir: PathBuf,
    /// The launch command; `{connection_file}` is replaced at launch.
    pub argv: Vec<String>,
    /// Human-readable name.
    pub display_name: String,
    /// The kernel's language, e.g. `python`.
    pub language: String,
    /// Extra environment variables for the kernel process.
    pub env: HashMap<String, String>,
    /// How to interrupt it.
    pub interrupt_mode: InterruptMode,
}

/// The Jupyter data directories searched without running any program.
pub fn data_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(jp) = std::env::var_os("JUPYTER_PATH") {
        dirs.extend(std::env::split_paths(&jp).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(xdg).join("jupyter"));
    } else if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".local/share/jupyter"));
    }
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(prefix) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            dirs.push(PathBuf::from(prefix).join("share/jupyter"));
        }
    }
    dirs.push(PathBuf::from("/usr/local/share/jupyter"));
    dirs.push(PathBuf::from("/usr/share/jupyter"));
    dedup(dirs)
}

fn dedup(dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for d in dirs {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Data dirs reported by the Python installation on `PATH` (slower: runs programs).
async fn discovered_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(out) = tokio::process::Command::new("jupyter")
        .args(["--paths", "--json"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        && out.status.success()
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        && let Some(data) = v.get("data").and_then(|d| d.as_array())
    {
        dirs.extend(data.iter().filter_map(|d| d.as_str()).map(PathBuf::from));
    }
    for python in ["python3", "python"] {
        if let Ok(out) = tokio::process::Command::new(python)
            .args(["-c", "import sys; print(sys.prefix)"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .await
            && out.status.success()
        {
            let prefix = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !prefix.is_empty() {
                dirs.push(PathBuf::from(prefix).join("share/jupyter"));
            }
        }
    }
    dirs
}

/// Read one `kernel.json`.
pub fn read_kernelspec(name: &str, dir: &Path) -> Result<KernelSpec> {
    let file = dir.join("kernel.json");
    let text = std::fs::read_to_string(&file).map_err(|e| NotebookError::io(&file, e))?;
    let spec: JupyterKernelspec =
        serde_json::from_str(&text).map_err(|e| NotebookError::KernelStart {
            kernel: name.to_string(),
            reason: format!("{}: {e}", file.display()),
        })?;
    let interrupt_mode = match spec.interrupt_mode.as_deref() {
        Some("message") => InterruptMode::Message,
        _ => InterruptMode::Signal,
    };
    let env = spec.env.unwrap_or_default();
    Ok(KernelSpec {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        argv: spec.argv,
        display_name: spec.display_name,
        language: spec.language,
        env,
        interrupt_mode,
    })
}

fn find_in(name: &str, dirs: &[PathBuf]) -> Option<Result<KernelSpec>> {
    dirs.iter()
        .map(|d| d.join("kernels").join(name))
        .find(|d| d.join("kernel.json").is_file())
        .map(|d| read_kernelspec(name, &d))
}

/// Find the kernelspec called `name`.
pub async fn find_kernelspec(name: &str) -> Result<KernelSpec> {
    let mut dirs = data_dirs();
    if let Some(found) = find_in(name, &dirs) {
        return found;
    }
    dirs = dedup(dirs.into_iter().chain(discovered_dirs().await).collect());
    if let Some(found) = find_in(name, &dirs) {
        return found;
    }
    Err(NotebookError::KernelNotFound {
        name: name.to_string(),
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    })
}
