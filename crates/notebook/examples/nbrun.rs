//! `nbrun`: the notebook CLI without the rest of Rota, for benchmarks before `rota` exists.
//!
//! Run with `cargo run --release -p rota-notebook --example nbrun -- run IN.ipynb OUT.ipynb`.

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: rota_notebook::cli::NotebookCommand,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let code = rota_notebook::cli::run(args.cmd).await;
    std::process::exit(code);
}
