//! The Markdown report.

use std::fmt::Write as _;

use rota_notebook::report::ReportFormat as NotebookFormat;

use super::{RunReport, log_line, param_lines, plan_facts, resolved_text, run_facts, took, when};

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
        out.push_str("## Gates\n\n| Step | Status | Hash | Decisions |\n|---|---|---|---|\n");
        for gate in &run.gates {
            let decisions: Vec<String> = gate
                .decisions
                .iter()
                .map(|d| format!("{} {} at {}", d.actor, d.decision, d.at))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                cell(&gate.step),
                cell(&gate.status),
                cell(&gate.hash),
                cell(&decisions.join("; "))
            );
        }
        out.push('\n');
    }
    out.push_str("## Steps\n\n");
    for step in &run.steps {
        step_section(&mut out, report, step);
    }
    out
}

fn step_section(out: &mut String, report: &RunReport, step: &crate::records::StepRun) {
    let _ = writeln!(out, "### Step {}: {}\n", cell(&step.id), cell(&step.status));
    let outputs: Vec<String> = step
        .outputs
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    facts(
        out,
        &[
            ("Attempts", step.attempts.to_string()),
            (
                "Exit code",
                step.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
            ),
            ("Reason", step.reason.clone().unwrap_or_else(|| "-".into())),
            ("Started", when(step.first_started_at.or(step.started_at))),
            ("Finished", when(step.finished_at)),
            ("Duration", took(step.started_at, step.finished_at)),
            (
                "Outputs",
                if outputs.is_empty() {
                    "-".to_owned()
                } else {
                    outputs.join("; ")
                },
            ),
        ],
    );
    if let Some(resolved) = resolved_text(report, &step.id) {
        out.push_str("#### Resolved step\n\n");
        fenced(out, "json", &resolved);
    }
    if let Some(attempts) = report.attempts.get(&step.id) {
        out.push_str(
            "#### Attempts\n\n| # | Status | Exit | Reason | Started | Duration |\n\
             |---|---|---|---|---|---|\n",
        );
        for a in attempts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                a.attempt,
                a.status.as_str(),
                a.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
                cell(a.reason.as_deref().unwrap_or("-")),
                when(a.started_at),
                took(a.started_at, a.finished_at)
            );
        }
        out.push('\n');
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
