//! Arguments and dispatch of `rota notebook strip|git-filter|convert|diff|report`.
//!
//! Exit codes: 0 done (or nothing to change, or the notebooks are the same), 1 `strip
//! --check` found a file to strip or `diff` found a difference, 2 an error (the message
//! names the file).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::convert::{self, Format};
use super::diff::{self, DiffOptions};
use super::{ToolError, git_filter, strip};
use crate::cli::OutputFormat;
use crate::report::{self, ReportFormat};

/// Arguments of `rota notebook strip`.
#[derive(Debug, clap::Args)]
pub struct StripArgs {
    /// Notebooks to strip in place (`-` reads standard input and writes standard output).
    #[arg(required_unless_present = "stdin")]
    pub files: Vec<PathBuf>,
    /// Change nothing: list the files that would change, exit 1 if any would.
    #[arg(long)]
    pub check: bool,
    /// Read a notebook on standard input, write it stripped on standard output (a git
    /// clean filter).
    #[arg(long, conflicts_with_all = ["files", "check"])]
    pub stdin: bool,
}

/// `rota notebook git-filter …`.
#[derive(Debug, clap::Subcommand)]
pub enum GitFilterCommand {
    /// Strip notebooks as they are staged: configure the `rota-strip` clean filter and add
    /// `*.ipynb filter=rota-strip` to `.gitattributes` (idempotent).
    Install {
        /// Configure git globally (`~/.gitconfig` and git's global attributes file).
        #[arg(long)]
        global: bool,
    },
}

/// Arguments of `rota notebook convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The file to convert: a notebook, a percent script (`.py`) or Markdown (`.md`).
    pub file: PathBuf,
    /// Target format.
    #[arg(long, value_enum)]
    pub to: Format,
    /// Where to write (default: standard output).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Arguments of `rota notebook diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The old notebook.
    pub a: PathBuf,
    /// The new notebook.
    pub b: PathBuf,
    /// Compare outputs and execution counts too.
    #[arg(long)]
    pub outputs: bool,
    /// Output format, copied in from `rota`'s global `--output`.
    #[arg(skip = OutputFormat::Human)]
    pub output: OutputFormat,
}

/// Arguments of `rota notebook report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The notebook (executed or not).
    pub file: PathBuf,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Where to write (default: standard output).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn fail(e: ToolError) -> i32 {
    eprintln!("error: {e}");
    2
}

/// Write `text` to `out`, or standard output.
fn emit(text: &str, out: Option<&Path>) -> Result<(), ToolError> {
    match out {
        Some(path) if path != Path::new("-") => {
            std::fs::write(path, text).map_err(|e| ToolError::io(path, e))
        }
        _ => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| ToolError::io(Path::new("<stdout>"), e))
        }
    }
}

/// `rota notebook strip`.
pub fn strip_cmd(args: &StripArgs) -> i32 {
    if args.stdin || args.files.iter().any(|f| f == Path::new("-")) {
        if args.files.len() > 1 {
            return fail(ToolError::Usage(
                "`-` (standard input) must be the only file".into(),
            ));
        }
        return match strip_stream(args.check) {
            Ok(code) => code,
            Err(e) => fail(e),
        };
    }
    let mut code = 0;
    for file in &args.files {
        match strip_file(file, args.check) {
            Ok(false) => {}
            Ok(true) if args.check => {
                println!("{}", file.display());
                code = code.max(1);
            }
            Ok(true) => eprintln!("stripped {}", file.display()),
            Err(e) => code = fail(e),
        }
    }
    code
}

/// Strip standard input to standard output; the input unchanged when nothing is to strip.
fn strip_stream(check: bool) -> Result<i32, ToolError> {
    let name = Path::new(super::STDIN_NAME);
    let text = super::read_bounded(std::io::stdin().lock(), name)?;
    match strip::strip_text(&text, name)? {
        Some(_) if check => {
            println!("{}", super::STDIN_NAME);
            Ok(1)
        }
        None if check => Ok(0),
        Some(stripped) => emit(&stripped, None).map(|()| 0),
        None => emit(&text, None).map(|()| 0),
    }
}

