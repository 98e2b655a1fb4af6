//! The `notebook:` step kind: prepared here, executed natively by `rota-notebook`.
//!
//! The executed notebook (`<step>.<attempt>.ipynb`) and its HTML report are kept in the
//! run's directory beside the other artifacts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;
use rota_core::model::{Step, StepKind, StepStatus};
use rota_core::template::Context;
use tokio_util::sync::CancellationToken;

use crate::process::{LogLine, Stream};
use crate::run::Shared;
use crate::step::{record_line, render_value, stopped_reason, stopped_status};

/// A notebook step with its templates rendered.
pub(crate) struct NotebookWork {
    request: rota_notebook::StepRequest,
    log: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl NotebookWork {
    /// Makes `stop` (the step's own stop) interrupt the notebook.
    pub(crate) fn stopped_by(&mut self, stop: &CancellationToken) {
        self.request.cancel = stop.child_token();
    }

    pub(crate) fn display(&self) -> String {
        format!("notebook {}", self.request.input.display())
    }
}

/// How the notebook attempt ended.
pub(crate) struct NotebookResult {
    pub status: StepStatus,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

pub(crate) fn resolve(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    ctx: &Context,
    workdir: PathBuf,
) -> Result<NotebookWork, String> {
    let StepKind::Notebook {
        path,
        params,
        kernel,
        cell_timeout,
    } = &step.kind
    else {
        return Err("not a notebook step".to_owned());
    };
    let render = |text: &str| {
        rota_core::template::render(text, ctx)
            .map_err(|e| format!("cannot render template {text:?}: {e}"))
    };
    let mut rendered = BTreeMap::new();
    for (name, value) in params {
        rendered.insert(name.clone(), render_value(value, ctx)?);
    }
    let (log_tx, log_rx) = tokio::sync::mpsc::unbounded_channel();
    let request = rota_notebook::StepRequest {
        input: shared.base_dir.join(render(path)?),
        output: shared
            .run_dir
            .join(format!("{}.{attempt_no}.ipynb", step.id)),
        report: Some(
            shared
                .run_dir
                .join(format!("{}.{attempt_no}.html", step.id)),
        ),
        params: rendered,
        kernel: kernel.clone(),
        cell_timeout: *cell_timeout,
        cwd: Some(workdir),
        dry_run: shared.dry_run,
        // Replaced by the step's own stop when it runs (`step::run_attempt`).
        cancel: CancellationToken::new(),
        log: log_tx,
    };
    Ok(NotebookWork {
        request,
        log: log_rx,
    })
}

pub(crate) async fn run(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    work: NotebookWork,
) -> NotebookResult {
    let NotebookWork { request, mut log } = work;
    let forward = async {
        while let Some(text) = log.recv().await {
            let text = shared.redactor.redact(&text).into_owned();
            let line = LogLine {
                ts: Timestamp::now(),
                stream: Stream::Stdout,
                text,
            };
            record_line(shared, step, attempt_no, line);
        }
    };
    let (outcome, ()) = tokio::join!(rota_notebook::run_notebook_step(request), forward);
    use rota_notebook::StepOutcome;
    match outcome {
        StepOutcome::Succeeded | StepOutcome::Prepared => NotebookResult {
            status: StepStatus::Succeeded,
            exit_code: Some(0),
            reason: None,
        },
        StepOutcome::Cancelled => NotebookResult {
            status: stopped_status(shared),
            exit_code: None,
            reason: Some(stopped_reason(shared)),
        },
        other => NotebookResult {
            status: StepStatus::Failed,
            exit_code: None,
            reason: Some(other.reason()),
        },
    }
}
