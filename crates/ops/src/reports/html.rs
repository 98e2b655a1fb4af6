//! The HTML report: one page, inline CSS, no scripts, no external references; every
//! value escaped.

use std::fmt::Write as _;

use rota_notebook::report::ReportFormat as NotebookFormat;

use super::{
    ATTEMPT_COLUMNS, GATE_COLUMNS, RunReport, attempt_rows, gate_rows, log_line, param_lines,
    plan_facts, resolved_text, run_facts, step_facts,
};

const STYLE: &str = "body{font-family:sans-serif;max-width:70em;margin:auto;padding:0 1em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;\
vertical-align:top}pre{background:#f6f6f6;padding:.5em;overflow-x:auto;white-space:pre-wrap}\
.step{border-top:2px solid #888;margin-top:2em}.failed{color:#b00}.succeeded{color:#070}\
.note{color:#666;font-style:italic}.notebook{border-left:4px solid #ccd;padding-left:1em}";

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A two-column table of facts.
fn facts(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("<table>\n");
    for (label, value) in rows {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(label),
            esc(value)
        );
    }
    out.push_str("</table>\n");
}

/// A table with a header row, every cell escaped.
fn table(out: &mut String, columns: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table><tr>");
    for column in columns {
        let _ = write!(out, "<th>{}</th>", esc(column));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for value in row {
            let _ = write!(out, "<td>{}</td>", esc(value));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The page.
pub(super) fn render(report: &RunReport) -> String {
    let run = &report.run;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <title>Rota run {}</title>\n<style>{STYLE}</style></head><body>\n\
         <h1>Run {} of {}/{}</h1>\n",
        esc(&run.id),
        esc(&run.id),
        esc(&run.namespace),
        esc(&run.job_id)
    );
    facts(&mut out, &run_facts(run));
    out.push_str("<h2>Parameters</h2>\n");
    let params = param_lines(run);
    if params.is_empty() {
        out.push_str("<p class=\"note\">none</p>\n");
    } else {
        let _ = writeln!(out, "<pre>{}</pre>", esc(&params.join("\n")));
    }
    if let Some(plan) = &report.plan {
        out.push_str("<h2>Plan</h2>\n");
        facts(&mut out, &plan_facts(plan));
    }
    if !run.gates.is_empty() {
        out.push_str("<h2>Gates</h2>\n");
        table(&mut out, &GATE_COLUMNS, &gate_rows(run));
    }
    out.push_str("<h2>Steps</h2>\n");
    for step in &run.steps {
        step_section(&mut out, report, step);
    }
    out.push_str("</body></html>\n");
    out
}

fn step_section(out: &mut String, report: &RunReport, step: &crate::records::StepRun) {
    let _ = writeln!(
        out,
        "<div class=\"step\"><h3 id=\"step-{0}\">Step {0} <span class=\"{1}\">{1}</span></h3>",
        esc(&step.id),
        esc(&step.status)
    );
    facts(out, &step_facts(step, "\n"));
    if let Some(resolved) = resolved_text(report, &step.id) {
        let _ = writeln!(out, "<h4>Resolved step</h4>\n<pre>{}</pre>", esc(&resolved));
    }
    if let Some(attempts) = report.attempts.get(&step.id) {
        out.push_str("<h4>Attempts</h4>\n");
        table(out, &ATTEMPT_COLUMNS, &attempt_rows(attempts));
    }
    out.push_str("<h4>Log</h4>\n");
    match report.logs.get(&step.id) {
        Some(lines) if !lines.is_empty() => {
            let text: Vec<String> = lines.iter().map(log_line).collect();
            let _ = writeln!(out, "<pre>{}</pre>", esc(&text.join("\n")));
        }
        _ => out.push_str("<p class=\"note\">no output</p>\n"),
    }
    if let Some(n) = report.logs_left_out.get(&step.id) {
        let _ = writeln!(
            out,
            "<p class=\"note\">{n} more lines left out; `rota logs {} --step {}` shows them all</p>",
            esc(&report.run.id),
            esc(&step.id)
        );
    }
    for (attempt, nb) in report.notebooks.get(&step.id).into_iter().flatten() {
        let page = rota_notebook::report::render_titled(
            nb,
            NotebookFormat::Html,
            &format!("{}.{attempt}.ipynb", step.id),
        );
        let _ = writeln!(
            out,
            "<h4>Notebook (attempt {attempt})</h4>\n<div class=\"notebook\">{}</div>",
            body_of(&page)
        );
    }
    out.push_str("</div>\n");
}

/// The inside of an HTML page's `<body>`, for a notebook rendered as a page of its own
/// (its own text already escaped).
fn body_of(page: &str) -> &str {
    let start = page.find("<body>").map_or(0, |i| i + "<body>".len());
    let end = page.rfind("</body>").unwrap_or(page.len());
    page.get(start..end.max(start)).unwrap_or("")
}
