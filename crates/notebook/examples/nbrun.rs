//! `nbrun`: the notebook CLI without the rest of Rota, for benchmarks and CLI tests.
//!
//! Run with `cargo run --release -p rota-notebook --example nbrun -- run IN.ipynb OUT.ipynb`.
//! Like `rota`, it has a global `--output human|json` that it copies into `inspect`.

use clap::Parser;
use rota_notebook::cli::{NotebookCommand, OutputFormat};

#[derive(Parser)]
struct Args {
    /// Output format of results.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    output: OutputFormat,
    #[command(subcommand)]
    cmd: NotebookCommand,
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    if let NotebookCommand::Inspect { output, .. } = &mut args.cmd {
        *output = args.output;
    }
    // Kernels start through the engine's supervisor, as under `rota notebook run`.
    rota_engine::cgroup::init();
    let host = rota_engine::kernels::Kernels::default().host();
    std::process::exit(rota_notebook::cli::run(args.cmd, host).await);
}
