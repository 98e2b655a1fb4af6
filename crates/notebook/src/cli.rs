//! `rota notebook inspect|run` (and the kernel-less tools of [`crate::tools`]): the clap
//! definitions and their dispatch.
//!
//! Exit codes follow papermill: 0 ok, 1 a cell failed (or the run could not start),
//! 2 usage or input error, 130 interrupted (Ctrl-C), 138 the kernel died.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::document;
use crate::execute::{self, Progress, RunOutcome, RunRequest};
use crate::inspect;
use crate::kernel::Host;
use crate::params::{self, Param, Params};
use crate::report::{self, ReportFormat};
use crate::tools;

/// Output format of `inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines.
    Human,
    /// A JSON array of `{name, inferred_type_name, default, help}`.
    Json,
}

/// `rota notebook …` subcommands.
// Parsed once per process; boxing `RunArgs` would only make matching on it clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum NotebookCommand {
    /// List the parameters inferred from the notebook's `parameters` cell.
    Inspect {
        /// The notebook.
        notebook: PathBuf,
        /// Output format. Not parsed here: `rota` has a global `--output human|json`
        /// and the binary copies it in (see the `nbrun` example).
        #[arg(skip = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// Execute a notebook like `papermill IN OUT` (exit 0 ok, 1 cell failed, 138 kernel died).
    Run(RunArgs),
    /// Remove outputs, execution counts and run metadata, in place (`--check`: only list).
    Strip(tools::cli::StripArgs),
    /// Set up git to strip notebooks as they are staged.
    #[command(subcommand)]
    GitFilter(tools::cli::GitFilterCommand),
    /// Convert between a notebook and a percent script (`.py`) or Markdown (`.md`).
    Convert(tools::cli::ConvertArgs),
    /// Cell-aware diff of two notebooks (exit 0 same, 1 different, 2 error).
    Diff(tools::cli::DiffArgs),
    /// Render a notebook (executed or not) as HTML or Markdown.
    Report(tools::cli::ReportArgs),
}

impl NotebookCommand {
    /// Copy in `rota`'s global `--output` format, for the subcommands that use it.
    pub fn set_output(&mut self, format: OutputFormat) {
        match self {
            NotebookCommand::Inspect { output, .. } => *output = format,
            NotebookCommand::Diff(args) => args.output = format,
            _ => {}
        }
    }
}

/// Arguments of `rota notebook run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Input notebook.
    pub input: PathBuf,
    /// Output notebook (written after every cell).
    // Its own id: `output` is the `rota` binary's global `--output` format flag.
    #[arg(id = "output_notebook", value_name = "OUTPUT")]
    pub output: PathBuf,
    /// Parameter, typed like papermill (True/False/None, int, float, else string).
    #[arg(short = 'p', long = "parameters", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub parameters: Vec<String>,
    /// Parameter taken as a raw string.
    #[arg(short = 'r', long = "parameters-raw", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub parameters_raw: Vec<String>,
    /// YAML file of parameters.
    #[arg(short = 'f', long = "parameters-file")]
    pub parameters_file: Vec<PathBuf>,
    /// YAML string of parameters.
    #[arg(short = 'y', long = "parameters-yaml")]
    pub parameters_yaml: Vec<String>,
    /// Inject PAPERMILL_INPUT_PATH and PAPERMILL_OUTPUT_PATH as parameters.
    #[arg(long)]
    pub inject_paths: bool,
    /// Kernel name, overriding the notebook's kernelspec.
    #[arg(short = 'k', long)]
    pub kernel: Option<String>,
    /// Language, overriding the notebook's (chooses how parameters are rendered).
    #[arg(short = 'l', long)]
    pub language: Option<String>,
    /// Working directory of the kernel.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Seconds each cell may run before it is interrupted and failed.
    #[arg(long, alias = "execution-timeout", value_name = "SECS")]
    pub cell_timeout: Option<f64>,
    /// Seconds to wait for the kernel to start.
    #[arg(
        long,
        alias = "start_timeout",
        value_name = "SECS",
        default_value_t = 60.0
    )]
    pub start_timeout: f64,
    /// Inject parameters and write the output notebook without executing it.
    #[arg(long)]
    pub prepare_only: bool,
    /// Also render the executed notebook (written next to OUTPUT, or to --report-path).
    #[arg(long, value_enum)]
    pub report: Option<ReportFormat>,
    /// Where to write the report.
    #[arg(long, requires = "report")]
    pub report_path: Option<PathBuf>,
    /// Hide code inputs in the output notebook.
    #[arg(long)]
    pub report_mode: bool,
    /// Record this environment variable in the notebook's metadata (repeatable).
    #[arg(long = "record-env", value_name = "NAME")]
    pub record_env: Vec<String>,
    /// Print cell outputs as they arrive.
    #[arg(long)]
    pub log_output: bool,
    /// The executed notebook of a failed run of INPUT: start a fresh kernel, replay the
    /// parameters and `setup`-tagged cells before the failed cell (or every cell before it
    /// when none is tagged), keep the other earlier cells' outputs, and continue from the
    /// failed cell.
    #[arg(long, value_name = "FAILED")]
    pub resume_from: Option<PathBuf>,
}

fn seconds(v: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| format!("{what} must be a non-negative number of seconds"))
}

