//! Notebook tooling that needs no kernel: `strip` (outputs and run metadata out, for
//! version control), `convert` (percent scripts and Markdown, jupytext-compatible),
//! `diff` (cell-aware) and the git clean filter that runs `strip` on every `git add`.
//!
//! Every command reads notebooks as plain JSON and writes them with
//! [`crate::document::to_string`], the layout `nbformat.writes` produces, so a file
//! Jupyter wrote comes back byte for byte except for what a command changes on purpose.

pub mod cli;
pub mod convert;
pub mod diff;
pub mod git_filter;
pub mod strip;

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Largest input a tool reads: far above any notebook kept in version control, low enough
/// that a wrong file (a data dump, a disk image) is refused instead of read into memory.
pub const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

/// What can go wrong in the notebook tools. Every variant names the file (or `<stdin>`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The input is larger than [`MAX_INPUT_BYTES`].
    #[error("{path}: larger than {limit} bytes, not read")]
    TooLarge {
        /// The file involved.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The input is not UTF-8 text.
    #[error("{path}: not UTF-8 text")]
    NotText {
        /// The file involved.
        path: PathBuf,
    },
    /// The notebook is not JSON, or not a notebook.
    #[error("{path}: {reason}")]
    BadNotebook {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, with line and column for JSON syntax errors.
        reason: String,
    },
    /// A percent script or Markdown file could not be read as a notebook.
    #[error("{path}:{line}: {reason}")]
    BadText {
        /// The file involved.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A command-line combination that cannot work (e.g. an unknown format).
    #[error("{0}")]
    Usage(String),
    /// Running `git` failed.
    #[error("git: {0}")]
    Git(String),
}

impl ToolError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ToolError {
        ToolError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn bad(path: &Path, reason: impl Into<String>) -> ToolError {
        ToolError::BadNotebook {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// The name used for standard input in messages.
pub const STDIN_NAME: &str = "<stdin>";

/// Read all of `reader` as UTF-8, refusing more than [`MAX_INPUT_BYTES`].
pub fn read_bounded(reader: impl std::io::Read, path: &Path) -> Result<String, ToolError> {
    read_at_most(reader, path, MAX_INPUT_BYTES)
}

fn read_at_most(reader: impl std::io::Read, path: &Path, limit: u64) -> Result<String, ToolError> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(ToolError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|_| ToolError::NotText {
        path: path.to_path_buf(),
    })
}

/// Read a file (or standard input for `-`) as UTF-8 text, bounded.
pub fn read_text(path: &Path) -> Result<String, ToolError> {
    if path == Path::new("-") {
        return read_bounded(std::io::stdin().lock(), Path::new(STDIN_NAME));
    }
    let file = std::fs::File::open(path).map_err(|e| ToolError::io(path, e))?;
    read_bounded(file, path)
}

/// Parse notebook JSON as it is, only checking that it is an nbformat 4 notebook; older
/// notebooks are upgraded (as Jupyter does on open). Nothing is added: unlike
/// [`crate::document::parse`], no papermill bookkeeping, ids or tags.
pub fn parse_notebook(text: &str, path: &Path) -> Result<Value, ToolError> {
    let nb: Value =
        serde_json::from_str(text).map_err(|e| ToolError::bad(path, format!("not JSON: {e}")))?;
    let major = nb.get("nbformat").and_then(Value::as_i64);
    let nb = match major {
        Some(4) => nb,
        Some(m) if m < 4 => upgrade(text, path)?,
        Some(m) => return Err(ToolError::bad(path, format!("unsupported nbformat {m}"))),
        None => {
            return Err(ToolError::bad(
                path,
                "not a notebook: no integer `nbformat`",
            ));
        }
    };
    let obj = nb
        .as_object()
        .ok_or_else(|| ToolError::bad(path, "not a notebook: top level is not an object"))?;
    let cells = obj
        .get("cells")
        .and_then(Value::as_array)
        .ok_or_else(|| ToolError::bad(path, "not a notebook: no `cells` list"))?;
    if obj.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(ToolError::bad(
            path,
            "not a notebook: `metadata` is not an object",
        ));
    }
    for (index, cell) in cells.iter().enumerate() {
        check_cell(cell)
            .map_err(|reason| ToolError::bad(path, format!("cell {index}: {reason}")))?;
    }
    Ok(nb)
}

fn check_cell(cell: &Value) -> Result<(), String> {
    let cell = cell.as_object().ok_or("not an object")?;
    match cell.get("cell_type").and_then(Value::as_str) {
        Some("code" | "markdown" | "raw") => {}
        Some(other) => return Err(format!("unknown cell_type {other:?}")),
        None => return Err("no `cell_type`".into()),
    }
    match cell.get("source") {
        Some(Value::String(_)) => {}
        Some(Value::Array(lines)) if lines.iter().all(Value::is_string) => {}
        _ => return Err("`source` is not a string or a list of strings".into()),
    }
    if cell.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err("`metadata` is not an object".into());
    }
    Ok(())
}

fn upgrade(text: &str, path: &Path) -> Result<Value, ToolError> {
    let bad = |e: String| ToolError::bad(path, e);
    let upgraded = match nbformat::parse_notebook(text).map_err(|e| bad(e.to_string()))? {
        nbformat::Notebook::V3(v3) => {
            nbformat::upgrade_v3_notebook(v3).map_err(|e| bad(e.to_string()))?
        }
        nbformat::Notebook::Legacy(legacy) => {
            nbformat::upgrade_legacy_notebook(legacy).map_err(|e| bad(e.to_string()))?
        }
        _ => return Err(bad("unsupported nbformat".into())),
    };
    serde_json::to_value(&upgraded).map_err(|e| bad(e.to_string()))
}

/// Read and parse a notebook file (`-`: standard input).
pub fn load_notebook(path: &Path) -> Result<Value, ToolError> {
    parse_notebook(&read_text(path)?, path)
}

/// A notebook as `nbformat.write` writes it: [`crate::document::to_string`] and a newline.
pub fn notebook_text(nb: &Value) -> String {
    let mut text = crate::document::to_string(nb);
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_bounded_and_must_be_text() {
        let path = Path::new("nb.ipynb");
        assert_eq!(read_at_most(&b"{}"[..], path, 2).expect("fits"), "{}");
        let too_large = read_at_most(&b"{} "[..], path, 2).expect_err("too large");
        assert_eq!(
            too_large.to_string(),
            "nb.ipynb: larger than 2 bytes, not read"
        );
        let binary = read_at_most(&[0xff, 0xfe][..], path, 10).expect_err("not text");
        assert_eq!(binary.to_string(), "nb.ipynb: not UTF-8 text");
    }
}
