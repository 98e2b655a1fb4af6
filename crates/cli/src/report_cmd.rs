//! `rota report RUN --format html|md [-o FILE]`: a run's report, written by whichever side
//! holds the store (this process, or the server with `--server`).

use std::path::PathBuf;

use anyhow::Context as _;
use rota_ops::reports::ReportFormat;
use rota_ops::service::Reports;

use crate::output::Printer;

/// Arguments of `rota report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run (its id or an unambiguous prefix).
    pub run: String,
    /// Report format.
    #[arg(long, value_enum, default_value_t = FormatArg::Html)]
    pub format: FormatArg,
    /// Where to write (default: standard output).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The formats `--format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// One self-contained HTML page.
    Html,
    /// Markdown.
    Md,
}

impl From<FormatArg> for ReportFormat {
    fn from(format: FormatArg) -> ReportFormat {
        match format {
            FormatArg::Html => ReportFormat::Html,
            FormatArg::Md => ReportFormat::Md,
        }
    }
}

/// Writes the report of `args.run` to `args.out` or standard output.
pub async fn report<R: Reports>(rota: &R, args: ReportArgs, out: &Printer) -> anyhow::Result<u8> {
    let text = rota.run_report(&args.run, args.format.into()).await?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write the report to {}", path.display()))?;
            if out.is_json() {
                out.json(&serde_json::json!({ "run": args.run, "report": path }));
            }
        }
        None => out.text(&text),
    }
    Ok(0)
}
