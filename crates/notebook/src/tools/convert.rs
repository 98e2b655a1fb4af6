//! `rota notebook convert`: notebooks to and from the two text forms jupytext made common.
//!
//! - the *percent script* (`.py`): a YAML header in comments, then each cell after a
//!   `# %%` line (`# %% [markdown]`, `# %% [raw]` for the others, whose lines are
//!   commented with `# `), the cell's metadata as `key=JSON` pairs on that line;
//! - *Markdown* (`.md`): a YAML front matter, code cells as fenced blocks whose info string
//!   is the language and the metadata, markdown cells as they are, raw cells between
//!   `<!-- #raw -->` and `<!-- #endraw -->`.
//!
//! Cells are separated by one blank line. What jupytext leaves out of the text forms is
//! left out here too: cell ids, outputs, execution counts, editor state
//! (`collapsed`, `scrolled`, `execution`…) and notebook metadata other than the kernelspec.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::ToolError;
use crate::document;

/// Target formats of `convert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Percent script (`# %%` cells), as `jupytext --to py:percent`.
    Py,
    /// Markdown with fenced code cells.
    Md,
    /// A Jupyter notebook (from `.py` or `.md`).
    Ipynb,
}

impl Format {
    /// The format a file name says, by extension.
    pub fn of_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "py" => Some(Format::Py),
            "md" | "markdown" => Some(Format::Md),
            "ipynb" => Some(Format::Ipynb),
            _ => None,
        }
    }

    /// The usual extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Py => "py",
            Format::Md => "md",
            Format::Ipynb => "ipynb",
        }
    }
}

/// Cell metadata that stays out of the text forms (jupytext's default filter).
const HIDDEN_CELL_KEYS: &[&str] = &[
    "autoscroll",
    "collapsed",
    "scrolled",
    "trusted",
    "execution",
    "ExecuteTime",
];

/// Version of the text layout written, as jupytext numbers it (readers check it).
const FORMAT_VERSION: &str = "1.3";

/// Convert the text of `input` (format `from`) into format `to`.
pub fn convert(text: &str, input: &Path, from: Format, to: Format) -> Result<String, ToolError> {
    let nb = match from {
        Format::Ipynb => super::parse_notebook(text, input)?,
        Format::Py => read_percent(text, input)?,
        Format::Md => read_markdown(text, input)?,
    };
    Ok(match to {
        Format::Ipynb => super::notebook_text(&nb),
        Format::Py => write_percent(&nb),
        Format::Md => write_markdown(&nb),
    })
}

// ---------------------------------------------------------------------------------------
// Shared pieces: metadata on a marker line, the YAML header.

/// A value as Python's `json.dumps` writes it (`, ` and `: ` separators, non-ASCII
/// escaped), which is how jupytext writes metadata values.
pub fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_python_json(value, &mut out);
    out
}

fn write_python_json(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_ascii_string(key, out);
                out.push_str(": ");
                write_python_json(item, out);
            }
            out.push('}');
        }
        Value::String(s) => write_ascii_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_ascii_string(s: &str, out: &mut String) {
    let quoted = Value::String(s.to_owned()).to_string();
    for c in quoted.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
}

/// Metadata keys jupytext writes as `key=value`; any other key makes the whole metadata
/// one JSON object instead.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '/' | '-'))
}

/// The metadata written on a marker line (filtered), `None` when nothing is left.
fn shown_metadata(cell: &Value) -> Option<Map<String, Value>> {
    let meta: Map<String, Value> = cell
        .get("metadata")
        .and_then(Value::as_object)?
        .iter()
        .filter(|(k, _)| !HIDDEN_CELL_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!meta.is_empty()).then_some(meta)
}

