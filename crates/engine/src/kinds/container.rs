//! The `container:` step kind: one command in a fresh container, run through the Docker
//! Engine API with bollard (`DOCKER_HOST`, by default the local unix socket; Podman's
//! Docker-compatible socket works the same way).
//!
//! An attempt makes sure the image is there (its `pull` policy), creates a container
//! labelled with the run, step, attempt and the owning process ([`labels`]), starts it,
//! follows its stdout and stderr apart through the step's redactor, waits for its end and
//! reads its exit code and whether the kernel killed it for memory. The container is raced
//! against the step's stop and `timeout` like other work: losing the race stops it (SIGTERM,
//! then SIGKILL after the engine's grace period, as `docker stop` does). Whatever happens,
//! the container is removed before the attempt ends; if this process dies first, the next
//! `rota` to recover its runs removes it ([`remove_orphans`]).
//!
//! Outputs: a directory of the attempt's own is bound at [`OUTPUT_DIR`] and `ROTA_OUTPUT`
//! names a file in it; the engine reads it as for a process step once the container ends.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateImageOptions, KillContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use rota_core::kinds::Command;
use rota_core::kinds::container::{ContainerCommand, ContainerStep, Pull};
use rota_core::model::{DryRun, StepStatus};
use rota_core::resources::Resources;

use super::{Executor, ResolveCx};
use crate::process::Stream;
use crate::run::Shared;
use crate::step::{
    Attempt, AttemptCx, Interrupted, Resolved, Work, log_redacted, param_env, race, render_text,
    stopped_reason, stopped_status,
};

/// Where the attempt's output directory is bound inside the container.
pub const OUTPUT_DIR: &str = "/rota";
/// `$ROTA_OUTPUT` inside the container.
const OUTPUT_FILE: &str = "output";
/// How long recovery waits for the container engine before giving up on it: it must never
/// hold up a start when the engine is absent or stuck.
const ORPHAN_SWEEP_BOUND: Duration = Duration::from_secs(5);

/// Label keys every container of an attempt carries.
pub mod label {
    /// The run's namespace.
    pub const NAMESPACE: &str = "rota.namespace";
    /// The job.
    pub const JOB: &str = "rota.job";
    /// The run id.
    pub const RUN: &str = "rota.run";
    /// The step id.
    pub const STEP: &str = "rota.step";
    /// The attempt number.
    pub const ATTEMPT: &str = "rota.attempt";
    /// The process that started it: `host/pid/start token` (see `crate::owner`).
    pub const OWNER: &str = "rota.owner";
}

pub(crate) struct Container;

impl Executor for Container {
    fn name(&self) -> &'static str {
        "container"
    }

    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String> {
        let config: ContainerStep = r.step.kind.decode()?;
        let work = resolve(r, &config)?;
        let display = r.shared.redactor.redact(&work.display()).into_owned();
        match r.dry_run {
            Some(DryRun::Run) | None => Ok(Resolved::Work {
                work: Box::new(work),
                display,
            }),
            Some(_) => Ok(Resolved::Echo {
                display: r.shared.redactor.redact(&work.spec_text()).into_owned(),
                verb: "would run",
            }),
        }
    }
}

/// A container step with its templates rendered, ready to create.
pub(crate) struct ContainerWork {
    image: String,
    pull: Pull,
    auth: Option<DockerCredentials>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    /// What the command shows as (a shell command's text, not its `ROTA_TPL_<n>` form).
    shown_command: Option<String>,
    env: Vec<(String, String)>,
    workdir: Option<String>,
    user: Option<String>,
    network: &'static str,
    resources: Resources,
    /// Bind mounts: host path, container path, read-only.
    mounts: Vec<(PathBuf, String, bool)>,
    /// The attempt's own output directory on this host.
    output_dir: PathBuf,
    labels: HashMap<String, String>,
    timeout: Option<Duration>,
    grace: Duration,
    log_cap_bytes: usize,
}

impl ContainerWork {
    /// `container IMAGE: COMMAND`, before redaction.
    fn display(&self) -> String {
        with_command(
            format!("container {}", self.image),
            self.shown_command.as_deref(),
        )
    }

