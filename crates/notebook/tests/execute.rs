//! Executing notebooks on a real ipykernel: outputs, failures, SystemExit, timeouts,
//! dead kernels and cancellation.

use std::time::Duration;

use rota_notebook::execute::{Progress, RunOutcome, RunRequest};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::util::{cells, data, read, require_kernel, run, source, tags, validate};

fn status(cell: &Value) -> &str {
    cell["metadata"]["papermill"]["status"]
        .as_str()
        .unwrap_or("")
}

fn text(v: &Value) -> String {
    match v {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn captures_every_output_type() {
    let (report, out, _dir) = run("outputs.ipynb", |_| {}).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    validate(&out);
    let nb = read(&out);
    let c = cells(&nb);
    let o = |i: usize| c[i]["outputs"].as_array().cloned().unwrap_or_default();

    let streams = o(0);
    assert_eq!(streams.len(), 2);
    let by_name = |n: &str| {
        streams
            .iter()
            .find(|s| s["name"] == n)
            .map(|s| text(&s["text"]))
            .unwrap_or_default()
    };
    assert_eq!(by_name("stdout"), "out line\n");
    assert_eq!(by_name("stderr"), "err line\n");

    assert_eq!(o(1)[0]["output_type"], "display_data");
    assert_eq!(text(&o(1)[0]["data"]["text/html"]), "<b>hi</b>");

    assert_eq!(o(2)[0]["output_type"], "execute_result");
    assert_eq!(text(&o(2)[0]["data"]["text/plain"]), "42");
    assert_eq!(o(2)[0]["execution_count"], c[2]["execution_count"]);

    let cleared = o(3);
    assert_eq!(
        cleared.len(),
        1,
        "clear_output removed the first print: {cleared:?}"
    );
    assert_eq!(text(&cleared[0]["text"]), "kept\n");

    // update_display_data rewrites the earlier output of another cell in place.
    assert_eq!(text(&o(4)[0]["data"]["text/plain"]), "'second'");
    assert!(o(5).is_empty());

    // An empty code cell is not executed.
    assert_eq!(c[6]["execution_count"], Value::Null);
    assert_eq!(status(&c[6]), "completed");

    let counts: Vec<i64> = c[..6]
        .iter()
        .filter_map(|c| c["execution_count"].as_i64())
        .collect();
    assert_eq!(counts, vec![1, 2, 3, 4, 5, 6]);
    for cell in &c[..6] {
        let ex = &cell["metadata"]["execution"];
        for key in [
            "iopub.status.busy",
            "iopub.execute_input",
            "iopub.status.idle",
            "shell.execute_reply",
        ] {
            assert!(
                ex[key].as_str().is_some_and(|t| t.ends_with('Z')),
                "{key} in {ex}"
            );
        }
        assert!(cell["metadata"]["papermill"]["duration"].as_f64().is_some());
    }
    let pm = &nb["metadata"]["papermill"];
    assert_eq!(pm["exception"], Value::Null);
    assert!(
        pm["start_time"]
            .as_str()
            .is_some_and(|t| t.ends_with("+00:00"))
    );
    assert!(pm["duration"].as_f64().is_some());
    assert_eq!(nb["metadata"]["language_info"]["name"], "python");
}

#[tokio::test]
async fn failing_cell_gets_banner_anchor_and_failed_status() {
    let (report, out, _dir) = run("failing.ipynb", |_| {}).await;
    let RunOutcome::Failed(f) = &report.outcome else {
        panic!("expected a failure, got {:?}", report.outcome);
    };
    assert_eq!(
        (f.cell_index, f.ename.as_str(), f.evalue.as_str()),
        (1, "ValueError", "boom")
    );
    assert_eq!(report.outcome.exit_code(), 1);
    validate(&out);
    let nb = read(&out);
    let c = cells(&nb);
    assert_eq!(c.len(), 5);
    assert_eq!(tags(&c[0]), vec!["papermill-error-cell-tag"]);
    assert_eq!(c[0]["cell_type"], "markdown");
    assert!(source(&c[0]).contains(
        "An Exception was encountered at '<a href=\"#papermill-error-cell\">In [2]</a>'."
    ));
    assert_eq!(tags(&c[2]), vec!["papermill-error-cell-tag"]);
    assert!(source(&c[2]).contains("id=\"papermill-error-cell\""));
    assert!(
        source(&c[2])
            .contains("Execution using papermill encountered an exception here and stopped:")
    );
    assert_eq!(status(&c[1]), "completed");
    assert_eq!(status(&c[3]), "failed");
    assert_eq!(c[3]["metadata"]["papermill"]["exception"], true);
    assert_eq!(status(&c[4]), "pending");
    assert!(c[4]["outputs"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(nb["metadata"]["papermill"]["exception"], true);
}

#[tokio::test]
async fn rerunning_a_failed_output_removes_old_error_cells() {
    let (_, first, _dir) = run("failing.ipynb", |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let second = dir.path().join("again.ipynb");
    let req = RunRequest::new(&first, &second, crate::util::host());
    let report = rota_notebook::execute::run(&req, &CancellationToken::new(), &mut |_| {})
        .await
        .expect("runs");
    assert!(matches!(report.outcome, RunOutcome::Failed(_)));
    let nb = read(&second);
    let markers = cells(&nb)
        .iter()
        .filter(|c| tags(c).contains(&"papermill-error-cell-tag".to_string()))
        .count();
    assert_eq!(markers, 2, "one banner and one anchor, not four");
}

#[tokio::test]
async fn system_exit_zero_is_not_a_failure() {
    let (report, out, _dir) = run("sysexit.ipynb", |_| {}).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    validate(&out);
    let nb = read(&out);
    let c = cells(&nb);
    assert_eq!(c.len(), 3, "no banner");
    assert_eq!(c[1]["outputs"][0]["ename"], "SystemExit");
    // Like papermill, execution stops at the SystemExit cell.
    assert!(c[2]["outputs"].as_array().is_some_and(Vec::is_empty));

    let (report, _, _dir) = run("sysexit_bare.ipynb", |_| {}).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded);

    let (report, _, _dir) = run("sysexit_one.ipynb", |_| {}).await;
    assert!(
        matches!(&report.outcome, RunOutcome::Failed(f) if f.ename == "SystemExit" && f.evalue == "1")
    );
}

#[tokio::test]
async fn cell_timeout_interrupts_and_fails_the_cell() {
    let (report, out, _dir) = run("sleep.ipynb", |r| {
        r.cell_timeout = Some(Duration::from_secs(1));
    })
    .await;
    let RunOutcome::Failed(f) = &report.outcome else {
        panic!("expected a timeout failure, got {:?}", report.outcome);
    };
    assert_eq!(f.cell_index, 1);
    assert_eq!(f.ename, "CellTimeoutError");
    validate(&out);
    let nb = read(&out);
    let c = cells(&nb);
    assert_eq!(tags(&c[0]), vec!["papermill-error-cell-tag"]);
    assert_eq!(status(&c[3]), "failed");
    // The interrupt reached the kernel: the cell shows Python's KeyboardInterrupt.
    assert_eq!(c[3]["outputs"][0]["ename"], "KeyboardInterrupt");
}

// The dying cell sleeps first, so the kernel dies mid-cell. Known limit (FIXME): because
// the next cell is sent ahead, a cell that kills the kernel within microseconds of starting
// can take the previous cell's unsent reply down with it, and the death is then blamed on
// the previous cell; only not sending ahead would close that race.
#[tokio::test]
async fn kernel_killed_mid_cell_is_reported_as_dead_kernel() {
    let (report, out, _dir) = run("suicide.ipynb", |_| {}).await;
    assert_eq!(report.outcome, RunOutcome::KernelDied { cell_index: 1 });
    assert_eq!(report.outcome.exit_code(), 138);
    validate(&out);
    let nb = read(&out);
    assert_eq!(status(&cells(&nb)[1]), "failed");
    assert_eq!(status(&cells(&nb)[2]), "pending");
    assert_eq!(nb["metadata"]["papermill"]["exception"], true);
}

#[tokio::test]
async fn cancelling_interrupts_shuts_down_and_saves() {
    require_kernel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.ipynb");
    let req = RunRequest::new(data("sleep.ipynb"), &out, crate::util::host());
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let report = rota_notebook::execute::run(&req, &cancel, &mut |p| {
        if let Progress::CellStart { index: 1, .. } = p {
            trigger.cancel();
        }
    })
    .await
    .expect("runs");
    assert_eq!(
        report.outcome,
        RunOutcome::Cancelled {
            cell_index: Some(1)
        }
    );
    validate(&out);
    let nb = read(&out);
    assert_eq!(status(&cells(&nb)[1]), "failed");
    assert!(nb["metadata"]["papermill"]["end_time"].is_string());
}

#[tokio::test]
async fn step_dry_run_injects_dry_run_true_without_executing() {
    require_kernel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let req = rota_notebook::StepRequest {
        input: data("params.ipynb"),
        output: dir.path().join("out.ipynb"),
        report: None,
        params: [("n".to_string(), json!(7))].into_iter().collect(),
        kernel: None,
        cell_timeout: None,
        cwd: None,
        dry_run: true,
        prepare_only: true,
        redact: None,
        host: crate::util::host(),
        cancel: CancellationToken::new(),
        log: tx,
        resume: None,
    };
    let outcome = rota_notebook::run_notebook_step(req.clone()).await;
    assert_eq!(outcome, rota_notebook::StepOutcome::Prepared);
    let nb = read(&req.output);
    assert_eq!(
        source(&cells(&nb)[2]),
        "# Parameters\nn = 7\ndry_run = True\n"
    );
    assert!(
        cells(&nb)[3]["outputs"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[tokio::test]
async fn step_failure_names_cell_and_error_and_writes_report() {
    require_kernel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let report_path = dir.path().join("out.html");
    let req = rota_notebook::StepRequest {
        input: data("failing.ipynb"),
        output: dir.path().join("out.ipynb"),
        report: Some(report_path.clone()),
        params: Default::default(),
        kernel: None,
        cell_timeout: None,
        cwd: None,
        dry_run: false,
        prepare_only: false,
        redact: None,
        host: crate::util::host(),
        cancel: CancellationToken::new(),
        log: tx,
        resume: None,
    };
    let outcome = rota_notebook::run_notebook_step(req).await;
    // One numbering everywhere: the log's `cell 2/3`, the reason's and the report's
    // `cell 2` are the same cell (1-based, error marker cells not counted).
    assert_eq!(outcome.reason(), "cell 2 failed: ValueError: boom");
    assert!(!outcome.is_success());
    let html = std::fs::read_to_string(&report_path).expect("report written");
    assert!(html.contains("ValueError: boom"));
    assert!(html.contains("cell 2 · code In [2] · failed"), "{html}");
    assert!(!html.contains("cell 0 "), "{html}");
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    // The traceback is in the log, without colours.
    assert!(
        lines.iter().any(|l| l.contains("ValueError: boom"))
            && lines
                .iter()
                .any(|l| l.contains("Traceback") || l.contains("----")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains('\u{1b}')), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("cell 1/3 ok (")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("cell 2/3 failed (")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn step_streams_cell_output_line_by_line() {
    require_kernel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let req = rota_notebook::StepRequest {
        input: data("params.ipynb"),
        output: dir.path().join("out.ipynb"),
        report: None,
        params: [("name".to_string(), json!("rota"))].into_iter().collect(),
        kernel: None,
        cell_timeout: None,
        cwd: None,
        dry_run: false,
        prepare_only: false,
        redact: None,
        host: crate::util::host(),
        cancel: CancellationToken::new(),
        log: tx,
        resume: None,
    };
    assert_eq!(
        rota_notebook::run_notebook_step(req).await,
        rota_notebook::StepOutcome::Succeeded
    );
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    assert!(lines.contains(&"0.1 rota 3 False".to_string()), "{lines:?}");
}

/// The output notebook is saved after every cell, and a later cell's display update
/// reaches the earlier cell it changed in that save, not only in the final one.
#[tokio::test]
async fn saved_after_each_cell_with_updated_displays() {
    require_kernel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ipynb");
    let out = dir.path().join("out.ipynb");
    let code = |src: &str| {
        json!({"cell_type": "code", "execution_count": null, "id": src.len().to_string(),
               "metadata": {}, "outputs": [], "source": src})
    };
    let nb = json!({
        "cells": [
            code("from IPython.display import display\nh = display('first', display_id=True)"),
            code("h.update('second')"),
            code("x = 1"),
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    });
    std::fs::write(&input, nb.to_string()).expect("input written");
    let req = RunRequest::new(&input, &out, crate::util::host());
    // (cell that ended, statuses in the saved file, cell 0's display text in the file)
    let mut seen: Vec<(usize, Vec<String>, String)> = Vec::new();
    let mut progress = |p: Progress| {
        if let Progress::CellEnd { index, .. } = p {
            let saved = read(&out);
            let statuses = cells(&saved)
                .iter()
                .map(|c| status(c).to_string())
                .collect();
            let display = text(&cells(&saved)[0]["outputs"][0]["data"]["text/plain"]);
            seen.push((index, statuses, display));
        }
    };
    let report = rota_notebook::execute::run(&req, &CancellationToken::new(), &mut progress)
        .await
        .expect("run starts");
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        seen,
        [
            (0, s(&["completed", "pending", "pending"]), "'first'".into()),
            (
                1,
                s(&["completed", "completed", "pending"]),
                "'second'".into()
            ),
            (
                2,
                s(&["completed", "completed", "completed"]),
                "'second'".into()
            ),
        ]
    );
    validate(&out);
}
