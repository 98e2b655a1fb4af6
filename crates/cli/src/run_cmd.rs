//! `rota run`: turn what the user typed into a run request, execute it in this process,
//! print live lines and the result.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rota_core::model::{Job, Policy, RunStatus, Step, StepKind, Value};
use rota_engine::guardian::Guardian;
use rota_engine::process::Stream;
use rota_engine::run::{EngineConfig, RunRequest, RunStop, StopReason, Update};
use rota_store::{CancelState, NewJobRevision, Store};
use tokio::sync::mpsc;

use crate::EXIT_USAGE;
use crate::args::{RetryArgs, RunArgs};
use crate::client::{Remote, seg};
use crate::follow;
use crate::home::Home;
use crate::output::{self, Printer};
use crate::view::{run_json, step_duration};
use rota_ops::records::{CreateRun, RetryRun, Run};
use rota_ops::service::Runs;

/// A job ready to run, with where it came from.
pub(crate) struct Loaded {
    pub(crate) job: Job,
    pub(crate) source: String,
    pub(crate) source_path: Option<String>,
    pub(crate) namespace: String,
}

/// A local run lives in the `rota` process that started it, so it cannot be left running.
const DETACH_NEEDS_SERVER: &str = "rota: --detach needs --server: a local run lives in this process (start `rota serve` and use --server, or run it in the background)";

/// Usage and validation errors exit 2 with their message; they are not runtime failures.
pub(crate) struct UsageError(pub(crate) String);

