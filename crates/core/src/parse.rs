//! Job files → [`Job`]s: YAML, TOML, JSON and `# /// rota` script headers.
//!
//! A document is read into a spanned tree first, then converted to the model by hand so that
//! every problem is reported (not just the first) as `file:line:col: message`, sorted by
//! position.
//!
//! What a document may hold at its top level:
//! - one job: a mapping with `id`, `steps`, …;
//! - several jobs: a list of job mappings, or a mapping whose only key is `jobs:` holding that
//!   list (the TOML spelling is `[[jobs]]`);
//! - in YAML, several `---` documents, each of them one of the above.
//!
//! JSON is read by the YAML 1.2 parser, of which it is a subset; positions and duplicate-key
//! checks therefore work the same for both.
//!
//! Markdown (`.md`) and notebook (`.ipynb`) runbooks are read into the same tree by
//! [`crate::runbook`].
//!
//! A script (any other extension) carries TOML job metadata in a leading comment block, like
//! PEP 723:
//!
//! ```text
//! #!/usr/bin/env python3
//! # /// rota
//! # id = "nightly-report"
//! # [[triggers]]
//! # cron = "0 0 6 * * *"
//! # ///
//! ```
//!
//! Lines between the markers start with `# ` (or are a lone `#`). Without `steps`, the script
//! itself is the job's only step, `main`, run by the header's `interpreter` or else by the
//! command on its `#!` line. Without `id`, the job id is the file name's stem when that is a
//! valid id.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::check;
use crate::convert::{self, Cx, ScriptInfo};
use crate::diag::{Diagnostic, Diagnostics};
use crate::limits::{MAX_DIAGNOSTICS, MAX_FILE_BYTES};
use crate::model::Job;
use crate::tree::{self, Kind, Node, Pos, TreeError};

/// The syntax of a job document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML 1.2.
    Yaml,
    /// TOML 1.0.
    Toml,
    /// JSON.
    Json,
    /// A script whose leading comment block `# /// rota` … `# ///` holds TOML job metadata.
    ScriptHeader,
    /// A Markdown runbook: front matter and fenced code blocks ([`crate::runbook`]).
    Markdown,
    /// A Jupyter notebook runbook ([`crate::runbook`]).
    Notebook,
}

impl Format {
    /// Guesses the format from a file name: `.yaml`/`.yml`, `.toml`, `.json`, `.md`/`.markdown`,
    /// `.ipynb`; anything else is treated as a script with a header.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("toml") => Format::Toml,
            Some("json") => Format::Json,
            Some("md" | "markdown") => Format::Markdown,
            Some("ipynb") => Format::Notebook,
            _ => Format::ScriptHeader,
        }
    }
}

/// A parsed, validated job file.
#[derive(Debug, Clone)]
pub struct JobFile {
    /// The jobs it defines (one file may hold a list).
    pub jobs: Vec<Job>,
    /// The exact source text (stored with each job revision).
    pub source: String,
    /// The syntax it was parsed as.
    pub format: Format,
    /// Its `job:` steps, with their positions, for cycle checks across files.
    pub calls: Vec<crate::calls::CallSite>,
}

/// Errors loading a job file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid job file.
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
}

