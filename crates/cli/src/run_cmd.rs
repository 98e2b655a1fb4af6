//! `rota run`: turn what the user typed into a run request, execute it in this process,
//! print live lines and the result.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use rota_core::model::{Job, Policy, RunStatus, Step, StepKind, Value};

use rota_ops::foreground::{Stream, Update};

use tokio::sync::mpsc;

use crate::EXIT_USAGE;
use crate::args::{RetryArgs, RunArgs};
use crate::client::{Remote, seg};
use crate::follow;
use crate::output::{self, Printer};
use crate::view::{run_json, step_duration};
use rota_ops::Rota;
use rota_ops::records::{CreateRun, RetryRun, Run};
use rota_ops::service::Runs;

/// A job ready to run, with where it came from.
pub(crate) use rota_ops::foreground::LoadedJob as Loaded;

/// A local run lives in the `rota` process that started it, so it cannot be left running.
const DETACH_NEEDS_SERVER: &str = "rota: --detach needs --server: a local run lives in this process (start `rota serve` and use --server, or run it in the background)";

/// Usage and validation errors exit 2 with their message; they are not runtime failures.
pub(crate) struct UsageError(pub(crate) String);

/// `rota run`: with the local store, a job file, an ad-hoc command or a stored job runs in
/// this process; with a server, the job stored there is queued with these parameters
/// (coerced here either way) and followed to its end, unless `--detach`.
pub async fn run<R: Rota + Drive>(rota: &R, args: RunArgs, out: &Printer) -> anyhow::Result<u8> {
    if args.detach && rota.here().is_some() {
        eprintln!("{DETACH_NEEDS_SERVER}");
        return Ok(EXIT_USAGE);
    }
    if rota.here().is_none() && !args.env_files.is_empty() {
        // The values would have to travel with the request and be kept with the queued run.
        eprintln!(
            "rota: --env-file reads a file on this machine, and a server's run cannot get its \
             values from here: use `env_file:` in the job on the server, or its secrets \
             (`rota secrets set`)"
        );
        return Ok(EXIT_USAGE);
    }
    let loaded = match rota.here() {
        Some(here) => load(here.ops(), &args).await,
        None => stored_on_server(rota, &args).await?,
    };
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(UsageError(message)) => {
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    if rota_ops::approval_gate(&loaded.job, &loaded.namespace, rota_ops::Gated::Start).is_err() {
        eprintln!(
            "rota: job {} has approval rules: make a plan with `rota plan {}`, have it approved (`rota approve PLAN`), then `rota apply PLAN`",
            loaded.job.id,
            args.target.as_deref().unwrap_or_default()
        );
        return Ok(EXIT_USAGE);
    }
    let params = match resolve_params(&loaded.job, &args) {
        Ok(params) => params,
        Err(UsageError(message)) => {
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    match rota.here() {
        Some(here) => run_here(here.ops(), loaded, params, &args, out).await,
        None => {
            let body = CreateRun {
                params: params.into_iter().collect(),
                dry_run: args.dry_run,
                confirm: args.yes,
            };
            let run = rota
                .start_run(&loaded.namespace, &loaded.job.id, body)
                .await?;
            rota.drive(run, args.detach, out).await
        }
    }
}

/// Runs the loaded job in this process: saved as a revision first, its secrets resolved
/// and their use recorded (and audited) before it starts, so that is on record even if
/// this process dies during the run.
async fn run_here(
    ops: &rota_ops::Ops,
    loaded: Loaded,
    params: BTreeMap<String, Value>,
    args: &RunArgs,
    out: &Printer,
) -> anyhow::Result<u8> {
    let principal = rota_ops::auth::Principal::local();
    let confirmations =
        match rota_ops::Ops::confirmations(&principal, &loaded.job, &loaded.namespace, args.yes) {
            Ok(rota_ops::Confirmations::Gate) if at_a_terminal() => {
                rota_ops::Confirmations::Ask(std::sync::Arc::new(TerminalConfirm))
            }
            Ok(confirmations) => confirmations,
            Err(error) => return refused(error),
        };
    let env_values = match read_env_files(&args.env_files) {
        Ok(values) => values,
        Err(error) => {
            eprintln!("rota: {error}");
            return Ok(EXIT_USAGE);
        }
    };
    let revision = ops.save_loaded(&loaded).await?;
    let mut spec = rota_ops::Ops::foreground_spec(loaded, revision, params, args.dry_run);
    spec.env_values = env_values;
    match ops.prepare_run(spec).await {
        Ok(mut request) => {
            request.confirmations = confirmations;
            execute(ops, request, out, false).await
        }
        Err(error) => refused(error),
    }
}

/// The variables of `--env-file`s, read in order (a later file wins).
fn read_env_files(
    paths: &[std::path::PathBuf],
) -> Result<BTreeMap<String, String>, rota_core::dotenv::EnvFileError> {
    let mut values = BTreeMap::new();
    for path in paths {
        values.extend(rota_core::dotenv::read(path)?);
    }
    Ok(values)
}

/// Whether someone can answer a question here: stdin and stderr are a terminal.
fn at_a_terminal() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks a `confirm:` step's question on this terminal: y or yes confirms.
struct TerminalConfirm;

impl rota_ops::Confirm for TerminalConfirm {
    fn ask(&self, question: &str) -> bool {
        let answer = prompt(&format!("\n{question}\nProceed? [y/N] "));
        matches!(answer.as_str(), "y" | "yes")
    }

    fn after_failure(&self, question: &str) -> rota_ops::FailureAnswer {
        use rota_ops::FailureAnswer;
        loop {
            let answer = prompt(&format!("\n{question}\n[r]etry, [s]kip or [a]bort? "));
            match answer.as_str() {
                "r" | "retry" => return FailureAnswer::Retry,
                "s" | "skip" => return FailureAnswer::Skip,
                // End of input (nobody left to answer) aborts.
                "a" | "abort" | "" => return FailureAnswer::Abort,
                _ => {}
            }
        }
    }
}

/// Prints `question` on stderr and reads one answer line, trimmed and lower-cased; empty
/// at the end of input.
fn prompt(question: &str) -> String {
    use std::io::Write as _;
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question}");
    let _ = stderr.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    answer.trim().to_ascii_lowercase()
}

/// The job `rota run --server` names: stored on the server (ad-hoc commands and job files
/// run only locally).
async fn stored_on_server<R: Rota>(
    rota: &R,
    args: &RunArgs,
) -> anyhow::Result<Result<Loaded, UsageError>> {
    if args.command.is_some() || !args.argv.is_empty() {
        return Ok(Err(UsageError(
            "rota: ad-hoc commands (-c, -- CMD) run only locally: drop --server/ROTA_SERVER, or save a job on the server with `rota jobs put FILE`".to_owned(),
        )));
    }
    let target = args.target.clone().unwrap_or_default();
    if Path::new(&target).exists() {
        return Ok(Err(UsageError(format!(
            "rota: with --server, `rota run` starts a job stored on the server by its id; save {target} there first with `rota jobs put {target}`"
        ))));
    }
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let stored = rota.get_job(&namespace, &target).await?;
    let job: Job =
        serde_json::from_value(rota_ops::records::durations_from_text(stored.definition))
            .context("the server's definition of the job does not load in this rota")?;
    Ok(Ok(Loaded {
        job,
        source: stored.source,
        source_path: stored.source_path,
        namespace,
    }))
}

/// Executes the run here, printing live lines and the summary. `claimed`: the run is
/// already recorded and owned by this process (a retry), so the engine records no start.
pub(crate) async fn execute(
    ops: &rota_ops::Ops,
    request: rota_ops::RunRequest,
    out: &Printer,
    claimed: bool,
) -> anyhow::Result<u8> {
    if !out.is_json() {
        eprintln!("run {} of {} started", request.run_id, request.job.id);
    }
    let (updates_tx, updates_rx) = mpsc::unbounded_channel();
    let printer = tokio::spawn(print_updates(updates_rx, out.is_json()));
    let executed = ops.execute_here(request, claimed, updates_tx).await;
    let _ = printer.await;
    let executed = executed?;
    if out.is_json() {
        out.json(&run_json(&executed.run));
    } else {
        print_summary(out, &executed.run);
    }
    let code = exit_code(executed.status);
    executed.deliver_notifications().await;
    Ok(code)
}

/// A job as the server stores it (`wire::Job`): only what following a run needs.
#[derive(serde::Deserialize)]
struct StoredJob {
    definition: serde_json::Value,
}

/// Prints a run just queued on a server and, unless `detach`, follows it to its end like
/// local `rota run`: live lines, then the summary; the exit code follows its status.
pub(crate) async fn follow_elsewhere<R: Runs>(
    rota: &R,
    run: Run,
    detach: bool,
    definition: Option<&serde_json::Value>,
    out: &Printer,
) -> anyhow::Result<u8> {
    if detach {
        if out.is_json() {
            out.json(&run_json(&run));
        } else {
            out.text(&format!("{}\n", run.id));
        }
        return Ok(0);
    }
    if !out.is_json() {
        eprintln!("run {} of {} started", run.id, run.job_id);
    }
    let run = follow::follow(rota, &run.id, out.is_json(), definition, Some(&run)).await?;
    if out.is_json() {
        out.json(&run_json(&run));
    } else {
        print_summary(out, &run);
    }
    Ok(RunStatus::parse(&run.status).map_or(1, exit_code))
}

/// How a queued run comes to its end for a command such as `rota retry`: with the local
/// store, this process claims and executes it (as `rota run` does); with a server, the
/// server executes it and this process follows it.
pub(crate) trait Drive: Runs + Sync {
    /// The local user's session, when runs execute in this process and job files are read
    /// here (`None` for a server).
    fn here(&self) -> Option<&rota_ops::Session>;

    /// Brings the queued `run` to its end (or, `detach`ed, only prints it) and returns the
    /// exit code its status gives.
    fn drive(
        &self,
        run: Run,
        detach: bool,
        out: &Printer,
    ) -> impl std::future::Future<Output = anyhow::Result<u8>>;
}

impl Drive for rota_ops::Session {
    fn here(&self) -> Option<&rota_ops::Session> {
        Some(self)
    }

    async fn drive(&self, run: Run, _detach: bool, out: &Printer) -> anyhow::Result<u8> {
        claim_and_execute(self.ops(), &run.id, out).await
    }
}

impl Drive for Remote {
    fn here(&self) -> Option<&rota_ops::Session> {
        None
    }

    async fn drive(&self, run: Run, detach: bool, out: &Printer) -> anyhow::Result<u8> {
        let job_path = format!(
            "/api/v1/namespaces/{}/jobs/{}",
            seg(&run.namespace),
            seg(&run.job_id)
        );
        // Only the `▶` lines need the definition; a viewer may still follow without it.
        let definition = self
            .get::<StoredJob>(&job_path, &[])
            .await
            .ok()
            .map(|j| j.definition);
        follow_elsewhere(self, run, detach, definition.as_ref(), out).await
    }
}

/// `rota retry RUN [--from STEP]`: a new run of the same job revision and parameters
/// (the steps it does not rerun keep the original's results), executed here like
/// `rota run` with the local store, or queued on the server and followed.
pub async fn retry<R: Drive>(rota: &R, args: RetryArgs, out: &Printer) -> anyhow::Result<u8> {
    if args.detach && rota.here().is_some() {
        eprintln!("{DETACH_NEEDS_SERVER}");
        return Ok(EXIT_USAGE);
    }
    let Some(original) = crate::runs_cmd::find(rota, &args.run).await? else {
        return Ok(EXIT_USAGE);
    };
    let how = RetryRun {
        from: args.from,
        resume: args.resume,
    };
    let run = match rota.retry_run(&original.id, how).await {
        Ok(run) => run,
        Err(error) => return refused(error),
    };
    rota.drive(run, args.detach, out).await
}

/// Takes the queued run `run_id` for this process and executes it here, like `rota run`;
/// if a `rota serve` on this store took it first, it runs there.
pub(crate) async fn claim_and_execute(
    ops: &rota_ops::Ops,
    run_id: &str,
    out: &Printer,
) -> anyhow::Result<u8> {
    match ops.claim_here(run_id).await {
        Ok(Some(request)) => execute(ops, request, out, true).await,
        Ok(None) => {
            eprintln!(
                "rota: run {run_id} was claimed by a server; follow it with `rota logs -f {run_id}`"
            );
            Ok(0)
        }
        Err(error) => refused(error),
    }
}

/// A refusal of the application layer: usage errors exit 2 with their message, the rest
/// are runtime failures.
pub(crate) fn refused(error: rota_ops::OpsError) -> anyhow::Result<u8> {
    use rota_ops::OpsError;
    match error {
        OpsError::NeedsPlan { .. }
        | OpsError::Conflict(_)
        | OpsError::Invalid(_)
        | OpsError::NotFound(_)
        | OpsError::Secrets(_)
        | OpsError::InvalidParams(_) => {
            eprintln!("rota: {error}");
            Ok(EXIT_USAGE)
        }
        other => Err(other.into()),
    }
}

/// The run's exit code: the scripting contract of `rota run`.
fn exit_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded => 0,
        RunStatus::Cancelled => 130,
        RunStatus::AwaitingApproval => EXIT_AWAITING_APPROVAL,
        _ => 1,
    }
}

