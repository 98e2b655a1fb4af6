//! What the user typed: clap definitions, validation only. Conversions into engine
//! requests live with each command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Rota runs a team's operational work: DAGs of shell, script and notebook steps, with
/// durable history, from one binary.
///
/// Exit codes: 0 success; 1 the run failed or timed out; 2 usage or validation error;
/// 130 the run was cancelled.
///
/// With `--server URL` (or `ROTA_SERVER`) the commands `jobs`, `runs`, `run`, `logs`,
/// `cancel`, `retry`, `schedule next|history`, `pause`, `resume`, `backfill`, `secrets`,
/// `tokens`, `audit`, `plan`, `plans`, `approve`, `reject`, `apply`, `namespaces` and `prune` talk to a Rota server's API instead of the local store, with the
/// same output. There, every error of the server (401 no or a wrong token, 403 a missing
/// role, 404, 409, 422 an invalid job or parameters, any other 4xx or 5xx) and every
/// failure to reach it exits 2 with the server's explanation; as in local mode, `cancel` of a run
/// that already ended (409) and `secrets rm`/`tokens revoke` of something absent (404)
/// exit 1, and a followed run exits 0, 1 or 130 by its status.
#[derive(Debug, Parser)]
#[command(name = "rota", version, propagate_version = true)]
pub struct Cli {
    /// Output format of results (diagnostics always go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,

    /// Data directory holding the store (default: the platform data dir, e.g. ~/.local/share/rota).
    #[arg(long, global = true, env = "ROTA_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// The store's database instead of the SQLite file in the data directory: a PostgreSQL
    /// URL (postgres://USER@HOST:PORT/DB, shared by several servers) or a sqlite: URL. The
    /// data directory still holds the secret key, run files and tokens. `rota serve` and
    /// every local command (without `--server`) use it.
    #[arg(
        long,
        global = true,
        env = "ROTA_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,

    /// A Rota server to talk to instead of the local store (e.g. http://127.0.0.1:8480).
    #[arg(long, global = true, env = "ROTA_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Bearer token for `--server`; else `--token-file`, else the ROTA_TOKEN variable
    /// (prefer those two: a command line is visible to `ps`).
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Read the bearer token for `--server` from this file (its first line); it wins over
    /// ROTA_TOKEN.
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,

    /// For an `https://` `--server` whose certificate a private CA signed: a PEM file of
    /// CA certificates to trust besides the system's roots.
    #[arg(long, global = true, env = "ROTA_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables and text for people.
    Human,
    /// JSON on stdout, for scripts.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job file, a stored job, or an ad-hoc command, and wait for it to finish.
    Run(RunArgs),
    /// Check job files without running anything; reports every problem as file:line:col.
    Validate(ValidateArgs),
    /// List runs, newest first, or show one.
    Runs(RunsArgs),
    /// Print a run's logs, optionally following them live.
    ///
    /// With `--output json`, one JSON object per line (JSON Lines: `seq`, `step_id`,
    /// `attempt`, `ts`, `stream`, `text`), also while following.
    Logs(LogsArgs),
    /// List a run's artifacts (the files its steps left in $ROTA_ARTIFACTS), or get one.
    ///
    /// With `--output json`, an array of `{step, path, size}`. `--get PATH -o FILE` writes
    /// the artifact PATH (of STEP, needed when several steps have one) to FILE, or stdout.
    /// The report a run kept when it ended (`report:` in its job) is step `@run`'s.
    Artifacts(ArtifactsArgs),