pub async fn run(home: &Home, args: RunArgs, out: &Printer) -> anyhow::Result<u8> {
    if args.detach {
        eprintln!("{DETACH_NEEDS_SERVER}");
        return Ok(EXIT_USAGE);
    }
    let store = home.open_store().await?;
    let loaded = match load(&store, &args).await {
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
    let revision = save_revision(&store, &loaded).await?;
    let spec = rota_ops::RunSpec {
        run_id: rota_store::ids::new_run_id(),
        job: loaded.job,
        job_revision: revision.revision,
        namespace: loaded.namespace,
        params,
        dry_run: args.dry_run,
        trigger: rota_store::FOREGROUND_TRIGGER.to_owned(),
        scheduled_at: None,
        source_path: loaded.source_path,
        prior: Vec::new(),
    };
    // The use of secrets is recorded (and audited) before the run starts, so it is on
    // record even if this process dies during the run.
    let request = match home.ops(&store).prepare_run(spec).await {
        Ok(request) => request,
        Err(error) => return refused(error),
    };
    execute(home.artifacts_dir(), &store, request, out, false).await
}

/// Executes the run here, printing live lines and the summary. `claimed`: the run is
/// already recorded and owned by this process (a retry), so the engine records no start.
pub(crate) async fn execute(
    artifacts_dir: std::path::PathBuf,
    store: &Store,
    request: RunRequest,
    out: &Printer,
    claimed: bool,
) -> anyhow::Result<u8> {
    rota_engine::sandbox::announce();
    let guardian = spawn_guardian();
    let config = EngineConfig {
        artifacts_dir,
        grace: Duration::from_secs(5),
        log_cap_bytes: 10 * 1024 * 1024,
        guardian: guardian.map(Arc::new),
        durable_step_starts: false,
    };
    let stop = RunStop::new();
    let run_id = request.run_id.clone();
    let watchers = [
        tokio::spawn(stop_on_signals(stop.clone())),
        tokio::spawn(stop_on_cancel_request(
            store.clone(),
            run_id.clone(),
            stop.clone(),
        )),
    ];
    if !out.is_json() {
        eprintln!("run {run_id} of {} started", request.job.id);
    }
    let notifications = Notifications::start(store, &request);
    let (updates_tx, updates_rx) = mpsc::unbounded_channel();
    let printer = tokio::spawn(print_updates(updates_rx, out.is_json()));
    let summary = if claimed {
        rota_engine::run::execute_claimed(store, &config, request, stop, Some(updates_tx)).await
    } else {
        rota_engine::run::execute(store, &config, request, stop, Some(updates_tx)).await
    };
    for watcher in watchers {
        watcher.abort();
    }
    let _ = printer.await;
    let summary = summary?;
    let record = Run::from(store.find_run(&summary.run_id).await?);
    if out.is_json() {
        out.json(&run_json(&record));
    } else {
        print_summary(out, &record);
    }
    if let Some(notifications) = notifications {
        notifications.finish(store, &summary.run_id).await;
    }
    Ok(exit_code(summary.status))
}

/// How long `rota run` keeps trying to deliver its run's notifications after the run ended.
const NOTIFY_BUDGET: Duration = Duration::from_secs(15);

/// Delivery of the run's notifications by `rota run` itself: while the run goes on (for
/// `duration_exceeded`), then bounded by [`NOTIFY_BUDGET`] once it ended. What is still
/// undelivered stays queued in the store for the next `rota serve` on this home.
struct Notifications {
    deliverer: rota_engine::notify::Deliverer,
    done: tokio::sync::oneshot::Sender<()>,
    during: tokio::task::JoinHandle<()>,
}

impl Notifications {
    fn start(store: &Store, request: &RunRequest) -> Option<Notifications> {
        if request.job.notify.is_empty() || request.dry_run {
            return None;
        }
        // The run's own secret values: the templates can only name the job's secrets.
        let known = request.secrets.clone();
        let source: rota_engine::notify::SecretSource =
            Arc::new(move |_namespace: String, names: Vec<String>| {
                let found: Result<BTreeMap<String, String>, String> = names
                    .iter()
                    .map(|name| match known.get(name) {
                        Some(value) => Ok((name.clone(), value.clone())),
                        None => Err(format!("secret {name} is not set")),
                    })
                    .collect();
                Box::pin(async move { found })
            });
        let deliverer = rota_engine::notify::Deliverer::new(source);
        let (done, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (store, run_id, during_deliverer) =
            (store.clone(), request.run_id.clone(), deliverer.clone());
        let during = tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = &mut stopped => break,
                }
                if let Err(error) = during_deliverer.deliver_due(&store, Some(&run_id)).await {
                    eprintln!("rota: warning: cannot deliver notifications: {error}");
                }
            }
        });
        Some(Notifications {
            deliverer,
            done,
            during,
        })
    }

    /// Delivers what the run's end queued; says on stderr what could not be delivered.
    async fn finish(self, store: &Store, run_id: &str) {
        let _ = self.done.send(());
        let _ = self.during.await;
        let delivered = tokio::select! {
            delivered = self.deliverer.deliver_run(store, run_id, NOTIFY_BUDGET) => delivered,
            // A Ctrl-C while waiting for an endpoint leaves the rest to `rota serve`.
            _ = tokio::signal::ctrl_c() => store
                .count_pending_notifications(Some(run_id))
                .await
                .map(|pending| (Default::default(), pending)),
        };
        match delivered {
            Ok((_, 0)) => {}
            Ok((_, pending)) => eprintln!(
                "rota: {pending} notification(s) of run {run_id} not delivered yet; they stay \
                 queued and `rota serve` on this ROTA_HOME delivers them"
            ),
            Err(error) => eprintln!(
                "rota: cannot deliver the notifications of run {run_id} ({error}); they stay \
                 queued and `rota serve` on this ROTA_HOME delivers them"
            ),
        }
    }
}

