//! Resuming a failed notebook from the cell that failed, in a fresh kernel.
//!
//! A kernel's state dies with it, so resuming means rebuilding enough of it: the cells
//! before the failed one that are *replayed* run again, the others keep the outputs the
//! failed run gave them and do not run. What is replayed is the `parameters` cell, the
//! injected-parameters cell and the cells tagged [`SETUP_TAG`]; when no cell before the
//! failure is tagged, every code cell before it is (the safe choice, and the log says it
//! was made). Then execution continues from the failed cell to the end.
//!
//! The notebook run is the *current* input notebook, prepared as usual (so a fix made to
//! the failing cell since is what runs), with the earlier cells' outputs taken from the
//! failed run's executed notebook. Cells are matched by their nbformat id, or by position
//! when the two notebooks have the same number of cells; a notebook whose shape changed
//! otherwise is refused rather than resumed at a guessed cell.
//!
//! What was done is recorded in the output notebook's `metadata.rota.resume` and in each
//! kept or replayed cell's `metadata.rota`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::document::{self, INJECTED_TAG, PARAMETERS_TAG};
use crate::error::{NotebookError, Result};

/// The tag that marks a cell a resumed notebook runs again before its failed cell.
pub const SETUP_TAG: &str = "setup";

/// Where to resume from: the executed notebook of the failed run.
#[derive(Debug, Clone)]
pub struct Resume {
    /// The failed run's executed (output) notebook, error banner cells included.
    pub previous: Value,
    /// What the failed run was, for the record (`run 01H…`, a file name).
    pub source: String,
}

/// How a resume goes, decided before the kernel starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePlan {
    /// Index of the cell execution continues from (the one that failed).
    pub failed: usize,
    /// Cells before it that run again, in order.
    pub replayed: Vec<usize>,
    /// Cells before it that keep the failed run's outputs and do not run.
    pub kept: BTreeSet<usize>,
    /// Whether cells tagged [`SETUP_TAG`] chose what is replayed (else: every code cell
    /// before the failed one).
    pub tagged: bool,
}

impl ResumePlan {
    /// A line for the step's log: what is replayed and where execution continues (cells
    /// numbered from 1, as the log's other cell lines are).
    pub fn describe(&self) -> String {
        let replayed = if self.replayed.is_empty() {
            "no cell".to_owned()
        } else {
            let numbers: Vec<String> = self.replayed.iter().map(|i| (i + 1).to_string()).collect();
            format!("cells {}", numbers.join(", "))
        };
        let why = if self.tagged {
            "the parameters cells and the cells tagged `setup`"
        } else {
            "no cell before it is tagged `setup`, so every cell before it"
        };
        format!(
            "resuming at cell {}: replaying {replayed} ({why}); {} earlier cell(s) keep their outputs",
            self.failed + 1,
            self.kept.len(),
        )
    }
}

/// Decides the resume of `nb` (the prepared input notebook) from `resume`, and gives the
/// cells that are not replayed the failed run's outputs. Records the plan in `nb`'s
/// metadata.
pub fn apply(nb: &mut Value, resume: &Resume) -> Result<ResumePlan> {
    let mut previous = resume.previous.clone();
    document::remove_error_markers(&mut previous);
    let prev_cells = document::cells(&previous);
    let stopped = stopped_cell(prev_cells).ok_or_else(|| {
        refused(format!(
            "the notebook of {} has no failed or interrupted cell to resume from",
            resume.source
        ))
    })?;
    let counterpart = Counterparts::new(prev_cells, document::cells(nb));
    let failed = counterpart.in_current(stopped).ok_or_else(|| {
        refused(format!(
            "the notebook changed since {} ({} cells, was {}) and its failed cell {} \
             cannot be found in it by id",
            resume.source,
            document::cells(nb).len(),
            prev_cells.len(),
            stopped + 1
        ))
    })?;
    let cells = document::cells(nb);
    let is_code = |i: &usize| document::cell_type(&cells[*i]) == "code";
    let tagged = (0..failed).any(|i| document::has_tag(&cells[i], SETUP_TAG));
    let replayed: Vec<usize> = (0..failed)
        .filter(is_code)
        .filter(|&i| {
            !tagged
                || [PARAMETERS_TAG, INJECTED_TAG, SETUP_TAG]
                    .iter()
                    .any(|tag| document::has_tag(&cells[i], tag))
        })
        .collect();
    let kept: BTreeSet<usize> = (0..failed).filter(|i| !replayed.contains(i)).collect();
    let plan = ResumePlan {
        failed,
        replayed,
        kept,
        tagged,
    };
    // Where each kept cell's past is, found before the notebook changes.
    let pasts: Vec<(usize, Option<usize>)> = plan
        .kept
        .iter()
        .map(|&i| (i, counterpart.in_previous(i)))
        .collect();
    keep_outputs(nb, prev_cells, &pasts, &plan);
    record(nb, resume, &plan);
    Ok(plan)
}

