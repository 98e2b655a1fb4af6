//! Running a notebook like `papermill IN OUT`: parameters, papermill's metadata, the
//! output notebook saved after every cell, error banner and anchor cells, and outcomes.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::document::{self, ERROR_MARKER_TAG, INJECTED_TAG, NotebookWriter, PARAMETERS_TAG};
use crate::error::{NotebookError, Result};
use crate::inspect;
use crate::kernel::{ExecuteEnd, Host, Kernel, KernelMessage, KernelOptions};
use crate::kernelspec;
use crate::params::{Language, Params};
use crate::redact::Redaction;
use crate::resume::{Resume, ResumePlan};

/// How long a cell runs before the output notebook is saved showing it `running`.
///
/// The notebook is always saved when a cell ends (and once before the first cell), which
/// is what keeps a readable partial notebook after a crash. Saving at every cell's start
/// too, as papermill does, doubles the writes for nothing when cells are quick, so the
/// `running` state is only written for cells that last long enough for anyone to look.
const RUNNING_SAVE_AFTER: Duration = Duration::from_millis(100);

/// While a cell keeps running, how often its outputs so far are saved (papermill's
/// `autosave_cell_every`).
const AUTOSAVE_EVERY: Duration = Duration::from_secs(30);

/// Exit status papermill uses when the kernel died.
pub const DEAD_KERNEL_EXIT_CODE: i32 = 138;

/// Style shared by papermill's banner and anchor cells (users and tools look for it).
const ERROR_STYLE: &str =
    "style=\"color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:2em;\"";

/// What to run and how.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Input notebook.
    pub input: PathBuf,
    /// Output notebook (written before the first cell, after every cell, and while a
    /// long cell runs).
    pub output: PathBuf,
    /// Parameters to inject (none: no injected cell, like papermill).
    pub params: Params,
    /// Kernel name overriding the notebook's.
    pub kernel: Option<String>,
    /// Language overriding the notebook's (chooses the parameter translator).
    pub language: Option<String>,
    /// Working directory of the kernel.
    pub cwd: Option<PathBuf>,
    /// How long the kernel may take to start.
    pub start_timeout: Duration,
    /// Per-cell execution timeout (none: wait forever).
    pub cell_timeout: Option<Duration>,
    /// Inject parameters and write the output notebook, but execute nothing.
    pub prepare_only: bool,
    /// Hide code cell inputs (papermill's report mode).
    pub report_mode: bool,
    /// Environment variables to record in `metadata.papermill.environment_variables`.
    pub record_env: Vec<String>,
    /// Masks secrets in every save of the output notebook and in the returned one; the
    /// kernel still executes the parameters as given.
    pub redact: Option<Redaction>,
    /// Starts the kernel's process.
    pub host: Host,
    /// Resume a failed run of this notebook from its failed cell (see [`crate::resume`]).
    pub resume: Option<Resume>,
}

impl RunRequest {
    /// A request with papermill's defaults (60 s start timeout, no cell timeout), whose
    /// kernel `host` starts.
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>, host: Host) -> RunRequest {
        RunRequest {
            input: input.into(),
            output: output.into(),
            params: Params::default(),
            kernel: None,
            language: None,
            cwd: None,
            start_timeout: Duration::from_secs(60),
            cell_timeout: None,
            prepare_only: false,
            report_mode: false,
            record_env: Vec::new(),
            redact: None,
            host,
            resume: None,
        }
    }
}

/// Progress of a run, for logs and terminals.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Something worth a warning (unknown parameter, no `parameters` cell…).
    Warning(String),
    /// A cell begins.
    CellStart {
        /// Cell index.
        index: usize,
        /// Number of cells.
        total: usize,
    },
    /// A cell ended.
    CellEnd {
        /// Cell index.
        index: usize,
        /// Number of cells.
        total: usize,
        /// `completed` or `failed`.
        status: String,
        /// How long it took.
        duration: Duration,
    },
    /// Stream output of a cell (`stdout`/`stderr`).
    Stream {
        /// Stream name.
        name: String,
        /// The text as received.
        text: String,
    },
    /// A line the kernel process printed itself.
    KernelLog(String),
    /// The run resumes a failed one: what it replays and where it continues.
    Resuming(ResumePlan),
}

