//! The `--jobs DIR` directory: which job files were added, changed or removed since the last
//! scan. Scans are cheap (one `stat` per file; a file is read only when its size or
//! modification time changed, and it counts as changed only when its text did).

use std::collections::BTreeMap;
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
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
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
            let format = rota_core::parse::Format::from_path(&path);
            match rota_core::parse::parse_str(&text, &path.display().to_string(), format) {
                Ok(jobs) => changes.push(Change::Loaded {
                    path,
                    source: text,
                    jobs,
                }),
                Err(diagnostics) => changes.push(Change::Broken {
                    path,
                    message: diagnostics.to_string(),
                }),
            }
        }
        let gone: Vec<PathBuf> = self
            .seen
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            self.seen.remove(&path);
            changes.push(Change::Removed { path });
        }
        Ok(changes)
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