fn refused(reason: String) -> NotebookError {
    NotebookError::Resume(reason)
}

/// The first cell the failed run did not complete: the one papermill's metadata marks
/// failed (or still running, for a kernel that died or a run that was stopped).
fn stopped_cell(cells: &[Value]) -> Option<usize> {
    cells.iter().position(|cell| {
        let status = cell
            .pointer("/metadata/papermill/status")
            .and_then(Value::as_str);
        matches!(status, Some("failed" | "running"))
            || cell.pointer("/metadata/papermill/exception") == Some(&json!(true))
    })
}

/// Which cell of the previous notebook is which of the current one.
struct Counterparts<'a> {
    previous: &'a [Value],
    current: &'a [Value],
    same_shape: bool,
}

impl<'a> Counterparts<'a> {
    fn new(previous: &'a [Value], current: &'a [Value]) -> Counterparts<'a> {
        Counterparts {
            previous,
            current,
            same_shape: previous.len() == current.len(),
        }
    }

    /// The current index of the previous notebook's cell `index`: by id when it has one
    /// the current notebook has too, else by position when the shapes agree. (Injected
    /// cells get a new id each time, so they match by position only.)
    fn in_current(&self, index: usize) -> Option<usize> {
        if let Some(id) = cell_id(&self.previous[index])
            && let Some(found) = self.current.iter().position(|c| cell_id(c) == Some(id))
        {
            return Some(found);
        }
        self.same_shape.then_some(index)
    }

    /// The previous notebook's counterpart of the current cell `index`.
    fn in_previous(&self, index: usize) -> Option<usize> {
        if let Some(id) = cell_id(&self.current[index])
            && let Some(found) = self.previous.iter().position(|c| cell_id(c) == Some(id))
        {
            return Some(found);
        }
        self.same_shape.then_some(index)
    }
}

fn cell_id(cell: &Value) -> Option<&str> {
    cell.get("id").and_then(Value::as_str)
}

/// Gives each kept cell the failed run's outputs, execution count and timing, when the
/// previous notebook has it with the same source (a cell edited since shows no stale
/// output for code it did not run).
fn keep_outputs(
    nb: &mut Value,
    prev_cells: &[Value],
    pasts: &[(usize, Option<usize>)],
    plan: &ResumePlan,
) {
    let cells = document::cells_mut(nb);
    for &(index, previous) in pasts {
        let cell = &mut cells[index];
        let from = previous
            .map(|p| &prev_cells[p])
            .filter(|p| document::source(p) == document::source(cell));
        match from {
            Some(prev) => {
                for key in ["outputs", "execution_count"] {
                    if let Some(value) = prev.get(key) {
                        cell[key] = value.clone();
                    }
                }
                if let Some(meta) = prev.pointer("/metadata/papermill") {
                    cell["metadata"]["papermill"] = meta.clone();
                }
                if let Some(meta) = prev.pointer("/metadata/execution") {
                    cell["metadata"]["execution"] = meta.clone();
                }
                cell["metadata"]["rota"] = json!({"resume": "kept"});
            }
            None => cell["metadata"]["rota"] = json!({"resume": "not run"}),
        }
    }
    for &index in &plan.replayed {
        cells[index]["metadata"]["rota"] = json!({"resume": "replayed"});
    }
}

