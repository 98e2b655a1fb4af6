//! The `--jobs DIR` directory: which job files were added, changed or removed since the last
//! scan.
//!
//! The directory is watched with inotify, so a scan looks only at the files the kernel said
//! changed: its cost does not grow with the files that did not. A file is read only when its
//! size or modification time changed, and it counts as changed only when its text did.
//! A full scan (one `stat` per file, reading none that did not change) still runs at the first
//! scan, when the watch could not be set up or was lost (the directory was removed or moved,
//! or the kernel's event queue overflowed), and every [`FULL_SCAN_EVERY`] as a safety net:
//! inotify reports nothing for changes made on another machine to a network file system.
//! At 100,000 files it costs about a tenth of a second per minute.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use inotify::{Inotify, WatchMask};
use rota_core::model::Job;

/// How often a watched directory is still compared in full (stat only), for the changes
/// inotify does not see.
pub const FULL_SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Below this many files to read, one thread reads and parses them all.
const PARALLEL_FROM: usize = 64;

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
    /// A Markdown file or notebook that is not a runbook: its coming and going is no
    /// change of jobs.
    not_a_job: bool,
}

impl Seen {
    /// A file read as `text` (empty when it could not be read or is no job).
    fn new(len: u64, modified: Option<SystemTime>, text: String, not_a_job: bool) -> Seen {
        Seen {
            len,
            modified,
            text,
            not_a_job,
        }
    }
}