/// The exit code of a run that stopped at an `approval:` gate: it has not failed, and has
/// not finished either (`rota approve` continues it).
pub const EXIT_AWAITING_APPROVAL: u8 = 3;

async fn print_updates(mut updates: mpsc::UnboundedReceiver<Update>, json: bool) {
    use std::io::Write;
    while let Some(update) = updates.recv().await {
        let text = match update {
            Update::StepStarted {
                step,
                attempt,
                command,
            } if attempt > 1 => {
                format!("{step} | ▶ attempt {attempt}: {command}\n")
            }
            Update::StepStarted { step, command, .. } => format!("{step} | ▶ {command}\n"),
            Update::Line { step, line } => match line.stream {
                Stream::Stdout => format!("{step} | {}\n", line.text),
                Stream::Stderr => format!("{step} ! {}\n", line.text),
            },
            Update::StepFinished {
                step,
                status,
                reason,
                ..
            } => match reason {
                Some(reason) => format!("{step} | ■ {} ({reason})\n", status.as_str()),
                None => format!("{step} | ■ {}\n", status.as_str()),
            },
        };
        // Live lines are progress: on stderr when stdout carries JSON.
        if json {
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            output::write_stdout(&text);
        }
    }
}

fn print_summary(out: &Printer, run: &Run) {
    let rows: Vec<Vec<String>> = run
        .steps
        .iter()
        .map(|step| {
            vec![
                step.id.clone(),
                step.status.clone(),
                step.exit_code.map_or("-".to_owned(), |c| c.to_string()),
                step.attempts.to_string(),
                step_duration(step),
                step.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.text("\n");
    out.table(
        &["STEP", "STATUS", "EXIT", "ATTEMPTS", "DURATION", "REASON"],
        &rows,
    );
    out.text(&format!(
        "\nrun {} {} in {}{}\n",
        run.id,
        run.status,
        output::elapsed(run.started_at, run.finished_at),
        run.reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    ));
    if run.status == "awaiting_approval" {
        out.text(&format!(
            "decide with `rota approve {id}` or `rota reject {id} --reason …`\n",
            id = run.id
        ));
    }
}

/// Finds what to run: an ad-hoc command, a job file, or a stored job.
pub(crate) async fn load(ops: &rota_ops::Ops, args: &RunArgs) -> Result<Loaded, UsageError> {
    let cwd = std::env::current_dir()
        .map_err(|e| UsageError(format!("rota: no working directory: {e}")))?;
    if let Some(command) = &args.command {
        return Ok(ad_hoc(
            rota_core::kinds::sh::step_kind(command.clone()),
            command,
            &cwd,
            args,
        ));
    }
    if !args.argv.is_empty() {
        let text = args.argv.join(" ");
        return Ok(ad_hoc(
            rota_core::kinds::exec::step_kind(args.argv.clone()),
            &text,
            &cwd,
            args,
        ));
    }
    let target = args.target.as_deref().unwrap_or_default();
    let path = Path::new(target);
    if path.exists() {
        return load_file(path, args);
    }
    load_stored(ops, target, args).await
}

fn load_file(path: &Path, args: &RunArgs) -> Result<Loaded, UsageError> {
    let file = rota_core::parse::load_file(path).map_err(|e| UsageError(e.to_string()))?;
    let job = pick_job(file.jobs, args.job.as_deref(), &path.display().to_string())?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let namespace = job
        .namespace
        .clone()
        .or_else(|| args.namespace.clone())
        .unwrap_or_else(|| rota_ops::ephemeral_namespace(&absolute.display().to_string()));
    Ok(Loaded {
        job,
        source: file.source,
        source_path: Some(absolute.display().to_string()),
        namespace,
    })
}

async fn load_stored(
    ops: &rota_ops::Ops,
    job_id: &str,
    args: &RunArgs,
) -> Result<Loaded, UsageError> {
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    ops.stored_job(&namespace, job_id)
        .await
        .map_err(|error| match error {
            rota_ops::OpsError::NotFound(_) => UsageError(format!(
                "rota: {job_id:?} is neither a file nor a stored job in namespace {namespace:?}"
            )),
            rota_ops::OpsError::Definition(e) => UsageError(format!(
                "rota: the stored definition of {job_id:?} does not load: {e}"
            )),
            other => UsageError(format!("rota: {other}")),
        })
}

fn pick_job(jobs: Vec<Job>, wanted: Option<&str>, origin: &str) -> Result<Job, UsageError> {
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    match wanted {
        Some(id) => jobs.into_iter().find(|j| j.id == id).ok_or_else(|| {
            UsageError(format!(
                "rota: {origin} has no job {id:?} (it has: {})",
                ids.join(", ")
            ))
        }),
        None if jobs.len() == 1 => Ok(jobs.into_iter().next().expect("one job")),
        None => Err(UsageError(format!(
            "rota: {origin} defines {} jobs; choose one with --job ({})",
            ids.len(),
            ids.join(", ")
        ))),
    }
}

/// A one-step job for `--command` / `-- cmd args`.
fn ad_hoc(kind: StepKind, text: &str, cwd: &Path, args: &RunArgs) -> Loaded {
    let job = Job {
        id: "adhoc".to_owned(),
        namespace: None,
        description: Some(text.to_owned()),
        params: Vec::new(),
        secrets: Vec::new(),
        env: BTreeMap::new(),
        triggers: Vec::new(),
        policy: Policy::default(),
        concurrency: 1,
        steps: vec![Step {
            id: "main".to_owned(),
            kind,
            needs: Vec::new(),
            when: Default::default(),
            if_expr: None,
            env: BTreeMap::new(),
            workdir: None,
            timeout: None,
            retry: Default::default(),
            dry_run: Default::default(),
            runs_on: BTreeMap::new(),
            resources: Default::default(),
            confirm: None,
            rollback: None,
            finally: false,
            on_failure: Default::default(),
        }],
        notify: Vec::new(),
        approval: None,
        env_file: None,
        report: rota_core::model::KeptReport::None,
    };
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| rota_ops::ephemeral_namespace(&format!("command in {}", cwd.display())));
    Loaded {
        source: text.to_owned(),
        source_path: None,
        job,
        namespace,
    }
}

pub(crate) fn resolve_params(
    job: &Job,
    args: &RunArgs,
) -> Result<BTreeMap<String, Value>, UsageError> {
    let file_values = match &args.params_file {
        Some(path) => read_params_file(path)?,
        None => BTreeMap::new(),
    };
    let mut given = args.params.clone();
    if at_a_terminal() {
        given.extend(crate::prompt::ask_missing(job, &file_values, &given)?);
    }
    rota_core::params::resolve(job, &file_values, &given).map_err(|errors| {
        UsageError(
            errors
                .iter()
                .map(|e| format!("rota: {e}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

fn read_params_file(path: &Path) -> Result<BTreeMap<String, Value>, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("rota: cannot read {}: {e}", path.display())))?;
    let value = rota_core::parse::parse_value(&text, &path.display().to_string())
        .map_err(|e| UsageError(e.to_string()))?;
    match value {
        Value::Object(map) => Ok(map.into_iter().collect()),
        _ => Err(UsageError(format!(
            "rota: {}: expected a mapping of parameter names to values",
            path.display()
        ))),
    }
}