/// Strip one file in place (atomically); returns whether it changed (or would).
fn strip_file(path: &Path, check: bool) -> Result<bool, ToolError> {
    let text = super::read_text(path)?;
    let Some(stripped) = strip::strip_text(&text, path)? else {
        return Ok(false);
    };
    if !check {
        write_atomically(path, &stripped)?;
    }
    Ok(true)
}

/// Write beside `path` then rename over it, keeping the file's permissions.
fn write_atomically(path: &Path, text: &str) -> Result<(), ToolError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "notebook.ipynb".into());
    let tmp = path.with_file_name(format!(".{name}.rota-strip"));
    std::fs::write(&tmp, text).map_err(|e| ToolError::io(&tmp, e))?;
    if let Ok(meta) = std::fs::metadata(path) {
        // Best effort: a file we could read and are allowed to replace keeps its mode.
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ToolError::io(path, e)
    })
}

/// `rota notebook git-filter …`.
pub fn git_filter_cmd(command: &GitFilterCommand) -> i32 {
    let GitFilterCommand::Install { global } = command;
    let result = std::env::current_dir()
        .map_err(|e| ToolError::io(Path::new("."), e))
        .and_then(|dir| {
            let exe = std::env::current_exe().map_err(|e| ToolError::io(Path::new("rota"), e))?;
            git_filter::install(&dir, *global, &exe)
        });
    match result {
        Ok(done) => {
            eprintln!(
                "git filter `{}` set (clean: {}); {} {}",
                git_filter::FILTER,
                done.clean,
                if done.added_line {
                    "added to"
                } else {
                    "already in"
                },
                done.attributes.display()
            );
            0
        }
        Err(e) => fail(e),
    }
}

/// `rota notebook convert`.
pub fn convert_cmd(args: &ConvertArgs) -> i32 {
    let from = match Format::of_path(&args.file) {
        Some(f) => f,
        None => {
            return fail(ToolError::Usage(format!(
                "{}: unknown input format (expected .ipynb, .py or .md)",
                args.file.display()
            )));
        }
    };
    if from == args.to {
        return fail(ToolError::Usage(format!(
            "{}: already a .{} file",
            args.file.display(),
            args.to.extension()
        )));
    }
    if from != Format::Ipynb && args.to != Format::Ipynb {
        return fail(ToolError::Usage(format!(
            "{}: text forms convert to and from notebooks (--to ipynb)",
            args.file.display()
        )));
    }
    let result = super::read_text(&args.file)
        .and_then(|text| convert::convert(&text, &args.file, from, args.to))
        .and_then(|text| emit(&text, args.out.as_deref()));
    match result {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// `rota notebook diff`.
pub fn diff_cmd(args: &DiffArgs) -> i32 {
    let (a, b) = match (super::load_notebook(&args.a), super::load_notebook(&args.b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let options = DiffOptions {
        outputs: args.outputs,
    };
    let name_a = args.a.display().to_string();
    let name_b = args.b.display().to_string();
    let changes = diff::diff(&a, &b, &name_a, &name_b, options);
    let text = match args.output {
        OutputFormat::Json => match serde_json::to_string_pretty(&changes) {
            Ok(json) => json + "\n",
            Err(e) => return fail(ToolError::Usage(e.to_string())),
        },
        OutputFormat::Human => diff::render_human(&changes),
    };
    if let Err(e) = emit(&text, None) {
        return fail(e);
    }
    i32::from(!changes.is_empty())
}

/// `rota notebook report`.
pub fn report_cmd(args: &ReportArgs) -> i32 {
    let result = super::load_notebook(&args.file).and_then(|nb| {
        let title = args.file.display().to_string();
        emit(
            &report::render_titled(&nb, args.format, &title),
            args.out.as_deref(),
        )
    });
    match result {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}
