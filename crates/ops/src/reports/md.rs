//! The Markdown report.

use std::fmt::Write as _;

use rota_notebook::report::ReportFormat as NotebookFormat;

use super::{
    ATTEMPT_COLUMNS, GATE_COLUMNS, RunReport, attempt_rows, gate_rows, log_line, param_lines,
    plan_facts, resolved_text, run_facts, step_facts,
};

/// Text for a Markdown table cell: one line, pipes and markup escaped.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace(['\n', '\r'], " ")
}

/// A fenced block that `text` cannot close early.
fn fenced(out: &mut String, lang: &str, text: &str) {
    let mut fence = "```".to_owned();
    while text.contains(&fence) {
        fence.push('`');
    }
    let _ = writeln!(out, "{fence}{lang}\n{text}\n{fence}\n");
}

fn facts(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("| | |\n|---|---|\n");
    for (label, value) in rows {
        let _ = writeln!(out, "| {} | {} |", cell(label), cell(value));
    }
    out.push('\n');
}

/// A table with a header row, every cell made one line.
fn table(out: &mut String, columns: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", columns.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(columns.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|value| cell(value)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

/// The document.
pub(super) fn render(report: &RunReport) -> String {
    let run = &report.run;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Run {} of {}/{}\n",
        cell(&run.id),
        cell(&run.namespace),
        cell(&run.job_id)
    );
    facts(&mut out, &run_facts(run));
    out.push_str("## Parameters\n\n");
    let params = param_lines(run);
    if params.is_empty() {
        out.push_str("none\n\n");
    } else {
        fenced(&mut out, "", &params.join("\n"));
    }
    if let Some(plan) = &report.plan {
        out.push_str("## Plan\n\n");
        facts(&mut out, &plan_facts(plan));
    }
    if !run.gates.is_empty() {
        out.push_str("## Gates\n\n");
        table(&mut out, &GATE_COLUMNS, &gate_rows(run));
    }
    out.push_str("## Steps\n\n");
    for step in &run.steps {
        step_section(&mut out, report, step);
    }
    out
}

fn step_section(out: &mut String, report: &RunReport, step: &crate::records::StepRun) {
    let _ = writeln!(out, "### Step {}: {}\n", cell(&step.id), cell(&step.status));
    facts(out, &step_facts(step, "; "));
    if let Some(resolved) = resolved_text(report, &step.id) {
        out.push_str("#### Resolved step\n\n");
        fenced(out, "json", &resolved);
    }
    if let Some(attempts) = report.attempts.get(&step.id) {
        out.push_str("#### Attempts\n\n");
        table(out, &ATTEMPT_COLUMNS, &attempt_rows(attempts));
    }
    out.push_str("#### Log\n\n");
    match report.logs.get(&step.id) {
        Some(lines) if !lines.is_empty() => {
            let text: Vec<String> = lines.iter().map(log_line).collect();
            fenced(out, "", &text.join("\n"));
        }
        _ => out.push_str("no output\n\n"),
    }
    if let Some(n) = report.logs_left_out.get(&step.id) {
        let _ = writeln!(
            out,
            "_{n} more lines left out; `rota logs {} --step {}` shows them all_\n",
            report.run.id, step.id
        );
    }
    for (attempt, nb) in report.notebooks.get(&step.id).into_iter().flatten() {
        let _ = writeln!(out, "#### Notebook (attempt {attempt})\n");
        let text = rota_notebook::report::render_titled(
            nb,
            NotebookFormat::Md,
            &format!("{}.{attempt}.ipynb", step.id),
        );
        out.push_str(&text);
        out.push('\n');
    }
}
