//! The notebook document: loading (upgrading to nbformat 4.5), saving like Python's
//! `nbformat.writes` (sorted keys, one-space indent, multi-line strings split), and the
//! small queries papermill makes (tagged cells, kernel name, language).
//!
//! The notebook is kept as JSON rather than typed structs so that every field of the input,
//! known or not, survives into the output notebook.

use std::path::{Path, PathBuf};

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::error::{NotebookError, Result};
use crate::redact::Redaction;

/// Tag of the cell holding a notebook's default parameters.
pub const PARAMETERS_TAG: &str = "parameters";
/// Tag of the cell papermill (and Rota) inject.
pub const INJECTED_TAG: &str = "injected-parameters";
/// Tag of papermill's error banner and anchor cells.
pub const ERROR_MARKER_TAG: &str = "papermill-error-cell-tag";

/// A random 8-hex-digit cell id, the shape nbformat uses.
pub fn new_cell_id() -> String {
    use rand::RngExt as _;
    let mut rng = rand::rng();
    (0..8)
        .map(|_| char::from_digit(rng.random_range(0..16u32), 16).unwrap_or('0'))
        .collect()
}

/// A new cell of `cell_type` with `source` and `tags`.
pub fn new_cell(cell_type: &str, source: &str, tags: &[&str]) -> Value {
    let mut cell = json!({
        "cell_type": cell_type,
        "id": new_cell_id(),
        "metadata": {"tags": tags},
        "source": source,
    });
    if cell_type == "code" {
        cell["execution_count"] = Value::Null;
        cell["outputs"] = json!([]);
    }
    cell
}

fn join_multiline(v: &mut Value) {
    if let Value::Array(parts) = v
        && parts.iter().all(Value::is_string)
    {
        let joined: String = parts.iter().filter_map(Value::as_str).collect();
        *v = Value::String(joined);
    }
}

/// Parse notebook JSON text and bring it to nbformat 4.5 with papermill's bookkeeping
/// fields (`metadata.papermill`, per-cell `tags` and `papermill`).
pub fn parse(text: &str, path: &Path) -> Result<Value> {
    let bad = |reason: String| NotebookError::BadNotebook {
        path: path.to_path_buf(),
        reason,
    };
    let mut nb: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let major = nb.get("nbformat").and_then(Value::as_i64).unwrap_or(0);
    if major < 4 {
        // Older formats go through the nbformat crate's upgrade path.
        let upgraded = match nbformat::parse_notebook(text).map_err(|e| bad(e.to_string()))? {
            nbformat::Notebook::V3(v3) => {
                nbformat::upgrade_v3_notebook(v3).map_err(|e| bad(e.to_string()))?
            }
            nbformat::Notebook::Legacy(legacy) => {
                nbformat::upgrade_legacy_notebook(legacy).map_err(|e| bad(e.to_string()))?
            }
            _ => return Err(bad(format!("unsupported nbformat {major}"))),
        };
        nb = serde_json::to_value(&upgraded).map_err(|e| bad(e.to_string()))?;
    } else if major > 4 {
        return Err(bad(format!("unsupported nbformat {major}")));
    }
    let obj = nb
        .as_object_mut()
        .ok_or_else(|| bad("top level is not an object".into()))?;
    let minor = obj
        .get("nbformat_minor")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    obj.insert("nbformat".into(), json!(4));
    obj.insert("nbformat_minor".into(), json!(minor.max(5)));
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj.insert("metadata".into(), json!({}));
    }
    let cells = obj
        .get_mut("cells")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad("no `cells` list".into()))?;
    for cell in cells.iter_mut() {
        let cell = cell
            .as_object_mut()
            .ok_or_else(|| bad("a cell is not an object".into()))?;
        if minor < 5 || !cell.get("id").is_some_and(Value::is_string) {
            cell.insert("id".into(), Value::String(new_cell_id()));
        }
        if let Some(src) = cell.get_mut("source") {
            join_multiline(src);
        } else {
            cell.insert("source".into(), Value::String(String::new()));
        }
        let meta = cell
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| bad("cell metadata is not an object".into()))?;
        meta.entry("tags").or_insert_with(|| json!([]));
        meta.entry("papermill").or_insert_with(|| json!({}));
    }
    let meta = nb["metadata"]
        .as_object_mut()
        .ok_or_else(|| bad("metadata is not an object".into()))?;
    meta.entry("papermill").or_insert_with(|| {
        json!({
            "default_parameters": {},
            "parameters": {},
            "environment_variables": {},
            "version": papermill_version(),
        })
    });
    Ok(nb)
}