/// `rota run JOB` against a server: the job stored there is queued with these parameters
/// (coerced here as in local mode), then followed to its end, unless `--detach`.
pub async fn run_remote(remote: &Remote, args: RunArgs, out: &Printer) -> anyhow::Result<u8> {
    if args.command.is_some() || !args.argv.is_empty() {
        eprintln!(
            "rota: ad-hoc commands (-c, -- CMD) run only locally: drop --server/ROTA_SERVER, or save a job on the server with `rota jobs put FILE`"
        );
        return Ok(EXIT_USAGE);
    }
    let target = args.target.clone().unwrap_or_default();
    if Path::new(&target).exists() {
        eprintln!(
            "rota: with --server, `rota run` starts a job stored on the server by its id; save {target} there first with `rota jobs put {target}`"
        );
        return Ok(EXIT_USAGE);
    }
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let job_path = format!(
        "/api/v1/namespaces/{}/jobs/{}",
        seg(&namespace),
        seg(&target)
    );
    let stored: StoredJob = remote.get(&job_path, &[]).await?;
    let job: Job = serde_json::from_value(rota_ops::records::durations_from_text(
        stored.definition.clone(),
    ))
    .context("the server's definition of the job does not load in this rota")?;
    let params = match resolve_params(&job, &args) {
        Ok(params) => params,
        Err(UsageError(message)) => {
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    let body = CreateRun {
        params: serde_json::to_value(params)?
            .as_object()
            .cloned()
            .unwrap_or_default(),
        dry_run: args.dry_run,
    };
    let run = remote.start_run(&namespace, &target, body).await?;
    follow_remote(remote, run, args.detach, Some(&stored.definition), out).await
}

/// A job as the server stores it (`wire::Job`): only what following a run needs.
#[derive(serde::Deserialize)]
struct StoredJob {
    definition: serde_json::Value,
}

/// Prints a run just queued on a server and, unless `detach`, follows it to its end like
/// local `rota run`: live lines, then the summary; the exit code follows its status.
pub(crate) async fn follow_remote<R: Runs>(
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
    /// Whether runs execute in this process (so `--detach` cannot apply).
    const HERE: bool;

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
    const HERE: bool = true;

    async fn drive(&self, run: Run, _detach: bool, out: &Printer) -> anyhow::Result<u8> {
        let artifacts_dir = self
            .ops()
            .artifacts_dir()
            .context("this rota does not execute runs")?
            .to_owned();
        claim_and_execute_in(artifacts_dir, self.ops(), &run.id, out).await
    }
}

impl Drive for Remote {
    const HERE: bool = false;

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
        follow_remote(self, run, detach, definition.as_ref(), out).await
    }
}

/// `rota retry RUN [--from STEP]`: a new run of the same job revision and parameters
/// (the steps it does not rerun keep the original's results), executed here like
/// `rota run` with the local store, or queued on the server and followed.
pub async fn retry<R: Drive>(rota: &R, args: RetryArgs, out: &Printer) -> anyhow::Result<u8> {
    if args.detach && R::HERE {
        eprintln!("{DETACH_NEEDS_SERVER}");
        return Ok(EXIT_USAGE);
    }
    let Some(original) = crate::runs_cmd::find(rota, &args.run).await? else {
        return Ok(EXIT_USAGE);
    };
    let how = RetryRun { from: args.from };
    let run = match rota.retry_run(&original.id, how).await {
        Ok(run) => run,
        Err(error) => return refused(error),
    };
    rota.drive(run, args.detach, out).await
}

/// Takes the queued run `run_id` for this process and executes it here, like `rota run`;
/// if a `rota serve` on this store took it first, it runs there.
pub(crate) async fn claim_and_execute(
    home: &Home,
    ops: &rota_ops::Ops,
    run_id: &str,
    out: &Printer,
) -> anyhow::Result<u8> {
    claim_and_execute_in(home.artifacts_dir(), ops, run_id, out).await
}

/// [`claim_and_execute`], keeping the run's artifacts in `artifacts_dir`.
async fn claim_and_execute_in(
    artifacts_dir: std::path::PathBuf,
    ops: &rota_ops::Ops,
    run_id: &str,
    out: &Printer,
) -> anyhow::Result<u8> {
    let owner = rota_store::Owner {
        host: rota_engine::owner::host_name(),
        pid: std::process::id(),
        start_token: rota_engine::owner::own_start_token(),
    };
    if !ops
        .store()
        .claim_queued_run(run_id, &owner, jiff::Timestamp::now())
        .await?
    {
        eprintln!(
            "rota: run {run_id} was claimed by a server; follow it with `rota logs -f {run_id}`"
        );
        return Ok(0);
    }
    let prepared = match ops.claimed_run(run_id).await {
        Ok(spec) => ops.prepare_run(spec).await,
        Err(error) => Err(error),
    };
    let request = match prepared {
        Ok(request) => request,
        Err(error) => {
            // Claimed but not runnable: it ends here, failed, with the reason.
            ops.store()
                .record(&[rota_store::RunEvent::RunFinished {
                    run_id: run_id.to_owned(),
                    status: RunStatus::Failed,
                    reason: Some(error.to_string()),
                    at: jiff::Timestamp::now(),
                }])
                .await?;
            return refused(error);
        }
    };
    execute(artifacts_dir, ops.store(), request, out, true).await
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
        _ => 1,
    }
}

