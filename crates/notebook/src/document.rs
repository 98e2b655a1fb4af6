//! The notebook document: loading (upgrading to nbformat 4.5), saving like Python's
//! `nbformat.writes` (sorted keys, one-space indent, multi-line strings split), and the
//! small queries papermill makes (tagged cells, kernel name, language).
//!
//! The notebook is kept as JSON rather than typed structs so that every field of the input,
//! known or not, survives into the output notebook.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::error::{NotebookError, Result};

/// Tag of the cell holding a notebook's default parameters.
pub const PARAMETERS_TAG: &str = "parameters";
/// Tag of the cell papermill (and Rota) inject.
pub const INJECTED_TAG: &str = "injected-parameters";
/// Tag of papermill's error banner and anchor cells.
pub const ERROR_MARKER_TAG: &str = "papermill-error-cell-tag";

/// A random 8-hex-digit cell id, the shape nbformat uses.
pub fn new_cell_id() -> String {
    use rand::Rng as _;
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

fn split_lines(s: &str) -> Value {
    // Python's str.splitlines(True) on the separators notebooks contain.
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => Some(i + 1),
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => Some(i + 2),
            b'\r' => Some(i + 1),
            _ => None,
        };
        if let Some(end) = end {
            out.push(Value::String(s[start..end].to_string()));
            start = end;
            i = end;
        } else {
            i += 1;
        }
    }
    if start < s.len() {
        out.push(Value::String(s[start..].to_string()));
    }
    Value::Array(out)
}

fn split_bundle(data: &mut Value) {
    if let Some(map) = data.as_object_mut() {
        for (mime, v) in map.iter_mut() {
            if let Some(s) = v.as_str()
                && (mime.starts_with("text/")
                    || mime == "application/javascript"
                    || mime == "image/svg+xml")
            {
                *v = split_lines(s);
            }
        }
    }
}

fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, mut val) in entries {
                sort_keys(&mut val);
                map.insert(k, val);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// Serialise like Python's `nbformat.writes`: lines split, transient keys dropped,
/// keys sorted, one-space indent.
pub fn to_string(nb: &Value) -> String {
    let mut nb = nb.clone();
    if let Some(meta) = nb.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["orig_nbformat", "orig_nbformat_minor", "signature"] {
            meta.remove(k);
        }
    }
    if let Some(cells) = nb.get_mut("cells").and_then(Value::as_array_mut) {
        for cell in cells {
            if let Some(meta) = cell.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("trusted");
            }
            if let Some(src) = cell.get_mut("source")
                && let Some(s) = src.as_str()
            {
                *src = split_lines(s);
            }
            if let Some(atts) = cell.get_mut("attachments").and_then(Value::as_object_mut) {
                atts.values_mut().for_each(split_bundle);
            }
            if let Some(outputs) = cell.get_mut("outputs").and_then(Value::as_array_mut) {
                for out in outputs {
                    match out.get("output_type").and_then(Value::as_str) {
                        Some("execute_result" | "display_data") => {
                            if let Some(d) = out.get_mut("data") {
                                split_bundle(d);
                            }
                        }
                        Some("stream") => {
                            if let Some(t) = out.get_mut("text")
                                && let Some(s) = t.as_str()
                            {
                                *t = split_lines(s);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    sort_keys(&mut nb);
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(&nb, &mut ser).unwrap_or(());
    String::from_utf8(buf).unwrap_or_default()
}

/// Write the notebook atomically (temp file + rename), so readers never see half a file.
pub fn save(nb: &Value, path: &Path) -> Result<()> {
    let text = to_string(nb);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "notebook.ipynb".into());
    let tmp = match dir {
        Some(d) => d.join(format!(".{name}.rota-tmp")),
        None => Path::new(&format!(".{name}.rota-tmp")).to_path_buf(),
    };
    std::fs::write(&tmp, text).map_err(|e| NotebookError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NotebookError::io(path, e))
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
