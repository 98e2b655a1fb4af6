//! `rota notebook strip`: a notebook as it belongs in version control. Outputs, execution
//! counts and what a run records (papermill's metadata, execution timing, UI state) go;
//! sources, cell ids, tags and every other metadata key stay.

use serde_json::{Map, Value};

/// Notebook-level metadata keys removed: what a run or an editor session records.
const NOTEBOOK_KEYS: &[&str] = &["papermill", "signature", "widgets"];

/// Cell-level metadata keys removed: run bookkeeping and editor display state.
const CELL_KEYS: &[&str] = &[
    "papermill",
    "execution",
    "ExecuteTime",
    "collapsed",
    "scrolled",
    "heading_collapsed",
    "hidden",
];

fn remove_keys(meta: Option<&mut Value>, keys: &[&str]) {
    if let Some(Value::Object(map)) = meta {
        for key in keys {
            map.shift_remove(*key);
        }
    }
}

/// Strip `nb` in place. Returns whether anything changed.
pub fn strip(nb: &mut Value) -> bool {
    let before = nb.clone();
    remove_keys(nb.get_mut("metadata"), NOTEBOOK_KEYS);
    if let Some(Value::Array(cells)) = nb.get_mut("cells") {
        for cell in cells {
            if let Value::Object(cell) = cell {
                strip_cell(cell);
            }
        }
    }
    *nb != before
}

fn strip_cell(cell: &mut Map<String, Value>) {
    remove_keys(cell.get_mut("metadata"), CELL_KEYS);
    if cell.get("cell_type").and_then(Value::as_str) == Some("code") {
        cell.insert("outputs".into(), Value::Array(Vec::new()));
        cell.insert("execution_count".into(), Value::Null);
    }
}

/// The stripped text of notebook `text`, or `None` when stripping changes nothing (the
/// input then stays as it is, byte for byte, whatever its layout).
pub fn strip_text(text: &str, path: &std::path::Path) -> Result<Option<String>, super::ToolError> {
    let mut nb = super::parse_notebook(text, path)?;
    Ok(strip(&mut nb).then(|| super::notebook_text(&nb)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strips_outputs_counts_and_run_metadata_only() {
        let mut nb = json!({
            "cells": [
                {"cell_type": "code", "execution_count": 3, "id": "a",
                 "metadata": {"tags": ["parameters"], "papermill": {"status": "completed"},
                              "execution": {"iopub.status.busy": "x"}, "custom": 1},
                 "outputs": [{"output_type": "stream", "name": "stdout", "text": "hi"}],
                 "source": "a = 1"},
                {"cell_type": "markdown", "id": "b", "metadata": {"collapsed": true}, "source": "# T"}
            ],
            "metadata": {"papermill": {"duration": 1.0}, "kernelspec": {"name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5
        });
        assert!(strip(&mut nb));
        assert_eq!(
            nb,
            json!({
                "cells": [
                    {"cell_type": "code", "execution_count": null, "id": "a",
                     "metadata": {"tags": ["parameters"], "custom": 1}, "outputs": [],
                     "source": "a = 1"},
                    {"cell_type": "markdown", "id": "b", "metadata": {}, "source": "# T"}
                ],
                "metadata": {"kernelspec": {"name": "python3"}},
                "nbformat": 4, "nbformat_minor": 5
            })
        );
        assert!(
            !strip(&mut nb),
            "a stripped notebook has nothing left to strip"
        );
    }
}