/// Reads, parses and validates the job file at `path`, reporting every problem. Reads at
/// most one byte more than [`MAX_FILE_BYTES`], so a huge file is refused without being read.
pub fn load_file(path: &Path) -> Result<JobFile, LoadError> {
    use std::io::Read;
    let io_error = |source| LoadError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(io_error)?;
    if bytes.len() > MAX_FILE_BYTES {
        // Checked before decoding: the cut may fall inside a character.
        return Err(LoadError::Invalid(too_large(&path.display().to_string())));
    }
    let source = String::from_utf8(bytes)
        .map_err(|e| io_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    let format = Format::from_path(path);
    let (jobs, calls) = parse_str_with_calls(&source, &path.display().to_string(), format)?;
    Ok(JobFile {
        jobs,
        source,
        format,
        calls,
    })
}

/// Parses and validates a job document; `origin` names it in diagnostics. A document over
/// the bounds of [`crate::limits`] is refused with a diagnostic naming the bound.
pub fn parse_str(source: &str, origin: &str, format: Format) -> Result<Vec<Job>, Diagnostics> {
    parse_str_with_calls(source, origin, format).map(|(jobs, _)| jobs)
}

/// [`parse_str`], also answering the document's `job:` steps with their positions, for the
/// cycle checks of jobs loaded together with others ([`crate::calls::cycles`]). A cycle
/// among the document's own jobs is already one of its diagnostics.
pub fn parse_str_with_calls(
    source: &str,
    origin: &str,
    format: Format,
) -> Result<(Vec<Job>, Vec<crate::calls::CallSite>), Diagnostics> {
    if source.len() > MAX_FILE_BYTES {
        return Err(too_large(origin));
    }
    let mut cx = Cx {
        errors: Vec::new(),
        lines: source.lines().map(str::to_owned).collect(),
    };
    let (jobs, calls) = parse_into(&mut cx, source, origin, format);
    let mut extra = Vec::new();
    if cx.errors.is_empty() {
        extra = file_cycles(origin, &jobs, &calls);
        if extra.is_empty() {
            return Ok((jobs, calls));
        }
    }
    let mut errors = cx.errors;
    errors.sort_by_key(|a| a.0);
    errors.dedup();
    if errors.len() > MAX_DIAGNOSTICS {
        let more = errors.len() - MAX_DIAGNOSTICS;
        let at = errors[MAX_DIAGNOSTICS].0;
        errors.truncate(MAX_DIAGNOSTICS);
        errors.push((
            at,
            format!("… and {more} more problems (at most {MAX_DIAGNOSTICS} are reported)"),
        ));
    }
    let mut all: Vec<Diagnostic> = errors
        .into_iter()
        .map(|(pos, message)| Diagnostic {
            file: origin.to_owned(),
            line: pos.line,
            col: pos.col,
            message,
        })
        .collect();
    all.extend(extra);
    Err(Diagnostics(all))
}

/// The cycles of calls among one file's jobs, namespace by namespace.
fn file_cycles(origin: &str, jobs: &[Job], calls: &[crate::calls::CallSite]) -> Vec<Diagnostic> {
    let namespaces: std::collections::BTreeSet<Option<&str>> =
        jobs.iter().map(|j| j.namespace.as_deref()).collect();
    let mut out = Vec::new();
    for namespace in namespaces {
        let sites: Vec<crate::calls::CallSite> = calls
            .iter()
            .filter(|c| c.namespace.as_deref() == namespace)
            .cloned()
            .collect();
        let loaded = [crate::calls::LoadedCalls {
            file: origin,
            jobs: jobs
                .iter()
                .filter(|j| j.namespace.as_deref() == namespace)
                .map(|j| j.id.clone())
                .collect(),
            calls: &sites,
        }];
        out.extend(crate::calls::cycles(&loaded, &Default::default()));
    }
    out
}

/// The one diagnostic of a file over [`MAX_FILE_BYTES`].
fn too_large(origin: &str) -> Diagnostics {
    Diagnostics(vec![Diagnostic {
        file: origin.to_owned(),
        line: 1,
        col: 1,
        message: format!(
            "job file too large: more than {MAX_FILE_BYTES} bytes (the limit of a job file)"
        ),
    }])
}

/// The revision hash of a job file: lower-case hex SHA-256 of its exact source text.
///
/// ```
/// let digest = rota_core::parse::job_digest("id: hello\n");
/// assert_eq!(digest.len(), 64);
/// ```
pub fn job_digest(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

const START: Pos = Pos { line: 1, col: 1 };

fn parse_into(
    cx: &mut Cx,
    source: &str,
    origin: &str,
    format: Format,
) -> (Vec<Job>, Vec<crate::calls::CallSite>) {
    let report = |cx: &mut Cx, errors: Vec<TreeError>| {
        for e in errors {
            cx.err(e.pos, e.message);
        }
    };
    match format {
        Format::Yaml | Format::Json => {
            let mut errors = Vec::new();
            let docs = tree::from_yaml(source, &mut errors);
            let failed = !errors.is_empty();
            report(cx, errors);
            if docs.is_empty() && !failed {
                cx.err(
                    START,
                    "empty job file: expected a job (a mapping) or a list of jobs",
                );
            }
            let mut drafts = Vec::new();
            for doc in &docs {
                drafts.extend(top_level(cx, doc, None));
            }
            finish(cx, drafts)
        }
        Format::Toml => match tree::from_toml(source) {
            Ok(doc) => {
                let drafts = top_level(cx, &doc, None);
                finish(cx, drafts)
            }
            Err(e) => {
                report(cx, vec![e]);
                (Vec::new(), Vec::new())
            }
        },
        Format::ScriptHeader => {
            let Some(doc) = script_header(cx, source) else {
                return (Vec::new(), Vec::new());
            };
            let info = script_info(source, origin);
            let drafts: Vec<_> = convert::job(cx, &doc, Some(&info)).into_iter().collect();
            finish(cx, drafts)
        }
        Format::Markdown | Format::Notebook => {
            let doc = if format == Format::Markdown {
                crate::runbook::markdown_job(cx, source, origin)
            } else {
                crate::runbook::notebook_job(cx, source, origin)
            };
            let drafts: Vec<_> = doc
                .and_then(|doc| convert::job(cx, &doc, None))
                .into_iter()
                .collect();
            finish(cx, drafts)
        }
    }
}

/// Splits a top-level node into job mappings and converts each.
fn top_level(cx: &mut Cx, doc: &Node, script: Option<&ScriptInfo>) -> Vec<convert::Draft> {
    match &doc.kind {
        Kind::Map(entries) if entries.iter().any(|(k, _)| k.name == "jobs") => {
            for (key, _) in entries {
                if key.name != "jobs" {
                    cx.err(
                        key.pos,
                        format!(
                            "unknown key `{}` next to `jobs` (a file with `jobs:` holds only the list of jobs)",
                            key.name
                        ),
                    );
                }
            }
            let list = entries
                .iter()
                .find(|(k, _)| k.name == "jobs")
                .map(|(_, v)| v);
            match list.map(|n| (n, &n.kind)) {
                Some((_, Kind::Seq(items))) => items
                    .iter()
                    .filter_map(|item| convert::job(cx, item, script))
                    .collect(),
                Some((n, _)) => {
                    cx.err(
                        n.pos,
                        format!("expected a list of jobs for `jobs`, found {}", n.describe()),
                    );
                    Vec::new()
                }
                None => Vec::new(),
            }
        }
        Kind::Map(_) => convert::job(cx, doc, script).into_iter().collect(),
        Kind::Seq(items) => {
            if items.is_empty() {
                cx.err(doc.pos, "empty list of jobs");
            }
            items
                .iter()
                .filter_map(|item| convert::job(cx, item, script))
                .collect()
        }
        _ => {
            cx.err(
                doc.pos,
                format!(
                    "expected a job (a mapping) or a list of jobs, found {}",
                    doc.describe()
                ),
            );
            Vec::new()
        }
    }
}

/// Runs the cross-field checks and rejects duplicate job ids within the file; answers the
/// jobs and their `job:` steps.
fn finish(cx: &mut Cx, drafts: Vec<convert::Draft>) -> (Vec<Job>, Vec<crate::calls::CallSite>) {
    let mut seen: std::collections::HashMap<&str, Pos> = std::collections::HashMap::new();
    for draft in &drafts {
        check::check(cx, draft);
        let id = draft.job.id.as_str();
        if id.is_empty() {
            continue;
        }
        if let Some(first) = seen.get(id) {
            cx.err(
                draft.pos,
                format!(
                    "duplicate job id `{id}` (first defined at line {})",
                    first.line
                ),
            );
        } else {
            seen.insert(id, draft.pos);
        }
    }
    let mut calls = Vec::new();
    for draft in &drafts {
        for (i, step) in draft.job.steps.iter().enumerate() {
            if step.kind.name() != "job" {
                continue;
            }
            let Ok(call) = step.kind.decode::<crate::kinds::job::JobStep>() else {
                continue;
            };
            let pos = draft.step_pos.get(i).copied().unwrap_or(draft.pos);
            calls.push(crate::calls::CallSite {
                job: draft.job.id.clone(),
                namespace: draft.job.namespace.clone(),
                step: step.id.clone(),
                callee: call.id,
                line: pos.line,
                col: pos.col,
            });
        }
    }
    (drafts.into_iter().map(|d| d.job).collect(), calls)
}

/// Finds the `# /// rota` block and reads its TOML, with positions mapped back to the file.
fn script_header(cx: &mut Cx, source: &str) -> Option<Node> {
    let lines: Vec<&str> = source.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == "# /// rota") else {
        cx.err(
            START,
            "no job header found: a script needs a leading `# /// rota` … `# ///` comment block (or use a .yaml, .toml or .json file)",
        );
        return None;
    };
    let Some(len) = lines[start + 1..]
        .iter()
        .position(|l| l.trim_end() == "# ///")
    else {
        cx.err(
            Pos {
                line: start + 1,
                col: 1,
            },
            "unclosed `# /// rota` block: expected a closing `# ///` line",
        );
        return None;
    };
    let mut toml = String::new();
    let mut bad = false;
    for (i, line) in lines[start + 1..start + 1 + len].iter().enumerate() {
        if let Some(rest) = line.strip_prefix("# ") {
            toml.push_str(rest);
        } else if line.trim_end() != "#" {
            cx.err(
                Pos {
                    line: start + 2 + i,
                    col: 1,
                },
                "lines inside the `# /// rota` block must start with `# `",
            );
            bad = true;
        }
        toml.push('\n');
    }
    if bad {
        return None;
    }
    let shift = |pos: Pos| Pos {
        line: pos.line + start + 1,
        col: pos.col + 2,
    };
    match tree::from_toml(&toml) {
        Ok(mut node) => {
            shift_positions(&mut node, &shift);
            Some(node)
        }
        Err(e) => {
            cx.err(shift(e.pos), e.message);
            None
        }
    }
}

pub(crate) fn shift_positions(node: &mut Node, shift: &impl Fn(Pos) -> Pos) {
    node.pos = shift(node.pos);
    match &mut node.kind {
        Kind::Seq(items) => items.iter_mut().for_each(|n| shift_positions(n, shift)),
        Kind::Map(entries) => {
            for (key, value) in entries {
                key.pos = shift(key.pos);
                shift_positions(value, shift);
            }
        }
        _ => {}
    }
}

fn script_info(source: &str, origin: &str) -> ScriptInfo {
    let path = Path::new(origin);
    let file_name = path
        .file_name()
        .map_or_else(|| origin.to_owned(), |n| n.to_string_lossy().into_owned());
    let default_id = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase().replace('_', "-"))
        .filter(|s| convert::is_valid_job_id(s));
    let shebang = source
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty());
    ScriptInfo {
        file_name,
        default_id,
        shebang,
    }
}

/// Reads a YAML (or JSON) document as a plain value, e.g. a `--params-file`; `origin` names
/// it in diagnostics. A stream of several documents is an error.
pub fn parse_value(source: &str, origin: &str) -> Result<crate::model::Value, Diagnostics> {
    let mut errors = Vec::new();
    let docs = crate::tree::from_yaml(source, &mut errors);
    let diagnostic = |line: usize, col: usize, message: String| Diagnostic {
        file: origin.to_owned(),
        line,
        col,
        message,
    };
    if !errors.is_empty() {
        return Err(Diagnostics(
            errors
                .into_iter()
                .map(|e| diagnostic(e.pos.line, e.pos.col, e.message))
                .collect(),
        ));
    }
    match docs.as_slice() {
        [] => Ok(crate::model::Value::Object(Default::default())),
        [doc] => Ok(doc.to_json()),
        _ => Err(Diagnostics(vec![diagnostic(
            1,
            1,
            format!("expected one document, found {}", docs.len()),
        )])),
    }
}
