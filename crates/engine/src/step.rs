//! One step of a run: render its templates, run its attempts through the supervisor (or the
//! notebook runner), collect outputs, retry per policy, and record every attempt.
//!
//! What an attempt does comes from its kind's executor (`crate::kinds`, one module per
//! kind): a process, started here by [`crate::process::supervise`] like every child
//! process, or work of the kind's own ([`Work`]: a request, a notebook kernel), which
//! shares the helpers at the end of this module: a redacted log line ([`log_redacted`])
//! and a race against the step's stop and timeout ([`race`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rota_core::kinds::{Command, CommandCx};
use rota_core::model::{DryRun, OnFailure, Step, StepStatus};
pub(crate) use rota_core::template::render_text;
use rota_core::template::{self, Context};
use rota_store::{LogStream, RunEvent};
use tokio_util::sync::CancellationToken;

use crate::confirm::AfterFailure;
use crate::kinds::ResolveCx;
use crate::process::{LogLine, ProcessSpec, Stream};
use crate::remote::{RemoteAttempt, RemoteSteps};
use crate::run::{Shared, StopReason, Update};

/// How a step ended, after all its attempts.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// Final status.
    pub status: StepStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Exit code of the last attempt, if a process ran.
    pub exit_code: Option<i32>,
    /// Outputs of the last attempt.
    pub outputs: BTreeMap<String, String>,
    /// Why, when it did not succeed.
    pub reason: Option<String>,
}

impl StepResult {
    pub(crate) fn internal_error(reason: String) -> StepResult {
        StepResult {
            status: StepStatus::Failed,
            attempts: 0,
            exit_code: None,
            outputs: BTreeMap::new(),
            reason: Some(reason),
        }
    }
}

/// One attempt's end (see [`crate::remote::AttemptEnd`]).
pub(crate) type Attempt = crate::remote::AttemptEnd;

/// A step's work with every template rendered, as its kind's executor resolves it.
pub(crate) enum Resolved {
    /// A process, started through [`process::supervise`].
    Process { spec: ProcessSpec, display: String },
    /// Work without a process of its own (a request, a notebook kernel).
    Work {
        work: Box<dyn Work>,
        /// What runs, for the attempt's start (already redacted where it can hold a secret).
        display: String,
    },
    /// A dry run that runs nothing: show what would have run (`would run`) or been sent
    /// (`would send`).
    Echo { display: String, verb: &'static str },
    /// `dry_run: skip`.
    Skip,
}

impl Resolved {
    /// Work that starts no process and reads nothing it could change (a request, a
    /// query): done in a dry run only with `dry_run: run`, else shown as what `verb` says,
    /// since no shell command can stand in for it.
    pub(crate) fn work_or_echo(
        work: Box<dyn Work>,
        display: String,
        dry_run: Option<&DryRun>,
        verb: &'static str,
    ) -> Resolved {
        match dry_run {
            Some(DryRun::Run) | None => Resolved::Work { work, display },
            Some(_) => Resolved::Echo { display, verb },
        }
    }
}

/// An attempt of a step, for work that runs without a process of its own.
pub(crate) struct AttemptCx<'a> {
    pub shared: &'a Shared,
    pub step: &'a Step,
    pub attempt_no: u32,
    /// The step's stop: the work is raced against it ([`race`]).
    pub stop: &'a CancellationToken,
}

/// Work a kind does itself, once its start is recorded.
pub(crate) trait Work: Send {
    /// Does the work; logs go through [`log_redacted`] or [`record_line`].
    fn run<'a>(
        self: Box<Self>,
        at: AttemptCx<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Attempt> + Send + 'a>>;
}