/// A file whose size or modification time changed: it is read (and parsed if its text did).
struct Candidate {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

/// What reading a candidate found.
enum Read {
    /// It could not be read (or is too large); the message says why.
    Unreadable(String),
    /// Its text is what was seen before.
    Same,
    /// New text and what it loads to.
    Changed(String, Result<Vec<Job>, String>),
    /// A Markdown file or notebook that is not a runbook (a `README.md`, the notebook a
    /// step runs): no job, no problem.
    NotAJob,
}

/// A watched job directory.
#[derive(Debug)]
pub struct JobDir {
    dir: PathBuf,
    /// What each file held at the last scan (hashed: paths compare slowly in a tree).
    seen: HashMap<PathBuf, Seen>,
    /// The inotify instance watching `dir`; `None` when inotify is unavailable.
    inotify: Option<Inotify>,
    /// Whether the watch on `dir` is in place (events since it was added are queued).
    watching: bool,
    /// When the directory was last compared in full.
    last_full: Option<Instant>,
    /// The jobs each file that loads defines and the jobs each of them calls, for the
    /// cycle check of files that change later.
    calls: HashMap<PathBuf, Vec<(String, Vec<String>)>>,
}

impl JobDir {
    /// Watches `dir` (nothing is read until [`JobDir::scan`]).
    pub fn new(dir: &Path) -> JobDir {
        let inotify = match Inotify::init() {
            Ok(inotify) => Some(inotify),
            Err(error) => {
                tracing::warn!(%error, "inotify is unavailable: the job directory is compared in full at each scan");
                None
            }
        };
        JobDir {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()),
            seen: HashMap::new(),
            inotify,
            watching: false,
            last_full: None,
            calls: HashMap::new(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Compares the directory with the previous scan: the files inotify reported since, or
    /// every file when a full comparison is due.
    pub fn scan(&mut self) -> std::io::Result<Vec<Change>> {
        let mut changes = self.scan_files()?;
        self.refuse_cycles(&mut changes);
        Ok(changes)
    }

    /// Turns each new or changed file that closes a cycle of job calls (`job:` steps) with
    /// the directory's other files into a broken one (its last good revision keeps
    /// running), and remembers the calls of the files that load.
    fn refuse_cycles(&mut self, changes: &mut [Change]) {
        for change in changes.iter() {
            if let Change::Removed { path } = change {
                self.calls.remove(path);
            }
        }
        let mut fresh: Vec<(usize, String, rota_core::parse::JobFile)> = Vec::new();
        for (index, change) in changes.iter().enumerate() {
            let Change::Loaded { path, source, jobs } = change else {
                continue;
            };
            let calls = if jobs
                .iter()
                .any(|j| !rota_core::calls::callees(j).is_empty())
            {
                let format = rota_core::parse::Format::from_path(path);
                rota_core::parse::parse_str_with_calls(source, &path.display().to_string(), format)
                    .map(|(_, calls)| calls)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let file = rota_core::parse::JobFile {
                jobs: jobs.clone(),
                source: String::new(),
                format: rota_core::parse::Format::from_path(path),
                calls,
            };
            fresh.push((index, path.display().to_string(), file));
        }
        if fresh.is_empty() {
            return;
        }
        let fresh_paths: BTreeSet<&str> = fresh.iter().map(|(_, p, _)| p.as_str()).collect();
        let known: std::collections::BTreeMap<String, Vec<String>> = self
            .calls
            .iter()
            .filter(|(path, _)| !fresh_paths.contains(path.display().to_string().as_str()))
            .flat_map(|(_, jobs)| jobs.iter().cloned())
            .collect();
        let files: Vec<(&str, &rota_core::parse::JobFile)> =
            fresh.iter().map(|(_, p, f)| (p.as_str(), f)).collect();
        let cycles = rota_core::calls::across_files(&files, &known);
        for (index, origin, file) in &fresh {
            let problems: Vec<String> = cycles
                .iter()
                .filter(|d| &d.file == origin)
                .map(ToString::to_string)
                .collect();
            let Change::Loaded { path, .. } = &changes[*index] else {
                continue;
            };
            let path = path.clone();
            if problems.is_empty() {
                let calls = file
                    .jobs
                    .iter()
                    .map(|j| (j.id.clone(), rota_core::calls::callees(j)))
                    .collect();
                self.calls.insert(path, calls);
            } else {
                changes[*index] = Change::Broken {
                    path,
                    message: problems.join("\n"),
                };
            }
        }
    }

    fn scan_files(&mut self) -> std::io::Result<Vec<Change>> {
        let (full, dirty) = self.take_events();
        let full = full
            || !self.watching
            || self
                .last_full
                .is_none_or(|at| at.elapsed() >= FULL_SCAN_EVERY);
        if full {
            // Watched before listing, so a change made while listing is reported again
            // rather than lost.
            self.watch();
            let changes = self.scan_all()?;
            self.last_full = Some(Instant::now());
            return Ok(changes);
        }
        let mut candidates = Vec::new();
        let mut changes = Vec::new();
        for path in dirty {
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() => {
                    if let Some(candidate) = self.candidate(path, &meta) {
                        candidates.push(candidate);
                    }
                }
                // Gone, or no longer a regular file: removed, like a full scan would find it.
                _ => {
                    if self.seen.remove(&path).is_some_and(|seen| !seen.not_a_job) {
                        changes.push(Change::Removed { path });
                    }
                }
            }
        }
        let mut loaded = self.read_all(candidates);
        loaded.append(&mut changes);
        Ok(loaded)
    }

    /// Adds the watch on the directory if it is not in place.
    fn watch(&mut self) {
        let Some(inotify) = &mut self.inotify else {
            return;
        };
        if self.watching {
            return;
        }
        // Every way a file's content or presence changes; `ATTRIB` for `touch` and for
        // permissions that make an unreadable file readable.
        let mask = WatchMask::CREATE
            | WatchMask::MODIFY
            | WatchMask::CLOSE_WRITE
            | WatchMask::ATTRIB
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF;
        match inotify.watches().add(&self.dir, mask) {
            Ok(_) => self.watching = true,
            Err(error) => {
                tracing::debug!(dir = %self.dir.display(), %error, "cannot watch the job directory yet")
            }
        }
    }

    /// Drains inotify's queue: whether a full scan is needed, and the job files named.
    fn take_events(&mut self) -> (bool, BTreeSet<PathBuf>) {
        let mut full = false;
        let mut dirty = BTreeSet::new();
        let Some(inotify) = &mut self.inotify else {
            return (true, dirty);
        };
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let events = match inotify.read_events(&mut buffer) {
                Ok(events) => events,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the job directory's events; comparing it in full");
                    full = true;
                    break;
                }
            };
            let mut any = false;
            for event in events {
                any = true;
                use inotify::EventMask;
                if event.mask.intersects(
                    EventMask::Q_OVERFLOW
                        | EventMask::IGNORED
                        | EventMask::DELETE_SELF
                        | EventMask::MOVE_SELF,
                ) {
                    // Events were lost, or the watch is gone with the directory: compare in
                    // full, watching again (the directory may come back).
                    full = true;
                    if !event.mask.contains(EventMask::Q_OVERFLOW) {
                        self.watching = false;
                    }
                    continue;
                }
                if let Some(name) = event.name {
                    let path = self.dir.join(name);
                    if is_job_file(&path) {
                        dirty.insert(path);
                    }
                }
            }
            if !any {
                break;
            }
        }
        if !self.watching {
            // The old watch descriptor is void; a full scan adds a new one.
            full = true;
        }
        (full, dirty)
    }