    /// Write a run's report: one self-contained HTML page or Markdown file with its
    /// parameters, plan and approvals, steps, redacted logs and executed notebooks.
    Report(crate::report_cmd::ReportArgs),
    /// Cancel a run started from another terminal.
    Cancel(CancelArgs),
    /// Run a finished run again, whole or from one step on (finished steps before it are kept).
    Retry(RetryArgs),
    /// List stored jobs (latest revision of each), save one from a file, or delete one.
    Jobs(JobsArgs),
    /// Resolve a job into a plan (steps, parameters, secret names, hash) without running it.
    Plan(PlanArgs),
    /// List plans, newest first, or show one with its approvals.
    Plans(PlansArgs),
    /// Approve a plan (bound to its hash), or the `approval:` gate a run waits at.
    Approve(DecideArgs),
    /// Reject a plan (one rejection ends it), or the `approval:` gate a run waits at.
    Reject(DecideArgs),
    /// Skip the failed step a run waits on (`on_failure: ask`: its gate STEP#failed-N).
    Skip(DecideArgs),
    /// Run an approved plan, if nothing it pinned changed since.
    Apply(ApplyArgs),
    /// List namespaces with their job and run counts and retention, or set a retention.
    Namespaces(crate::retention_cmd::NamespacesArgs),
    /// Delete finished runs older than a duration, with their logs and events (admins).
    Prune(crate::retention_cmd::PruneArgs),
    /// Schedules: preview cron expressions, a job's next fire times and its history.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Run the scheduler daemon: triggers, schedule policies, webhooks, a local worker pool.
    Serve(crate::serve_cmd::ServeArgs),
    /// Pause a job's schedule (occurrences are recorded as skipped: paused).
    Pause(crate::serve_cmd::PauseArgs),
    /// Resume a paused job's schedule.
    Resume(crate::serve_cmd::ResumeArgs),
    /// Queue runs for a job's past occurrences between two instants.
    Backfill(crate::serve_cmd::BackfillArgs),
    /// Encrypted secrets of a namespace: set (value from stdin or a prompt), list, rm.
    #[command(subcommand)]
    Secrets(crate::secrets_cmd::SecretsCommand),
    /// The audit log of the local store: verify its hash chain, list entries.
    #[command(subcommand)]
    Audit(crate::audit_cmd::AuditCommand),
    /// API bearer tokens: create (printed once), list, revoke.
    #[command(subcommand)]
    Tokens(crate::tokens_cmd::TokensCommand),
    /// Run step attempts a server hands out (needs `--server` and a `worker` token) until
    /// SIGTERM; steps choose workers by label with `runs_on:`.
    Worker(crate::worker_cmd::WorkerArgs),
    /// The servers sharing the store, which one schedules, and the workers with their
    /// labels, slots, leases and last heartbeat.
    Status,
    /// Execute and inspect Jupyter notebooks, papermill-compatible.
    #[command(subcommand)]
    Notebook(rota_notebook::cli::NotebookCommand),
    /// Runbook libraries: `init` a library, start a `new` runbook, `lint` runbooks.
    #[command(subcommand)]
    Runbook(crate::runbook_cmd::RunbookCommand),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Internal: the watchdog that stops a run's processes if `rota` dies.
    #[command(name = "__guardian", hide = true)]
    Guardian,
    /// Internal: renders one template that computes, under a memory and CPU limit.
    #[command(name = "__render", hide = true)]
    Render,
}

/// `rota run`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["target", "command", "argv"]))]
pub struct RunArgs {
    /// Job file (YAML, TOML, JSON or a script with a `# /// rota` header) or a stored job id.
    pub target: Option<String>,

    /// Run one shell command as a one-step job, with no file.
    #[arg(long, short = 'c', value_name = "SHELL COMMAND")]
    pub command: Option<String>,

    /// Which job of a file that defines several.
    #[arg(long, value_name = "ID")]
    pub job: Option<String>,

    /// Namespace for a stored job, or for a file that names none.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,

    /// Set a parameter (repeatable); the value is coerced to the declared type.
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub params: Vec<(String, String)>,

    /// Read parameters from a JSON or YAML file (`-p` wins over it).
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,

    /// Resolve everything, run each step in its dry-run mode, run nothing else.
    #[arg(long)]
    pub dry_run: bool,

    /// Program and arguments to run as a one-step job, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub argv: Vec<String>,

    /// With `--server`: print the queued run's id and return without following it.
    #[arg(long)]
    pub detach: bool,

    /// Confirm the job's `confirm:` steps beforehand, as yourself (you must be one of
    /// those who may confirm them; with `--server`, your token); without it they are asked
    /// at a terminal, else they wait as approval gates.
    #[arg(long)]
    pub yes: bool,

    /// Read variables from a `.env` file as secrets of the run: in every step's environment,
    /// redacted everywhere (repeatable; later files win, over the job's `env_file:` too).
    #[arg(long = "env-file", value_name = "PATH")]
    pub env_files: Vec<PathBuf>,
}

/// `rota plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Job file or a stored job id.
    pub target: String,

    /// Which job of a file that defines several.
    #[arg(long, value_name = "ID")]
    pub job: Option<String>,

    /// Namespace for a stored job, or for a file that names none.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,

    /// Set a parameter (repeatable); the value is coerced to the declared type.
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub params: Vec<(String, String)>,

    /// Read parameters from a JSON or YAML file (`-p` wins over it).
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,

    /// Also execute the plan with every step in its dry-run mode (locally in the
    /// foreground; on a server, queued) and record that run on the plan.
    #[arg(long)]
    pub dry_run: bool,
}

/// `rota plans`.
#[derive(Debug, Args)]
pub struct PlansArgs {
    #[command(subcommand)]
    pub show: Option<PlansCommand>,

    /// Only plans with this status (awaiting_approval, approved, rejected, expired, applied).
    #[arg(long)]
    pub status: Option<String>,

    /// Only plans in this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,

    /// How many plans at most.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// `rota plans show`.
#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// Show one plan with its steps and decisions.
    Show {
        /// Plan id or a unique prefix of it.
        plan: String,
    },
}

