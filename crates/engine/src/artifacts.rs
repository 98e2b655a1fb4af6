//! Run artifacts: every attempt of a step gets an empty directory, `$ROTA_ARTIFACTS`, and
//! when the attempt ends (whatever its status) the files left in it are stored in the
//! artifact store ([`rota_store::ArtifactBlobs`]) under
//! `<namespace>/<YYYY-MM-DD>/<run id>/<step>/<path>` and recorded with the run
//! ([`RunEvent::ArtifactsKept`]). A notebook step's executed notebook and report are kept
//! the same way (`executed.ipynb`, `report.html`).
//!
//! What is not kept is said in the step's log and never fails the step: a file over the
//! step's or the run's size cap, files past the step's count cap, a symbolic link leading
//! out of the directory (or to a directory), anything but a regular file, a name that is
//! not UTF-8 or that holds a secret value (listings would show it).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use jiff::Timestamp;
use rota_core::model::Step;
use rota_core::resources::format_bytes;
use rota_store::{ArtifactBlobs, NewArtifact, RunEvent, artifact_key};
use sha2::{Digest, Sha256};

use crate::run::Shared;
use crate::step::system_line;

/// How much one step and one run may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactLimits {
    /// Bytes per step attempt.
    pub step_bytes: u64,
    /// Bytes per run, all steps together.
    pub run_bytes: u64,
    /// Files per step attempt.
    pub step_files: usize,
}

impl Default for ArtifactLimits {
    fn default() -> ArtifactLimits {
        ArtifactLimits {
            step_bytes: 100 << 20,
            run_bytes: 1 << 30,
            step_files: 10_000,
        }
    }
}

impl ArtifactLimits {
    /// The defaults, each replaced by its variable when set: `ROTA_ARTIFACTS_STEP_MAX` and
    /// `ROTA_ARTIFACTS_RUN_MAX` (sizes as `resources.memory` writes them: `100m`, `1g`,
    /// bytes), `ROTA_ARTIFACTS_STEP_FILES` (a count). A value that does not parse is an
    /// error naming the variable.
    pub fn from_env() -> Result<ArtifactLimits, String> {
        let mut limits = ArtifactLimits::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let size = |name: &str, text: String| {
            rota_core::resources::parse_bytes(text.trim()).map_err(|e| format!("{name}: {e}"))
        };
        if let Some(text) = var("ROTA_ARTIFACTS_STEP_MAX") {
            limits.step_bytes = size("ROTA_ARTIFACTS_STEP_MAX", text)?;
        }
        if let Some(text) = var("ROTA_ARTIFACTS_RUN_MAX") {
            limits.run_bytes = size("ROTA_ARTIFACTS_RUN_MAX", text)?;
        }
        if let Some(text) = var("ROTA_ARTIFACTS_STEP_FILES") {
            limits.step_files = text
                .trim()
                .parse()
                .map_err(|_| format!("ROTA_ARTIFACTS_STEP_FILES: {text:?} is not a count"))?;
        }
        Ok(limits)
    }
}

/// Where a run's artifacts go and how much of them.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The artifact store.
    pub blobs: ArtifactBlobs,
    /// The caps.
    pub limits: ArtifactLimits,
}

/// The variable naming an attempt's artifacts directory.
pub const ARTIFACTS_VAR: &str = "ROTA_ARTIFACTS";

/// Most "not kept" lines one attempt logs; the rest are counted.
const MAX_REFUSAL_LINES: usize = 20;

/// The artifacts directory of an attempt, inside the run's directory (which steps may write).
pub(crate) fn attempt_dir(shared: &Shared, step: &Step, attempt_no: u32) -> PathBuf {
    shared
        .run_dir
        .join("artifacts")
        .join(format!("{}.{attempt_no}", step.id))
}

/// Makes the attempt's directory empty (a resumed run may find an earlier try's files).
pub(crate) fn prepare(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    std::fs::create_dir_all(dir)
}

/// A file found to keep: its name in the listing and where to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    path: String,
    source: PathBuf,
    size: u64,
}

/// What a walk of the directory found.
#[derive(Debug, Default)]
struct Walk {
    files: Vec<Found>,
    refused: Vec<String>,
}