/// The watchdog is this same binary (`rota __guardian`); without it a SIGKILLed `rota`
/// would leave its steps running, so failing to start it is only a warning when the
/// executable cannot be found at all.
pub(crate) fn spawn_guardian() -> Option<Guardian> {
    let exe = std::env::current_exe().ok()?;
    match Guardian::spawn(&exe, &["__guardian"]) {
        Ok(guardian) => Some(guardian),
        Err(error) => {
            eprintln!("rota: warning: cannot start the process guardian: {error}");
            None
        }
    }
}

/// Ctrl-C, SIGTERM and SIGHUP cancel the run cleanly (the steps get SIGTERM, then SIGKILL)
/// and let its `when: always` steps clean up; a second signal stops those too.
async fn stop_on_signals(stop: RunStop) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let mut received = 0;
    loop {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        };
        received += 1;
        if received == 1 {
            eprintln!(
                "rota: {name} received, cancelling the run (`when: always` steps still run; signal again to stop them)"
            );
            stop.stop(StopReason::Cancelled(name.to_owned()));
        } else {
            eprintln!("rota: {name} received again, stopping the cleanup steps too");
            stop.force(StopReason::Cancelled(name.to_owned()));
            return;
        }
    }
}

/// `rota cancel` from another terminal sets a flag in the store (and signals this process
/// when it can); polling the flag covers the cases where no signal arrives. A second
/// `rota cancel` forces the stop, as a second Ctrl-C does.
async fn stop_on_cancel_request(store: Store, run_id: String, stop: RunStop) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let reason = || StopReason::Cancelled("rota cancel".to_owned());
        match store.cancel_state(&run_id).await {
            Ok(CancelState::Requested) => stop.stop(reason()),
            Ok(CancelState::Forced) => {
                stop.force(reason());
                return;
            }
            Ok(CancelState::None) | Err(_) => {}
        }
    }
}

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
}

/// Finds what to run: an ad-hoc command, a job file, or a stored job.
pub(crate) async fn load(store: &Store, args: &RunArgs) -> Result<Loaded, UsageError> {
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
    load_stored(store, target, args).await
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

async fn load_stored(store: &Store, job_id: &str, args: &RunArgs) -> Result<Loaded, UsageError> {
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let revision = store
        .latest_job_revision(&namespace, job_id)
        .await
        .map_err(|e| UsageError(format!("rota: {e}")))?
        .ok_or_else(|| {
            UsageError(format!(
                "rota: {job_id:?} is neither a file nor a stored job in namespace {namespace:?}"
            ))
        })?;
    // The normalized definition, as a server runs it: the text of a revision saved
    // through the API or `rota jobs put` has no file name to tell its format by.
    let job = revision.job().map_err(|e| {
        UsageError(format!(
            "rota: the stored definition of {job_id:?} does not load: {e}"
        ))
    })?;
    Ok(Loaded {
        job,
        source: revision.source,
        source_path: revision.source_path,
        namespace,
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
        }],
        notify: Vec::new(),
        approval: None,
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
    rota_core::params::resolve(job, &file_values, &args.params).map_err(|errors| {
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

/// Saves the loaded job as a revision (idempotent on its source); the run or plan made of
/// it records that revision.
pub(crate) async fn save_revision(
    store: &Store,
    loaded: &Loaded,
) -> anyhow::Result<rota_store::JobRevision> {
    let mut revision = NewJobRevision::of_job(
        loaded.namespace.clone(),
        &loaded.job,
        loaded.source.clone(),
        jiff::Timestamp::now(),
    );
    revision.source_path = loaded.source_path.clone();
    Ok(store.save_job_revision(&revision).await?)
}
