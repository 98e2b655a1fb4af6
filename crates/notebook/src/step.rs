//! The engine's `notebook:` step: run (or, in a dry run, only prepare) a notebook,
//! stream progress lines, keep the output notebook and its HTML report, and say why a
//! step failed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::execute::{self, Progress, RunOutcome, RunRequest};
use crate::inspect;
use crate::kernel::Host;
use crate::params::{Param, Params};
use crate::redact::{Redaction, strip_ansi};
use crate::report::{self, ReportFormat};

/// Everything a `notebook:` step needs.
#[derive(Debug, Clone)]
pub struct StepRequest {
    /// The notebook to run.
    pub input: PathBuf,
    /// Where the executed notebook goes.
    pub output: PathBuf,
    /// Where its HTML report goes, if wanted.
    pub report: Option<PathBuf>,
    /// Parameters (already templated).
    pub params: BTreeMap<String, Value>,
    /// Kernel name overriding the notebook's.
    pub kernel: Option<String>,
    /// Per-cell timeout.
    pub cell_timeout: Option<Duration>,
    /// Working directory of the kernel.
    pub cwd: Option<PathBuf>,
    /// The run is a dry run: inject `dry_run=True` when the parameters cell declares
    /// `dry_run`.
    pub dry_run: bool,
    /// Inject parameters and write the output notebook, but execute nothing.
    pub prepare_only: bool,
    /// Masks secrets in the output notebook (every save) and the report.
    pub redact: Option<Redaction>,
    /// Starts the kernel's process (the engine's supervisor).
    pub host: Host,
    /// Cancels the run: the kernel is interrupted and shut down.
    pub cancel: CancellationToken,
    /// Human progress lines and the cells' stream output, line by line.
    pub log: UnboundedSender<String>,
    /// Resume a failed run's notebook from its failed cell.
    pub resume: Option<crate::resume::Resume>,
}

/// How a `notebook:` step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// All cells ran.
    Succeeded,
    /// Dry run: prepared, not executed.
    Prepared,
    /// A cell failed.
    Failed {
        /// Index of the failing cell (0-based, banner cells not counted; shown 1-based).
        cell_index: usize,
        /// Exception name.
        ename: String,
        /// Exception value.
        evalue: String,
    },
    /// The kernel process died.
    KernelDied {
        /// The cell running when it died (0-based; shown 1-based).
        cell_index: usize,
    },
    /// Cancelled through the token.
    Cancelled,
    /// The notebook could not be run at all (bad file, no kernel…).
    Error {
        /// What went wrong.
        message: String,
    },
}

impl StepOutcome {
    /// Whether the step counts as a success.
    pub fn is_success(&self) -> bool {
        matches!(self, StepOutcome::Succeeded | StepOutcome::Prepared)
    }

    /// The step's status reason.
    pub fn reason(&self) -> String {
        match self {
            StepOutcome::Succeeded => "notebook executed".into(),
            StepOutcome::Prepared => "dry run: notebook prepared, not executed".into(),
            StepOutcome::Failed {
                cell_index,
                ename,
                evalue,
            } => format!("cell {} failed: {ename}: {evalue}", cell_index + 1),
            StepOutcome::KernelDied { cell_index } => {
                format!("kernel died while executing cell {}", cell_index + 1)
            }
            StepOutcome::Cancelled => "cancelled".into(),
            StepOutcome::Error { message } => message.clone(),
        }
    }
}

/// Run a `notebook:` step.
pub async fn run_notebook_step(req: StepRequest) -> StepOutcome {
    let mut params = Params::default();
    for (k, v) in &req.params {
        params.set(k.clone(), Param::from_json(v));
    }
    if req.dry_run {
        match crate::document::load(&req.input) {
            Ok(nb) => {
                if inspect::infer(&nb).0.iter().any(|p| p.name == "dry_run") {
                    params.set("dry_run", Param::Bool(true));
                }
            }
            Err(e) => {
                return StepOutcome::Error {
                    message: e.to_string(),
                };
            }
        }
    }
    let mut run = RunRequest::new(&req.input, &req.output, req.host.clone());
    run.params = params;
    run.kernel = req.kernel.clone();
    run.cwd = req.cwd.clone();
    run.cell_timeout = req.cell_timeout;
    run.prepare_only = req.prepare_only;
    run.redact = req.redact.clone();
    run.resume = req.resume.clone();
    let log = req.log.clone();
    let mut pending: String = String::new();
    let mut progress = |p: Progress| match p {
        Progress::Warning(w) => {
            let _ = log.send(format!("warning: {w}"));
        }
        Progress::Resuming(plan) => {
            let _ = log.send(plan.describe());
        }
        Progress::CellEnd {
            index,
            total,
            status,
            duration,
        } => {
            let status = if status == "completed" {
                "ok".to_string()
            } else {
                status
            };
            let _ = log.send(format!(
                "cell {}/{} {status} ({} ms)",
                index + 1,
                total,
                duration.as_millis()
            ));
        }
        Progress::Stream { text, .. } => {
            pending.push_str(&text);
            while let Some(nl) = pending.find('\n') {
                let line: String = pending.drain(..=nl).collect();
                let _ = log.send(line.trim_end_matches(['\n', '\r']).to_string());
            }
        }
        Progress::KernelLog(line) => {
            let _ = log.send(line);
        }
        Progress::CellStart { .. } => {}
    };
    let result = execute::run(&run, &req.cancel, &mut progress).await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            return StepOutcome::Error {
                message: e.to_string(),
            };
        }
    };
    // The report is rendered from the masked notebook, then masked again as text: its
    // rendering joins and un-colours text, which could bring a value back together.
    let rendered = req.report.as_ref().map(|_| {
        let html = report::render(&report.notebook, ReportFormat::Html);
        match &req.redact {
            Some(r) => r.text(&html).into_owned(),
            None => html,
        }
    });
    if let (Some(path), Some(html)) = (&req.report, rendered)
        && let Err(e) = std::fs::write(path, html)
    {
        let _ = req.log.send(format!(
            "warning: cannot write report {}: {e}",
            path.display()
        ));
    }
    match report.outcome {
        RunOutcome::Succeeded => StepOutcome::Succeeded,
        RunOutcome::Prepared => StepOutcome::Prepared,
        RunOutcome::Failed(f) => {
            // The traceback belongs in the step's log too, where a failing step is read
            // first; without colours, as logs hold plain text.
            for entry in &f.traceback {
                for line in strip_ansi(entry).lines() {
                    let _ = req.log.send(line.to_owned());
                }
            }
            StepOutcome::Failed {
                cell_index: f.cell_index,
                ename: f.ename,
                evalue: f.evalue,
            }
        }
        RunOutcome::KernelDied { cell_index } => StepOutcome::KernelDied { cell_index },
        RunOutcome::Cancelled { .. } => StepOutcome::Cancelled,
    }
}