    /// Compares every file of the directory with the previous scan.
    fn scan_all(&mut self) -> std::io::Result<Vec<Change>> {
        let mut candidates = Vec::new();
        let mut present = HashSet::new();
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
            present.insert(path.clone());
            if let Some(candidate) = self.candidate(path, &meta) {
                candidates.push(candidate);
            }
        }
        candidates.sort_by(|a, b| a.path.cmp(&b.path));
        let mut changes = self.read_all(candidates);
        let mut gone: Vec<PathBuf> = self
            .seen
            .keys()
            .filter(|p| !present.contains(*p))
            .cloned()
            .collect();
        gone.sort();
        for path in gone {
            if self.seen.remove(&path).is_some_and(|seen| !seen.not_a_job) {
                changes.push(Change::Removed { path });
            }
        }
        Ok(changes)
    }

    /// The file as a candidate to read, unless its size and modification time are those
    /// seen before.
    fn candidate(&self, path: PathBuf, meta: &std::fs::Metadata) -> Option<Candidate> {
        let (len, modified) = (meta.len(), meta.modified().ok());
        if let Some(seen) = self.seen.get(&path)
            && seen.len == len
            && seen.modified == modified
        {
            return None;
        }
        Some(Candidate {
            path,
            len,
            modified,
        })
    }

    /// Reads (and parses, when their text changed) the candidates, on several threads when
    /// there are many (the first scan of a large directory), and records what was seen.
    fn read_all(&mut self, candidates: Vec<Candidate>) -> Vec<Change> {
        let seen = &self.seen;
        let examine = |c: &Candidate| -> Read {
            let format = rota_core::parse::Format::from_path(&c.path);
            match read_bounded(&c.path) {
                // A notebook with its outputs may be large; one too large to be a job file
                // is not taken for a broken one.
                Err(_) if is_document(format) => Read::NotAJob,
                Err(problem) => Read::Unreadable(problem),
                Ok(text) if !rota_core::runbook::declares_runbook(format, &text) => Read::NotAJob,
                Ok(text) if seen.get(&c.path).is_some_and(|s| s.text == text) => Read::Same,
                Ok(text) => {
                    let loaded = load(&c.path, &text);
                    Read::Changed(text, loaded)
                }
            }
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let reads: Vec<Read> = if candidates.len() < PARALLEL_FROM || threads < 2 {
            candidates.iter().map(examine).collect()
        } else {
            let chunk = candidates.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = candidates
                    .chunks(chunk)
                    .map(|part| {
                        let handle = scope.spawn(|| part.iter().map(examine).collect::<Vec<_>>());
                        (part.len(), handle)
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|(len, handle)| {
                        // `load` catches the parser's panics; a panic here would be a bug
                        // of this function: each file of the part is reported with it.
                        handle.join().unwrap_or_else(|_| {
                            (0..len)
                                .map(|_| {
                                    Read::Unreadable(
                                        "internal error while reading job files (a bug in Rota; please report it)"
                                            .to_owned(),
                                    )
                                })
                                .collect()
                        })
                    })
                    .collect()
            })
        };
        let mut changes = Vec::new();
        for (
            Candidate {
                path,
                len,
                modified,
            },
            read,
        ) in candidates.into_iter().zip(reads)
        {
            match read {
                Read::Unreadable(problem) => {
                    // Remembered by size and time like a loaded file, so the same unreadable
                    // file is reported once, not on every scan.
                    self.seen
                        .insert(path.clone(), Seen::new(len, modified, String::new(), false));
                    changes.push(Change::Broken {
                        message: format!("{}: {problem}", path.display()),
                        path,
                    });
                }
                Read::NotAJob => {
                    // A runbook that stopped being one (its front matter removed) is gone.
                    let was_a_job = self.seen.get(&path).is_some_and(|s| !s.not_a_job);
                    self.seen
                        .insert(path.clone(), Seen::new(len, modified, String::new(), true));
                    if was_a_job {
                        changes.push(Change::Removed { path });
                    }
                }
                Read::Same => {
                    if let Some(seen) = self.seen.get_mut(&path) {
                        seen.len = len;
                        seen.modified = modified;
                    }
                }
                Read::Changed(text, loaded) => {
                    self.seen
                        .insert(path.clone(), Seen::new(len, modified, text.clone(), false));
                    match loaded {
                        Ok(jobs) => changes.push(Change::Loaded {
                            path,
                            source: text,
                            jobs,
                        }),
                        Err(message) => changes.push(Change::Broken { path, message }),
                    }
                }
            }
        }
        changes
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

/// Job files are YAML, TOML or JSON, and runbooks (Markdown and notebooks that declare
/// themselves: [`rota_core::runbook::declares_runbook`]); editors' backup and swap files are
/// ignored.
fn is_job_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "toml" | "json" | "md" | "markdown" | "ipynb")
    )
}

/// A format that is a job file only when the file says so (a runbook).
fn is_document(format: rota_core::parse::Format) -> bool {
    use rota_core::parse::Format;
    matches!(format, Format::Markdown | Format::Notebook)
}