/// Runs every attempt of step `index` and returns its final result; `before` attempts were
/// made before the run was resumed (0 for a new run), and count against `retry.attempts`.
///
/// `stop` stops it: the run's stop, or for a cleanup step started after that, only a forced
/// stop ([`RunStop::step_token`](crate::run::RunStop)).
pub(crate) async fn run_step(
    shared: &Arc<Shared>,
    index: usize,
    ctx: Context,
    before: u32,
    stop: CancellationToken,
) -> StepResult {
    let step = &shared.job.steps[index];
    let mut attempt_no = before;
    // A run resumed at the question asked after attempt `before + 1` failed.
    let asked_after = crate::confirm::failure_gate(&step.id, before + 1);
    if shared.gates.contains_key(&asked_after) {
        let failed = before + 1;
        let last_reason = "it failed".to_owned();
        match answer_failure(shared, step, failed, &ctx, &last_reason).await {
            Some(result) => return result,
            // Retry: the next attempt comes right away, the operator asked for it.
            None => attempt_no = failed,
        }
    } else if before > 0 {
        // A resumed step's last attempt died with its runner: it waits the backoff a
        // failure would have, so a crash loop does not turn into a retry storm.
        let delay = step.retry.delay_before(before + 1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => {
                // No attempt starts; the step stays as its runner left it.
                return StepResult {
                    status: StepStatus::Abandoned,
                    attempts: before,
                    exit_code: None,
                    outputs: BTreeMap::new(),
                    reason: Some("stopped while waiting to retry after its runner died".into()),
                };
            }
        }
    }
    loop {
        attempt_no += 1;
        let attempt = run_attempt(shared, index, attempt_no, &ctx, &stop).await;
        // A template that passed its bounds passes them again: retrying only burns time.
        let over_bounds = attempt
            .reason
            .as_deref()
            .is_some_and(|reason| reason.starts_with(BOUNDS_PREFIX));
        // An abandoned attempt lost its worker (its lease expired): it is retried like a
        // failure, or it ends the step.
        let retryable = matches!(
            attempt.status,
            StepStatus::Failed | StepStatus::TimedOut | StepStatus::Abandoned
        ) && attempt_no < step.retry.attempts
            && !over_bounds
            && !stop.is_cancelled();
        if !retryable {
            let ask = step.on_failure == OnFailure::Ask
                && matches!(attempt.status, StepStatus::Failed | StepStatus::TimedOut)
                && !stop.is_cancelled()
                && !shared.dry_run;
            if ask {
                let failure = attempt
                    .reason
                    .clone()
                    .unwrap_or_else(|| "failed".to_owned());
                match answer_failure(shared, step, attempt_no, &ctx, &failure).await {
                    Some(result) => return result,
                    None => continue,
                }
            }
            return StepResult {
                status: attempt.status,
                attempts: attempt_no,
                exit_code: attempt.exit_code,
                outputs: attempt.outputs,
                reason: attempt.reason,
            };
        }
        let delay = step.retry.delay_before(attempt_no + 1);
        system_line(
            shared,
            step,
            attempt_no,
            format!(
                "attempt {attempt_no} of {} {}; retrying in {}",
                step.retry.attempts,
                attempt.reason.as_deref().unwrap_or("failed"),
                crate::run::humantime(delay)
            ),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => {
                // The store holds this attempt as `failed`; record the step's real end, or
                // history would disagree with the run's own summary.
                let stopped = finish(shared, step, attempt_no, Attempt {
                    status: stopped_status(shared),
                    exit_code: attempt.exit_code,
                    outputs: attempt.outputs,
                    reason: Some("stopped while waiting to retry".to_owned()),
                });
                return StepResult {
                    status: stopped.status,
                    attempts: attempt_no,
                    exit_code: stopped.exit_code,
                    outputs: stopped.outputs,
                    reason: stopped.reason,
                };
            }
        }
    }
}

/// Asks what to do after attempt `attempt_no` of a step with `on_failure: ask` failed
/// (`failure`: why) and records the step's end as answered: `None` means retry it.
async fn answer_failure(
    shared: &Arc<Shared>,
    step: &Step,
    attempt_no: u32,
    ctx: &Context,
    failure: &str,
) -> Option<StepResult> {
    let (status, reason) =
        match crate::confirm::after_failure(shared, step, attempt_no, ctx, failure).await {
            AfterFailure::Retry { by } => {
                system_line(
                    shared,
                    step,
                    attempt_no,
                    format!("attempt {attempt_no} failed; retrying at the request of {by}"),
                );
                return None;
            }
            AfterFailure::Skip { why } => (StepStatus::Skipped, why),
            AfterFailure::Abort { why } => (StepStatus::Failed, why),
            AfterFailure::Wait => (
                StepStatus::AwaitingApproval,
                format!("{failure}; waiting for an operator to retry, skip or abort it"),
            ),
        };
    let ended = finish(shared, step, attempt_no, Attempt::ended(status, reason));
    Some(StepResult {
        status: ended.status,
        attempts: attempt_no,
        exit_code: ended.exit_code,
        outputs: ended.outputs,
        reason: ended.reason,
    })
}

/// How a failed template render starts every reason (see `TemplateError::Bounds`).
const BOUNDS_PREFIX: &str = "template exceeded its bounds: ";