/// `rota approve` and `rota reject`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Plan id, or the id of a run waiting at an `approval:` gate (or, locally, a unique
    /// prefix of either).
    #[arg(value_name = "PLAN_OR_RUN")]
    pub plan: String,

    /// The gate step of the run to decide (needed when it waits at several); makes the id
    /// a run's.
    #[arg(long, value_name = "STEP")]
    pub step: Option<String>,

    /// Why, in your words; kept with the decision (a rejected gate's reason).
    #[arg(long, short = 'm', visible_alias = "reason")]
    pub comment: Option<String>,

    /// The hash you reviewed (a plan's as `rota plan` printed it, a gate's as `rota runs
    /// show` does); the decision is refused unless it is still that.
    #[arg(long, value_name = "SHA256")]
    pub hash: Option<String>,

    /// With `--server`, or for a gate: do not run or follow the run the decision queued.
    #[arg(long)]
    pub detach: bool,
}

/// `rota apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Plan id (or, locally, a unique prefix of it).
    pub plan: String,

    /// With `--server`: print the queued run's id and return without following it.
    #[arg(long)]
    pub detach: bool,
}

/// `rota retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Run id or a unique prefix of it.
    pub run: String,
    /// Start again from this step: it and every step downstream of it run again.
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// With `--from` naming a notebook step that failed: continue its executed notebook
    /// from the failed cell in a fresh kernel, replaying the parameters and the cells
    /// tagged `setup` before it (every cell before it when none is tagged).
    #[arg(long, requires = "from")]
    pub resume: bool,
    /// With `--server`: print the new run's id and return without following it.
    #[arg(long)]
    pub detach: bool,
}

/// `rota validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Job files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `rota runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub show: Option<RunsCommand>,

    /// Only runs of this job.
    #[arg(long)]
    pub job: Option<String>,

    /// Only runs with this status (succeeded, failed, running, …).
    #[arg(long)]
    pub status: Option<String>,

    /// Only runs in this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,

    /// How many runs at most.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// `rota runs show`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Show one run with its steps.
    Show {
        /// Run id or a unique prefix of it.
        run: String,
    },
}

/// `rota logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Run id or a unique prefix of it.
    pub run: String,
    /// Only this step's lines.
    pub step: Option<String>,
    /// Keep printing new lines until the run ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Prefix each line with its timestamp.
    #[arg(long, short = 't')]
    pub timestamps: bool,
}

/// `rota artifacts`.
#[derive(Debug, Args)]
pub struct ArtifactsArgs {
    /// Run id or a unique prefix of it.
    pub run: String,
    /// Only this step's artifacts (`@run`: the run's kept report).
    pub step: Option<String>,
    /// Write this artifact (its path as listed) instead of listing.
    #[arg(long, value_name = "PATH")]
    pub get: Option<String>,
    /// With `--get`: the file to write (default stdout).
    #[arg(
        short = 'o',
        long = "out",
        alias = "to",
        value_name = "FILE",
        requires = "get"
    )]
    pub out: Option<PathBuf>,
}

/// `rota cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Run id or a unique prefix of it.
    pub run: String,
}

/// `rota jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,

    /// Only jobs in this namespace (for `put`: the namespace to save into).
    #[arg(long, short = 'n', global = true)]
    pub namespace: Option<String>,
}

/// `rota jobs put`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Validate a job file and save each job it defines as a new revision (unchanged text
    /// keeps the latest revision).
    Put {
        /// The job file (YAML, TOML or JSON).
        file: PathBuf,
    },
    /// Delete a job: it is no longer listed, started or scheduled; its revisions and runs
    /// stay, and saving it again brings it back. A job loaded from `rota serve --jobs DIR`
    /// is removed by removing its file.
    Rm {
        /// The job's id (its namespace is `-n`, default `default`).
        job: String,
    },
}

/// `rota schedule`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print the next fire times of a cron expression.
    Preview {
        /// The expression: 5, 6 (seconds first) or 7 (… year) fields.
        #[arg(long)]
        cron: String,
        /// IANA time zone the expression is evaluated in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Start after this instant (RFC 3339; default: now).
        #[arg(long)]
        from: Option<String>,
        /// How many fire times. (`-n` is the namespace on every command, so the count
        /// is only `--count`.)
        #[arg(long = "count", default_value_t = 5)]
        count: usize,
    },
    /// Print the next fire times of a stored job's triggers.
    Next(crate::serve_cmd::NextArgs),
    /// Print a job's occurrences: runs, skipped and missed, with reasons.
    History(crate::serve_cmd::HistoryArgs),
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, found {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_a_file_a_command_or_argv() {
        let cli = Cli::try_parse_from(["rota", "run", "job.yaml", "-p", "a=b=c"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.params, vec![("a".to_owned(), "b=c".to_owned())]);
        let cli = Cli::try_parse_from(["rota", "run", "--", "echo", "hi"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.argv, ["echo", "hi"]);
        assert!(Cli::try_parse_from(["rota", "run"]).is_err());
        assert!(Cli::try_parse_from(["rota", "run", "f.yaml", "-p", "novalue"]).is_err());
    }
}