    /// The whole resolved container, as a dry run shows it (before redaction): environment
    /// values are shown redacted by the caller, like every line that may hold a secret.
    /// The command comes last: it may span lines.
    fn spec_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(entrypoint) = &self.entrypoint {
            parts.push(format!("entrypoint {}", entrypoint.join(" ")));
        }
        let names: Vec<String> = self
            .env
            .iter()
            .filter(|(name, _)| !name.starts_with("ROTA_"))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if !names.is_empty() {
            parts.push(format!("env {}", names.join(" ")));
        }
        for (source, target, readonly) in &self.mounts {
            let mode = if *readonly { "ro" } else { "rw" };
            parts.push(format!("mount {}:{target}:{mode}", source.display()));
        }
        if let Some(dir) = &self.workdir {
            parts.push(format!("workdir {dir}"));
        }
        if let Some(user) = &self.user {
            parts.push(format!("user {user}"));
        }
        parts.push(format!("network {}", self.network));
        if !self.resources.is_empty() {
            parts.push(self.resources.describe());
        }
        parts.push(format!("pull {}", self.pull.as_str()));
        let head = format!("container {} ({})", self.image, parts.join("; "));
        with_command(head, self.shown_command.as_deref())
    }
}

/// `head: command`, or `head` alone for the image's own command.
fn with_command(head: String, command: Option<&str>) -> String {
    match command {
        Some(command) => format!("{head}: {command}"),
        None => head,
    }
}

/// Renders every template of the step into the container to create.
fn resolve(r: &ResolveCx<'_>, config: &ContainerStep) -> Result<ContainerWork, String> {
    let ResolveCx {
        shared,
        step,
        attempt_no,
        ctx,
        ..
    } = *r;
    let render = |text: &str| render_text(text, ctx);
    let image = render(&config.image)?.trim().to_owned();
    if image.is_empty() {
        return Err("the image renders to an empty name".to_owned());
    }
    let render_all = |items: &[String]| items.iter().map(|i| render(i)).collect();
    let entrypoint: Option<Vec<String>> =
        config.entrypoint.as_deref().map(render_all).transpose()?;
    let (cmd, shown_command, shell_values) = match &config.command {
        Some(ContainerCommand::Argv(argv)) => {
            let argv: Vec<String> = render_all(argv)?;
            let shown = match argv.split_first() {
                Some((program, args)) => crate::step::shell_display(program, args),
                None => String::new(),
            };
            (Some(argv), Some(shown), Vec::new())
        }
        Some(ContainerCommand::Shell(text)) => {
            let Command {
                program,
                mut args,
                shown,
                shell_values,
            } = Command::shell(text, ctx)?;
            args.insert(0, program);
            (Some(args), shown, shell_values)
        }
        None => (None, None, Vec::new()),
    };

    let output_dir = shared
        .run_dir
        .join(format!("{}.{attempt_no}.container", step.id));
    let mut env = Vec::new();
    // The job's and the step's `env:`, then the container's own, which win.
    for (name, value) in shared.job.env.iter().chain(&step.env).chain(&config.env) {
        env.retain(|(n, _): &(String, String)| n != name);
        env.push((name.clone(), render(value)?));
    }
    env.extend(crate::step::run_identity_env(shared, step, attempt_no));
    env.push((
        "ROTA_OUTPUT".to_owned(),
        format!("{OUTPUT_DIR}/{OUTPUT_FILE}"),
    ));
    env.extend(param_env(&ctx.params));
    // Last, so that no `env:` entry can stand in for a value the shell command reads.
    env.extend(shell_values);

    let mut mounts = Vec::new();
    for mount in &config.mounts {
        let source = shared.base_dir.join(render(&mount.source)?);
        mounts.push((source, mount.target.clone(), mount.readonly));
    }
    let auth = match &config.auth {
        Some(auth) => Some(DockerCredentials {
            username: Some(render(&auth.username)?),
            password: Some(render(&auth.password)?),
            ..Default::default()
        }),
        None => None,
    };
    Ok(ContainerWork {
        image,
        pull: config.pull,
        auth,
        entrypoint,
        cmd,
        shown_command,
        env,
        workdir: config.workdir.clone(),
        user: config.user.clone(),
        network: config.network.as_str(),
        resources: config.resources,
        mounts,
        output_dir,
        labels: labels(shared, &step.id, attempt_no),
        timeout: step.timeout,
        grace: shared.config.grace,
        log_cap_bytes: shared.config.log_cap_bytes,
    })
}