/// The first failing cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellFailure {
    /// Index of the cell in the executed notebook (banner cells not counted).
    pub cell_index: usize,
    /// Its execution count, as shown in the banner.
    pub execution_count: Option<i64>,
    /// Exception name (`CellTimeoutError` for a timeout).
    pub ename: String,
    /// Exception value.
    pub evalue: String,
    /// Traceback lines (with ANSI colours).
    pub traceback: Vec<String>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// Every cell ran (or `SystemExit(0)` stopped the notebook early, which is not a failure).
    Succeeded,
    /// Prepared only: parameters injected, nothing executed.
    Prepared,
    /// A cell failed; the banner and anchor cells were added.
    Failed(CellFailure),
    /// The kernel process died while running `cell_index`.
    KernelDied {
        /// The cell running when it died.
        cell_index: usize,
    },
    /// The run was cancelled (Ctrl-C, or the step's token).
    Cancelled {
        /// The cell running when cancelled, if any.
        cell_index: Option<usize>,
    },
}

impl RunOutcome {
    /// Process exit status with papermill's meaning: 0 ok, 1 failed, 138 dead kernel,
    /// 130 interrupted.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunOutcome::Succeeded | RunOutcome::Prepared => 0,
            RunOutcome::Failed(_) => 1,
            RunOutcome::KernelDied { .. } => DEAD_KERNEL_EXIT_CODE,
            RunOutcome::Cancelled { .. } => 130,
        }
    }
}

/// The result of [`run`]: the outcome and the final output notebook.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// How it ended.
    pub outcome: RunOutcome,
    /// The notebook as written to the output path (masked when the request says so).
    pub notebook: Value,
}

impl RunReport {
    fn new(outcome: RunOutcome, notebook: Value, req: &RunRequest) -> RunReport {
        let notebook = match &req.redact {
            Some(r) => r.value(&notebook),
            None => notebook,
        };
        RunReport { outcome, notebook }
    }
}

/// Python's `datetime.now(timezone.utc).isoformat()`.
fn now_iso() -> String {
    let ts = jiff::Timestamp::now();
    let micros = ts.subsec_microsecond();
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if micros == 0 {
        format!("{base}+00:00")
    } else {
        format!("{base}.{micros:06}+00:00")
    }
}

/// nbclient's timestamp for a message: its header date as `…%.6fZ`.
fn msg_time(m: &KernelMessage) -> String {
    m.date
        .as_deref()
        .and_then(|d| d.parse::<jiff::Timestamp>().ok())
        .map(|ts| {
            format!(
                "{}.{:06}Z",
                ts.strftime("%Y-%m-%dT%H:%M:%S"),
                ts.subsec_microsecond()
            )
        })
        .unwrap_or_else(|| {
            let ts = jiff::Timestamp::now();
            format!(
                "{}.{:06}Z",
                ts.strftime("%Y-%m-%dT%H:%M:%S"),
                ts.subsec_microsecond()
            )
        })
}

/// Insert the injected-parameters cell the way papermill does and record the parameters.
pub fn parameterize(
    nb: &mut Value,
    params: &Params,
    kernel: Option<&str>,
    language: Option<&str>,
    report_mode: bool,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let kernel_name = document::kernel_name(nb, kernel).ok_or(NotebookError::NoKernelName)?;
    let lang = document::language(nb, language).unwrap_or_default();
    let translator = Language::find(&kernel_name, &lang)?;
    let source = translator.codify(params, "Parameters")?;
    let mut cell = document::new_cell("code", &source, &[INJECTED_TAG]);
    if report_mode {
        cell["metadata"]["jupyter"] = json!({"source_hidden": true});
    }
    let injected = document::first_tagged(nb, INJECTED_TAG);
    let param_cell = document::first_tagged(nb, PARAMETERS_TAG);
    let cells = document::cells_mut(nb);
    match (injected, param_cell) {
        (Some(i), _) => cells[i] = cell,
        (None, Some(p)) => cells.insert(p + 1, cell),
        (None, None) => {
            warnings.push("Input notebook does not contain a cell with tag 'parameters'".into());
            cells.insert(0, cell);
        }
    }
    document::papermill_meta(nb).insert("parameters".into(), params.to_json());
    Ok(warnings)
}