/// The version string recorded in `metadata.papermill.version`.
pub fn papermill_version() -> String {
    format!("rota-{}", env!("CARGO_PKG_VERSION"))
}

/// Read and parse a notebook file.
pub fn load(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| NotebookError::io(path, e))?;
    parse(&text, path)
}

/// Python's `str.splitlines(True)` on the separators notebooks contain, borrowed.
pub(crate) fn split_lines(s: &str) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let mut i = start;
        while i < bytes.len() {
            let end = match bytes[i] {
                b'\n' => Some(i + 1),
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => Some(i + 2),
                b'\r' => Some(i + 1),
                _ => None,
            };
            if let Some(end) = end {
                let line = &s[start..end];
                start = end;
                return Some(line);
            }
            i += 1;
        }
        let line = &s[start..];
        start = bytes.len();
        Some(line)
    })
}

/// Where a value sits in the notebook, which decides how `nbformat.writes` treats it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Anywhere else: keys sorted, nothing dropped or split.
    Plain,
    /// The notebook itself.
    Notebook,
    /// `metadata` of the notebook (signature and original format dropped).
    NotebookMeta,
    /// The `cells` list.
    Cells,
    /// One cell.
    Cell,
    /// A cell's `metadata` (`trusted` dropped).
    CellMeta,
    /// A cell's `attachments`: name → mime bundle.
    Attachments,
    /// A mime bundle: text-like values split into lines.
    Bundle,
    /// A cell's `outputs` list.
    Outputs,
    /// One output.
    Output,
    /// A multi-line string, written as a list of lines.
    Lines,
}

impl Place {
    fn dropped(self, key: &str) -> bool {
        match self {
            Place::NotebookMeta => {
                matches!(key, "orig_nbformat" | "orig_nbformat_minor" | "signature")
            }
            Place::CellMeta => key == "trusted",
            _ => false,
        }
    }

    /// The place of the value under `key` of an object at this place.
    fn child(self, key: &str, parent: &Map<String, Value>) -> Place {
        match (self, key) {
            (Place::Notebook, "metadata") => Place::NotebookMeta,
            (Place::Notebook, "cells") => Place::Cells,
            (Place::Cell, "metadata") => Place::CellMeta,
            (Place::Cell, "source") => Place::Lines,
            (Place::Cell, "attachments") => Place::Attachments,
            (Place::Cell, "outputs") => Place::Outputs,
            (Place::Attachments, _) => Place::Bundle,
            (Place::Bundle, mime)
                if mime.starts_with("text/")
                    || mime == "application/javascript"
                    || mime == "image/svg+xml" =>
            {
                Place::Lines
            }
            (Place::Output, "data")
                if matches!(
                    parent.get("output_type").and_then(Value::as_str),
                    Some("execute_result" | "display_data")
                ) =>
            {
                Place::Bundle
            }
            (Place::Output, "text")
                if parent.get("output_type").and_then(Value::as_str) == Some("stream") =>
            {
                Place::Lines
            }
            _ => Place::Plain,
        }
    }
}

/// A borrowed view of a notebook value that serialises the way `nbformat.writes` would,
/// without copying or reordering the notebook itself.
struct Written<'a> {
    value: &'a Value,
    place: Place,
    /// Text of the first cells, already serialised (only read at [`Place::Notebook`]).
    cells: &'a [Box<RawValue>],
    /// Masks secrets in every string and key written.
    redact: Option<&'a Redaction>,
}

impl<'a> Written<'a> {
    fn at(&self, value: &'a Value, place: Place) -> Written<'a> {
        Written {
            value,
            place,
            cells: self.cells,
            redact: self.redact,
        }
    }
}

/// One cell of the `cells` list: serialised now, or text kept from an earlier save.
enum CellText<'a> {
    Fresh(Written<'a>),
    Kept(&'a RawValue),
}

impl serde::Serialize for CellText<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            CellText::Fresh(w) => w.serialize(ser),
            CellText::Kept(raw) => raw.serialize(ser),
        }
    }
}

