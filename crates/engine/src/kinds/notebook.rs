//! The `notebook:` step kind: prepared here, executed natively by `rota-notebook`, whose
//! kernel starts through the process supervisor ([`crate::kernels`]).
//!
//! The executed notebook (`<step>.<attempt>.ipynb`) and its HTML report are kept in the
//! run's directory beside the other artifacts. Both pass the step's [`Redactor`], like its
//! log lines: every save of the notebook (it is saved after each cell) and the report.
//!
//! In a dry run a notebook step follows its `dry_run:` mode like other kinds: `echo-only`
//! (the default) logs `dry run: would run notebook …` and only prepares the output
//! notebook (parameters injected, nothing executed); `run` executes it, with
//! `dry_run=True` injected when its parameters cell declares `dry_run`; `skip` is handled
//! before it gets here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rota_core::kinds::notebook::NotebookStep;
use rota_core::model::{DryRun, Step, StepStatus};
use rota_core::template::Context;
use tokio_util::sync::CancellationToken;

use super::{Executor, ResolveCx};
use crate::process::{LogLine, Stream};
use crate::redact::Redactor;
use crate::run::Shared;
use crate::step::{
    Attempt, AttemptCx, Resolved, Work, record_line, render_value, stopped_reason, stopped_status,
    system_line,
};

pub(crate) struct Notebook;

impl Executor for Notebook {
    fn name(&self) -> &'static str {
        "notebook"
    }

    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String> {
        let work = resolve(
            r.shared,
            r.step,
            r.attempt_no,
            r.ctx,
            r.workdir.clone(),
            r.output_path,
        )?;
        let display = work.display();
        Ok(Resolved::Work {
            work: Box::new(work),
            display,
        })
    }
}

impl Work for NotebookWork {
    fn run<'a>(
        mut self: Box<Self>,
        at: AttemptCx<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Attempt> + Send + 'a>> {
        self.stopped_by(at.stop);
        Box::pin(async move {
            let result = run(at.shared, at.step, at.attempt_no, *self).await;
            Attempt {
                status: result.status,
                exit_code: result.exit_code,
                outputs: result.outputs,
                reason: result.reason,
            }
        })
    }
}

/// A notebook step with its templates rendered.
pub(crate) struct NotebookWork {
    request: rota_notebook::StepRequest,
    log: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// A dry run in `echo-only` mode: say what would run, execute nothing.
    echo_only: bool,
    /// `$ROTA_OUTPUT` of the kernel.
    output_path: PathBuf,
}

/// The notebook crate masks what it writes through the same redactor as the step's logs.
impl rota_notebook::Redact for Redactor {
    fn redact_line<'a>(&self, line: &'a str) -> std::borrow::Cow<'a, str> {
        self.redact(line)
    }
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
    /// What its cells published (`$ROTA_OUTPUT`, glued scraps), redacted.
    pub outputs: BTreeMap<String, String>,
}

pub(crate) fn resolve(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    ctx: &Context,
    workdir: PathBuf,
    output_path: &Path,
) -> Result<NotebookWork, String> {
    let NotebookStep {
        path,
        params,
        kernel,
        cell_timeout,
    } = &step.kind.decode()?;
    let render = |text: &str| {
        rota_core::template::render(text, ctx)
            .map_err(|e| format!("cannot render template {text:?}: {e}"))
    };
    let mut rendered = BTreeMap::new();
    for (name, value) in params {
        rendered.insert(name.clone(), render_value(value, ctx)?);
    }
    let (log_tx, log_rx) = tokio::sync::mpsc::unbounded_channel();
    // `skip` never gets here; a `command` has no meaning for a notebook (no shell runs),
    // so like `echo-only` it runs nothing.
    let echo_only = shared.dry_run && !matches!(step.dry_run, DryRun::Run);
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
        prepare_only: echo_only,
        redact: (!shared.redactor.is_empty())
            .then(|| rota_notebook::Redaction::new(shared.redactor.clone())),
        // The kernel is a step process like any other (see `crate::kernels`).
        host: crate::kernels::Kernels::new(
            shared.config.guardian.clone(),
            Some(shared.run_dir.clone()),
        )
        .limited(step.resources)
        .with_env(crate::step::process_env(
            shared,
            step,
            attempt_no,
            ctx,
            output_path,
        )?)
        .host(),
        // Replaced by the step's own stop when it runs (`step::run_attempt`).
        cancel: CancellationToken::new(),
        log: log_tx,
        resume: shared
            .resume
            .as_ref()
            .filter(|resume| resume.step == step.id)
            .map(|resume| rota_notebook::resume::Resume {
                previous: resume.notebook.clone(),
                source: format!("run {}", resume.from_run),
            }),
    };
    Ok(NotebookWork {
        request,
        log: log_rx,
        echo_only,
        output_path: output_path.to_owned(),
    })
}

