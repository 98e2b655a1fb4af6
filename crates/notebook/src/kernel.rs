//! A Jupyter kernel client over ZeroMQ: launch, readiness, execute, interrupt, shutdown.
//!
//! One kernel process per notebook run, started by a [`KernelHost`]: this crate starts no
//! process itself. The host puts the kernel in a process group of its own (so a terminal's
//! Ctrl-C reaches Rota, which then interrupts and shuts the kernel down itself) and keeps a
//! hold on it that kills what is left of the kernel and of what its cells started when it is
//! dropped. The connection file is removed on every exit path, including drop. IOPub and
//! shell replies are read as raw frames by one reader task per socket, so outputs keep every
//! field the kernel sent.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jupyter_protocol::{ConnectionInfo, ExecuteRequest, JupyterMessage, KernelInfoRequest};
use jupyter_zmq_client::{
    ClientControlConnection, Connection, RawMessage, create_client_control_connection,
    create_client_iopub_connection, create_client_shell_connection_with_identity,
    peer_identity_for_session,
};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{NotebookError, Result};
use crate::kernelspec::{InterruptMode, KernelSpec};

/// After the kernel exits, how long messages it sent before dying may take to arrive.
const DEATH_SETTLE: Duration = Duration::from_millis(100);

/// One message read from the kernel, with the fields this crate uses.
#[derive(Debug, Clone)]
pub struct KernelMessage {
    /// `header.msg_type`.
    pub msg_type: String,
    /// `parent_header.msg_id`, when there is a parent.
    pub parent_id: Option<String>,
    /// `header.date` as sent by the kernel.
    pub date: Option<String>,
    /// The message content.
    pub content: Value,
}

impl KernelMessage {
    fn from_raw(raw: RawMessage) -> Option<KernelMessage> {
        let header: Value = serde_json::from_slice(raw.jparts.first()?).ok()?;
        let parent: Value = serde_json::from_slice(raw.jparts.get(1)?).unwrap_or(Value::Null);
        let content: Value = serde_json::from_slice(raw.jparts.get(3)?).ok()?;
        Some(KernelMessage {
            msg_type: header.get("msg_type")?.as_str()?.to_string(),
            parent_id: parent
                .get("msg_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            date: header
                .get("date")
                .and_then(Value::as_str)
                .map(str::to_string),
            content,
        })
    }
}

/// How a kernel is launched.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// Working directory of the kernel process.
    pub cwd: Option<PathBuf>,
    /// How long to wait for the kernel to answer `kernel_info`.
    pub start_timeout: Duration,
    /// Where the kernel process's own stdout/stderr lines go (dropped when `None`).
    pub process_log: Option<mpsc::UnboundedSender<String>>,
    /// Starts the kernel's process (see [`KernelHost`]).
    pub host: Host,
}

/// A kernel's command line, environment and working directory, from its kernelspec.
#[derive(Clone)]
pub struct KernelCommand {
    /// The program, looked up on `PATH` when it has no slash.
    pub program: String,
    /// Its arguments, the connection file's path filled in.
    pub args: Vec<String>,
    /// Variables added to (or replacing in) the environment the host gives the kernel.
    pub env: Vec<(String, String)>,
    /// Working directory; the host's own when `None`.
    pub cwd: Option<PathBuf>,
}

impl std::fmt::Debug for KernelCommand {
    // A kernelspec's environment may carry credentials: show the names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env_names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KernelCommand")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env_names)
            .field("cwd", &self.cwd)
            .finish()
    }
}

/// A kernel process a [`KernelHost`] started.
pub struct KernelProcess {
    /// The process: in a process group of its own (whose id is its pid, so that a cell can
    /// be interrupted with SIGINT to the group), its stdin null, its stdout and stderr piped.
    pub child: tokio::process::Child,
    /// The host's hold on the kernel's process group and on every process its cells start:
    /// dropping it kills whatever is left of them. It is dropped once the kernel has been
    /// shut down and waited for.
    pub hold: Box<dyn Send + Sync>,
}

