//! `rota worker`: claims step attempts from a server, runs them here and reports back.
//!
//! The worker talks to the servers only through [`Workers`] (the CLI's HTTP client): it
//! holds a `worker` token, never database credentials or the secret key. Each attempt it
//! claims is confirmed first (a first heartbeat: a claim whose lease expired before it was
//! confirmed went back to the other workers), then runs with
//! [`rota_engine::remote::run_here`], the engine's own process path
//! (process group, cgroup, guardian, redaction, outputs), in a fresh directory of its own;
//! a heartbeat renews the attempt's lease every [`HEARTBEAT_EVERY`], its lines are sent in
//! batches, and its end is reported once. When the server refuses a heartbeat or a batch of
//! lines (the lease expired while this worker was cut off, and the attempt went to another
//! worker or ended), the worker kills the attempt's processes and reports nothing more.
//!
//! On shutdown it stops claiming, lets running attempts finish within the grace period, and
//! hands back those still running after it (reported `abandoned`: the server retries them
//! per the step's retry policy).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rota_core::model::StepStatus;
use rota_engine::guardian::Guardian;
use rota_engine::process::{LogLine, Stream};
use rota_engine::redact::Redactor;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::OpsError;
use crate::fleet::{HEARTBEAT_EVERY, LEASE, worker_spec};
use crate::records::{
    AttemptFinish, AttemptKey, AttemptLogs, ClaimAttempt, ClaimedAttempt, LeaseCall, WorkerHello,
    WorkerLogLine,
};
use crate::service::Workers;

/// How long one claim waits at the server for work.
const CLAIM_WAIT: Duration = Duration::from_secs(20);

/// Lines are sent when this many are waiting, or after [`SEND_EVERY`].
const LINES_PER_BATCH: usize = 500;

/// How long a line waits before it is sent.
const SEND_EVERY: Duration = Duration::from_millis(200);

/// The first pause after a failed call to the server; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Its id (unique per process).
    pub id: String,
    /// Its name (its host, or `--name`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// How many attempts it runs at once.
    pub slots: u32,
    /// Where each attempt gets a fresh working directory.
    pub work_dir: PathBuf,
    /// On shutdown, how long running attempts may take before they are handed back.
    pub grace: Duration,
    /// The watchdog that kills attempts' processes if the worker dies.
    pub guardian: Option<Arc<Guardian>>,
}

/// This worker process's directory under `work_dir` (`<pid>`): each attempt it runs gets a
/// fresh directory inside, removed when the attempt ends.
fn own_work_dir(work_dir: &Path) -> PathBuf {
    work_dir.join(std::process::id().to_string())
}

/// Removes what workers that died (SIGKILL, a crash) left under `work_dir`: the directory
/// of each worker process that is gone, with its attempts' files. Workers sharing the
/// directory keep theirs: a live process's is left alone.
fn remove_dead_workers_dirs(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .filter(|pid| *pid > 0)
        else {
            continue;
        };
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
        if gone || pid.unsigned_abs() == std::process::id() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => eprintln!(
                    "rota worker: removed {}, left by a worker that is gone",
                    entry.path().display()
                ),
                Err(error) => eprintln!(
                    "rota worker: cannot remove {}, left by a worker that is gone: {error}",
                    entry.path().display()
                ),
            }
        }
    }
}

/// A fresh worker id: the host's name, the process id and random bits.
pub fn new_worker_id() -> String {
    let host: String = rota_engine::owner::host_name()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .take(40)
        .collect();
    let random: u32 = rand::random();
    format!("{host}-{}-{random:08x}", std::process::id())
}

struct Shared<W> {
    api: W,
    config: WorkerConfig,
    busy: AtomicU32,
    /// Fires on shutdown once the grace period is over: running attempts are handed back.
    hand_back: CancellationToken,
}

impl<W> Shared<W> {
    fn hello(&self) -> WorkerHello {
        WorkerHello {
            id: self.config.id.clone(),
            name: self.config.name.clone(),
            labels: self.config.labels.clone(),
            slots: self.config.slots,
            busy: self.busy.load(Ordering::Relaxed).min(self.config.slots),
        }
    }
}