/// The labels of an attempt's container: what it belongs to, and which process owns it, so
/// that recovery removes only the containers of processes that died.
fn labels(shared: &Shared, step_id: &str, attempt_no: u32) -> HashMap<String, String> {
    let owner = crate::owner::this_process();
    HashMap::from([
        (label::NAMESPACE.to_owned(), shared.namespace.clone()),
        (label::JOB.to_owned(), shared.job.id.clone()),
        (label::RUN.to_owned(), shared.run_id.clone()),
        (label::STEP.to_owned(), step_id.to_owned()),
        (label::ATTEMPT.to_owned(), attempt_no.to_string()),
        (
            label::OWNER.to_owned(),
            format!("{}/{}/{}", owner.host, owner.pid, owner.start_token),
        ),
    ])
}

impl Work for ContainerWork {
    fn run<'a>(
        self: Box<Self>,
        at: AttemptCx<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Attempt> + Send + 'a>> {
        Box::pin(run(at, *self))
    }
}

/// How the container's run ended, before outputs are read.
struct Ended {
    status: StepStatus,
    exit_code: Option<i32>,
    reason: Option<String>,
}

impl Ended {
    fn failed(reason: String) -> Ended {
        Ended {
            status: StepStatus::Failed,
            exit_code: None,
            reason: Some(reason),
        }
    }
}

async fn run(at: AttemptCx<'_>, work: ContainerWork) -> Attempt {
    let log = |stream: Stream, text: &str| {
        log_redacted(at.shared, at.step, at.attempt_no, stream, text);
    };
    let ended = match prepare_output_dir(&work.output_dir) {
        Ok(()) => run_container(&at, &work, &log).await,
        Err(reason) => Ended::failed(reason),
    };
    if let Some(reason) = &ended.reason {
        log(Stream::Stderr, &format!("! {reason}"));
    }
    let outputs = crate::outputs::take_outputs(&work.output_dir.join(OUTPUT_FILE));
    let _ = std::fs::remove_dir_all(&work.output_dir);
    let redacted = outputs.map(|outputs| {
        outputs
            .into_iter()
            .map(|(key, value)| (key, at.shared.redactor.redact(&value).into_owned()))
            .collect::<BTreeMap<_, _>>()
    });
    match redacted {
        Ok(outputs) => Attempt {
            status: ended.status,
            exit_code: ended.exit_code,
            outputs,
            reason: ended.reason,
        },
        Err(problem) if ended.status == StepStatus::Succeeded => Attempt {
            status: StepStatus::Failed,
            exit_code: ended.exit_code,
            outputs: BTreeMap::new(),
            reason: Some(problem),
        },
        Err(_) => Attempt {
            status: ended.status,
            exit_code: ended.exit_code,
            outputs: BTreeMap::new(),
            reason: ended.reason,
        },
    }
}

/// The attempt's output directory, writable by whatever user the container runs as.
fn prepare_output_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| format!("cannot prepare {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(fail)
}

/// Connects to the engine, creates and runs the container, and removes it.
async fn run_container(
    at: &AttemptCx<'_>,
    work: &ContainerWork,
    log: &(dyn Fn(Stream, &str) + Sync),
) -> Ended {
    let docker = match connect().await {
        Ok(docker) => docker,
        Err(reason) => return Ended::failed(reason),
    };
    // Pulling counts against the step's timeout and stops with the step.
    let started = std::time::Instant::now();
    match race(ensure_image(&docker, work, log), at.stop, work.timeout).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => return Ended::failed(reason),
        Err(interrupted) => return interrupted_ending(at.shared, interrupted, work.timeout),
    }
    let id = match docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            create_body(work),
        )
        .await
    {
        Ok(created) => created.id,
        Err(e) => return Ended::failed(format!("cannot create the container: {}", message(&e))),
    };
    // Removed when this attempt ends, even if its future is dropped midway.
    let mut removal = Removal::armed(docker.clone(), id.clone());
    let left = work.timeout.map(|t| t.saturating_sub(started.elapsed()));
    let ended = match race(start_and_follow(&docker, &id, work, log), at.stop, left).await {
        Ok(ended) => ended,
        Err(interrupted) => {
            stop(&docker, &id, work.grace).await;
            interrupted_ending(at.shared, interrupted, work.timeout)
        }
    };
    removal.now().await;
    ended
}