async fn run_attempt(
    shared: &Arc<Shared>,
    index: usize,
    attempt_no: u32,
    ctx: &Context,
    stop: &CancellationToken,
) -> Attempt {
    let step = &shared.job.steps[index];
    let output_path = shared
        .run_dir
        .join(format!("{}.{attempt_no}.output", step.id));
    if shared.config.artifacts.is_some() {
        let dir = crate::artifacts::attempt_dir(shared, step, attempt_no);
        if let Err(error) = crate::artifacts::prepare(&dir) {
            record_start(shared, step, attempt_no, "(not started)".to_owned());
            let reason = format!("cannot create {}: {error}", dir.display());
            return finish(shared, step, attempt_no, Attempt::failed(reason));
        }
    }
    // Templates come from job files and may be made to run long: they render on the
    // blocking pool (never on the runtime's workers, which serve the API), raced against the
    // step's stop and timeout. A render that loses the race is bounded by its fuel and ends
    // on its own; its result is dropped.
    let rendering = {
        let shared = Arc::clone(shared);
        let ctx = ctx.clone();
        let output_path = output_path.clone();
        tokio::task::spawn_blocking(move || {
            let step = &shared.job.steps[index];
            resolve(&shared, step, attempt_no, &ctx, &output_path)
        })
    };
    let unresolved = |status: StepStatus, reason: String| {
        record_start(shared, step, attempt_no, "(not started)".to_owned());
        finish(shared, step, attempt_no, Attempt::ended(status, reason))
    };
    let resolved = match race(rendering, stop, step.timeout).await {
        Ok(Ok(Ok(resolved))) => resolved,
        Ok(Ok(Err(reason))) => return unresolved(StepStatus::Failed, reason),
        Ok(Err(join_error)) => {
            return unresolved(
                StepStatus::Failed,
                format!("internal error while rendering templates: {join_error}"),
            );
        }
        Err(Interrupted::Stopped) => {
            return unresolved(stopped_status(shared), stopped_reason(shared));
        }
        Err(Interrupted::TimedOut) => {
            return unresolved(
                StepStatus::TimedOut,
                format!(
                    "timed out after {} while rendering its templates",
                    crate::run::humantime(step.timeout.unwrap_or_default())
                ),
            );
        }
    };
    if let Resolved::Process { display, .. } | Resolved::Work { display, .. } = &resolved
        && let Some(ended) =
            crate::confirm::before_attempt(shared, step, attempt_no, ctx, display).await
    {
        record_start(shared, step, attempt_no, display.clone());
        return finish(shared, step, attempt_no, ended);
    }
    let attempt = match resolved {
        Resolved::Skip => {
            record_start(shared, step, attempt_no, "(dry run: skip)".to_owned());
            Attempt {
                status: StepStatus::Skipped,
                exit_code: None,
                outputs: BTreeMap::new(),
                reason: Some("dry run: step declares `dry_run: skip`".to_owned()),
            }
        }
        Resolved::Echo { display, verb } => {
            record_start(shared, step, attempt_no, display.clone());
            system_line(
                shared,
                step,
                attempt_no,
                format!("dry run: {verb} {display}"),
            );
            Attempt {
                status: StepStatus::Succeeded,
                exit_code: None,
                outputs: BTreeMap::new(),
                reason: None,
            }
        }
        Resolved::Process { spec, display } => {
            record_start(shared, step, attempt_no, display.clone());
            if shared.config.durable_step_starts
                && let Err(error) = shared.recorder.flush().await
            {
                return finish(shared, step, attempt_no, Attempt::failed(error.to_string()));
            }
            match (&shared.config.remote, step.runs_on.is_empty()) {
                (Some(remote), false) => {
                    run_remote(
                        shared,
                        remote.as_ref(),
                        step,
                        attempt_no,
                        spec,
                        display,
                        stop,
                    )
                    .await
                }
                (None, false) => {
                    system_line(
                        shared,
                        step,
                        attempt_no,
                        "`runs_on` noted: no server hands this run's steps to workers, so it \
                         runs here"
                            .to_owned(),
                    );
                    run_process(shared, step, attempt_no, &spec, &output_path, stop).await
                }
                (_, true) => run_process(shared, step, attempt_no, &spec, &output_path, stop).await,
            }
        }
        Resolved::Work { work, display } => {
            record_start(shared, step, attempt_no, display);
            if shared.config.durable_step_starts
                && let Err(error) = shared.recorder.flush().await
            {
                return finish(shared, step, attempt_no, Attempt::failed(error.to_string()));
            }
            let at = AttemptCx {
                shared,
                step,
                attempt_no,
                stop,
            };
            work.run(at).await
        }
    };
    // Whatever the status: a failed attempt's files are often what explains it.
    crate::artifacts::collect(shared, step, attempt_no).await;
    finish(shared, step, attempt_no, attempt)
}

