//! The `rota` binary: parse the command line, dispatch, map the outcome to an exit code.
//!
//! Exit codes are a promise (see `rota --help` and ARCHITECTURE.md): 0 success, 1 the run
//! failed or timed out, 2 usage or validation error, 130 the run was cancelled.

mod args;
mod artifacts_cmd;
mod audit_cmd;
mod client;
mod follow;
mod home;
mod jobs_cmd;
mod logs_cmd;
mod output;
mod plan_cmd;
mod prompt;
mod render_helper;
mod report_cmd;
mod retention_cmd;
mod run_cmd;
mod runbook_cmd;
mod runs_cmd;
mod schedule_cmd;
mod secrets_cmd;
mod serve_cmd;
mod tokens_cmd;
mod view;
mod worker_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use rota_ops::service::plans::Verdict;

use crate::args::{Cli, Command};

/// Exit code for a usage or input error.
pub const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // Before any thread exists: the secret key and API token leave /proc/PID/environ.
    rota_ops::host::hide_sensitive_environment();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Guardian) {
        // The watchdog must not start a runtime or touch the store: it only waits.
        return ExitCode::from(rota_ops::host::guardian_main() as u8);
    }
    if matches!(cli.command, Command::Render) {
        return render_helper::main();
    }
    // Templates that compute render in a bounded helper process (`rota __render`).
    match render_helper::HelperProcess::current() {
        Ok(helper) => rota_core::template::isolate_renders(Box::new(helper)),
        Err(error) => eprintln!("rota: WARNING: templates render in-process, unisolated: {error}"),
    }
    init_tracing();
    // Processes a step leaves behind are re-parented to `rota` rather than to PID 1 (which
    // may not reap them), so the supervisor can kill and reap its whole process group.
    if let Err(error) = rota_ops::host::adopt_orphans() {
        tracing::warn!(%error, "cannot become a child subreaper");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rota: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("rota: {}", error_text(&error));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Dispatches one command; `Ok` carries the exit code.
async fn run(cli: Cli) -> anyhow::Result<u8> {
    let out = output::Printer::new(cli.output);
    let command =
        match local_only(cli.command, cli.home.clone(), cli.store.clone(), cli.output).await {
            Ok(code) => return code,
            Err(command) => command,
        };
    let remote = match &cli.server {
        Some(server) => Some(remote_of(
            server,
            cli.token,
            cli.token_file.as_deref(),
            cli.ca_cert.as_deref(),
        )?),
        None => None,
    };
    if let Command::Worker(args) = command {
        let Some(remote) = remote else {
            anyhow::bail!(
                "rota worker needs --server URL (and a worker token: --token-file or ROTA_TOKEN)"
            );
        };
        let home = home::Home::new(cli.home, None)?.dir;
        return worker_cmd::worker(remote, home, args).await;
    }
    if let Some(remote) = remote {
        return dispatch(&remote, command, &out).await;
    }
    let session = home::Home::new(cli.home, cli.store)?.session().await?;
    dispatch(&session, command, &out).await
}

/// The server's client: `--token`, else `--token-file`, else `ROTA_TOKEN`; `--ca-cert`
/// adds a root for a server with a certificate from a private CA.
fn remote_of(
    server: &str,
    token: Option<String>,
    token_file: Option<&std::path::Path>,
    ca_cert: Option<&std::path::Path>,
) -> anyhow::Result<client::Remote> {
    let token = client::Remote::read_token(token, token_file, std::env::var("ROTA_TOKEN").ok())?;
    client::Remote::new(server, token, ca_cert)
}

/// The commands that need neither a store nor a server (`validate`, `schedule preview`,
/// `notebook`, `completions`) and `serve`: `Ok(outcome)`, or `Err(command)` for the rest.
async fn local_only(
    command: Command,
    home: Option<std::path::PathBuf>,
    store: Option<String>,
    output: args::OutputFormat,
) -> Result<anyhow::Result<u8>, Command> {
    let out = output::Printer::new(output);
    Ok(match command {
        Command::Validate(args) => Ok(jobs_cmd::validate(args, &out)),
        Command::Schedule(preview @ args::ScheduleCommand::Preview { .. }) => {
            Ok(schedule_cmd::schedule(preview, &out))
        }
        Command::Serve(args) => match home::Home::new(home, store) {
            Ok(home) => serve_cmd::serve(home, args).await,
            Err(error) => Err(error),
        },
        Command::Notebook(mut command) => {
            // `--output` is global to `rota`; the notebook commands take it from here.
            command.set_output(match output {
                args::OutputFormat::Human => rota_notebook::cli::OutputFormat::Human,
                args::OutputFormat::Json => rota_notebook::cli::OutputFormat::Json,
            });
            let runs_a_kernel = matches!(command, rota_notebook::cli::NotebookCommand::Run(_));
            let host = rota_ops::host::notebook_kernels(runs_a_kernel);
            let code = rota_notebook::cli::run(command, host).await;
            Ok(u8::try_from(code).unwrap_or(1))
        }
        Command::Runbook(command) => Ok(runbook_cmd::runbook(command, &out)),
        Command::Completions { shell } => Ok(completions(shell)),
        Command::Guardian | Command::Render => Ok(0),
        other => return Err(other),
    })
}

/// Every command but the local-only ones, written once over [`rota_ops::Rota`]: `rota` is
/// the server's client (`--server`) or the local user's session on this machine's store.
/// `Drive` says where a run executes (here in the foreground, or on the server).
async fn dispatch<R: rota_ops::Rota + run_cmd::Drive>(
    rota: &R,
    command: Command,
    out: &output::Printer,
) -> anyhow::Result<u8> {
    match command {
        Command::Run(args) => run_cmd::run(rota, args, out).await,
        Command::Retry(args) => run_cmd::retry(rota, args, out).await,
        Command::Runs(args) => runs_cmd::runs(rota, args, out).await,
        Command::Logs(args) => logs_cmd::logs(rota, args, out).await,
        Command::Report(args) => report_cmd::report(rota, args, out).await,
        Command::Cancel(args) => runs_cmd::cancel(rota, args, out).await,
        Command::Artifacts(args) => artifacts_cmd::artifacts(rota, args, out).await,
        Command::Jobs(args) => jobs_cmd::jobs(rota, args, out).await,
        Command::Namespaces(args) => match args.command {
            None => jobs_cmd::namespaces(rota, out).await,
            Some(retention_cmd::NamespacesCommand::Set {
                namespace,
                retention,
            }) => retention_cmd::set_retention(rota, namespace, retention, out).await,
        },
        Command::Prune(args) => retention_cmd::prune(rota, args, out).await,
        Command::Plan(args) => plan_cmd::plan(rota, args, out).await,
        Command::Plans(args) => plan_cmd::plans(rota, args, out).await,
        Command::Approve(args) => plan_cmd::decide(rota, args, Verdict::Approve, out).await,
        Command::Reject(args) => plan_cmd::decide(rota, args, Verdict::Reject, out).await,
        Command::Skip(args) => plan_cmd::decide(rota, args, Verdict::Skip, out).await,
        Command::Apply(args) => plan_cmd::apply(rota, args, out).await,
        Command::Schedule(args::ScheduleCommand::Next(args)) => {
            serve_cmd::next(rota, args, out).await
        }
        Command::Schedule(args::ScheduleCommand::History(args)) => {
            serve_cmd::history(rota, args, out).await
        }
        Command::Pause(args) => serve_cmd::pause(rota, args, out).await,
        Command::Resume(args) => serve_cmd::resume(rota, args, out).await,
        Command::Backfill(args) => serve_cmd::backfill(rota, args, out).await,
        Command::Secrets(command) => secrets_cmd::secrets(rota, command, out).await,
        Command::Tokens(command) => tokens_cmd::tokens(rota, command, out).await,
        Command::Audit(command) => audit_cmd::audit(rota, command, out).await,
        Command::Status => worker_cmd::status(rota, out).await,
        local => unreachable!("handled by local_only: {local:?}"),
    }
}

/// An error with its causes, each said once. Many errors (ours and our dependencies')
/// already include their source in their message (`cannot listen on ADDR: {source}`) and
/// also return it as `source()`; printing the chain as is (`{:#}`) would repeat it. A
/// cause whose text the message so far already holds is left out.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !cause.is_empty() && !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn completions(shell: clap_complete::Shell) -> u8 {
    {
        {
            // Written at once: line by line, a script near the pipe's 64 KiB capacity
            // stalls a reader that waits for the exit before reading.
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "rota", &mut script);
            output::write_stdout(&String::from_utf8_lossy(&script));
            0
        }
    }
}

