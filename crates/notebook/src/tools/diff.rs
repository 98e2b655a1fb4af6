//! `rota notebook diff`: which cells were added, removed or changed between two notebooks.
//!
//! Cells are matched by a line diff over one key per cell (its id when both notebooks
//! have ids, else its type and source), so an inserted cell shows as one addition rather
//! than every later cell as changed. Matched cells whose content differs are reported
//! with a unified diff of the source. Outputs and execution counts count only with
//! `--outputs`.

use serde::Serialize;
use serde_json::Value;
use similar::{Algorithm, DiffOp};

use crate::document;

/// One difference between notebook A and notebook B.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum CellChange {
    /// A cell only in B.
    Added {
        /// Its index in B.
        index_b: usize,
        /// Its type.
        cell_type: String,
        /// Its source.
        source: String,
    },
    /// A cell only in A.
    Removed {
        /// Its index in A.
        index_a: usize,
        /// Its type.
        cell_type: String,
        /// Its source.
        source: String,
    },
    /// A cell in both whose content differs.
    Changed {
        /// Its index in A.
        index_a: usize,
        /// Its index in B.
        index_b: usize,
        /// Its type in B.
        cell_type: String,
        /// What differs: `source`, `cell_type`, `metadata`, `outputs`, `execution_count`.
        fields: Vec<String>,
        /// Unified diff of the source (empty when the source is the same).
        source_diff: String,
    },
}

/// Options of a diff.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Compare outputs and execution counts too.
    pub outputs: bool,
}

/// The key cells are matched on.
fn match_key(cell: &Value, by_id: bool) -> String {
    match cell.get("id").and_then(Value::as_str) {
        Some(id) if by_id => format!("id:{id}"),
        _ => format!(
            "{}\u{0}{}",
            document::cell_type(cell),
            document::source(cell)
        ),
    }
}

fn all_have_ids(cells: &[Value]) -> bool {
    cells
        .iter()
        .all(|c| c.get("id").is_some_and(Value::is_string))
}

/// Fields of two matched cells that differ.
fn changed_fields(a: &Value, b: &Value, options: DiffOptions) -> Vec<String> {
    let mut fields = Vec::new();
    if document::cell_type(a) != document::cell_type(b) {
        fields.push("cell_type".to_owned());
    }
    if document::source(a) != document::source(b) {
        fields.push("source".to_owned());
    }
    let empty = Value::Object(Default::default());
    if a.get("metadata").unwrap_or(&empty) != b.get("metadata").unwrap_or(&empty) {
        fields.push("metadata".to_owned());
    }
    if options.outputs {
        for key in ["outputs", "execution_count"] {
            if a.get(key) != b.get(key) {
                fields.push(key.to_owned());
            }
        }
    }
    fields
}

fn unified(a: &str, b: &str, label_a: &str, label_b: &str) -> String {
    if a == b {
        return String::new();
    }
    let mut a = a.to_owned();
    let mut b = b.to_owned();
    // Whole lines on both sides, so a missing final newline does not show as a change.
    for s in [&mut a, &mut b] {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
    }
    similar::TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .diff_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(label_a, label_b)
        .to_string()
}