/// Records an attempt's start. Before a process starts, callers flush it when the run can be
/// resumed (`EngineConfig::durable_step_starts`): a server that dies must leave a record of
/// every attempt it began, or a resumed run could start one again that its retry policy forbids.
fn record_start(shared: &Shared, step: &Step, attempt_no: u32, command: String) {
    shared.recorder.send(RunEvent::StepStarted {
        run_id: shared.run_id.clone(),
        step_id: step.id.clone(),
        attempt: attempt_no,
        at: Timestamp::now(),
        pgid: None,
    });
    shared.update(Update::StepStarted {
        step: step.id.clone(),
        attempt: attempt_no,
        command,
    });
}

/// Records an attempt's end. Its reason is redacted first: errors quote what they could
/// not run, and a rendered command or path may hold a secret.
fn finish(shared: &Shared, step: &Step, attempt_no: u32, mut attempt: Attempt) -> Attempt {
    if step.kind.name() == "check"
        && matches!(attempt.status, StepStatus::Failed | StepStatus::TimedOut)
    {
        // A failed post-check is where an operator looks for what happens next.
        let next = shared.rollback_plan();
        attempt.reason = Some(match attempt.reason {
            Some(reason) => format!("{reason}; {next}"),
            None => next,
        });
    }
    attempt.reason = attempt
        .reason
        .map(|reason| shared.redactor.redact(&reason).into_owned());
    shared.recorder.send(RunEvent::StepFinished {
        run_id: shared.run_id.clone(),
        step_id: step.id.clone(),
        attempt: attempt_no,
        status: attempt.status,
        exit_code: attempt.exit_code,
        reason: attempt.reason.clone(),
        outputs: attempt.outputs.clone(),
        at: Timestamp::now(),
    });
    attempt
}

/// Renders the step's templates into what will run, through its kind's executor.
fn resolve(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    ctx: &Context,
    output_path: &Path,
) -> Result<Resolved, String> {
    let dry_run = shared.dry_run.then_some(&step.dry_run);
    if matches!(dry_run, Some(DryRun::Skip)) {
        return Ok(Resolved::Skip);
    }
    let workdir = match &step.workdir {
        Some(dir) => shared.base_dir.join(render_text(dir, ctx)?),
        None => shared.base_dir.clone(),
    };
    let r = ResolveCx {
        shared,
        step,
        attempt_no,
        ctx,
        output_path,
        workdir,
        dry_run,
    };
    let kind = step.kind.name();
    if let Some(executor) = crate::kinds::find(kind) {
        return executor.resolve(&r);
    }
    if !rota_core::kinds::is_command_kind(kind) {
        return Err(format!(
            "unknown step kind `{kind}`: this release cannot run it"
        ));
    }
    process(&r, || {
        let cx = CommandCx {
            ctx,
            base_dir: &shared.base_dir,
        };
        rota_core::kinds::command(kind, step.kind.config(), &cx)
            .unwrap_or_else(|| Err(format!("step kind `{kind}` runs no command")))
    })
}

/// A process kind's attempt: `command` (or the step's `dry_run` command in a dry run)
/// with the step's environment, or what a dry run shows instead.
pub(crate) fn process(
    r: &ResolveCx<'_>,
    command: impl FnOnce() -> Result<Command, String>,
) -> Result<Resolved, String> {
    let ResolveCx {
        shared,
        step,
        attempt_no,
        ctx,
        output_path,
        dry_run,
        ..
    } = *r;
    let Command {
        program,
        args,
        shown,
        shell_values,
    } = match dry_run {
        Some(DryRun::Command(text)) => Command::shell(text, ctx)?,
        _ => command()?,
    };
    // The display goes to live output and (in dry runs) to the stored logs, and a rendered
    // `{{ secrets.X }}` may sit in it.
    let display = match shown {
        Some(command) => command.trim_end().to_owned(),
        None => shell_display(&program, &args),
    };
    let display = shared.redactor.redact(&display).into_owned();
    if matches!(dry_run, Some(DryRun::EchoOnly)) {
        return Ok(Resolved::Echo {
            display,
            verb: "would run",
        });
    }
    let mut env = process_env(shared, step, attempt_no, ctx, output_path)?;
    // Last, so that no `env:` entry of the job can stand in for a value.
    env.extend(shell_values);
    Ok(Resolved::Process {
        spec: ProcessSpec {
            program,
            args,
            env,
            cwd: Some(r.workdir.clone()),
            timeout: step.timeout,
            grace: shared.config.grace,
            log_cap_bytes: shared.config.log_cap_bytes,
            run_dir: Some(shared.run_dir.clone()),
            resources: step.resources,
        },
        display,
    })
}