/// Starts kernel processes for this crate, which talks to a kernel over ZeroMQ and stops it
/// itself (shutdown request, then SIGTERM and SIGKILL to its group) but starts none.
///
/// The host owns what keeps a kernel in line: in Rota, the engine's process supervisor
/// (`rota_engine::kernels`) starts a kernel like any step process (confined, without Rota's
/// own variables, in a cgroup of its own, watched by the guardian so that it and what its
/// cells started are killed even if Rota dies).
pub trait KernelHost: Send + Sync {
    /// Starts `command` as described on [`KernelProcess`].
    fn spawn(&self, command: &KernelCommand) -> std::io::Result<KernelProcess>;
}

/// A shared [`KernelHost`], as carried in requests.
#[derive(Clone)]
pub struct Host(pub Arc<dyn KernelHost>);

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

/// What became of one `execute_request`.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecuteEnd {
    /// The kernel replied and went idle.
    Replied {
        /// `ok`, `error` or `aborted`.
        status: String,
        /// `execution_count` of the reply.
        execution_count: Option<i64>,
        /// Error name, for `status == "error"`.
        ename: String,
        /// Error value, for `status == "error"`.
        evalue: String,
    },
    /// The timeout passed; the kernel was interrupted.
    TimedOut {
        /// Whether the kernel answered after the interrupt.
        replied: bool,
    },
    /// The kernel process exited.
    Died,
    /// The cancellation token fired; the kernel was interrupted.
    Cancelled,
}

struct ConnFileGuard(PathBuf);

impl Drop for ConnFileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A running kernel with connected channels.
pub struct Kernel {
    spec: KernelSpec,
    child: tokio::process::Child,
    pid: i32,
    exited: bool,
    shell: jupyter_zmq_client::DealerSendConnection,
    control: ClientControlConnection,
    iopub_rx: mpsc::UnboundedReceiver<KernelMessage>,
    shell_rx: mpsc::UnboundedReceiver<KernelMessage>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    conn_file: Option<ConnFileGuard>,
    kernel_info: Value,
    in_flight: Vec<String>,
    stash: Vec<KernelMessage>,
    /// The host's hold on the kernel's group; declared last, so that it is dropped (and
    /// kills what is left) after `child`.
    hold: Option<Box<dyn Send + Sync>>,
}

fn random_hex(n: usize) -> String {
    use rand::RngExt as _;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16u32), 16).unwrap_or('0'))
        .collect()
}

fn start_error(spec: &KernelSpec, reason: impl Into<String>) -> NotebookError {
    NotebookError::KernelStart {
        kernel: spec.name.clone(),
        reason: reason.into(),
    }
}

/// The reason inside a start error, or the whole message of any other error.
fn start_reason(e: NotebookError) -> String {
    match e {
        NotebookError::KernelStart { reason, .. } => reason,
        other => other.to_string(),
    }
}

fn proto(e: impl std::fmt::Display) -> NotebookError {
    NotebookError::Protocol(e.to_string())
}

/// [`proto`] for a failure while doing `what`, which the message names.
fn proto_during<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> NotebookError {
    move |e| NotebookError::Protocol(format!("{what}: {e}"))
}

fn spawn_reader<S>(
    mut conn: Connection<S>,
) -> (
    mpsc::UnboundedReceiver<KernelMessage>,
    tokio::task::JoinHandle<()>,
)
where
    S: zeromq::SocketRecv + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = tokio::spawn(async move {
        loop {
            let Ok(frames) = conn.socket.recv().await else {
                break;
            };
            // A message with a bad signature or framing is dropped, as Jupyter clients do.
            let Ok(raw) = RawMessage::from_multipart(frames, &conn.mac) else {
                continue;
            };
            if let Some(msg) = KernelMessage::from_raw(raw)
                && tx.send(msg).is_err()
            {
                break;
            }
        }
    });
    (rx, handle)
}

/// The last lines a kernel wrote to stderr, kept to explain a failed start.
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    const LINES: usize = 20;

    fn push(&self, line: &str) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == Self::LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
    }

    fn mentions(&self, text: &str) -> bool {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().any(|l| l.contains(text))
    }

    fn last(&self) -> Option<String> {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().rev().find(|l| !l.trim().is_empty()).cloned()
    }
}