/// `key=JSON` pairs, space separated (or one JSON object when a key needs quoting).
fn metadata_text(meta: &Map<String, Value>) -> String {
    if !meta.keys().all(|k| is_plain_key(k)) {
        return python_json(&Value::Object(meta.clone()));
    }
    meta.iter()
        .map(|(k, v)| format!("{k}={}", python_json(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parse what follows a marker: `key=JSON` pairs or one JSON object; text before the
/// first pair is the cell's title (kept as `metadata.title`, as jupytext does).
fn parse_metadata(text: &str) -> Result<Map<String, Value>, String> {
    let text = text.trim();
    let mut meta = Map::new();
    if text.is_empty() {
        return Ok(meta);
    }
    if text.starts_with('{') {
        return match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!("cell metadata is not a JSON object: {text}")),
        };
    }
    let mut rest = text;
    let mut title = Vec::new();
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        match rest[..word_end].split_once('=') {
            Some((key, _)) if is_plain_key(key) => {
                let value_text = &rest[key.len() + 1..];
                let mut values =
                    serde_json::Deserializer::from_str(value_text).into_iter::<Value>();
                let value = match values.next() {
                    Some(Ok(v)) => v,
                    _ => return Err(format!("metadata `{key}`: its value is not JSON")),
                };
                let used = values.byte_offset();
                meta.insert(key.to_owned(), value);
                rest = value_text[used..].trim_start();
            }
            _ => {
                if !meta.is_empty() {
                    return Err(format!(
                        "unexpected `{}` after cell metadata",
                        &rest[..word_end]
                    ));
                }
                title.push(&rest[..word_end]);
                rest = rest[word_end..].trim_start();
            }
        }
    }
    if !title.is_empty() {
        meta.insert("title".into(), Value::String(title.join(" ")));
    }
    Ok(meta)
}

/// A YAML scalar: plain when YAML reads it back as the same string, else single-quoted.
fn yaml_scalar(value: &Value) -> String {
    let Some(s) = value.as_str() else {
        // JSON is YAML (flow style).
        return value.to_string();
    };
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '.' | '-' | '(' | ')' | '/')
        })
        && !s.starts_with([' ', '-', '.'])
        && !s.ends_with(' ')
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "~"
        );
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// The header lines (without comment prefix or `---` fences).
fn header_lines(nb: &Value, extension: &str, format_name: &str) -> Vec<String> {
    let mut lines = vec![
        "jupyter:".to_owned(),
        "  jupytext:".to_owned(),
        "    text_representation:".to_owned(),
        format!("      extension: .{extension}"),
        format!("      format_name: {format_name}"),
        format!("      format_version: '{FORMAT_VERSION}'"),
    ];
    if let Some(spec) = nb
        .pointer("/metadata/kernelspec")
        .and_then(Value::as_object)
    {
        lines.push("  kernelspec:".to_owned());
        let mut keys: Vec<&String> = spec.keys().collect();
        keys.sort();
        for key in keys {
            lines.push(format!("    {key}: {}", yaml_scalar(&spec[key])));
        }
    }
    lines
}

/// The notebook metadata a header gives: its `kernelspec` (the `jupytext` part only
/// describes the text file and is dropped).
fn header_metadata(
    yaml: &str,
    path: &Path,
    first_line: usize,
) -> Result<Map<String, Value>, ToolError> {
    let bad = |reason: String| ToolError::BadText {
        path: path.to_path_buf(),
        line: first_line,
        reason,
    };
    use saphyr::LoadableYamlNode as _;
    let docs =
        saphyr::Yaml::load_from_str(yaml).map_err(|e| bad(format!("header is not YAML: {e}")))?;
    let mut meta = Map::new();
    let Some(doc) = docs.first() else {
        return Ok(meta);
    };
    let jupyter = yaml_to_json(doc)
        .get("jupyter")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(spec) = jupyter.get("kernelspec") {
        if !spec.is_object() {
            return Err(bad("header: `kernelspec` is not a mapping".into()));
        }
        meta.insert("kernelspec".into(), spec.clone());
    }
    Ok(meta)
}

fn yaml_to_json(yaml: &saphyr::Yaml) -> Value {
    use saphyr::{Scalar, Yaml};
    match yaml {
        Yaml::Value(Scalar::String(s)) => Value::String(s.to_string()),
        Yaml::Value(Scalar::Integer(i)) => json!(i),
        Yaml::Value(Scalar::FloatingPoint(f)) => json!(f.into_inner()),
        Yaml::Value(Scalar::Boolean(b)) => json!(b),
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Representation(text, _, _) => Value::String(text.to_string()),
        _ => Value::Null,
    }
}