/// Collects what the attempt left and the notebook files it wrote, then removes its
/// directory. Logs what was kept and what not.
pub(crate) async fn collect(shared: &Shared, step: &Step, attempt_no: u32) {
    let Some(artifacts) = &shared.config.artifacts else {
        return;
    };
    let dir = attempt_dir(shared, step, attempt_no);
    let notebook = [
        (
            "executed.ipynb",
            shared
                .run_dir
                .join(format!("{}.{attempt_no}.ipynb", step.id)),
        ),
        (
            "report.html",
            shared
                .run_dir
                .join(format!("{}.{attempt_no}.html", step.id)),
        ),
    ];
    let walked = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut walk = walk(&dir);
            for (name, source) in notebook {
                if let Ok(meta) = std::fs::metadata(&source)
                    && meta.is_file()
                    && !walk.files.iter().any(|f| f.path == name)
                {
                    walk.files.push(Found {
                        path: name.to_owned(),
                        source,
                        size: meta.len(),
                    });
                }
            }
            walk
        })
        .await
    };
    let Walk { files, mut refused } = match walked {
        Ok(walk) => walk,
        Err(error) => Walk {
            files: Vec::new(),
            refused: vec![format!("the artifacts could not be read: {error}")],
        },
    };
    let mut kept = Vec::new();
    let mut step_bytes = 0u64;
    for (index, file) in files.into_iter().enumerate() {
        if shared.redactor.redact(&file.path) != file.path {
            refused.push("a file whose name holds a secret value".to_owned());
            continue;
        }
        if let Some(why) = over_cap(shared, &artifacts.limits, index, step_bytes, file.size) {
            refused.push(format!("{} ({}): {why}", file.path, size_text(file.size)));
            continue;
        }
        match store(shared, &artifacts.blobs, step, &file).await {
            Ok(artifact) => {
                step_bytes += artifact.size;
                kept.push(artifact);
            }
            Err(why) => {
                shared
                    .artifact_bytes
                    .fetch_sub(file.size, Ordering::Relaxed);
                refused.push(format!("{}: {why}", file.path));
            }
        }
    }
    report(shared, step, attempt_no, &kept, &refused);
    if !kept.is_empty() {
        shared.recorder.send(RunEvent::ArtifactsKept {
            run_id: shared.run_id.clone(),
            step_id: step.id.clone(),
            attempt: attempt_no,
            at: Timestamp::now(),
            artifacts: kept,
        });
    }
    let _ = tokio::fs::remove_dir_all(&dir).await;
}

/// Why the `index`th file of an attempt, of `size` bytes, is over a cap (after
/// `step_bytes` kept by the attempt), or `None` when it fits: then the run's total counts
/// it.
fn over_cap(
    shared: &Shared,
    limits: &ArtifactLimits,
    index: usize,
    step_bytes: u64,
    size: u64,
) -> Option<String> {
    if index >= limits.step_files {
        return Some(format!(
            "over the step's cap of {} files",
            limits.step_files
        ));
    }
    if step_bytes.saturating_add(size) > limits.step_bytes {
        return Some(format!(
            "over the step's cap of {}",
            size_text(limits.step_bytes)
        ));
    }
    let run_total = shared.artifact_bytes.fetch_add(size, Ordering::Relaxed);
    if run_total.saturating_add(size) > limits.run_bytes {
        shared.artifact_bytes.fetch_sub(size, Ordering::Relaxed);
        return Some(format!(
            "over the run's cap of {}",
            size_text(limits.run_bytes)
        ));
    }
    None
}