/// Load, parameterize and stamp the notebook; returns it with warnings.
pub fn prepare(req: &RunRequest) -> Result<(Value, Vec<String>)> {
    let mut nb = document::load(&req.input)?;
    let mut warnings = Vec::new();
    if !req.params.is_empty() {
        let (known, _) = inspect::infer(&nb);
        for (name, _) in &req.params.0 {
            if !known.iter().any(|k| &k.name == name) {
                warnings.push(format!("Passed unknown parameter: {name}"));
            }
        }
        warnings.extend(parameterize(
            &mut nb,
            &req.params,
            req.kernel.as_deref(),
            req.language.as_deref(),
            req.report_mode,
        )?);
    }
    if req.report_mode {
        for cell in document::cells_mut(&mut nb) {
            if document::cell_type(cell) == "code" {
                cell["metadata"]["jupyter"]["source_hidden"] = json!(true);
            }
        }
    }
    let env: serde_json::Map<String, Value> = req
        .record_env
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), Value::String(v))))
        .collect();
    let meta = document::papermill_meta(&mut nb);
    meta.insert(
        "input_path".into(),
        Value::String(req.input.display().to_string()),
    );
    meta.insert(
        "output_path".into(),
        Value::String(req.output.display().to_string()),
    );
    if !env.is_empty() {
        meta.insert("environment_variables".into(), Value::Object(env));
    }
    document::remove_error_markers(&mut nb);
    Ok((nb, warnings))
}

/// Output state of the cell being executed, following nbclient's rules.
struct OutputState {
    clear_before_next: bool,
    /// display_id → cell index → output indices.
    display_ids: HashMap<String, HashMap<usize, Vec<usize>>>,
    /// Cells an `update_display_data` changed since this was last emptied (they may be
    /// earlier cells, whose saved text must then be redone).
    updated_cells: Vec<usize>,
}

impl OutputState {
    fn clear_cell_mapping(&mut self, cell_index: usize) {
        for per_cell in self.display_ids.values_mut() {
            if let Some(v) = per_cell.get_mut(&cell_index) {
                v.clear();
            }
        }
    }

    fn update_display(&mut self, nb: &mut Value, display_id: &str, content: &Value) {
        let Some(per_cell) = self.display_ids.get(display_id) else {
            return;
        };
        let cells = document::cells_mut(nb);
        for (cell_idx, outs) in per_cell {
            if !outs.is_empty() {
                self.updated_cells.push(*cell_idx);
            }
            for out_idx in outs {
                if let Some(out) = cells
                    .get_mut(*cell_idx)
                    .and_then(|c| c.get_mut("outputs"))
                    .and_then(|o| o.get_mut(*out_idx))
                {
                    out["data"] = content.get("data").cloned().unwrap_or(json!({}));
                    out["metadata"] = content.get("metadata").cloned().unwrap_or(json!({}));
                }
            }
        }
    }