fn forward_lines<R>(
    reader: R,
    log: Option<mpsc::UnboundedSender<String>>,
    tail: Option<StderrTail>,
) -> tokio::task::JoinHandle<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(tail) = &tail {
                tail.push(&line);
            }
            if let Some(log) = &log
                && !is_startup_notice(&line)
            {
                let _ = log.send(format!("kernel: {line}"));
            }
        }
    })
}

/// Lines every kernel start prints that say nothing about the notebook: they would open
/// every step's log. ipykernel 7 warns that its loopback TCP transport is unencrypted
/// (Rota chose that transport; messages are signed with the connection key). The
/// terminal banner of `ipython kernel` is not printed at all: `JPY_PARENT_PID` is set.
fn is_startup_notice(line: &str) -> bool {
    line.contains("Kernel is running over TCP without encryption")
}

/// How many launches one start makes at most when launches fail for a passing reason.
const LAUNCH_ATTEMPTS: usize = 4;

/// Why one launch of a kernel did not give a ready kernel.
enum LaunchFailure {
    /// Worth another launch on fresh ports: the kernel lost one of its ports to another
    /// process, or a channel broke before the kernel became ready while the kernel lived.
    Passing(NotebookError),
    Failed(NotebookError),
}

impl From<NotebookError> for LaunchFailure {
    fn from(e: NotebookError) -> Self {
        LaunchFailure::Failed(e)
    }
}