/// A new nbformat 4.5 notebook of `cells` with `metadata`.
fn new_notebook(cells: Vec<Value>, mut metadata: Map<String, Value>, language: &str) -> Value {
    let lang = metadata
        .get("kernelspec")
        .and_then(|k| k.get("language"))
        .and_then(Value::as_str)
        .unwrap_or(language)
        .to_owned();
    metadata.insert("language_info".into(), json!({"name": lang}));
    json!({"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5})
}

fn new_cell(cell_type: &str, source: String, metadata: Map<String, Value>) -> Value {
    let mut cell = json!({
        "cell_type": cell_type,
        "id": document::new_cell_id(),
        "metadata": metadata,
        "source": source,
    });
    if cell_type == "code" {
        cell["execution_count"] = Value::Null;
        cell["outputs"] = json!([]);
    }
    cell
}

/// The notebook's language: kernelspec, then language_info, then Python.
fn language(nb: &Value) -> String {
    document::language(nb, None).unwrap_or_else(|| "python".into())
}

/// Source lines of a cell: `""` is one empty line for markdown and raw cells (so the cell
/// shows), none for code; a trailing newline gives a trailing empty line.
fn source_lines(cell: &Value) -> Vec<String> {
    let source = document::source(cell);
    if source.is_empty() && document::cell_type(cell) == "code" {
        return Vec::new();
    }
    source.split('\n').map(str::to_owned).collect()
}

/// Lines of `text` without their terminators; a final newline ends the last line.
fn text_lines(text: &str) -> Vec<&str> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Vec::new();
    }
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Percent scripts.

/// The comment prefix of the notebook's language in scripts.
fn comment_of(language: &str) -> &'static str {
    match language {
        "c++" | "cpp" | "c" | "java" | "javascript" | "typescript" | "rust" | "go" | "scala"
        | "kotlin" | "csharp" | "c#" | "groovy" | "swift" => "//",
        "sql" | "haskell" | "lua" => "--",
        "matlab" | "octave" => "%",
        _ => "#",
    }
}

fn write_percent(nb: &Value) -> String {
    let c = comment_of(&language(nb));
    let mut out = String::new();
    out.push_str(&format!("{c} ---\n"));
    for line in header_lines(nb, "py", "percent") {
        out.push_str(&format!("{c} {line}\n"));
    }
    out.push_str(&format!("{c} ---\n"));
    for cell in document::cells(nb) {
        out.push('\n');
        let mut marker = format!("{c} %%");
        match document::cell_type(cell) {
            "markdown" => marker.push_str(" [markdown]"),
            "raw" => marker.push_str(" [raw]"),
            _ => {}
        }
        if let Some(meta) = shown_metadata(cell) {
            marker.push(' ');
            marker.push_str(&metadata_text(&meta));
        }
        out.push_str(&marker);
        out.push('\n');
        let commented = document::cell_type(cell) != "code";
        for line in source_lines(cell) {
            match (commented, line.is_empty()) {
                (false, _) => out.push_str(&line),
                (true, true) => out.push_str(c),
                (true, false) => out.push_str(&format!("{c} {line}")),
            }
            out.push('\n');
        }
    }
    out
}

/// A `# %%` marker: the cell type and metadata it gives, or `None` for another line.
fn percent_marker(line: &str, c: &str) -> Option<(&'static str, String)> {
    let rest = line.strip_prefix(c)?.strip_prefix(" %%")?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let rest = rest.trim_start();
    for (tag, kind) in [
        ("[markdown]", "markdown"),
        ("[md]", "markdown"),
        ("[raw]", "raw"),
    ] {
        if let Some(meta) = rest.strip_prefix(tag) {
            return Some((kind, meta.to_owned()));
        }
    }
    Some(("code", rest.to_owned()))
}

/// Split `text` into an optional commented YAML header and the rest, with the 1-based
/// line where the rest starts.
fn split_header(lines: &[&str], open: &str, prefix: &str) -> Option<(String, usize)> {
    if lines.first() != Some(&open) {
        return None;
    }
    let end = lines.iter().skip(1).position(|l| *l == open)? + 1;
    let yaml: Vec<&str> = lines[1..end]
        .iter()
        .map(|l| {
            l.strip_prefix(prefix)
                .or_else(|| l.strip_prefix(prefix.trim_end()))
                .unwrap_or(l)
        })
        .collect();
    Some((yaml.join("\n"), end + 1))
}