    /// Apply one kernel message to the notebook (cell `idx`).
    fn apply(&mut self, nb: &mut Value, idx: usize, m: &KernelMessage) {
        let content = &m.content;
        let display_id = content
            .pointer("/transient/display_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let kind = m.msg_type.as_str();
        if let Some(id) = &display_id
            && matches!(
                kind,
                "execute_result" | "display_data" | "update_display_data"
            )
        {
            self.update_display(nb, id, content);
        }
        let cell = &mut document::cells_mut(nb)[idx];
        if m.msg_type != "execute_reply"
            && let Some(n) = content.get("execution_count")
        {
            cell["execution_count"] = n.clone();
        }
        let timing = |key: &str, cell: &mut Value| {
            cell["metadata"]["execution"][key] = Value::String(msg_time(m));
        };
        match kind {
            "execute_reply" => timing("shell.execute_reply", cell),
            "status" => match content.get("execution_state").and_then(Value::as_str) {
                Some("idle") => timing("iopub.status.idle", cell),
                Some("busy") => timing("iopub.status.busy", cell),
                _ => {}
            },
            "execute_input" => timing("iopub.execute_input", cell),
            "clear_output" => {
                if content.get("wait").and_then(Value::as_bool) == Some(true) {
                    self.clear_before_next = true;
                } else {
                    cell["outputs"] = json!([]);
                    self.clear_cell_mapping(idx);
                }
            }
            "stream" | "display_data" | "execute_result" | "error" => {
                let out = match kind {
                    "stream" => json!({
                        "output_type": "stream",
                        "name": content.get("name").cloned().unwrap_or(json!("stdout")),
                        "text": content.get("text").cloned().unwrap_or(json!("")),
                    }),
                    "display_data" => json!({
                        "output_type": "display_data",
                        "data": content.get("data").cloned().unwrap_or(json!({})),
                        "metadata": content.get("metadata").cloned().unwrap_or(json!({})),
                    }),
                    "execute_result" => json!({
                        "output_type": "execute_result",
                        "data": content.get("data").cloned().unwrap_or(json!({})),
                        "metadata": content.get("metadata").cloned().unwrap_or(json!({})),
                        "execution_count": content.get("execution_count").cloned().unwrap_or(Value::Null),
                    }),
                    _ => json!({
                        "output_type": "error",
                        "ename": content.get("ename").cloned().unwrap_or(json!("")),
                        "evalue": content.get("evalue").cloned().unwrap_or(json!("")),
                        "traceback": content.get("traceback").cloned().unwrap_or(json!([])),
                    }),
                };
                if self.clear_before_next {
                    cell["outputs"] = json!([]);
                    self.clear_before_next = false;
                    self.clear_cell_mapping(idx);
                }
                if !cell.get("outputs").is_some_and(Value::is_array) {
                    cell["outputs"] = json!([]);
                }
                if let Some(outs) = cell["outputs"].as_array_mut() {
                    if let Some(id) = display_id {
                        self.display_ids
                            .entry(id)
                            .or_default()
                            .entry(idx)
                            .or_default()
                            .push(outs.len());
                    }
                    outs.push(out);
                }
            }
            _ => {}
        }
    }
}

fn cell_meta(nb: &mut Value, idx: usize) -> &mut serde_json::Map<String, Value> {
    let cell = &mut document::cells_mut(nb)[idx];
    if !cell
        .pointer("/metadata/papermill")
        .is_some_and(Value::is_object)
    {
        cell["metadata"]["papermill"] = json!({});
    }
    match cell.pointer_mut("/metadata/papermill") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("cell papermill metadata was just made an object"),
    }
}

/// Find the first failure like papermill's `raise_for_execution_errors`.
fn find_failure(nb: &Value) -> Option<CellFailure> {
    for (index, cell) in document::cells(nb).iter().enumerate() {
        let mut has_sys_exit = false;
        let count = cell.get("execution_count").and_then(Value::as_i64);
        for out in cell
            .get("outputs")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if out.get("output_type").and_then(Value::as_str) != Some("error") {
                continue;
            }
            let s = |k: &str| out.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let (ename, evalue) = (s("ename"), s("evalue"));
            if ename == "SystemExit" && (evalue.is_empty() || evalue == "0") {
                has_sys_exit = true;
                continue;
            }
            let traceback = out
                .get("traceback")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            return Some(CellFailure {
                cell_index: index,
                execution_count: count,
                ename,
                evalue,
                traceback,
            });
        }
        if !has_sys_exit && cell.pointer("/metadata/papermill/exception") == Some(&json!(true)) {
            return Some(CellFailure {
                cell_index: index,
                execution_count: count,
                ename: "CellExecutionError".into(),
                evalue: String::new(),
                traceback: Vec::new(),
            });
        }
    }
    None
}