impl serde::Serialize for Written<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap as _, SerializeSeq as _};
        match self.value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> =
                    map.iter().filter(|(k, _)| !self.place.dropped(k)).collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut m = ser.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    let child = self.at(v, self.place.child(k, map));
                    match self.redact {
                        Some(r) => m.serialize_entry(&r.text(k), &child)?,
                        None => m.serialize_entry(k, &child)?,
                    }
                }
                m.end()
            }
            Value::Array(items) if self.place == Place::Cells => {
                let mut seq = ser.serialize_seq(Some(items.len()))?;
                for (i, cell) in items.iter().enumerate() {
                    match self.cells.get(i) {
                        Some(raw) => seq.serialize_element(&CellText::Kept(raw))?,
                        None => {
                            seq.serialize_element(&CellText::Fresh(self.at(cell, Place::Cell)))?
                        }
                    }
                }
                seq.end()
            }
            Value::Array(items) => {
                let place = match self.place {
                    Place::Outputs => Place::Output,
                    _ => Place::Plain,
                };
                let mut seq = ser.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&self.at(value, place))?;
                }
                seq.end()
            }
            Value::String(s) if self.place == Place::Lines => match self.redact {
                Some(r) => ser.collect_seq(split_lines(s).map(|line| r.text(line))),
                None => ser.collect_seq(split_lines(s)),
            },
            Value::String(s) => match self.redact {
                Some(r) => ser.serialize_str(&r.text(s)),
                None => ser.serialize_str(s),
            },
            other => other.serialize(ser),
        }
    }
}

/// Serialise `view` with nbformat's one-space indent into `buf` (cleared first).
fn write_view(view: &Written<'_>, buf: &mut Vec<u8>) {
    buf.clear();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut *buf, fmt);
    // Serialising a JSON value into memory cannot fail: every key is a string and
    // `Vec<u8>` accepts every write.
    serde::Serialize::serialize(view, &mut ser)
        .expect("serialising a JSON value into memory cannot fail");
}

/// Serialise like Python's `nbformat.writes` into `buf` (cleared first): multi-line
/// strings split, transient keys dropped, keys sorted, one-space indent.
///
/// The notebook is only borrowed, so a save costs one pass over it and no copy of it.
pub fn write_to(nb: &Value, buf: &mut Vec<u8>) {
    write_masked(nb, None, buf);
}

/// [`write_to`], masking secrets in every string and key when `redact` is given.
fn write_masked(nb: &Value, redact: Option<&Redaction>, buf: &mut Vec<u8>) {
    let view = Written {
        value: nb,
        place: Place::Notebook,
        cells: &[],
        redact,
    };
    write_view(&view, buf);
}

/// Serialise like Python's `nbformat.writes` (see [`write_to`]).
pub fn to_string(nb: &Value) -> String {
    let mut buf = Vec::new();
    write_to(nb, &mut buf);
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

/// Writes one output notebook again and again: after every cell of a run.
///
/// Each save goes to a temporary file beside the output that is then renamed over it, so
/// a reader (or a crash) always finds either the previous notebook or the new one, whole.
/// The buffer is reused, and so is the text of cells the caller declares settled (see
/// [`NotebookWriter::save_settled`]): a run's saves then cost the size of the file, not
/// the work of serialising every cell again after every cell.
#[derive(Debug)]
pub struct NotebookWriter {
    path: PathBuf,
    tmp: PathBuf,
    buf: Vec<u8>,
    /// Text of cells `0..settled.len()`, indented for their place in the notebook.
    settled: Vec<Box<RawValue>>,
    /// Masks secrets in everything written, every save included: a partial notebook
    /// left by a crash is as masked as the final one.
    redact: Option<Redaction>,
}

impl NotebookWriter {
    /// A writer for the output notebook at `path`.
    pub fn new(path: &Path) -> NotebookWriter {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "notebook.ipynb".into());
        let tmp_name = format!(".{name}.rota-tmp");
        let tmp = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => dir.join(tmp_name),
            None => PathBuf::from(tmp_name),
        };
        NotebookWriter {
            path: path.to_path_buf(),
            tmp,
            buf: Vec::new(),
            settled: Vec::new(),
            redact: None,
        }
    }

    /// Masks secrets with `redact` in everything this writer writes.
    pub fn redacting(mut self, redact: Option<Redaction>) -> NotebookWriter {
        self.redact = redact;
        self.settled.clear();
        self
    }

    /// The output notebook's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write `nb` atomically (temporary file + rename), serialising every cell.
    pub fn save(&mut self, nb: &Value) -> Result<()> {
        write_masked(nb, self.redact.as_ref(), &mut self.buf);
        self.write_file()
    }

    /// Write `nb` like [`NotebookWriter::save`], reusing the text of cells `..settled`
    /// from earlier calls; cells settled for the first time are serialised once and kept.
    ///
    /// The caller promises that a cell, once settled, does not change (or is passed to
    /// [`NotebookWriter::unsettle`] when it does) and that no cell is inserted or removed
    /// before it.
    pub fn save_settled(&mut self, nb: &Value, settled: usize) -> Result<()> {
        let cells = cells(nb);
        let settled = settled.min(cells.len());
        while self.settled.len() < settled {
            let cell = &cells[self.settled.len()];
            let view = Written {
                value: cell,
                place: Place::Cell,
                cells: &[],
                redact: self.redact.as_ref(),
            };
            write_view(&view, &mut self.buf);
            self.settled.push(indented_cell(&self.buf));
        }
        let view = Written {
            value: nb,
            place: Place::Notebook,
            cells: &self.settled[..settled],
            redact: self.redact.as_ref(),
        };
        write_view(&view, &mut self.buf);
        self.write_file()
    }

    /// Cell `index` changed after it was settled: serialise it (and those after it) again.
    pub fn unsettle(&mut self, index: usize) {
        self.settled.truncate(index);
    }

    fn write_file(&mut self) -> Result<()> {
        // `nbformat.write` ends the file with a newline; so does papermill's output.
        self.buf.push(b'\n');
        std::fs::write(&self.tmp, &self.buf).map_err(|e| NotebookError::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| NotebookError::io(&self.path, e))
    }
}