/// Turn the typed-in arguments into a run request (papermill's parameter order) whose
/// kernel `host` starts.
pub fn run_request(args: &RunArgs, host: Host) -> Result<RunRequest, String> {
    let mut p = Params::default();
    if args.inject_paths {
        p.set(
            "PAPERMILL_INPUT_PATH",
            Param::Str(args.input.display().to_string()),
        );
        p.set(
            "PAPERMILL_OUTPUT_PATH",
            Param::Str(args.output.display().to_string()),
        );
    }
    for file in &args.parameters_file {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        p.merge(params::parse_yaml(&text).map_err(|e| format!("{}: {e}", file.display()))?)
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    for y in &args.parameters_yaml {
        p.merge(params::parse_yaml(y).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    for pair in args.parameters.chunks(2) {
        if let [name, value] = pair {
            p.set(name.clone(), params::resolve_typed(value));
        }
    }
    for pair in args.parameters_raw.chunks(2) {
        if let [name, value] = pair {
            p.set(name.clone(), Param::Str(value.clone()));
        }
    }
    let mut req = RunRequest::new(&args.input, &args.output, host);
    req.params = p;
    req.kernel = args.kernel.clone();
    req.language = args.language.clone();
    req.cwd = args.cwd.clone();
    req.start_timeout = seconds(args.start_timeout, "--start-timeout")?;
    req.cell_timeout = args
        .cell_timeout
        .filter(|t| *t > 0.0)
        .map(|t| seconds(t, "--cell-timeout"))
        .transpose()?;
    req.prepare_only = args.prepare_only;
    req.report_mode = args.report_mode;
    req.record_env = args.record_env.clone();
    if let Some(failed) = &args.resume_from {
        let previous = document::load(failed).map_err(|e| e.to_string())?;
        req.resume = Some(crate::resume::Resume {
            previous,
            source: failed.display().to_string(),
        });
    }
    Ok(req)
}

/// Where the report for `output` goes when no path is given: same name, new extension.
pub fn default_report_path(output: &std::path::Path, format: ReportFormat) -> PathBuf {
    output.with_extension(match format {
        ReportFormat::Html => "html",
        ReportFormat::Md => "md",
    })
}

/// Run a `notebook` subcommand; returns the process exit code. `host` starts the kernel
/// of `run` (the binary hands in the engine's supervisor).
pub async fn run(cmd: NotebookCommand, host: Host) -> i32 {
    match cmd {
        NotebookCommand::Inspect { notebook, output } => inspect_cmd(&notebook, output),
        NotebookCommand::Run(args) => run_cmd(&args, host).await,
        NotebookCommand::Strip(args) => tools::cli::strip_cmd(&args),
        NotebookCommand::GitFilter(command) => tools::cli::git_filter_cmd(&command),
        NotebookCommand::Convert(args) => tools::cli::convert_cmd(&args),
        NotebookCommand::Diff(args) => tools::cli::diff_cmd(&args),
        NotebookCommand::Report(args) => tools::cli::report_cmd(&args),
    }
}

fn inspect_cmd(path: &std::path::Path, output: OutputFormat) -> i32 {
    let nb = match document::load(path) {
        Ok(nb) => nb,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let has_cell = document::first_tagged(&nb, document::PARAMETERS_TAG).is_some();
    let (params, warnings) = inspect::infer(&nb);
    for w in warnings {
        eprintln!("warning: {w}");
    }
    match output {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&params).unwrap_or_else(|_| "[]".into());
            println!("{text}");
            0
        }
        OutputFormat::Human => {
            println!("Parameters inferred for notebook '{}':", path.display());
            if !has_cell {
                println!("\n  No cell tagged 'parameters'");
                return 1;
            }
            if params.is_empty() {
                println!(
                    "\n  Can't infer anything about this notebook's parameters. It may not have any parameter defined."
                );
            } else {
                print!("{}", inspect::render_human(&params));
            }
            0
        }
    }
}

async fn run_cmd(args: &RunArgs, host: Host) -> i32 {
    let req = match run_request(args, host) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let cancel = CancellationToken::new();
    let watcher = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term_recv = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term_recv => {}
            }
            cancel.cancel();
        })
    };
    eprintln!("Input Notebook:  {}", req.input.display());
    eprintln!("Output Notebook: {}", req.output.display());
    let log_output = args.log_output;
    let mut progress = |p: Progress| match p {
        Progress::Warning(w) => eprintln!("warning: {w}"),
        Progress::Resuming(plan) => eprintln!("{}", plan.describe()),
        Progress::CellEnd {
            index,
            total,
            status,
            duration,
        } => eprintln!(
            "cell {}/{} {} ({} ms)",
            index + 1,
            total,
            if status == "completed" { "ok" } else { &status },
            duration.as_millis()
        ),
        Progress::Stream { name, text } if log_output => {
            if name == "stderr" {
                eprint!("{text}");
            } else {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
        }
        _ => {}
    };
    let result = execute::run(&req, &cancel, &mut progress).await;
    watcher.abort();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if let Some(format) = args.report {
        let path = args
            .report_path
            .clone()
            .unwrap_or_else(|| default_report_path(&req.output, format));
        if let Err(e) = std::fs::write(&path, report::render(&report.notebook, format)) {
            eprintln!("error: {}: {e}", path.display());
            return 1;
        }
    }
    match &report.outcome {
        RunOutcome::Failed(f) => {
            let count = f
                .execution_count
                .map(|c| c.to_string())
                .unwrap_or_else(|| "None".into());
            eprintln!("{}", "-".repeat(75));
            eprintln!(
                "Exception encountered at \"In [{count}]\" (cell {}):",
                f.cell_index + 1
            );
            if f.traceback.is_empty() {
                eprintln!("{}: {}", f.ename, f.evalue);
            }
            for line in &f.traceback {
                eprintln!("{}", line);
            }
        }
        RunOutcome::KernelDied { cell_index } => {
            eprintln!("error: kernel died while executing cell {}", cell_index + 1)
        }
        RunOutcome::Cancelled { .. } => eprintln!("interrupted: kernel shut down"),
        RunOutcome::Succeeded | RunOutcome::Prepared => {}
    }
    report.outcome.exit_code()
}