/// The sockets of a kernel whose ports accept connections.
struct Channels {
    shell: jupyter_zmq_client::DealerSendConnection,
    control: ClientControlConnection,
    iopub_rx: mpsc::UnboundedReceiver<KernelMessage>,
    shell_rx: mpsc::UnboundedReceiver<KernelMessage>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Kernel {
    /// Launch a kernel from `spec` and wait until it answers `kernel_info`.
    pub async fn start(spec: &KernelSpec, opts: &KernelOptions) -> Result<Kernel> {
        if spec.argv.is_empty() {
            return Err(start_error(spec, "kernelspec has an empty argv"));
        }
        let deadline = tokio::time::Instant::now() + opts.start_timeout;
        let mut attempt = 1;
        loop {
            match Self::launch(spec, opts, deadline).await {
                Ok(kernel) => return Ok(kernel),
                Err(LaunchFailure::Failed(e)) => return Err(e),
                Err(LaunchFailure::Passing(_)) if attempt < LAUNCH_ATTEMPTS => attempt += 1,
                Err(LaunchFailure::Passing(e)) => {
                    return Err(start_error(
                        spec,
                        format!("{} (gave up after {attempt} launches)", start_reason(e)),
                    ));
                }
            }
        }
    }

    /// One launch on fresh ports: spawn, connect, wait for `kernel_info`, all by `deadline`.
    async fn launch(
        spec: &KernelSpec,
        opts: &KernelOptions,
        deadline: tokio::time::Instant,
    ) -> std::result::Result<Kernel, LaunchFailure> {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (ports, listeners) =
            crate::ports::reserve(ip, 5).map_err(|e| start_error(spec, e.to_string()))?;
        let info = ConnectionInfo {
            transport: jupyter_protocol::connection_info::Transport::TCP,
            ip: ip.to_string(),
            stdin_port: ports[0],
            control_port: ports[1],
            hb_port: ports[2],
            shell_port: ports[3],
            iopub_port: ports[4],
            signature_scheme: "hmac-sha256".to_string(),
            key: random_hex(32),
            kernel_name: Some(spec.name.clone()),
        };
        let runtime_dir = jupyter_zmq_client::dirs::runtime_dir();
        std::fs::create_dir_all(&runtime_dir).map_err(|e| NotebookError::io(&runtime_dir, e))?;
        let conn_path = runtime_dir.join(format!("kernel-rota-{}.json", random_hex(12)));
        let conn_text = serde_json::to_string(&info).map_err(proto)?;
        write_private(&conn_path, &conn_text)?;
        let guard = ConnFileGuard(conn_path.clone());

        let KernelProcess { mut child, hold } = Self::spawn(spec, opts, &conn_path)?;
        // The kernel binds these ports first thing; release them now.
        drop(listeners);
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| start_error(spec, "kernel exited at once"))?;
        if let Some(out) = child.stdout.take() {
            forward_lines(out, opts.process_log.clone(), None);
        }
        let tail = StderrTail::default();
        let stderr = child
            .stderr
            .take()
            .map(|err| forward_lines(err, opts.process_log.clone(), Some(tail.clone())));

        let connected = tokio::select! {
            channels = tokio::time::timeout_at(deadline, connect_channels(&info)) => channels,
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_default();
                return Err(exit_failure(spec, &status, &tail, stderr).await);
            }
        };
        let channels = match connected {
            Ok(Ok(channels)) => channels,
            Ok(Err(e)) => {
                kill_group(pid, &mut child).await;
                return Err(LaunchFailure::Passing(e));
            }
            Err(_) => {
                kill_group(pid, &mut child).await;
                return Err(start_error(spec, "timed out waiting for the kernel's ports").into());
            }
        };
        let mut kernel = Kernel {
            spec: spec.clone(),
            child,
            pid,
            exited: false,
            shell: channels.shell,
            control: channels.control,
            iopub_rx: channels.iopub_rx,
            shell_rx: channels.shell_rx,
            readers: channels.readers,
            conn_file: Some(guard),
            kernel_info: Value::Null,
            in_flight: Vec::new(),
            stash: Vec::new(),
            hold: Some(hold),
        };
        let failure = match tokio::time::timeout_at(deadline, kernel.wait_ready()).await {
            Ok(Ok(())) => return Ok(kernel),
            Ok(Err(e)) => e,
            Err(_) => start_error(
                spec,
                format!(
                    "no kernel_info reply within {} s",
                    opts.start_timeout.as_secs_f64()
                ),
            ),
        };
        if kernel.exited {
            let status = kernel.child.try_wait().ok().flatten();
            let status = status.map(|s| s.to_string()).unwrap_or_default();
            kernel.shutdown().await;
            return Err(exit_failure(spec, &status, &tail, stderr).await);
        }
        kernel.shutdown().await;
        match failure {
            NotebookError::Protocol(_) => Err(LaunchFailure::Passing(failure)),
            other => Err(LaunchFailure::Failed(other)),
        }
    }

    /// Asks the host to start the kernel's process.
    fn spawn(spec: &KernelSpec, opts: &KernelOptions, conn_path: &Path) -> Result<KernelProcess> {
        let args = spec.argv[1..]
            .iter()
            .map(|arg| {
                arg.replace("{connection_file}", &conn_path.to_string_lossy())
                    .replace("{resource_dir}", &spec.dir.to_string_lossy())
            })
            .collect();
        // `JPY_PARENT_PID` is how Jupyter's own launcher says "a client started you": the
        // kernel then prints no start-up banner for a human at a terminal (which would
        // land in every step's log), and it watches this parent, exiting when it is gone
        // (a second line of defence beside the host's own).
        let mut env = vec![("JPY_PARENT_PID".to_owned(), std::process::id().to_string())];
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let command = KernelCommand {
            program: spec.argv[0].clone(),
            args,
            env,
            cwd: opts.cwd.clone(),
        };
        opts.host
            .0
            .spawn(&command)
            .map_err(|e| start_error(spec, format!("cannot run {}: {e}", spec.argv[0])))
    }

    /// Send `kernel_info_request` until it is answered and IOPub delivers messages
    /// (so no output of the first cell can be lost to a late subscription).
    async fn wait_ready(&mut self) -> Result<()> {
        let mut replied = false;
        let mut iopub_seen = false;
        loop {
            if !replied {
                let msg: JupyterMessage = KernelInfoRequest {}.into();
                self.shell
                    .send(msg)
                    .await
                    .map_err(proto_during("sending kernel_info_request"))?;
            }
            let tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    Some(m) = self.shell_rx.recv() => {
                        if m.msg_type == "kernel_info_reply" {
                            self.kernel_info = m.content;
                            replied = true;
                        }
                    }
                    Some(_) = self.iopub_rx.recv() => { iopub_seen = true; }
                    status = self.child.wait() => {
                        self.exited = true;
                        let status = status.map(|s| s.to_string()).unwrap_or_default();
                        return Err(start_error(&self.spec, format!("kernel exited during start-up ({status})")));
                    }
                    _ = &mut tick => break,
                }
                if replied && iopub_seen {
                    // Drain what the kernel_info requests produced on IOPub.
                    while self.iopub_rx.try_recv().is_ok() {}
                    return Ok(());
                }
            }
        }
    }

    /// The content of the kernel's `kernel_info_reply`.
    pub fn kernel_info(&self) -> &Value {
        &self.kernel_info
    }

    /// The kernelspec this kernel was started from.
    pub fn spec(&self) -> &KernelSpec {
        &self.spec
    }

    /// The kernel's process id (also its process group id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Execute `code`; `on_message` sees every IOPub message belonging to it, in order,
    /// and the `execute_reply`.
    pub async fn execute(
        &mut self,
        code: &str,
        timeout: Option<Duration>,
        cancel: &CancellationToken,
        on_message: &mut (dyn FnMut(&KernelMessage) + Send),
    ) -> Result<ExecuteEnd> {
        if self.exited {
            return Ok(ExecuteEnd::Died);
        }
        let msg_id = self.send_execute(code, true).await?;
        self.wait_execute(&msg_id, timeout, cancel, on_message)
            .await
    }

    /// Queue an `execute_request` and return its message id. The kernel runs queued
    /// requests in order; with `stop_on_error` an error aborts the ones queued after it,
    /// which is what lets a caller send the next cell before the current one finishes.
    pub async fn send_execute(&mut self, code: &str, stop_on_error: bool) -> Result<String> {
        let request = ExecuteRequest {
            code: code.to_string(),
            silent: false,
            store_history: true,
            user_expressions: None,
            allow_stdin: false,
            stop_on_error,
        };
        let msg: JupyterMessage = request.into();
        let msg_id = msg.header.msg_id.clone();
        self.shell
            .send(msg)
            .await
            .map_err(proto_during("sending execute_request"))?;
        self.in_flight.push(msg_id.clone());
        Ok(msg_id)
    }

    /// Wait for the request `msg_id` (sent with [`Kernel::send_execute`]) to finish.
    pub async fn wait_execute(
        &mut self,
        msg_id: &str,
        timeout: Option<Duration>,
        cancel: &CancellationToken,
        on_message: &mut (dyn FnMut(&KernelMessage) + Send),
    ) -> Result<ExecuteEnd> {
        if self.exited {
            return Ok(ExecuteEnd::Died);
        }
        let msg_id = msg_id.to_string();
        // Messages of this request that arrived while an earlier one was awaited.
        let mut early_iopub = Vec::new();
        let mut early_reply = None;
        for m in std::mem::take(&mut self.stash) {
            if m.parent_id.as_deref() != Some(msg_id.as_str()) {
                self.stash.push(m);
            } else if m.msg_type == "execute_reply" {
                early_reply = Some(m);
            } else {
                early_iopub.push(m);
            }
        }
        let result = self
            .wait_loop(
                &msg_id,
                early_iopub,
                early_reply,
                timeout,
                cancel,
                on_message,
            )
            .await;
        self.in_flight.retain(|id| *id != msg_id);
        result
    }

    async fn wait_loop(
        &mut self,
        msg_id: &str,
        early_iopub: Vec<KernelMessage>,
        early_reply: Option<KernelMessage>,
        timeout: Option<Duration>,
        cancel: &CancellationToken,
        on_message: &mut (dyn FnMut(&KernelMessage) + Send),
    ) -> Result<ExecuteEnd> {
        let mut reply: Option<KernelMessage> = None;
        let mut idle = false;
        for m in &early_iopub {
            if m.msg_type == "status"
                && m.content.get("execution_state").and_then(Value::as_str) == Some("idle")
            {
                idle = true;
            }
            on_message(m);
        }
        if let Some(m) = early_reply {
            on_message(&m);
            reply = Some(m);
        }
        let far = Duration::from_secs(60 * 60 * 24 * 365);
        let deadline = tokio::time::sleep(timeout.unwrap_or(far));
        tokio::pin!(deadline);
        let mut interrupted: Option<ExecuteEnd> = None;
        // After an interrupt, how long the kernel gets to answer before it is given up on.
        let grace = Duration::from_secs(10);
        // Once the kernel has exited, what it sent just before is still on its way through
        // the reader tasks: a request it finished before a queued one killed it must not
        // be reported as dead. `settle` is how long those last messages get.
        let settle = tokio::time::sleep(far);
        tokio::pin!(settle);
        let mut died = false;
        loop {
            if idle && let Some(r) = &reply {
                if let Some(end) = interrupted {
                    return Ok(match end {
                        ExecuteEnd::TimedOut { .. } => ExecuteEnd::TimedOut { replied: true },
                        other => other,
                    });
                }
                let c = &r.content;
                let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                return Ok(ExecuteEnd::Replied {
                    status: s("status"),
                    execution_count: c.get("execution_count").and_then(Value::as_i64),
                    ename: s("ename"),
                    evalue: s("evalue"),
                });
            }
            tokio::select! {
                m = self.iopub_rx.recv() => {
                    let Some(m) = m else { return self.closed_or_died("IOPub channel closed").await };
                    if m.parent_id.as_deref() != Some(msg_id) {
                        self.keep_if_in_flight(m);
                    } else {
                        if m.msg_type == "status"
                            && m.content.get("execution_state").and_then(Value::as_str) == Some("idle")
                        {
                            idle = true;
                        }
                        on_message(&m);
                    }
                }
                m = self.shell_rx.recv() => {
                    let Some(m) = m else { return self.closed_or_died("shell channel closed").await };
                    if m.parent_id.as_deref() != Some(msg_id) {
                        self.keep_if_in_flight(m);
                    } else if m.msg_type == "execute_reply" {
                        on_message(&m);
                        reply = Some(m);
                    }
                }
                _ = self.child.wait(), if !died => {
                    self.exited = true;
                    died = true;
                    settle.as_mut().reset(tokio::time::Instant::now() + DEATH_SETTLE);
                }
                _ = &mut settle, if died => {
                    // A kernel replies when the code has run: with the reply in, this
                    // request finished and a later one killed the kernel, even if the
                    // `idle` that follows the reply on IOPub died with it.
                    if reply.is_none() {
                        return Ok(ExecuteEnd::Died);
                    }
                    idle = true;
                }
                _ = cancel.cancelled(), if interrupted.is_none() && !died => {
                    self.interrupt().await;
                    interrupted = Some(ExecuteEnd::Cancelled);
                    deadline.as_mut().reset(tokio::time::Instant::now() + grace);
                }
                _ = &mut deadline, if !died => {
                    match interrupted {
                        None => {
                            self.interrupt().await;
                            interrupted = Some(ExecuteEnd::TimedOut { replied: false });
                            deadline.as_mut().reset(tokio::time::Instant::now() + grace);
                        }
                        Some(ExecuteEnd::TimedOut { .. }) => return Ok(ExecuteEnd::TimedOut { replied: false }),
                        Some(other) => return Ok(other),
                    }
                }
            }
        }
    }

    /// A channel closed: when the kernel died, its sockets can close before its exit is
    /// seen, so give the exit a moment to show up before calling it a protocol error.
    async fn closed_or_died(&mut self, what: &str) -> Result<ExecuteEnd, NotebookError> {
        if self.died_within(Duration::from_secs(5)).await {
            Ok(ExecuteEnd::Died)
        } else {
            Err(proto(what))
        }
    }

    /// Whether the kernel process has exited, or exits within `limit`. A failed send or a
    /// closed socket asks this before it is reported as a protocol error.
    pub async fn died_within(&mut self, limit: Duration) -> bool {
        if self.exited {
            return true;
        }
        if tokio::time::timeout(limit, self.child.wait()).await.is_ok() {
            self.exited = true;
        }
        self.exited
    }

    fn keep_if_in_flight(&mut self, m: KernelMessage) {
        if m.parent_id
            .as_ref()
            .is_some_and(|id| self.in_flight.contains(id))
        {
            self.stash.push(m);
        }
    }

    /// Interrupt the running cell (SIGINT to the group, or `interrupt_request`).
    pub async fn interrupt(&mut self) {
        match self.spec.interrupt_mode {
            InterruptMode::Signal => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(self.pid),
                    nix::sys::signal::Signal::SIGINT,
                );
            }
            InterruptMode::Message => {
                let msg: JupyterMessage = jupyter_protocol::InterruptRequest {}.into();
                let _ = self.control.send(msg).await;
            }
        }
    }

    /// Shut the kernel down: `shutdown_request`, then SIGTERM, then SIGKILL to its
    /// process group; remove the connection file. Safe to call on a dead kernel.
    pub async fn shutdown(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.pid);
        if !self.exited {
            let msg: JupyterMessage = jupyter_protocol::ShutdownRequest { restart: false }.into();
            let _ = self.control.send(msg).await;
            let polite = tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await;
            if polite.is_err() {
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
                if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
                    .await
                    .is_err()
                {
                    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                    let _ = self.child.wait().await;
                }
            }
            self.exited = true;
        }
        // Whatever the kernel's cells started goes too, wherever it went.
        self.hold.take();
        for r in self.readers.drain(..) {
            r.abort();
        }
        self.conn_file.take();
    }
}