pub(crate) async fn run(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    work: NotebookWork,
) -> NotebookResult {
    let NotebookWork {
        request,
        mut log,
        echo_only,
        output_path,
    } = work;
    let executed = request.output.clone();
    if echo_only {
        let display = format!("notebook {}", request.input.display());
        system_line(
            shared,
            step,
            attempt_no,
            format!("dry run: would run {}", shared.redactor.redact(&display)),
        );
    }
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
    let published = if echo_only {
        Ok(BTreeMap::new())
    } else {
        published_outputs(&output_path, &executed)
    };
    let mut result = ended(shared, outcome);
    match published {
        Ok(outputs) => {
            result.outputs = outputs
                .into_iter()
                .map(|(key, value)| (key, shared.redactor.redact(&value).into_owned()))
                .collect();
        }
        Err(problem) if result.status == StepStatus::Succeeded => {
            result.status = StepStatus::Failed;
            result.reason = Some(problem);
        }
        Err(_) => {}
    }
    result
}

/// What a notebook attempt published: the `key=value` lines its cells wrote to
/// `$ROTA_OUTPUT`, then the scraps its cells glued (scrapbook's `glue(name, value)`, a
/// display output of type [`SCRAP_MIME`]) in the executed notebook, which win.
fn published_outputs(
    output_path: &Path,
    executed: &Path,
) -> Result<BTreeMap<String, String>, String> {
    let mut outputs = crate::outputs::take_outputs(output_path)?;
    outputs.extend(glued_scraps(executed)?);
    if outputs.len() > MAX_SCRAPS {
        return Err(format!(
            "the notebook published {} outputs, more than {MAX_SCRAPS}",
            outputs.len()
        ));
    }
    Ok(outputs)
}

/// The display type scrapbook's `glue` writes a JSON-encoded scrap as.
const SCRAP_MIME: &str = "application/scrapbook.scrap.json+json";
/// The display type of a scrap glued with the `text` encoder.
const SCRAP_TEXT_MIME: &str = "application/scrapbook.scrap.text+json";
/// Most outputs one notebook attempt may publish.
const MAX_SCRAPS: usize = 1_000;

/// Scraps glued in the executed notebook at `path`, by name (a later glue of a name wins),
/// each value as text: a string as it is, anything else as compact JSON.
fn glued_scraps(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(format!("cannot read the executed notebook: {error}")),
    };
    let notebook: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| format!("cannot read the executed notebook: {e}"))?;
    let mut scraps = BTreeMap::new();
    let cells = notebook["cells"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for output in cells.iter().flat_map(|cell| {
        cell["outputs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }) {
        for mime in [SCRAP_MIME, SCRAP_TEXT_MIME] {
            let scrap = &output["data"][mime];
            let Some(name) = scrap["name"].as_str() else {
                continue;
            };
            let value = match &scrap["data"] {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            scraps.insert(name.to_owned(), value);
        }
    }
    Ok(scraps)
}

/// The attempt's status and reason from the notebook's outcome.
fn ended(shared: &Shared, outcome: rota_notebook::StepOutcome) -> NotebookResult {
    use rota_notebook::StepOutcome;
    match outcome {
        // Like other kinds' `would run`: nothing ran, so there is no exit code.
        StepOutcome::Prepared => NotebookResult {
            status: StepStatus::Succeeded,
            exit_code: None,
            reason: None,
            outputs: BTreeMap::new(),
        },
        StepOutcome::Succeeded => NotebookResult {
            status: StepStatus::Succeeded,
            exit_code: Some(0),
            reason: None,
            outputs: BTreeMap::new(),
        },
        StepOutcome::Cancelled => NotebookResult {
            status: stopped_status(shared),
            exit_code: None,
            reason: Some(stopped_reason(shared)),
            outputs: BTreeMap::new(),
        },
        other => NotebookResult {
            status: StepStatus::Failed,
            exit_code: None,
            reason: Some(other.reason()),
            outputs: BTreeMap::new(),
        },
    }
}
