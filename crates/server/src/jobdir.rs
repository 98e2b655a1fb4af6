//! The `--jobs DIR` directory: which job files were added, changed or removed since the last
//! scan. Scans are cheap (one `stat` per file; a file is read only when its size or
//! modification time changed, and it counts as changed only when its text did).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rota_core::model::Job;

/// What a scan found about one file.
#[derive(Debug)]
pub enum Change {
    /// A new or changed file that loads: its jobs and exact text.
    Loaded {
        /// The file.
        path: PathBuf,
        /// Its text.
        source: String,
        /// Its jobs.
        jobs: Vec<Job>,
    },
    /// A new or changed file that does not load.
    Broken {
        /// The file.
        path: PathBuf,
        /// Every problem, one per line (file:line:col: message).
        message: String,
    },
    /// The file is gone.
    Removed {
        /// The file.
        path: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    text: String,
}

/// A watched job directory.
#[derive(Debug)]
pub struct JobDir {
    dir: PathBuf,
    seen: BTreeMap<PathBuf, Seen>,
}

impl JobDir {
    /// Watches `dir` (nothing is read until [`JobDir::scan`]).
    pub fn new(dir: &Path) -> JobDir {
        JobDir {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()),
            seen: BTreeMap::new(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Compares the directory with the previous scan.
    pub fn scan(&mut self) -> std::io::Result<Vec<Change>> {
        let mut changes = Vec::new();
        let mut present = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            if !is_job_file(&path) {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            present.push(path.clone());
            let (len, modified) = (meta.len(), meta.modified().ok());
            if let Some(seen) = self.seen.get(&path)
                && seen.len == len
                && seen.modified == modified
            {
                continue;
            }
            let text = match read_bounded(&path) {
                Ok(text) => text,
                Err(problem) => {
                    // Remembered by size and time like a loaded file, so the same unreadable
                    // file is reported once, not on every scan.
                    self.seen.insert(
                        path.clone(),
                        Seen {
                            len,
                            modified,
                            text: String::new(),
                        },
                    );
                    changes.push(Change::Broken {
                        message: format!("{}: {problem}", path.display()),
                        path,
                    });
                    continue;
                }
            };
            if let Some(seen) = self.seen.get_mut(&path)
                && seen.text == text
            {
                seen.len = len;
                seen.modified = modified;
                continue;
            }
            self.seen.insert(
                path.clone(),
                Seen {
                    len,
                    modified,
                    text: text.clone(),
                },
            );
            match load(&path, &text) {
                Ok(jobs) => changes.push(Change::Loaded {
                    path,
                    source: text,
                    jobs,
                }),
                Err(message) => changes.push(Change::Broken { path, message }),
            }
        }
        let present: BTreeSet<PathBuf> = present.into_iter().collect();
        let gone: Vec<PathBuf> = self
            .seen
            .keys()
            .filter(|p| !present.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            self.seen.remove(&path);
            changes.push(Change::Removed { path });
        }
        Ok(changes)
    }
}

/// A job file's text, refused unread when it is larger than a job file may be (a huge file in
/// the directory must not be pulled into memory on every change).
fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let limit = rota_core::limits::MAX_FILE_BYTES;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > limit {
        return Err(format!(
            "job file too large: more than {limit} bytes (the limit of a job file)"
        ));
    }
    String::from_utf8(bytes).map_err(|e| format!("cannot read: not UTF-8 text ({e})"))
}

/// Parses and validates one file. The parser is meant never to panic (it is fuzzed); should
/// it still, the panic is caught here and becomes this file's error, so one bad file never
/// stops the scheduler or keeps `rota serve` from starting. The parser holds no state
/// across calls, so nothing is left half-updated by the unwind.
fn load(path: &Path, text: &str) -> Result<Vec<Job>, String> {
    let origin = path.display().to_string();
    let format = rota_core::parse::Format::from_path(path);
    let parsed = std::panic::catch_unwind(|| rota_core::parse::parse_str(text, &origin, format));
    match parsed {
        Ok(Ok(jobs)) => Ok(jobs),
        Ok(Err(diagnostics)) => Err(diagnostics.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(format!(
                "{origin}: internal error while validating this file (a bug in Rota; please report it): {what}"
            ))
        }
    }
}

/// Job files are YAML, TOML or JSON; editors' backup and swap files are ignored.
fn is_job_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "toml" | "json")
    )
}