fn insert_error_cells(nb: &mut Value, failure: &CellFailure) {
    let count = failure
        .execution_count
        .map(|c| c.to_string())
        .unwrap_or_else(|| "None".into());
    let banner = format!(
        "<span {ERROR_STYLE}>An Exception was encountered at '<a href=\"#papermill-error-cell\">In [{count}]</a>'.</span>"
    );
    let anchor = format!(
        "<span id=\"papermill-error-cell\" {ERROR_STYLE}>Execution using papermill encountered an exception here and stopped:</span>"
    );
    let cells = document::cells_mut(nb);
    cells.insert(
        failure.cell_index,
        document::new_cell("markdown", &anchor, &[ERROR_MARKER_TAG]),
    );
    cells.insert(
        0,
        document::new_cell("markdown", &banner, &[ERROR_MARKER_TAG]),
    );
}

/// Run a notebook end to end. Errors are for things that prevent running at all
/// (unreadable notebook, no kernel); a failing cell is an [`RunOutcome`].
pub async fn run(
    req: &RunRequest,
    cancel: &CancellationToken,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<RunReport> {
    let (mut nb, warnings) = prepare(req)?;
    for w in warnings {
        progress(Progress::Warning(w));
    }
    // Nothing executes in a prepare-only run, so there is nothing to resume either.
    let resume = match &req.resume {
        Some(resume) if !req.prepare_only => {
            let plan = crate::resume::apply(&mut nb, resume)?;
            progress(Progress::Resuming(plan.clone()));
            Some(plan)
        }
        _ => None,
    };
    let kept = resume.map(|plan| plan.kept).unwrap_or_default();
    if req.prepare_only {
        NotebookWriter::new(&req.output)
            .redacting(req.redact.clone())
            .save(&nb)?;
        return Ok(RunReport::new(RunOutcome::Prepared, nb, req));
    }
    let kernel_name =
        document::kernel_name(&nb, req.kernel.as_deref()).ok_or(NotebookError::NoKernelName)?;
    let spec = kernelspec::find_kernelspec(&kernel_name).await?;
    let mut writer = NotebookWriter::new(&req.output).redacting(req.redact.clone());

    // notebook_start: reset counts, outputs and per-cell metadata, then save, so even a
    // crash before the first cell leaves a readable output notebook.
    let started = Instant::now();
    {
        let meta = document::papermill_meta(&mut nb);
        meta.insert("start_time".into(), Value::String(now_iso()));
        meta.insert("end_time".into(), Value::Null);
        meta.insert("duration".into(), Value::Null);
        meta.insert("exception".into(), Value::Null);
    }
    for (index, cell) in document::cells_mut(&mut nb).iter_mut().enumerate() {
        // A resumed run's kept cells show what the failed run gave them.
        if kept.contains(&index) {
            continue;
        }
        let code = document::cell_type(cell) == "code";
        if code {
            cell["execution_count"] = Value::Null;
            cell["outputs"] = json!([]);
        }
        cell["metadata"]["papermill"] = json!({
            "exception": null, "start_time": null, "end_time": null,
            "duration": null, "status": "pending",
        });
    }
    writer.save(&nb)?;

    let (log_tx, mut log_rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = KernelOptions {
        cwd: req.cwd.clone(),
        start_timeout: req.start_timeout,
        process_log: Some(log_tx),
        host: req.host.clone(),
    };
    let kernel = tokio::select! {
        k = Kernel::start(&spec, &opts) => Some(k),
        _ = cancel.cancelled() => None,
    };
    let mut kernel = match kernel {
        Some(Ok(k)) => k,
        Some(Err(e)) => {
            notebook_complete(&mut nb, started);
            writer.save(&nb)?;
            return Err(e);
        }
        None => {
            notebook_complete(&mut nb, started);
            writer.save(&nb)?;
            return Ok(RunReport::new(
                RunOutcome::Cancelled { cell_index: None },
                nb,
                req,
            ));
        }
    };

    let result = execute_cells(
        &mut nb,
        &mut kernel,
        &mut writer,
        CellsRun {
            req,
            kept: &kept,
            cancel,
        },
        progress,
        &mut log_rx,
    )
    .await;
    if let Some(li) = kernel.kernel_info().get("language_info") {
        nb["metadata"]["language_info"] = li.clone();
    }
    kernel.shutdown().await;
    while let Ok(line) = log_rx.try_recv() {
        progress(Progress::KernelLog(line));
    }
    let mut outcome = result?;
    notebook_complete(&mut nb, started);
    if matches!(outcome, RunOutcome::Succeeded | RunOutcome::Failed(_))
        && let Some(mut failure) = find_failure(&nb)
    {
        insert_error_cells(&mut nb, &failure);
        if let RunOutcome::Failed(timeout) = &outcome {
            failure.ename = timeout.ename.clone();
            failure.evalue = timeout.evalue.clone();
        }
        outcome = RunOutcome::Failed(failure);
    }
    writer.save(&nb)?;
    Ok(RunReport::new(outcome, nb, req))
}

fn notebook_complete(nb: &mut Value, started: Instant) {
    let meta = document::papermill_meta(nb);
    meta.insert("end_time".into(), Value::String(now_iso()));
    meta.insert(
        "duration".into(),
        json!(started.elapsed().as_micros() as f64 / 1e6),
    );
    for cell in document::cells_mut(nb) {
        match cell
            .pointer("/metadata/papermill/status")
            .and_then(Value::as_str)
        {
            Some("failed") => break,
            Some("pending") => cell["metadata"]["papermill"]["status"] = json!("completed"),
            _ => {}
        }
    }
}

/// What [`execute_cells`] runs and how.
struct CellsRun<'a> {
    req: &'a RunRequest,
    /// Cells that do not run (a resumed run's kept cells).
    kept: &'a BTreeSet<usize>,
    cancel: &'a CancellationToken,
}

async fn execute_cells(
    nb: &mut Value,
    kernel: &mut Kernel,
    writer: &mut NotebookWriter,
    run: CellsRun<'_>,
    progress: &mut (dyn FnMut(Progress) + Send),
    log_rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
) -> Result<RunOutcome> {
    let CellsRun { req, kept, cancel } = run;
    let total = document::cells(nb).len();
    let mut state = OutputState {
        clear_before_next: false,
        display_ids: HashMap::new(),
        updated_cells: Vec::new(),
    };
    // Cells are sent one ahead: the kernel queues them, so its idle→busy gap between
    // cells overlaps our bookkeeping. An error aborts the queued request (stop_on_error).
    let runnable = |nb: &Value, i: usize| {
        let cell = &document::cells(nb)[i];
        document::cell_type(cell) == "code"
            && !document::source(cell).trim().is_empty()
            && !kept.contains(&i)
    };
    let mut sent: HashMap<usize, String> = HashMap::new();
    for idx in (0..total).filter(|i| !kept.contains(i)) {
        while let Ok(line) = log_rx.try_recv() {
            progress(Progress::KernelLog(line));
        }
        if cancel.is_cancelled() {
            return Ok(RunOutcome::Cancelled {
                cell_index: Some(idx),
            });
        }
        progress(Progress::CellStart { index: idx, total });
        let t0 = Instant::now();
        let start_iso = now_iso();
        {
            let m = cell_meta(nb, idx);
            m.insert("start_time".into(), Value::String(start_iso));
            m.insert("status".into(), json!("running"));
            m.insert("exception".into(), json!(false));
        }

        let cell = &document::cells(nb)[idx];
        let allows_errors = document::has_tag(cell, "raises-exception");
        let mut end = None;
        if runnable(nb, idx) {
            let msg_id = match sent.remove(&idx) {
                Some(id) => id,
                None => {
                    let src = document::source(&document::cells(nb)[idx]);
                    match kernel.send_execute(&src, !allows_errors).await {
                        Ok(id) => id,
                        Err(_) if kernel.died_within(Duration::from_secs(5)).await => {
                            return Ok(RunOutcome::KernelDied { cell_index: idx });
                        }
                        Err(error) => return Err(error),
                    }
                }
            };
            if let Some(next) = (idx + 1..total).find(|&j| runnable(nb, j)) {
                let cell = &document::cells(nb)[next];
                let stop = !document::has_tag(cell, "raises-exception");
                // Sending ahead only saves a round trip: if it fails (the kernel may just
                // have died), the cell is sent again in its turn, where failure is handled.
                if let Ok(id) = kernel.send_execute(&document::source(cell), stop).await {
                    sent.insert(next, id);
                }
            }
            document::cells_mut(nb)[idx]["metadata"]["execution"] = json!({});
            state.clear_before_next = false;
            // The message handler and the autosave below both need the notebook while
            // the cell runs; they take turns on this (never contended) lock.
            let shared = std::sync::Mutex::new(&mut *nb);
            let lock = || {
                shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            };
            let mut on_msg = |m: &KernelMessage| {
                if m.msg_type == "stream" {
                    progress(Progress::Stream {
                        name: m
                            .content
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("stdout")
                            .to_string(),
                        text: m
                            .content
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    });
                }
                state.apply(&mut lock(), idx, m);
            };
            let wait = kernel.wait_execute(&msg_id, req.cell_timeout, cancel, &mut on_msg);
            tokio::pin!(wait);
            let mut autosave = tokio::time::interval_at(
                tokio::time::Instant::now() + RUNNING_SAVE_AFTER,
                AUTOSAVE_EVERY,
            );
            end = Some(loop {
                tokio::select! {
                    biased;
                    end = &mut wait => break end?,
                    _ = autosave.tick() => writer.save(&lock())?,
                }
            });
        }
        let failed = match &end {
            Some(ExecuteEnd::Replied { status, .. }) => status != "ok" && !allows_errors,
            Some(_) => true,
            None => false,
        };
        let end_iso = now_iso();
        let duration = t0.elapsed();
        {
            let m = cell_meta(nb, idx);
            m.insert("end_time".into(), Value::String(end_iso));
            m.insert("duration".into(), json!(duration.as_micros() as f64 / 1e6));
            if failed {
                m.insert("exception".into(), json!(true));
                m.insert("status".into(), json!("failed"));
            } else {
                m.insert("status".into(), json!("completed"));
            }
        }
        if failed {
            document::papermill_meta(nb).insert("exception".into(), json!(true));
        }
        // This cell and those before it are final now, bar display updates (which redo the
        // cells they changed): each cell is serialised once, not once per later cell.
        for updated in state.updated_cells.drain(..) {
            writer.unsettle(updated);
        }
        writer.save_settled(nb, idx + 1)?;
        progress(Progress::CellEnd {
            index: idx,
            total,
            status: if failed { "failed" } else { "completed" }.into(),
            duration,
        });
        match end {
            Some(ExecuteEnd::Died) => return Ok(RunOutcome::KernelDied { cell_index: idx }),
            Some(ExecuteEnd::Cancelled) => {
                return Ok(RunOutcome::Cancelled {
                    cell_index: Some(idx),
                });
            }
            Some(ExecuteEnd::TimedOut { .. }) => {
                let secs = req.cell_timeout.map(|d| d.as_secs_f64()).unwrap_or(0.0);
                return Ok(RunOutcome::Failed(CellFailure {
                    cell_index: idx,
                    execution_count: document::cells(nb)[idx]
                        .get("execution_count")
                        .and_then(Value::as_i64),
                    ename: "CellTimeoutError".into(),
                    evalue: format!("Cell execution timed out after {secs} seconds"),
                    traceback: Vec::new(),
                }));
            }
            _ if failed => return Ok(RunOutcome::Succeeded),
            _ => {}
        }
    }
    Ok(RunOutcome::Succeeded)
}