/// Diagnostics of Rota itself go to stderr, filtered by `ROTA_LOG` (default: Rota's own
/// warnings; dependencies only at error level, and the ZeroMQ transport under notebook
/// kernels never: its reconnect chatter is not the user's business, and a failure it
/// causes is reported by the notebook step itself). Colours only on a terminal, so piped
/// stderr and log files hold no escape codes.
fn init_tracing() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROTA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,rota=warn,zeromq=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::error_text;

    /// Shaped as `thiserror` makes `#[error("cannot listen on {addr}: {source}")]`.
    #[derive(Debug)]
    struct Listen {
        addr: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for Listen {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot listen on {}: {}", self.addr, self.source)
        }
    }

    impl std::error::Error for Listen {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn an_error_that_quotes_its_source_is_not_repeated() {
        let os = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let error = anyhow::Error::new(Listen {
            addr: "127.0.0.1:1".into(),
            source: os,
        });
        assert_eq!(
            error_text(&error),
            "cannot listen on 127.0.0.1:1: Address already in use"
        );
        let wrapped = anyhow::Error::new(std::io::Error::other("disk full")).context("cannot save");
        assert_eq!(error_text(&wrapped), "cannot save: disk full");
        let repeated = anyhow::Error::new(std::io::Error::other("in use")).context("in use");
        assert_eq!(error_text(&repeated), "in use");
    }
}