fn read_percent(text: &str, path: &Path) -> Result<Value, ToolError> {
    let lines = text_lines(text);
    // The comment prefix: the header's, else Python's.
    let c = ["//", "--", "%", "#"]
        .into_iter()
        .find(|c| lines.first() == Some(&format!("{c} ---").as_str()))
        .unwrap_or("#");
    let (metadata, body_start) = match split_header(&lines, &format!("{c} ---"), &format!("{c} ")) {
        Some((yaml, next)) => (header_metadata(&yaml, path, 1)?, next),
        None => (Map::new(), 0),
    };
    let language = metadata
        .get("kernelspec")
        .and_then(|k| k.get("language"))
        .and_then(Value::as_str)
        .unwrap_or("python")
        .to_owned();
    let mut cells = Vec::new();
    // (line number, kind, metadata text, lines)
    let mut current: Option<(usize, &str, String, Vec<&str>)> = None;
    let mut preamble: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(body_start) {
        if let Some((kind, meta)) = percent_marker(line, c) {
            if let Some(cell) = current.take() {
                cells.push(finish_percent_cell(cell, c, false, path)?);
            }
            current = Some((i + 1, kind, meta, Vec::new()));
        } else if let Some((_, _, _, body)) = current.as_mut() {
            body.push(line);
        } else {
            preamble.push(line);
        }
    }
    if let Some(cell) = current.take() {
        cells.push(finish_percent_cell(cell, c, true, path)?);
    }
    // Code before the first marker (a plain script) is a cell of its own.
    while preamble.first().is_some_and(|l| l.trim().is_empty()) {
        preamble.remove(0);
    }
    while preamble.last().is_some_and(|l| l.trim().is_empty()) {
        preamble.pop();
    }
    if !preamble.is_empty() {
        cells.insert(0, new_cell("code", preamble.join("\n"), Map::new()));
    }
    Ok(new_notebook(cells, metadata, &language))
}

fn finish_percent_cell(
    (line, kind, meta, mut body): (usize, &str, String, Vec<&str>),
    c: &str,
    last: bool,
    path: &Path,
) -> Result<Value, ToolError> {
    let metadata = parse_metadata(&meta).map_err(|reason| ToolError::BadText {
        path: path.to_path_buf(),
        line,
        reason,
    })?;
    // The blank line that separates a cell from the next marker is not the cell's.
    if !last && body.last().is_some_and(|l| l.is_empty()) {
        body.pop();
    }
    let source: Vec<String> = if kind == "code" {
        body.iter().map(|l| (*l).to_owned()).collect()
    } else {
        body.iter()
            .map(|l| {
                l.strip_prefix(&format!("{c} "))
                    .or_else(|| l.strip_prefix(c))
                    .unwrap_or(l)
                    .to_owned()
            })
            .collect()
    };
    Ok(new_cell(kind, source.join("\n"), metadata))
}

// ---------------------------------------------------------------------------------------
// Markdown.

const REGION: &str = "<!-- #region";
const END_REGION: &str = "<!-- #endregion -->";
const RAW: &str = "<!-- #raw";
const END_RAW: &str = "<!-- #endraw -->";