/// The environment of a step's process (a notebook's kernel too): the job's and the step's
/// `env:` rendered, the run's identity, `$ROTA_OUTPUT`, the parameters and the secrets the
/// job references.
pub(crate) fn process_env(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    ctx: &Context,
    output_path: &Path,
) -> Result<Vec<(String, String)>, String> {
    let mut env = Vec::new();
    for (name, value) in shared.job.env.iter().chain(&step.env) {
        env.push((name.clone(), render_text(value, ctx)?));
    }
    env.extend(run_identity_env(shared, step, attempt_no));
    env.push(("ROTA_OUTPUT".to_owned(), output_path.display().to_string()));
    if shared.config.artifacts.is_some() {
        let dir = crate::artifacts::attempt_dir(shared, step, attempt_no);
        env.push((
            crate::artifacts::ARTIFACTS_VAR.to_owned(),
            dir.display().to_string(),
        ));
    }
    env.extend(param_env(&ctx.params));
    for (name, value) in &shared.secrets {
        env.push((name.clone(), value.clone()));
    }
    Ok(env)
}

/// The variables naming the attempt a step's process runs for (`ROTA_RUN_ID`, `ROTA_JOB`,
/// `ROTA_STEP`, `ROTA_ATTEMPT`, `ROTA_DRY_RUN`), wherever it runs.
pub(crate) fn run_identity_env(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
) -> [(String, String); 5] {
    [
        ("ROTA_RUN_ID".to_owned(), shared.run_id.clone()),
        ("ROTA_JOB".to_owned(), shared.job.id.clone()),
        ("ROTA_STEP".to_owned(), step.id.clone()),
        ("ROTA_ATTEMPT".to_owned(), attempt_no.to_string()),
        ("ROTA_DRY_RUN".to_owned(), shared.dry_run.to_string()),
    ]
}

/// Parameters as environment variables, for every step that runs a process:
/// `ROTA_PARAM_<NAME>` (upper-cased, other characters than letters and digits as `_`);
/// strings as they are, booleans `true`/`false`, numbers as written, lists and objects as
/// JSON, null as an empty string.
pub(crate) fn param_env(
    params: &BTreeMap<String, serde_json::Value>,
) -> impl Iterator<Item = (String, String)> + '_ {
    params.iter().map(|(name, value)| {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        let value = match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        (format!("ROTA_PARAM_{name}"), value)
    })
}

/// Renders every string inside a JSON value.
/// The parameter a value that is exactly `{{ params.NAME }}` names, so that it keeps its type
/// (a notebook runbook's `int` parameter reaches the kernel as an int, not as its text).
fn whole_param<'c>(text: &str, ctx: &'c Context) -> Option<&'c serde_json::Value> {
    let name = text
        .trim()
        .strip_prefix("{{")?
        .strip_suffix("}}")?
        .trim()
        .strip_prefix("params.")?;
    if !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    ctx.params.get(name)
}

pub(crate) fn render_value(
    value: &serde_json::Value,
    ctx: &Context,
) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        J::String(text) if whole_param(text, ctx).is_some() => {
            whole_param(text, ctx).cloned().unwrap_or_default()
        }
        J::String(text) => {
            J::String(template::render(text, ctx).map_err(|e| template::failure_reason(text, &e))?)
        }
        J::Array(items) => J::Array(
            items
                .iter()
                .map(|v| render_value(v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(k.clone(), render_value(v, ctx)?);
            }
            J::Object(out)
        }
        other => other.clone(),
    })
}

async fn run_process(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    spec: &ProcessSpec,
    output_path: &Path,
    stop: &CancellationToken,
) -> Attempt {
    let mut on_line = |line: LogLine| record_line(shared, step, attempt_no, line);
    crate::remote::run_here(
        spec,
        output_path,
        &shared.redactor,
        &stop.child_token(),
        shared.config.guardian.as_ref(),
        &mut on_line,
        || (stopped_status(shared), stopped_reason(shared)),
    )
    .await
}