/// The differences between notebooks `a` and `b` (named `name_a`, `name_b` in diffs).
pub fn diff(
    a: &Value,
    b: &Value,
    name_a: &str,
    name_b: &str,
    options: DiffOptions,
) -> Vec<CellChange> {
    let cells_a = document::cells(a);
    let cells_b = document::cells(b);
    let by_id = all_have_ids(cells_a) && all_have_ids(cells_b);
    let keys_a: Vec<String> = cells_a.iter().map(|c| match_key(c, by_id)).collect();
    let keys_b: Vec<String> = cells_b.iter().map(|c| match_key(c, by_id)).collect();
    let ops = similar::capture_diff_slices(Algorithm::Myers, &keys_a, &keys_b);
    let mut changes = Vec::new();
    let removed = |i: usize| CellChange::Removed {
        index_a: i,
        cell_type: document::cell_type(&cells_a[i]).to_owned(),
        source: document::source(&cells_a[i]),
    };
    let added = |j: usize| CellChange::Added {
        index_b: j,
        cell_type: document::cell_type(&cells_b[j]).to_owned(),
        source: document::source(&cells_b[j]),
    };
    let compare = |i: usize, j: usize, changes: &mut Vec<CellChange>| {
        let (ca, cb) = (&cells_a[i], &cells_b[j]);
        let fields = changed_fields(ca, cb, options);
        if !fields.is_empty() {
            changes.push(CellChange::Changed {
                index_a: i,
                index_b: j,
                cell_type: document::cell_type(cb).to_owned(),
                fields,
                source_diff: unified(
                    &document::source(ca),
                    &document::source(cb),
                    &format!("{name_a} cell {i}"),
                    &format!("{name_b} cell {j}"),
                ),
            });
        }
    };
    for op in ops {
        match op {
            DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => {
                for k in 0..len {
                    compare(old_index + k, new_index + k, &mut changes);
                }
            }
            DiffOp::Delete {
                old_index, old_len, ..
            } => {
                changes.extend((old_index..old_index + old_len).map(removed));
            }
            DiffOp::Insert {
                new_index, new_len, ..
            } => {
                changes.extend((new_index..new_index + new_len).map(added));
            }
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                // Cells replaced in place pair up as changed; the rest are added/removed.
                let paired = old_len.min(new_len);
                for k in 0..paired {
                    compare(old_index + k, new_index + k, &mut changes);
                }
                changes.extend((old_index + paired..old_index + old_len).map(removed));
                changes.extend((new_index + paired..new_index + new_len).map(added));
            }
        }
    }
    changes
}

/// Human-readable rendering of `changes`.
pub fn render_human(changes: &[CellChange]) -> String {
    let mut out = String::new();
    for change in changes {
        match change {
            CellChange::Added {
                index_b,
                cell_type,
                source,
            } => {
                out.push_str(&format!("+ cell {index_b} ({cell_type}) added\n"));
                for line in source.lines() {
                    out.push_str(&format!("+ {line}\n"));
                }
            }
            CellChange::Removed {
                index_a,
                cell_type,
                source,
            } => {
                out.push_str(&format!("- cell {index_a} ({cell_type}) removed\n"));
                for line in source.lines() {
                    out.push_str(&format!("- {line}\n"));
                }
            }
            CellChange::Changed {
                index_a,
                index_b,
                cell_type,
                fields,
                source_diff,
            } => {
                let at = if index_a == index_b {
                    format!("cell {index_a}")
                } else {
                    format!("cell {index_a} → {index_b}")
                };
                out.push_str(&format!(
                    "~ {at} ({cell_type}) changed: {}\n",
                    fields.join(", ")
                ));
                out.push_str(source_diff);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nb(cells: &[(&str, &str)]) -> Value {
        let cells: Vec<Value> = cells
            .iter()
            .map(|(id, src)| {
                json!({"cell_type": "code", "id": id, "metadata": {}, "source": src,
                                    "outputs": [], "execution_count": null})
            })
            .collect();
        json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    }

    #[test]
    fn an_inserted_cell_is_one_addition() {
        let a = nb(&[("x", "a = 1"), ("y", "b = 2")]);
        let b = nb(&[("x", "a = 1"), ("n", "new"), ("y", "b = 3")]);
        let changes = diff(&a, &b, "A", "B", DiffOptions::default());
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(matches!(&changes[0], CellChange::Added { index_b: 1, .. }));
        match &changes[1] {
            CellChange::Changed {
                index_a: 1,
                index_b: 2,
                fields,
                source_diff,
                ..
            } => {
                assert_eq!(fields, &["source"]);
                assert!(source_diff.contains("-b = 2\n+b = 3\n"), "{source_diff}");
            }
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn outputs_count_only_when_asked() {
        let a = nb(&[("x", "a = 1")]);
        let mut b = a.clone();
        b["cells"][0]["execution_count"] = json!(1);
        assert!(diff(&a, &b, "A", "B", DiffOptions::default()).is_empty());
        let changes = diff(&a, &b, "A", "B", DiffOptions { outputs: true });
        assert!(
            matches!(&changes[..], [CellChange::Changed { fields, .. }] if fields == &["execution_count"])
        );
    }
}