/// `metadata.rota.resume`: where the run resumed from and what it replayed (cells
/// numbered from 1).
fn record(nb: &mut Value, resume: &Resume, plan: &ResumePlan) {
    let numbered =
        |cells: &mut dyn Iterator<Item = usize>| -> Vec<usize> { cells.map(|i| i + 1).collect() };
    let entry = json!({
        "from": resume.source,
        "failed_cell": plan.failed + 1,
        "replayed_cells": numbered(&mut plan.replayed.iter().copied()),
        "kept_cells": numbered(&mut plan.kept.iter().copied()),
        "replayed": if plan.tagged { "tagged setup" } else { "every cell before the failed one" },
    });
    if !nb.get("metadata").is_some_and(Value::is_object) {
        nb["metadata"] = json!({});
    }
    nb["metadata"]["rota"]["resume"] = entry;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(id: &str, kind: &str, source: &str, tags: &[&str], status: &str) -> Value {
        json!({
            "id": id, "cell_type": kind, "source": source, "outputs": [],
            "execution_count": null,
            "metadata": {"tags": tags, "papermill": {"status": status}},
        })
    }

    fn notebook(cells: Vec<Value>) -> Value {
        json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    }

    fn ran(mut cell: Value, output: &str) -> Value {
        cell["outputs"] = json!([{"output_type": "stream", "name": "stdout", "text": output}]);
        cell["execution_count"] = json!(1);
        cell
    }

    /// The failed run: parameters, injected, setup, work, failing cell, pending cell.
    fn failed_run(tag_setup: bool) -> Value {
        let setup_tags: &[&str] = if tag_setup { &["setup"] } else { &[] };
        notebook(vec![
            json!({"id": "banner", "cell_type": "markdown", "source": "error",
                   "metadata": {"tags": ["papermill-error-cell-tag"]}}),
            ran(cell("p", "code", "x = 1", &["parameters"], "completed"), ""),
            ran(
                cell(
                    "inj-old",
                    "code",
                    "x = 2",
                    &["injected-parameters"],
                    "completed",
                ),
                "",
            ),
            ran(cell("s", "code", "import os", setup_tags, "completed"), ""),
            cell("doc", "markdown", "# Work", &[], "completed"),
            ran(
                cell("w", "code", "print('work')", &[], "completed"),
                "work\n",
            ),
            ran(cell("f", "code", "1/0", &[], "failed"), "boom"),
            cell("after", "code", "print('after')", &[], "pending"),
        ])
    }

    /// The input prepared again: same cells, a new injected cell id.
    fn current(tag_setup: bool) -> Value {
        let setup_tags: &[&str] = if tag_setup { &["setup"] } else { &[] };
        notebook(vec![
            cell("p", "code", "x = 1", &["parameters"], "pending"),
            cell(
                "inj-new",
                "code",
                "x = 2",
                &["injected-parameters"],
                "pending",
            ),
            cell("s", "code", "import os", setup_tags, "pending"),
            cell("doc", "markdown", "# Work", &[], "pending"),
            cell("w", "code", "print('work')", &[], "pending"),
            cell("f", "code", "1/1", &[], "pending"),
            cell("after", "code", "print('after')", &[], "pending"),
        ])
    }

    fn resume(previous: Value) -> Resume {
        Resume {
            previous,
            source: "run r1".to_owned(),
        }
    }

    #[test]
    fn tagged_setup_cells_and_the_parameters_are_replayed_the_rest_kept() -> Result<()> {
        let mut nb = current(true);
        let plan = apply(&mut nb, &resume(failed_run(true)))?;
        assert_eq!(plan.failed, 5);
        assert_eq!(plan.replayed, vec![0, 1, 2]);
        assert_eq!(plan.kept, BTreeSet::from([3, 4]));
        assert!(plan.tagged);
        let cells = document::cells(&nb);
        assert_eq!(cells[4]["outputs"][0]["text"], "work\n");
        assert_eq!(cells[4]["metadata"]["rota"]["resume"], "kept");
        assert_eq!(cells[2]["metadata"]["rota"]["resume"], "replayed");
        assert_eq!(nb["metadata"]["rota"]["resume"]["failed_cell"], 6);
        assert_eq!(
            nb["metadata"]["rota"]["resume"]["replayed_cells"],
            json!([1, 2, 3])
        );
        assert!(
            plan.describe().contains("tagged `setup`"),
            "{}",
            plan.describe()
        );
        Ok(())
    }

    #[test]
    fn without_setup_tags_every_code_cell_before_the_failure_is_replayed() -> Result<()> {
        let mut nb = current(false);
        let plan = apply(&mut nb, &resume(failed_run(false)))?;
        assert_eq!(plan.replayed, vec![0, 1, 2, 4]);
        assert_eq!(plan.kept, BTreeSet::from([3]));
        assert!(!plan.tagged);
        assert!(plan.describe().contains("every cell before it"));
        assert_eq!(
            nb["metadata"]["rota"]["resume"]["replayed"],
            "every cell before the failed one"
        );
        Ok(())
    }

    #[test]
    fn cells_are_found_by_id_when_cells_were_added_before_the_failure() -> Result<()> {
        let mut nb = current(true);
        document::cells_mut(&mut nb).insert(4, cell("new", "code", "y = 3", &[], "pending"));
        let plan = apply(&mut nb, &resume(failed_run(true)))?;
        assert_eq!(plan.failed, 6);
        // The new cell has no past: it is kept, but with no outputs, marked as not run.
        assert_eq!(
            document::cells(&nb)[4]["metadata"]["rota"]["resume"],
            "not run"
        );
        assert_eq!(document::cells(&nb)[5]["outputs"][0]["text"], "work\n");
        Ok(())
    }

    #[test]
    fn an_edited_kept_cell_shows_no_stale_output() -> Result<()> {
        let mut nb = current(true);
        document::cells_mut(&mut nb)[4]["source"] = json!("print('changed')");
        apply(&mut nb, &resume(failed_run(true)))?;
        let cell = &document::cells(&nb)[4];
        assert_eq!(cell["outputs"], json!([]));
        assert_eq!(cell["metadata"]["rota"]["resume"], "not run");
        Ok(())
    }

    #[test]
    fn a_changed_shape_without_ids_is_refused() {
        let strip_ids = |mut nb: Value| {
            for cell in document::cells_mut(&mut nb) {
                if let Some(map) = cell.as_object_mut() {
                    map.remove("id");
                }
            }
            nb
        };
        let mut nb = strip_ids(current(true));
        document::cells_mut(&mut nb).push(cell("", "code", "z", &[], "pending"));
        let previous = strip_ids(failed_run(true));
        let error = apply(&mut nb, &resume(previous)).map(|_| ());
        assert!(
            matches!(&error, Err(NotebookError::Resume(why)) if why.contains("changed since run r1")),
            "{error:?}"
        );
    }

    #[test]
    fn an_interrupted_notebook_resumes_at_the_cell_that_was_running() -> Result<()> {
        // A kernel that died, or a run that was cancelled, leaves its cell `running`.
        let mut previous = failed_run(true);
        let cells = document::cells_mut(&mut previous);
        cells[6]["metadata"]["papermill"]["status"] = json!("running");
        cells[6]["outputs"] = json!([]);
        let mut nb = current(true);
        let plan = apply(&mut nb, &resume(previous))?;
        assert_eq!(plan.failed, 5);
        assert_eq!(plan.replayed, vec![0, 1, 2]);
        Ok(())
    }

    #[test]
    fn a_notebook_that_did_not_fail_is_refused() {
        let mut previous = failed_run(true);
        document::cells_mut(&mut previous)[6]["metadata"]["papermill"]["status"] =
            json!("completed");
        let mut nb = current(true);
        let error = apply(&mut nb, &resume(previous)).map(|_| ());
        assert!(
            matches!(&error, Err(NotebookError::Resume(why)) if why.contains("no failed")),
            "{error:?}"
        );
    }
}