/// A fence longer than any run of backticks that opens a line of `lines`.
fn fence_for(lines: &[String]) -> String {
    let longest = lines
        .iter()
        .map(|l| l.trim_start().chars().take_while(|c| *c == '`').count())
        .max()
        .unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// Whether a markdown cell must be put in a region to come back as the same one cell.
fn needs_region(lines: &[String], after_markdown: bool, has_metadata: bool) -> bool {
    after_markdown
        || has_metadata
        || lines.iter().all(|l| l.trim().is_empty())
        || lines.first().is_some_and(|l| l.trim().is_empty())
        || lines.last().is_some_and(|l| l.trim().is_empty())
        || lines
            .iter()
            .any(|l| l.trim_start().starts_with("```") || l.trim_start().starts_with("<!-- #"))
}

fn comment_marker(open: &str, meta: Option<&Map<String, Value>>) -> String {
    match meta {
        Some(meta) => format!("{open} {} -->", metadata_text(meta)),
        None => format!("{open} -->"),
    }
}

fn write_markdown(nb: &Value) -> String {
    let lang = language(nb);
    let mut out = String::from("---\n");
    for line in header_lines(nb, "md", "markdown") {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("---\n");
    let mut after_markdown = false;
    for cell in document::cells(nb) {
        out.push('\n');
        let lines = source_lines(cell);
        let meta = shown_metadata(cell);
        let kind = document::cell_type(cell);
        let (open, close) = match kind {
            "code" => {
                let mut lines = lines;
                if lines.is_empty() {
                    lines.push(String::new());
                }
                let fence = fence_for(&lines);
                let info = match &meta {
                    Some(meta) => format!("{lang} {}", metadata_text(meta)),
                    None => lang.clone(),
                };
                out.push_str(&format!("{fence}{info}\n{}\n{fence}\n", lines.join("\n")));
                after_markdown = false;
                continue;
            }
            "raw" => (comment_marker(RAW, meta.as_ref()), END_RAW.to_owned()),
            _ if needs_region(&lines, after_markdown, meta.is_some()) => {
                (comment_marker(REGION, meta.as_ref()), END_REGION.to_owned())
            }
            _ => {
                out.push_str(&lines.join("\n"));
                out.push('\n');
                after_markdown = true;
                continue;
            }
        };
        out.push_str(&format!("{open}\n{}\n{close}\n", lines.join("\n")));
        after_markdown = kind == "markdown";
    }
    out
}

/// A `<!-- #region … -->` / `<!-- #raw … -->` line: the metadata text in it.
fn comment_open<'a>(line: &'a str, open: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(open)?.strip_suffix("-->")?;
    (rest.is_empty() || rest.starts_with(' ')).then_some(rest)
}

/// An opening code fence with a language: (fence, metadata text).
fn code_fence(line: &str) -> Option<(&str, &str)> {
    let ticks = line.chars().take_while(|c| *c == '`').count();
    if ticks < 3 {
        return None;
    }
    let info = &line[ticks..];
    let lang_end = info.find(char::is_whitespace).unwrap_or(info.len());
    (lang_end > 0 && !info[..lang_end].contains('`')).then(|| (&line[..ticks], &info[lang_end..]))
}

/// A line opening a cell: its kind, the metadata text and the line that closes it.
fn block_start(line: &str) -> Option<(&'static str, &str, String)> {
    if let Some((fence, meta)) = code_fence(line) {
        return Some(("code", meta, fence.to_owned()));
    }
    if let Some(meta) = comment_open(line, REGION) {
        return Some(("markdown", meta, END_REGION.to_owned()));
    }
    comment_open(line, RAW).map(|meta| ("raw", meta, END_RAW.to_owned()))
}

/// The index after the fence that closes the language-less fence at `start` (or the end).
fn plain_fence_end(lines: &[&str], start: usize) -> usize {
    let ticks = lines[start].chars().take_while(|c| *c == '`').count();
    lines[start + 1..]
        .iter()
        .position(|l| l.trim_end().len() >= ticks && l.trim_end().chars().all(|c| c == '`'))
        .map_or(lines.len(), |p| start + 1 + p + 1)
}

fn read_markdown(text: &str, path: &Path) -> Result<Value, ToolError> {
    let lines = text_lines(text);
    let (metadata, start) = match split_header(&lines, "---", "") {
        Some((yaml, next)) => (header_metadata(&yaml, path, 1)?, next),
        None => (Map::new(), 0),
    };
    let bad = |line: usize, reason: String| ToolError::BadText {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut cells = Vec::new();
    let mut prose: Vec<&str> = Vec::new();
    let mut i = start;
    let flush = |prose: &mut Vec<&str>, cells: &mut Vec<Value>| {
        let first = prose.iter().position(|l| !l.trim().is_empty());
        let last = prose.iter().rposition(|l| !l.trim().is_empty());
        if let (Some(first), Some(last)) = (first, last) {
            cells.push(new_cell(
                "markdown",
                prose[first..=last].join("\n"),
                Map::new(),
            ));
        }
        prose.clear();
    };
    while i < lines.len() {
        let line = lines[i];
        let Some((kind, meta, close)) = block_start(line) else {
            // A fence without a language is part of the markdown, to its closing fence.
            let end = if line.starts_with("```") {
                plain_fence_end(&lines, i)
            } else {
                i + 1
            };
            prose.extend(&lines[i..end]);
            i = end;
            continue;
        };
        flush(&mut prose, &mut cells);
        let metadata = parse_metadata(meta).map_err(|reason| bad(i + 1, reason))?;
        let end = lines[i + 1..]
            .iter()
            .position(|l| *l == close)
            .map(|p| p + i + 1)
            .ok_or_else(|| bad(i + 1, format!("no closing {close:?} line")))?;
        let body = &lines[i + 1..end];
        cells.push(new_cell(kind, body.join("\n"), metadata));
        i = end + 1;
    }
    flush(&mut prose, &mut cells);
    Ok(new_notebook(cells, metadata, "python"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(nb: &Value, format: Format) -> Value {
        let path = Path::new("t");
        let text = convert(
            &super::super::notebook_text(nb),
            path,
            Format::Ipynb,
            format,
        )
        .expect("to text");
        let back = convert(&text, path, format, Format::Ipynb).expect("from text");
        serde_json::from_str(&back).expect("notebook JSON")
    }

    fn shape(nb: &Value) -> Vec<(String, String, Value)> {
        document::cells(nb)
            .iter()
            .map(|c| {
                (
                    document::cell_type(c).to_owned(),
                    document::source(c),
                    c.pointer("/metadata/tags").cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    #[test]
    fn text_forms_round_trip() {
        let nb = json!({
            "cells": [
                {"cell_type": "markdown", "id": "1", "metadata": {}, "source": "# T\n\ntext"},
                {"cell_type": "markdown", "id": "2", "metadata": {}, "source": "second\n"},
                {"cell_type": "code", "id": "3", "metadata": {"tags": ["parameters"]}, "source": "a = 1\n\n\nb = 'é'\n",
                 "outputs": [], "execution_count": null},
                {"cell_type": "code", "id": "4", "metadata": {}, "source": "", "outputs": [], "execution_count": null},
                {"cell_type": "code", "id": "5", "metadata": {}, "source": "s = '''\n```\n'''", "outputs": [], "execution_count": null},
                {"cell_type": "raw", "id": "6", "metadata": {}, "source": "raw\n<!-- x -->"},
                {"cell_type": "markdown", "id": "7", "metadata": {}, "source": ""}
            ],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5
        });
        for format in [Format::Py, Format::Md] {
            let back = roundtrip(&nb, format);
            assert_eq!(shape(&back), shape(&nb), "{format:?}");
            assert_eq!(back["metadata"]["kernelspec"], nb["metadata"]["kernelspec"]);
        }
    }

    #[test]
    fn hand_written_markdown_reads_as_cells() {
        let text =
            "Intro\n\n```\nnot code\n```\n\n```python tags=[\"parameters\"]\nx = 1\n```\nafter\n";
        let nb = read_markdown(text, Path::new("t.md")).expect("reads");
        let cells = document::cells(&nb);
        assert_eq!(cells.len(), 3, "{nb}");
        assert_eq!(document::source(&cells[0]), "Intro\n\n```\nnot code\n```");
        assert_eq!(document::cell_type(&cells[1]), "code");
        assert_eq!(cells[1]["metadata"]["tags"], json!(["parameters"]));
        assert_eq!(document::source(&cells[2]), "after");
        let unclosed =
            read_markdown("```python\nx = 1\n", Path::new("t.md")).expect_err("unclosed");
        assert_eq!(unclosed.to_string(), "t.md:1: no closing \"```\" line");
    }

    #[test]
    fn metadata_on_marker_lines() {
        let mut meta = Map::new();
        meta.insert("tags".into(), json!(["parameters", "é"]));
        meta.insert("papermill".into(), json!({"duration": 0.1, "status": "ok"}));
        let text = metadata_text(&meta);
        assert_eq!(
            text,
            r#"tags=["parameters", "\u00e9"] papermill={"duration": 0.1, "status": "ok"}"#
        );
        assert_eq!(parse_metadata(&text), Ok(meta));
        assert_eq!(
            parse_metadata("Title words").expect("title")["title"],
            "Title words"
        );
        assert!(parse_metadata("tags=[oops").is_err());
    }
}