/// A cell serialised on its own, re-indented for its place in the notebook's `cells`
/// list (two levels deep). JSON strings hold no raw newline, so every newline in the
/// text is a line break of the layout.
fn indented_cell(text: &[u8]) -> Box<RawValue> {
    let text = std::str::from_utf8(text).expect("serde_json writes UTF-8");
    RawValue::from_string(text.replace('\n', "\n  "))
        .expect("a serialised cell is valid JSON, and indenting it keeps it so")
}

/// Write the notebook atomically (temp file + rename), so readers never see half a file.
pub fn save(nb: &Value, path: &Path) -> Result<()> {
    NotebookWriter::new(path).save(nb)
}

/// The cells of a notebook (empty when malformed).
pub fn cells(nb: &Value) -> &[Value] {
    nb.get("cells")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The cells, mutably.
pub fn cells_mut(nb: &mut Value) -> &mut Vec<Value> {
    if !nb.get("cells").is_some_and(Value::is_array) {
        nb["cells"] = json!([]);
    }
    match nb.get_mut("cells") {
        Some(Value::Array(c)) => c,
        _ => unreachable!("cells was just made an array"),
    }
}

/// Whether `cell` carries `tag`.
pub fn has_tag(cell: &Value, tag: &str) -> bool {
    cell.pointer("/metadata/tags")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|v| v.as_str() == Some(tag)))
}

/// Index of the first cell tagged `tag`.
pub fn first_tagged(nb: &Value, tag: &str) -> Option<usize> {
    cells(nb).iter().position(|c| has_tag(c, tag))
}