fn interrupted_ending(
    shared: &Shared,
    interrupted: Interrupted,
    timeout: Option<Duration>,
) -> Ended {
    match interrupted {
        Interrupted::Stopped => Ended {
            status: stopped_status(shared),
            exit_code: None,
            reason: Some(stopped_reason(shared)),
        },
        Interrupted::TimedOut => Ended {
            status: StepStatus::TimedOut,
            exit_code: None,
            reason: Some(format!(
                "timed out after {}",
                crate::run::humantime(timeout.unwrap_or_default())
            )),
        },
    }
}

/// A client of the engine `DOCKER_HOST` names (the local socket by default), speaking an
/// API version the engine knows.
async fn connect() -> Result<Docker, String> {
    let unreachable = |e: &bollard::errors::Error| {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        format!(
            "cannot reach the container engine at {host}: {}",
            message(e)
        )
    };
    let docker = Docker::connect_with_defaults().map_err(|e| unreachable(&e))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| unreachable(&e))
}

/// An engine error's own message (bollard's outer text repeats the status code).
fn message(error: &bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => crate::kinds::http::root_cause(other),
    }
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Makes sure the image is there, as the step's `pull` policy says.
async fn ensure_image(
    docker: &Docker,
    work: &ContainerWork,
    log: &(dyn Fn(Stream, &str) + Sync),
) -> Result<(), String> {
    let present = || async {
        match docker.inspect_image(&work.image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(format!(
                "cannot inspect image {}: {}",
                work.image,
                message(&e)
            )),
        }
    };
    match work.pull {
        Pull::Never if present().await? => Ok(()),
        Pull::Never => Err(format!(
            "image {} is not present and the step says `pull: never`",
            work.image
        )),
        Pull::IfMissing if present().await? => Ok(()),
        Pull::IfMissing | Pull::Always => pull(docker, work, log).await,
    }
}

/// Pulls the image, with the step's registry credentials if it has any.
async fn pull(
    docker: &Docker,
    work: &ContainerWork,
    log: &(dyn Fn(Stream, &str) + Sync),
) -> Result<(), String> {
    log(Stream::Stderr, &format!("> pulling image {}", work.image));
    let (from_image, tag) = split_tag(&work.image);
    let options = CreateImageOptions {
        from_image: Some(from_image.to_owned()),
        tag: Some(tag.to_owned()),
        ..Default::default()
    };
    let mut progress = docker.create_image(Some(options), None, work.auth.clone());
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    return Err(format!("pulling image {} failed: {detail}", work.image));
                }
            }
            Err(e) => {
                return Err(format!(
                    "pulling image {} failed: {}",
                    work.image,
                    message(&e)
                ));
            }
        }
    }
    log(Stream::Stderr, &format!("< pulled image {}", work.image));
    Ok(())
}

/// `name:tag` (or `name@digest`) as the pull API takes it: the tag apart, `latest` if none.
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    // A colon after the last slash separates the tag; one before it is a registry's port.
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => (
            &image[..last_slash + colon],
            &image[last_slash + colon + 1..],
        ),
        None => (image, "latest"),
    }
}