/// Reads one file, stores its bytes and says what to record.
async fn store(
    shared: &Shared,
    blobs: &ArtifactBlobs,
    step: &Step,
    file: &Found,
) -> Result<NewArtifact, String> {
    let bytes = tokio::fs::read(&file.source)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    let size = bytes.len() as u64;
    if size != file.size {
        return Err("it changed while it was being kept".to_owned());
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let key = artifact_key(
        &shared.namespace,
        shared.started,
        &shared.run_id,
        &step.id,
        &file.path,
    );
    blobs.put(&key, bytes).await.map_err(|e| e.to_string())?;
    Ok(NewArtifact {
        path: file.path.clone(),
        size,
        sha256,
        stored_key: key,
    })
}

/// The step's log lines about its artifacts.
fn report(shared: &Shared, step: &Step, attempt_no: u32, kept: &[NewArtifact], refused: &[String]) {
    if !kept.is_empty() {
        let bytes: u64 = kept.iter().map(|a| a.size).sum();
        let files = if kept.len() == 1 { "file" } else { "files" };
        system_line(
            shared,
            step,
            attempt_no,
            format!(
                "artifacts: kept {} {files} ({})",
                kept.len(),
                size_text(bytes)
            ),
        );
    }
    for why in refused.iter().take(MAX_REFUSAL_LINES) {
        let line = format!("artifacts: not kept: {why}");
        system_line(
            shared,
            step,
            attempt_no,
            shared.redactor.redact(&line).into_owned(),
        );
    }
    if refused.len() > MAX_REFUSAL_LINES {
        system_line(
            shared,
            step,
            attempt_no,
            format!(
                "artifacts: {} more files not kept",
                refused.len() - MAX_REFUSAL_LINES
            ),
        );
    }
}

fn size_text(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} bytes")
    } else {
        format_bytes(bytes)
    }
}

/// The regular files under `dir`, by path, with what cannot be kept and why. Symbolic
/// links are kept only when they lead to a regular file inside `dir` (read where they
/// lead); links to directories are not followed, so the walk cannot loop.
fn walk(dir: &Path) -> Walk {
    let mut walk = Walk::default();
    let Ok(root) = dir.canonicalize() else {
        return walk;
    };
    let mut pending = vec![(root.clone(), String::new())];
    while let Some((at, prefix)) = pending.pop() {
        let mut entries = match std::fs::read_dir(&at) {
            Ok(entries) => entries.filter_map(Result::ok).collect::<Vec<_>>(),
            Err(error) => {
                walk.refused
                    .push(format!("{prefix}: cannot list it: {error}"));
                continue;
            }
        };
        // Reverse order onto the stack, so directories come out in name order.
        entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
        for entry in entries {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                walk.refused.push(format!(
                    "{prefix}{}: its name is not UTF-8",
                    name.to_string_lossy()
                ));
                continue;
            };
            let path = format!("{prefix}{name}");
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push((entry.path(), format!("{path}/")));
            } else if meta.is_file() {
                walk.files.push(Found {
                    path,
                    source: entry.path(),
                    size: meta.len(),
                });
            } else if meta.file_type().is_symlink() {
                match entry.path().canonicalize() {
                    Ok(target) if target.starts_with(&root) && target.is_file() => {
                        let size = target.metadata().map(|m| m.len()).unwrap_or(0);
                        walk.files.push(Found {
                            path,
                            source: target,
                            size,
                        });
                    }
                    Ok(target) if target.starts_with(&root) => walk
                        .refused
                        .push(format!("{path}: a link to a directory is not followed")),
                    _ => walk.refused.push(format!(
                        "{path}: a symbolic link leading out of $ROTA_ARTIFACTS"
                    )),
                }
            } else {
                walk.refused.push(format!("{path}: not a regular file"));
            }
        }
    }
    walk.files.sort_by(|a, b| a.path.cmp(&b.path));
    walk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_keeps_files_and_inner_links_and_refuses_links_leaving_the_dir()
    -> Result<(), Box<dyn std::error::Error>> {
        let outside = tempfile::tempdir()?;
        std::fs::write(outside.path().join("secret.txt"), "outside")?;
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("nested/deeper"))?;
        std::fs::write(dir.path().join("b.txt"), "bb")?;
        std::fs::write(dir.path().join("nested/deeper/a.txt"), "a")?;
        std::os::unix::fs::symlink(dir.path().join("b.txt"), dir.path().join("inner-link"))?;
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), dir.path().join("escape"))?;
        std::os::unix::fs::symlink(dir.path(), dir.path().join("nested/loop"))?;
        let walk = walk(dir.path());
        let files: Vec<(&str, u64)> = walk
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.size))
            .collect();
        assert_eq!(
            files,
            [("b.txt", 2), ("inner-link", 2), ("nested/deeper/a.txt", 1)]
        );
        assert_eq!(
            walk.refused,
            [
                "escape: a symbolic link leading out of $ROTA_ARTIFACTS",
                "nested/loop: a link to a directory is not followed",
            ]
        );
        Ok(())
    }
}