/// Connect to a spawned kernel's shell, IOPub and control ports.
async fn connect_channels(info: &ConnectionInfo) -> Result<Channels> {
    // zeromq's connect retries with long back-off; poll the ports ourselves first.
    let addr = |port: u16| std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    for port in [info.shell_port, info.iopub_port, info.control_port] {
        while tokio::net::TcpStream::connect(addr(port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let session = format!("{}-{}", random_hex(8), random_hex(8));
    let iopub = create_client_iopub_connection(info, "", &session)
        .await
        .map_err(proto_during("connecting to IOPub"))?;
    let identity = peer_identity_for_session(&session).map_err(proto)?;
    let shell = create_client_shell_connection_with_identity(info, &session, identity)
        .await
        .map_err(proto_during("connecting to the shell channel"))?;
    let control = create_client_control_connection(info, &session)
        .await
        .map_err(proto_during("connecting to the control channel"))?;
    let (shell, shell_recv) = shell.split();
    let (iopub_rx, iopub_task) = spawn_reader(iopub);
    let (shell_rx, shell_task) = spawn_reader(shell_recv);
    Ok(Channels {
        shell,
        control,
        iopub_rx,
        shell_rx,
        readers: vec![iopub_task, shell_task],
    })
}

/// What a kernel's exit during start-up means, from what it wrote to stderr.
async fn exit_failure(
    spec: &KernelSpec,
    status: &str,
    tail: &StderrTail,
    stderr: Option<tokio::task::JoinHandle<()>>,
) -> LaunchFailure {
    if let Some(reader) = stderr {
        // The pipe closes when the kernel exits; a grandchild holding it must not stall us.
        let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
    }
    if tail.mentions("Address already in use") {
        return LaunchFailure::Passing(start_error(
            spec,
            "another process took one of the kernel's ports",
        ));
    }
    let mut reason = String::from("kernel exited during start-up");
    if !status.is_empty() {
        reason.push_str(&format!(" ({status})"));
    }
    if let Some(line) = tail.last() {
        reason.push_str(&format!(": {}", line.trim()));
    }
    LaunchFailure::Failed(start_error(spec, reason))
}

/// Kill a kernel that never became ready, with whatever it started in its group.
async fn kill_group(pid: i32, child: &mut tokio::process::Child) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait().await;
}

impl Drop for Kernel {
    fn drop(&mut self) {
        for r in self.readers.drain(..) {
            r.abort();
        }
        // Then the fields: `child` (killed on drop) and last the host's hold, which kills
        // the kernel's group and whatever its cells started.
    }
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| NotebookError::io(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| NotebookError::io(path, e))
}