fn create_body(work: &ContainerWork) -> ContainerCreateBody {
    let mut mounts: Vec<Mount> = work
        .mounts
        .iter()
        .map(|(source, target, readonly)| bind(source, target, *readonly))
        .collect();
    mounts.push(bind(&work.output_dir, OUTPUT_DIR, false));
    let memory = work.resources.memory.and_then(|m| i64::try_from(m).ok());
    let host_config = HostConfig {
        mounts: Some(mounts),
        network_mode: Some(work.network.to_owned()),
        memory,
        // No swap on top of the limit: a step over its memory is killed, not slowed down.
        memory_swap: memory,
        nano_cpus: work.resources.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: work.resources.pids.and_then(|p| i64::try_from(p).ok()),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(work.image.clone()),
        cmd: work.cmd.clone(),
        entrypoint: work.entrypoint.clone(),
        env: Some(
            work.env
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect(),
        ),
        working_dir: work.workdir.clone(),
        user: work.user.clone(),
        labels: Some(work.labels.clone()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

fn bind(source: &Path, target: &str, readonly: bool) -> Mount {
    Mount {
        source: Some(source.display().to_string()),
        target: Some(target.to_owned()),
        typ: Some(MountType::BIND),
        read_only: Some(readonly),
        ..Default::default()
    }
}

/// Starts the container, logs its output until it ends, and says how it ended.
async fn start_and_follow(
    docker: &Docker,
    id: &str,
    work: &ContainerWork,
    log: &(dyn Fn(Stream, &str) + Sync),
) -> Ended {
    if let Err(e) = docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
    {
        return Ended::failed(format!("cannot start the container: {}", message(&e)));
    }
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut logs = docker.logs(id, Some(options));
    let mut lines = Lines::new(work.log_cap_bytes);
    while let Some(chunk) = logs.next().await {
        match chunk {
            Ok(LogOutput::StdOut { message }) => lines.push(Stream::Stdout, &message, log),
            Ok(LogOutput::StdErr { message }) => lines.push(Stream::Stderr, &message, log),
            Ok(_) => {}
            Err(e) => {
                log(
                    Stream::Stderr,
                    &format!("! the container's log stream broke: {}", message(&e)),
                );
                break;
            }
        }
    }
    lines.flush(log);
    // The log stream ends when the container does; waiting settles its final state.
    let options = WaitContainerOptions {
        condition: "not-running".to_owned(),
    };
    let _ = docker.wait_container(id, Some(options)).next().await;
    let state = match docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
    {
        Ok(inspected) => inspected.state.unwrap_or_default(),
        Err(e) => return Ended::failed(format!("cannot inspect the container: {}", message(&e))),
    };
    let exit_code = state.exit_code.and_then(|c| i32::try_from(c).ok());
    let ending = match exit_code {
        Some(0) => None,
        Some(code) => Some(format!("exited with code {code}")),
        None => Some("ended without an exit code".to_owned()),
    };
    let oom = state.oom_killed == Some(true);
    let reason = match (oom, work.resources.memory) {
        (true, Some(limit)) => Some(crate::remote::memory_reason(ending.as_deref(), limit)),
        (true, None) => Some(format!(
            "out of memory: killed by the kernel ({})",
            ending.as_deref().unwrap_or("no exit code")
        )),
        (false, _) => ending,
    };
    Ended {
        status: if exit_code == Some(0) && !oom {
            StepStatus::Succeeded
        } else {
            StepStatus::Failed
        },
        exit_code,
        reason,
    }
}

/// Cuts a stream's chunks into lines and enforces the step's log cap; stdout and stderr
/// each keep their own partial line.
struct Lines {
    partial: [Vec<u8>; 2],
    cap: usize,
    kept: usize,
    truncated: bool,
}

impl Lines {
    fn new(cap: usize) -> Lines {
        Lines {
            partial: [Vec::new(), Vec::new()],
            cap,
            kept: 0,
            truncated: false,
        }
    }

    fn slot(stream: Stream) -> usize {
        match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn push(&mut self, stream: Stream, bytes: &[u8], log: &(dyn Fn(Stream, &str) + Sync)) {
        let slot = Self::slot(stream);
        self.partial[slot].extend_from_slice(bytes);
        while let Some(end) = self.partial[slot].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial[slot].drain(..=end).collect();
            self.emit(stream, &line[..line.len() - 1], log);
        }
        // A line longer than a process step's longest is cut as theirs are.
        while self.partial[slot].len() >= crate::process::MAX_LINE_BYTES {
            let line: Vec<u8> = self.partial[slot]
                .drain(..crate::process::MAX_LINE_BYTES)
                .collect();
            self.emit(stream, &line, log);
        }
    }

    fn flush(&mut self, log: &(dyn Fn(Stream, &str) + Sync)) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.partial[Self::slot(stream)]);
            if !rest.is_empty() {
                self.emit(stream, &rest, log);
            }
        }
    }

    fn emit(&mut self, stream: Stream, raw: &[u8], log: &(dyn Fn(Stream, &str) + Sync)) {
        if self.truncated {
            return;
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let cost = raw.len() + 1;
        if self.kept + cost > self.cap {
            self.truncated = true;
            log(
                stream,
                &format!("[rota] log truncated after {} bytes", self.kept),
            );
            return;
        }
        self.kept += cost;
        log(stream, &String::from_utf8_lossy(raw));
    }
}

/// Stops a container as `docker stop` does: SIGTERM, then SIGKILL once `grace` has passed;
/// killed at once if the stop request itself fails.
async fn stop(docker: &Docker, id: &str, grace: Duration) {
    let seconds = i32::try_from(grace.as_secs_f64().ceil() as u64).unwrap_or(i32::MAX);
    let options = StopContainerOptions {
        t: Some(seconds),
        signal: None,
    };
    if docker.stop_container(id, Some(options)).await.is_err() {
        let options = KillContainerOptions {
            signal: "SIGKILL".to_owned(),
        };
        let _ = docker.kill_container(id, Some(options)).await;
    }
}

/// Removes a container when the attempt ends; dropped while still armed (the attempt's
/// future was dropped), it removes it from a task of its own.
struct Removal {
    docker: Docker,
    id: Option<String>,
}

impl Removal {
    fn armed(docker: Docker, id: String) -> Removal {
        Removal {
            docker,
            id: Some(id),
        }
    }

    async fn now(&mut self) {
        if let Some(id) = self.id.take() {
            remove(&self.docker, &id).await;
        }
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let docker = self.docker.clone();
            runtime.spawn(async move { remove(&docker, &id).await });
        }
    }
}