/// Hands a process attempt to a worker and waits for its end; its outputs and reason are
/// redacted again here, whatever the worker did.
async fn run_remote(
    shared: &Shared,
    remote: &dyn RemoteSteps,
    step: &Step,
    attempt_no: u32,
    spec: ProcessSpec,
    display: String,
    stop: &CancellationToken,
) -> Attempt {
    // The directory is this machine's: a worker's process has none (not collected yet).
    let mut spec = spec;
    spec.env
        .retain(|(name, _)| name != crate::artifacts::ARTIFACTS_VAR);
    let attempt = RemoteAttempt {
        run_id: shared.run_id.clone(),
        namespace: shared.namespace.clone(),
        job_id: shared.job.id.clone(),
        step_id: step.id.clone(),
        attempt: attempt_no,
        runs_on: step.runs_on.clone(),
        spec,
        display,
        secret_values: shared.secrets.values().cloned().collect(),
    };
    let mut end = remote.run(attempt, stop).await;
    end.outputs = end
        .outputs
        .into_iter()
        .map(|(key, value)| (key, shared.redactor.redact(&value).into_owned()))
        .collect();
    if end.status == StepStatus::Cancelled && stop.is_cancelled() {
        end.status = stopped_status(shared);
        end.reason = Some(stopped_reason(shared));
    }
    end
}

pub(crate) fn record_line(shared: &Shared, step: &Step, attempt_no: u32, line: LogLine) {
    shared.recorder.send(RunEvent::Log {
        run_id: shared.run_id.clone(),
        step_id: step.id.clone(),
        attempt: attempt_no,
        ts: line.ts,
        stream: match line.stream {
            Stream::Stdout => LogStream::Stdout,
            Stream::Stderr => LogStream::Stderr,
        },
        text: line.text.clone(),
    });
    shared.update(Update::Line {
        step: step.id.clone(),
        line,
    });
}

/// A line from Rota itself about a step (retries, dry-run echoes).
pub(crate) fn system_line(shared: &Shared, step: &Step, attempt_no: u32, text: String) {
    let ts = Timestamp::now();
    shared.recorder.send(RunEvent::Log {
        run_id: shared.run_id.clone(),
        step_id: step.id.clone(),
        attempt: attempt_no,
        ts,
        stream: LogStream::System,
        text: text.clone(),
    });
    shared.update(Update::Line {
        step: step.id.clone(),
        line: LogLine {
            ts,
            stream: Stream::Stderr,
            text: format!("[rota] {text}"),
        },
    });
}

/// A line a step without a process writes about itself, redacted like a process's output.
pub(crate) fn log_redacted(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    stream: Stream,
    text: &str,
) {
    let text = shared.redactor.redact(text).into_owned();
    record_line(
        shared,
        step,
        attempt_no,
        LogLine {
            ts: Timestamp::now(),
            stream,
            text,
        },
    );
}

/// Why [`race`] gave up on its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupted {
    /// The step's stop fired (cancel, the run's deadline).
    Stopped,
    /// The step's own `timeout` passed.
    TimedOut,
}

/// Runs `work` until it ends, the step is stopped, or its `timeout` passes, whichever comes
/// first; work that loses the race is dropped where it stands.
pub(crate) async fn race<T>(
    work: impl std::future::Future<Output = T>,
    stop: &CancellationToken,
    timeout: Option<Duration>,
) -> Result<T, Interrupted> {
    let deadline = async {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        done = work => Ok(done),
        () = stop.cancelled() => Err(Interrupted::Stopped),
        () = deadline => Err(Interrupted::TimedOut),
    }
}

pub(crate) fn stopped_status(shared: &Shared) -> StepStatus {
    match shared.stop.reason() {
        Some(StopReason::TimedOut) => StepStatus::TimedOut,
        _ => StepStatus::Cancelled,
    }
}

pub(crate) fn stopped_reason(shared: &Shared) -> String {
    match shared.stop.reason() {
        Some(StopReason::TimedOut) => "run timed out".to_owned(),
        Some(StopReason::Cancelled(by)) => format!("cancelled by {by}"),
        None => "cancelled".to_owned(),
    }
}

/// A command line as a user would type it, for display only.
pub(crate) fn shell_display(program: &str, args: &[String]) -> String {
    if program == "sh" && args.len() == 2 && args[0] == "-c" {
        return args[1].trim_end().to_owned();
    }
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