/// Runs the worker until `shutdown` completes, then drains as the module says.
pub async fn run_worker<W>(
    api: W,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), OpsError>
where
    W: Workers + Send + Sync + 'static,
{
    remove_dead_workers_dirs(&config.work_dir);
    let own = own_work_dir(&config.work_dir);
    std::fs::create_dir_all(&own).map_err(|e| {
        OpsError::Internal(format!(
            "cannot create the work directory {}: {e}",
            own.display()
        ))
    })?;
    let grace = config.grace;
    let shared = Arc::new(Shared {
        api,
        config,
        busy: AtomicU32::new(0),
        hand_back: CancellationToken::new(),
    });
    let mut running: JoinSet<()> = JoinSet::new();
    let mut backoff = FIRST_BACKOFF;
    tokio::pin!(shutdown);
    loop {
        while running.try_join_next().is_some() {}
        if running.len() >= shared.config.slots as usize {
            tokio::select! {
                () = &mut shutdown => break,
                _ = running.join_next() => {}
            }
            continue;
        }
        let claim = ClaimAttempt {
            worker: shared.hello(),
            wait_ms: u64::try_from(CLAIM_WAIT.as_millis()).unwrap_or(u64::MAX),
        };
        // A claim is not dropped when an attempt ends meanwhile: the server may have leased
        // an attempt to it already (it would wait a lease to go back to the others).
        let claimed = tokio::select! {
            () = &mut shutdown => break,
            claimed = shared.api.claim_attempt(claim) => claimed,
        };
        match claimed {
            Ok(claim) => {
                backoff = FIRST_BACKOFF;
                if let Some(attempt) = claim.attempt {
                    shared.busy.fetch_add(1, Ordering::Relaxed);
                    let shared = Arc::clone(&shared);
                    running.spawn(async move {
                        run_attempt(&shared, attempt).await;
                        shared.busy.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot claim work from the server");
                eprintln!("rota worker: cannot claim work: {error}");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    if !running.is_empty() {
        eprintln!(
            "rota worker: shutting down; {} attempt(s) running get {} to finish",
            running.len(),
            rota_engine::run::humantime(grace)
        );
        let drained = tokio::time::timeout(grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            shared.hand_back.cancel();
            while running.join_next().await.is_some() {}
        }
    }
    Ok(())
}

/// Runs one claimed attempt to its end and reports it, unless its lease is lost first.
async fn run_attempt<W: Workers + Send + Sync + 'static>(
    shared: &Arc<Shared<W>>,
    claimed: ClaimedAttempt,
) {
    let key = AttemptKey {
        run_id: claimed.run_id.clone(),
        step_id: claimed.step_id.clone(),
        attempt: claimed.attempt,
    };
    if !confirm(shared, &key, claimed.epoch).await {
        eprintln!(
            "rota worker: could not confirm the claim of {}/{} attempt {}: left to other workers",
            claimed.run_id, claimed.step_id, claimed.attempt
        );
        return;
    }
    eprintln!(
        "rota worker: running {}/{} attempt {} of run {}: {}",
        claimed.job, claimed.step_id, claimed.attempt, claimed.run_id, claimed.display
    );
    let dir = own_work_dir(&shared.config.work_dir).join(format!(
        "{}-{}-{}-{}",
        claimed.run_id, claimed.step_id, claimed.attempt, claimed.epoch
    ));
    let end = match std::fs::create_dir_all(&dir) {
        Ok(()) => run_claimed(shared, &key, &claimed, &dir).await,
        Err(error) => Some(Ended {
            status: StepStatus::Failed,
            exit_code: None,
            reason: Some(format!(
                "the worker cannot create {}: {error}",
                dir.display()
            )),
            outputs: BTreeMap::new(),
        }),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let Some(end) = end else {
        eprintln!(
            "rota worker: lost the lease on {}/{} attempt {}: its processes were stopped and its end is not reported",
            claimed.run_id, claimed.step_id, claimed.attempt
        );
        return;
    };
    report_end(shared, &key, claimed.epoch, end).await;
}

struct Ended {
    status: StepStatus,
    exit_code: Option<i32>,
    reason: Option<String>,
    outputs: BTreeMap<String, String>,
}

/// Runs the attempt with its heartbeat and its line sender; `None` if its lease was lost.
async fn run_claimed<W: Workers + Send + Sync + 'static>(
    shared: &Arc<Shared<W>>,
    key: &AttemptKey,
    claimed: &ClaimedAttempt,
    dir: &std::path::Path,
) -> Option<Ended> {
    let output = dir.join(".rota-output");
    let spec = worker_spec(claimed, dir, &output);
    let redactor = Redactor::new(claimed.redact.iter().cloned());
    let stop = CancellationToken::new();
    let lost = Arc::new(AtomicBool::new(false));
    let asked_to_stop = Arc::new(AtomicBool::new(false));
    let (lines_tx, lines_rx) = mpsc::unbounded_channel::<WorkerLogLine>();
    let sender = tokio::spawn(send_lines(
        Arc::clone(shared),
        key.clone(),
        claimed.epoch,
        lines_rx,
        stop.clone(),
        Arc::clone(&lost),
    ));
    let heartbeat = tokio::spawn(heartbeat(
        Arc::clone(shared),
        key.clone(),
        claimed.epoch,
        stop.clone(),
        Arc::clone(&lost),
        Arc::clone(&asked_to_stop),
    ));
    let hand_back = shared.hand_back.clone();
    let stop_on_hand_back = stop.clone();
    let watch_hand_back = tokio::spawn(async move {
        hand_back.cancelled().await;
        stop_on_hand_back.cancel();
    });
    let mut on_line = move |line: LogLine| {
        let _ = lines_tx.send(WorkerLogLine {
            ts: line.ts,
            stream: match line.stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            }
            .to_owned(),
            text: line.text,
        });
    };
    let end = rota_engine::remote::run_here(
        &spec,
        &output,
        &redactor,
        &stop,
        shared.config.guardian.as_ref(),
        &mut on_line,
        || {
            (
                StepStatus::Cancelled,
                "stopped at the server's request".to_owned(),
            )
        },
    )
    .await;
    // Closes the channel: the sender sends what is left and ends.
    drop(on_line);
    watch_hand_back.abort();
    heartbeat.abort();
    let _ = sender.await;
    if lost.load(Ordering::SeqCst) {
        return None;
    }
    let handed_back = shared.hand_back.is_cancelled() && !asked_to_stop.load(Ordering::SeqCst);
    if handed_back && end.status == StepStatus::Cancelled {
        return Some(Ended {
            status: StepStatus::Abandoned,
            exit_code: None,
            reason: Some("its worker shut down and handed it back".to_owned()),
            outputs: BTreeMap::new(),
        });
    }
    Some(Ended {
        status: end.status,
        exit_code: end.exit_code,
        reason: end.reason,
        outputs: end.outputs,
    })
}

/// Confirms a claim with a first heartbeat before anything starts: a claim whose answer
/// reached this worker late (after its lease expired unconfirmed, the server gave the
/// attempt to another worker) is refused here, so the attempt never runs twice. Retries while
/// the server is unreachable, within the lease.
async fn confirm<W: Workers + Send + Sync>(
    shared: &Arc<Shared<W>>,
    key: &AttemptKey,
    epoch: i64,
) -> bool {
    let started = tokio::time::Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let call = LeaseCall {
            worker: shared.hello(),
            epoch,
        };
        match shared.api.renew_lease(key, call).await {
            Ok(_) => return true,
            Err(error) if refused(&error) => return false,
            Err(error) if started.elapsed() + backoff < LEASE => {
                tracing::warn!(%error, "cannot confirm a claim; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(_) => return false,
        }
    }
}

/// Renews the lease until aborted; a refusal marks the lease lost and stops the attempt.
async fn heartbeat<W: Workers + Send + Sync>(
    shared: Arc<Shared<W>>,
    key: AttemptKey,
    epoch: i64,
    stop: CancellationToken,
    lost: Arc<AtomicBool>,
    asked_to_stop: Arc<AtomicBool>,
) {
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    let mut renewed_at = tokio::time::Instant::now();
    loop {
        every.tick().await;
        let call = LeaseCall {
            worker: shared.hello(),
            epoch,
        };
        match shared.api.renew_lease(&key, call).await {
            Ok(renewed) => {
                renewed_at = tokio::time::Instant::now();
                if renewed.cancel && !asked_to_stop.swap(true, Ordering::SeqCst) {
                    eprintln!(
                        "rota worker: the server asked to stop {}/{}",
                        key.run_id, key.step_id
                    );
                    stop.cancel();
                }
            }
            Err(error) if refused(&error) => {
                lost.store(true, Ordering::SeqCst);
                stop.cancel();
                return;
            }
            // The server may be unreachable for a while: keep trying until the lease has
            // surely expired, then stop the attempt (its result would be refused anyway, and
            // the server may have handed it to another worker).
            Err(error) if renewed_at.elapsed() > LEASE + HEARTBEAT_EVERY => {
                eprintln!(
                    "rota worker: cannot renew the lease on {}/{} ({error}); it has expired",
                    key.run_id, key.step_id
                );
                lost.store(true, Ordering::SeqCst);
                stop.cancel();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot renew a lease");
            }
        }
    }
}

/// Whether the server refused a call because the lease is not the caller's any more.
fn refused(error: &OpsError) -> bool {
    error.is_conflict() || error.is_not_found()
}

/// Sends lines in batches until the channel closes; a refusal marks the lease lost and
/// stops the attempt.
async fn send_lines<W: Workers + Send + Sync>(
    shared: Arc<Shared<W>>,
    key: AttemptKey,
    epoch: i64,
    mut lines: mpsc::UnboundedReceiver<WorkerLogLine>,
    stop: CancellationToken,
    lost: Arc<AtomicBool>,
) {
    let mut batch: Vec<WorkerLogLine> = Vec::new();
    let mut open = true;
    while open || !batch.is_empty() {
        if open {
            let deadline = tokio::time::sleep(SEND_EVERY);
            tokio::pin!(deadline);
            while batch.len() < LINES_PER_BATCH {
                tokio::select! {
                    line = lines.recv() => match line {
                        Some(line) => batch.push(line),
                        None => { open = false; break; }
                    },
                    () = &mut deadline => break,
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        if lost.load(Ordering::SeqCst) {
            return;
        }
        let logs = AttemptLogs {
            lease: LeaseCall {
                worker: shared.hello(),
                epoch,
            },
            lines: std::mem::take(&mut batch),
        };
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0;
        loop {
            match shared.api.send_attempt_logs(&key, logs.clone()).await {
                Ok(()) => break,
                Err(error) if refused(&error) => {
                    lost.store(true, Ordering::SeqCst);
                    stop.cancel();
                    return;
                }
                Err(error) => {
                    tries += 1;
                    if backoff > LEASE || tries > 20 {
                        tracing::warn!(%error, "lines of an attempt could not be sent; dropped");
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Reports the attempt's end, retrying while the server is unreachable and the lease may
/// still hold.
async fn report_end<W: Workers + Send + Sync>(
    shared: &Arc<Shared<W>>,
    key: &AttemptKey,
    epoch: i64,
    end: Ended,
) {
    let finish = AttemptFinish {
        lease: LeaseCall {
            worker: shared.hello(),
            epoch,
        },
        status: end.status.as_str().to_owned(),
        exit_code: end.exit_code,
        reason: end.reason,
        outputs: end.outputs,
    };
    let started = tokio::time::Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        match shared.api.finish_attempt(key, finish.clone()).await {
            Ok(()) => {
                eprintln!(
                    "rota worker: {}/{} attempt {} {}",
                    key.run_id, key.step_id, key.attempt, finish.status
                );
                return;
            }
            Err(error) if refused(&error) => {
                eprintln!(
                    "rota worker: the server refused the end of {}/{} attempt {}: {error}",
                    key.run_id, key.step_id, key.attempt
                );
                return;
            }
            Err(error) if started.elapsed() < LEASE * 4 => {
                tracing::warn!(%error, "cannot report an attempt's end; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(error) => {
                eprintln!(
                    "rota worker: gave up reporting the end of {}/{} attempt {}: {error}",
                    key.run_id, key.step_id, key.attempt
                );
                return;
            }
        }
    }
}