/// Force-removes a container and its anonymous volumes.
async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    if let Err(e) = docker.remove_container(id, Some(options)).await
        && !is_not_found(&e)
    {
        tracing::warn!(container = %id, error = %message(&e), "cannot remove a step's container");
    }
}

/// Removes the containers of attempts whose owning process died on this host (a `rota`
/// killed before it could remove them), returning their ids. Best-effort: an absent or
/// stuck engine costs at most [`ORPHAN_SWEEP_BOUND`] and removes nothing.
pub async fn remove_orphans() -> Vec<String> {
    tokio::time::timeout(ORPHAN_SWEEP_BOUND, sweep())
        .await
        .unwrap_or_default()
}

async fn sweep() -> Vec<String> {
    // Without an engine there is nothing to sweep: do not even try to connect.
    if std::env::var_os("DOCKER_HOST").is_none() && !Path::new("/var/run/docker.sock").exists() {
        return Vec::new();
    }
    let Ok(docker) = connect().await else {
        return Vec::new();
    };
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![label::OWNER.to_owned()],
        )])),
        ..Default::default()
    };
    let Ok(containers) = docker.list_containers(Some(options)).await else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for container in containers {
        let (Some(id), Some(labels)) = (container.id, container.labels) else {
            continue;
        };
        let owner_dead = labels
            .get(label::OWNER)
            .and_then(|owner| parse_owner(owner))
            .is_some_and(|(host, pid, token)| !crate::owner::is_alive(host, pid, token));
        if owner_dead {
            remove(&docker, &id).await;
            removed.push(id);
        }
    }
    removed
}

/// `host/pid/start token`, as [`labels`] writes it.
fn parse_owner(owner: &str) -> Option<(&str, u32, &str)> {
    let mut parts = owner.splitn(3, '/');
    let host = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    Some((host, pid, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(split_tag("busybox"), ("busybox", "latest"));
        assert_eq!(split_tag("busybox:1"), ("busybox", "1"));
        assert_eq!(
            split_tag("registry:5000/team/app:2.1"),
            ("registry:5000/team/app", "2.1")
        );
        assert_eq!(
            split_tag("registry:5000/team/app"),
            ("registry:5000/team/app", "latest")
        );
        assert_eq!(split_tag("app@sha256:abc"), ("app@sha256:abc", ""));
    }

    #[test]
    fn owners_read_back_as_written() {
        assert_eq!(
            parse_owner("host-1/42/boot:123"),
            Some(("host-1", 42, "boot:123"))
        );
        assert_eq!(parse_owner("host-1/x/boot"), None);
        assert_eq!(parse_owner("host-1"), None);
    }

    #[test]
    fn lines_are_cut_per_stream_and_capped() {
        let seen = std::sync::Mutex::new(Vec::new());
        let log = |stream: Stream, text: &str| seen.lock().unwrap().push((stream, text.to_owned()));
        let mut lines = Lines::new(16);
        lines.push(Stream::Stdout, b"he", &log);
        lines.push(Stream::Stderr, b"err\n", &log);
        lines.push(Stream::Stdout, b"llo\nwor", &log);
        lines.flush(&log);
        lines.push(Stream::Stdout, b"this line is over the cap\n", &log);
        lines.push(Stream::Stdout, b"dropped\n", &log);
        let seen = seen.into_inner().unwrap();
        assert_eq!(
            seen,
            [
                (Stream::Stderr, "err".to_owned()),
                (Stream::Stdout, "hello".to_owned()),
                (Stream::Stdout, "wor".to_owned()),
                (
                    Stream::Stdout,
                    "[rota] log truncated after 14 bytes".to_owned()
                ),
            ]
        );
    }
}