/// A cell's source as one string.
pub fn source(cell: &Value) -> String {
    match cell.get("source") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

/// The cell's type (`code`, `markdown`, `raw`).
pub fn cell_type(cell: &Value) -> &str {
    cell.get("cell_type").and_then(Value::as_str).unwrap_or("")
}

/// Kernel name: the override, else `metadata.kernelspec.name`.
pub fn kernel_name(nb: &Value, override_name: Option<&str>) -> Option<String> {
    override_name
        .map(str::to_string)
        .or_else(|| {
            nb.pointer("/metadata/kernelspec/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
}

/// Language: the override, else `language_info.name`, else `kernelspec.language`.
pub fn language(nb: &Value, override_lang: Option<&str>) -> Option<String> {
    override_lang
        .map(str::to_string)
        .or_else(|| {
            nb.pointer("/metadata/language_info/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            nb.pointer("/metadata/kernelspec/language")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
}

/// Remove papermill's error banner and anchor cells left by an earlier failed run.
pub fn remove_error_markers(nb: &mut Value) {
    cells_mut(nb).retain(|c| !has_tag(c, ERROR_MARKER_TAG));
}

/// `metadata.papermill` as a mutable map (created when missing).
pub fn papermill_meta(nb: &mut Value) -> &mut Map<String, Value> {
    if !nb
        .pointer("/metadata/papermill")
        .is_some_and(Value::is_object)
    {
        nb["metadata"]["papermill"] = json!({});
    }
    match nb.pointer_mut("/metadata/papermill") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata.papermill was just made an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys unsorted, transient keys present, strings not yet split.
    const NOTEBOOK: &str = r##"{"nbformat": 4, "nbformat_minor": 5,
 "metadata": {"signature": "sha256:x", "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}, "b": {"z": 1, "a": [1, 2.5]}},
 "cells": [
  {"id": "m1", "cell_type": "markdown", "source": "# Title\r\nline\rlast", "metadata": {"trusted": true, "tags": []},
   "attachments": {"a.png": {"image/png": "AAAA\nBBBB", "text/plain": "x\ny"}}},
  {"id": "c1", "cell_type": "code", "source": "print('hi')\nx = {\"k\": 1}\n", "metadata": {"tags": ["parameters"]}, "execution_count": 1,
   "outputs": [
    {"output_type": "stream", "name": "stdout", "text": "hi\n\u00e9\n"},
    {"output_type": "display_data", "metadata": {}, "data": {"text/html": "<b>\n</b>", "image/svg+xml": "<svg>\n</svg>", "image/png": "iVBOR\nw0K", "application/json": {"k": "a\nb"}}},
    {"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": {"text/plain": "{'k': 1}"}},
    {"output_type": "error", "ename": "ValueError", "evalue": "bad\nvalue", "traceback": ["line 1\nline 2"]}]},
  {"id": "r1", "cell_type": "raw", "source": "", "metadata": {}}]}"##;

    /// `nbformat.writes` of `NOTEBOOK` (Python's nbformat 5.10).
    const WRITTEN: &str = r##"{
 "cells": [
  {
   "attachments": {
    "a.png": {
     "image/png": "AAAA\nBBBB",
     "text/plain": [
      "x\n",
      "y"
     ]
    }
   },
   "cell_type": "markdown",
   "id": "m1",
   "metadata": {
    "tags": []
   },
   "source": [
    "# Title\r\n",
    "line\r",
    "last"
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 1,
   "id": "c1",
   "metadata": {
    "tags": [
     "parameters"
    ]
   },
   "outputs": [
    {
     "name": "stdout",
     "output_type": "stream",
     "text": [
      "hi\n",
      "é\n"
     ]
    },
    {
     "data": {
      "application/json": {
       "k": "a\nb"
      },
      "image/png": "iVBOR\nw0K",
      "image/svg+xml": [
       "<svg>\n",
       "</svg>"
      ],
      "text/html": [
       "<b>\n",
       "</b>"
      ]
     },
     "metadata": {},
     "output_type": "display_data"
    },
    {
     "data": {
      "text/plain": [
       "{'k': 1}"
      ]
     },
     "execution_count": 1,
     "metadata": {},
     "output_type": "execute_result"
    },
    {
     "ename": "ValueError",
     "evalue": "bad\nvalue",
     "output_type": "error",
     "traceback": [
      "line 1\nline 2"
     ]
    }
   ],
   "source": [
    "print('hi')\n",
    "x = {\"k\": 1}\n"
   ]
  },
  {
   "cell_type": "raw",
   "id": "r1",
   "metadata": {},
   "source": []
  }
 ],
 "metadata": {
  "b": {
   "a": [
    1,
    2.5
   ],
   "z": 1
  },
  "kernelspec": {
   "display_name": "Python 3",
   "language": "python",
   "name": "python3"
  }
 },
 "nbformat": 4,
 "nbformat_minor": 5
}"##;

    fn notebook() -> Value {
        serde_json::from_str(NOTEBOOK).expect("test notebook is JSON")
    }

    #[test]
    fn writes_like_nbformat() {
        assert_eq!(to_string(&notebook()), WRITTEN);
    }

    #[test]
    fn settled_cells_are_written_as_when_fresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.ipynb");
        let mut nb = notebook();
        let mut writer = NotebookWriter::new(&path);
        let read = || std::fs::read_to_string(&path).expect("saved");
        for settled in [0, 1, 2, 3, 10] {
            writer.save_settled(&nb, settled).expect("saves");
            assert_eq!(read(), format!("{WRITTEN}\n"), "{settled} cells settled");
        }
        // A settled cell that changes is written as it was until it is unsettled.
        nb["cells"][1]["execution_count"] = json!(7);
        writer.save_settled(&nb, 3).expect("saves");
        assert_eq!(read(), format!("{WRITTEN}\n"));
        writer.unsettle(1);
        writer.save_settled(&nb, 3).expect("saves");
        assert_eq!(read(), format!("{}\n", to_string(&nb)));
        assert!(read().contains(r#""execution_count": 7,"#));
        writer.save(&nb).expect("saves");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["out.ipynb"], "no temporary file is left behind");
    }
}
