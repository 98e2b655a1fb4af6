//! The run loop: executes one run of a job — its step DAG — to a final status.
//!
//! [`execute`] is the engine's front door. It records the run, then repeatedly starts every
//! step whose `needs` are finished (up to the job's `concurrency`), decides `when`/`if`
//! skips, and waits for the next step to end. Steps run as tasks (see [`crate::step`]);
//! only this loop changes the run's state, so no locks guard it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::{Job, RunStatus, StepStatus, Value, When};
use rota_core::template::{self, Context, RunContext, StepContext};
use rota_store::{NewRun, RunEvent, Store};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::guardian::Guardian;
use crate::process::LogLine;
use crate::recorder::{RecordError, Recorder};
use crate::redact::Redactor;
use crate::step::{self, StepResult};

/// Everything needed to start one run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The new run's id.
    pub run_id: String,
    /// The validated job.
    pub job: Job,
    /// The job revision the run uses (recorded with it).
    pub job_revision: i64,
    /// Namespace the run lives in.
    pub namespace: String,
    /// Resolved parameters.
    pub params: BTreeMap<String, Value>,
    /// Values of the job's secrets, by name: given to steps, redacted from logs.
    pub secrets: BTreeMap<String, String>,
    /// Run every step in its dry-run mode.
    pub dry_run: bool,
    /// What started the run (`cli`, `cron`, `webhook`, …).
    pub trigger: String,
    /// Who asked for it (an actor as the audit log names it); `None` for a trigger.
    pub started_by: Option<String>,
    /// When the run was due, for scheduled runs.
    pub scheduled_at: Option<Timestamp>,
    /// Directory relative step paths and working directories are resolved against.
    pub base_dir: PathBuf,
    /// What the run's steps did before, when a server resumes a run whose previous owner
    /// died; empty for a new run.
    pub prior: Vec<PriorStep>,
    /// The run and `job:` step that started this run, for a child run.
    pub parent: Option<rota_store::RunParent>,
    /// The `approval:` gates the run reached before, by step id: how each was decided, for
    /// a run that resumes after one was; empty for a new run.
    pub gates: BTreeMap<String, GateState>,
    /// How its `confirm:` steps are confirmed.
    pub confirmations: crate::confirm::Confirmations,
    /// A notebook step this run resumes from the cell where it failed in an earlier run.
    pub resume: Option<NotebookResume>,
}

/// A notebook step that continues a failed run's executed notebook from its failed cell
/// (`rota retry RUN --from STEP --resume`) instead of starting over.
#[derive(Debug, Clone, PartialEq)]
pub struct NotebookResume {
    /// The step.
    pub step: String,
    /// The run whose executed notebook it continues.
    pub from_run: String,
    /// That executed notebook.
    pub notebook: Value,
}

/// An `approval:` gate the run reached, as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct GateState {
    /// The hash its decisions bound to: the gate's step fails if what follows it now
    /// hashes differently.
    pub hash: String,
    /// Where it stands.
    pub outcome: GateOutcome,
}

/// How a gate was decided.
#[derive(Debug, Clone, PartialEq)]
pub enum GateOutcome {
    /// Still open: the run waits again.
    Waiting,
    /// Its quorum approved it.
    Approved {
        /// The approvers, in order.
        by: Vec<String>,
    },
    /// An approver rejected it.
    Rejected {
        /// Who.
        by: String,
        /// Their reason.
        reason: Option<String>,
    },
    /// An approver skipped the failed step the gate held (only a gate of
    /// `on_failure: ask` is skipped; any other reads it as a rejection).
    Skipped {
        /// Who.
        by: String,
        /// Their reason.
        reason: Option<String>,
    },
    /// Nobody settled it in time.
    Expired,
}

/// A step's recorded state from before a run was resumed.
///
/// A step that ended (succeeded, failed, timed out, cancelled) keeps its outcome and
/// outputs and does not run again; any other step runs, its attempts numbered after the
/// `attempts` already made (an `abandoned` attempt counts).
#[derive(Debug, Clone, PartialEq)]
pub struct PriorStep {
    /// Step id.
    pub step_id: String,
    /// Its recorded status.
    pub status: StepStatus,
    /// Number of its last recorded attempt; 0 if it never started.
    pub attempts: u32,
    /// Exit code of its last attempt.
    pub exit_code: Option<i32>,
    /// Outputs of its last attempt.
    pub outputs: BTreeMap<String, String>,
    /// Why it ended as it did.
    pub reason: Option<String>,
}

impl From<&rota_store::StepRunRecord> for PriorStep {
    fn from(step: &rota_store::StepRunRecord) -> PriorStep {
        PriorStep {
            step_id: step.step_id.clone(),
            status: step.status,
            attempts: step.attempt,
            exit_code: step.exit_code,
            outputs: step.outputs.clone(),
            reason: step.reason.clone(),
        }
    }
}

/// Engine settings shared by all runs.
#[derive(Clone)]
pub struct EngineConfig {
    /// Where per-run files (step outputs, notebooks) live: `<dir>/<run id>/…`.
    pub artifacts_dir: PathBuf,
    /// Time between SIGTERM and SIGKILL when a step is stopped.
    pub grace: Duration,
    /// Per-step cap on stored log bytes.
    pub log_cap_bytes: usize,
    /// Watchdog that kills step process groups if this process dies.
    pub guardian: Option<Arc<Guardian>>,
    /// Commit each attempt's start before its process starts. A run that can be resumed
    /// after a crash (a server's) needs it, or a resumed run could start a step twice; a
    /// `rota run` is never resumed, so it skips the extra commit per step.
    pub durable_step_starts: bool,
    /// Hands the attempts of steps with `runs_on:` labels to workers (a server's); `None`
    /// runs every step here.
    pub remote: Option<Arc<dyn crate::remote::RemoteSteps>>,
    /// Starts and follows the child runs of `job:` steps; `None` fails those steps.
    pub children: Option<Arc<dyn crate::children::ChildRuns>>,
    /// Where the files steps leave in `$ROTA_ARTIFACTS` go; `None` gives steps no
    /// `$ROTA_ARTIFACTS`.
    pub artifacts: Option<crate::artifacts::Artifacts>,
}

/// Live progress of a run, for a terminal or an SSE stream.
#[derive(Debug, Clone)]
pub enum Update {
    /// An attempt of a step started; `command` is the resolved command line.
    StepStarted {
        /// Step id.
        step: String,
        /// Attempt number, from 1.
        attempt: u32,
        /// What runs, for display.
        command: String,
    },
    /// A log line of a step (already redacted).
    Line {
        /// Step id.
        step: String,
        /// The line.
        line: LogLine,
    },
    /// A step reached its final status.
    StepFinished {
        /// Step id.
        step: String,
        /// Final status.
        status: StepStatus,
        /// Exit code of its last attempt, if it ran.
        exit_code: Option<i32>,
        /// Why, when it did not succeed.
        reason: Option<String>,
    },
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Final status.
    pub status: RunStatus,
    /// Why, when it did not succeed.
    pub reason: Option<String>,
    /// Every step, in file order.
    pub steps: Vec<StepSummary>,
}

/// How a step ended.
#[derive(Debug, Clone)]
pub struct StepSummary {
    /// Step id.
    pub id: String,
    /// Final status.
    pub status: StepStatus,
    /// Exit code of its last attempt.
    pub exit_code: Option<i32>,
    /// Attempts made.
    pub attempts: u32,
    /// Outputs of its last attempt.
    pub outputs: BTreeMap<String, String>,
    /// Why, when it did not succeed.
    pub reason: Option<String>,
}

/// Errors that stop the engine from running or recording a run at all.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store refused the run's records.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The run's working files could not be created.
    #[error("cannot create {path}: {source}")]
    Artifacts {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why a run is being stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A user (or the process's shutdown) cancelled it.
    Cancelled(String),
    /// The job's `policy.timeout` passed.
    TimedOut,
}

/// Stops a run: cancel it from anywhere (Ctrl-C handler, `rota cancel` poller, server).
///
/// A stop cancels the running steps and every step that has not started, except the
/// `when: always` steps whose needs are finished: they are the run's cleanup and still run,
/// each within its own `timeout`. [`RunStop::force`] stops those too.
#[derive(Debug, Clone, Default)]
pub struct RunStop {
    token: CancellationToken,
    force: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl RunStop {
    /// A stop that has not fired.
    pub fn new() -> RunStop {
        RunStop::default()
    }

    /// Stops the run; the first reason given wins.
    pub fn stop(&self, reason: StopReason) {
        if let Ok(mut slot) = self.reason.lock() {
            slot.get_or_insert(reason);
        }
        self.token.cancel();
    }

    /// Why the run was stopped, if it was.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|slot| slot.clone())
    }

    /// Whether the run was stopped.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Stops the run and its cleanup steps (`when: always`) too: what a second Ctrl-C or a
    /// server's shutdown deadline does.
    pub fn force(&self, reason: StopReason) {
        self.stop(reason);
        self.force.cancel();
    }

    /// Whether the cleanup steps were stopped too.
    pub fn is_forced(&self) -> bool {
        self.force.is_cancelled()
    }

    /// What stops a step: the run's stop, or for a cleanup step started after it, only
    /// [`RunStop::force`].
    pub(crate) fn step_token(&self, cleanup: bool) -> CancellationToken {
        if cleanup {
            self.force.clone()
        } else {
            self.token.clone()
        }
    }
}

/// State shared by the run loop and its step tasks.
pub(crate) struct Shared {
    pub run_id: String,
    pub namespace: String,
    pub job: Job,
    pub dry_run: bool,
    pub base_dir: PathBuf,
    pub run_dir: PathBuf,
    pub config: EngineConfig,
    pub recorder: Recorder,
    pub redactor: Redactor,
    pub secrets: BTreeMap<String, String>,
    pub updates: Option<UnboundedSender<Update>>,
    pub stop: RunStop,
    pub job_revision: i64,
    pub gates: BTreeMap<String, GateState>,
    pub confirmations: crate::confirm::Confirmations,
    /// The rollback steps of the steps that succeeded so far, in the order those ended.
    pub undo: std::sync::Mutex<Vec<String>>,
    /// When this execution began: the date of its artifacts' keys.
    pub started: Timestamp,
    /// Bytes of artifacts this execution kept so far, against the run's cap.
    pub artifact_bytes: std::sync::atomic::AtomicU64,
    /// The notebook step that resumes an earlier run's failed notebook, if any.
    pub resume: Option<NotebookResume>,
}

impl Shared {
    /// What undoes the run so far if it fails now, as a failed `check` step says it.
    pub(crate) fn rollback_plan(&self) -> String {
        let undo = self.undo.lock().map(|u| u.clone()).unwrap_or_default();
        if undo.is_empty() {
            "no rollback will run: no step that succeeded declares one (`rollback:`)".to_owned()
        } else {
            let order: Vec<&str> = undo.iter().rev().map(String::as_str).collect();
            format!("rollback to run: {}", order.join(", "))
        }
    }

    /// Notes that step `index` succeeded: its rollback, if any, joins the undo stack.
    fn succeeded(&self, index: usize) {
        if let Some(rollback) = &self.job.steps[index].rollback
            && let Ok(mut undo) = self.undo.lock()
        {
            undo.push(rollback.clone());
        }
    }

    pub(crate) fn update(&self, update: Update) {
        if let Some(updates) = &self.updates {
            let _ = updates.send(update);
        }
    }
}

/// One step's progress in the run loop.
#[derive(Debug, Clone)]
struct StepState {
    outcome: Option<Outcome>,
    started: bool,
    /// An `approval:` gate waiting for its approvers: nothing downstream of it starts.
    parked: bool,
    attempts: u32,
    exit_code: Option<i32>,
    outputs: BTreeMap<String, String>,
    reason: Option<String>,
}

/// A finished step as the DAG rules see it: skips are told apart by their cause, because
/// a step skipped by its own `if` lets its dependents run and one skipped because its
/// needs failed does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    SkippedByCondition,
    SkippedUpstream,
}

impl Outcome {
    fn status(self) -> StepStatus {
        match self {
            Outcome::Succeeded => StepStatus::Succeeded,
            Outcome::Failed => StepStatus::Failed,
            Outcome::TimedOut => StepStatus::TimedOut,
            Outcome::Cancelled => StepStatus::Cancelled,
            Outcome::SkippedByCondition | Outcome::SkippedUpstream => StepStatus::Skipped,
        }
    }

    fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::TimedOut)
    }
}

/// Runs `request` to its end, recording everything in `store`.
///
/// Returns the run's summary once its final status is committed. Errors mean the run could
/// not be recorded; a failing step is not an error but a `failed` run.
pub async fn execute(
    store: &Store,
    config: &EngineConfig,
    request: RunRequest,
    stop: RunStop,
    updates: Option<UnboundedSender<Update>>,
) -> Result<RunSummary, EngineError> {
    execute_run(store, config, request, stop, updates, true).await
}

/// Like [`execute`] for a run that is already recorded and was taken for execution by
/// this process (`Store::claim_queued_run` made it `running`): records nothing at the
/// start, then runs it to its end. The scheduler daemon queues runs durably first.
pub async fn execute_claimed(
    store: &Store,
    config: &EngineConfig,
    request: RunRequest,
    stop: RunStop,
    updates: Option<UnboundedSender<Update>>,
) -> Result<RunSummary, EngineError> {
    execute_run(store, config, request, stop, updates, false).await
}

async fn execute_run(
    store: &Store,
    config: &EngineConfig,
    request: RunRequest,
    stop: RunStop,
    updates: Option<UnboundedSender<Update>>,
    create: bool,
) -> Result<RunSummary, EngineError> {
    let run_dir = config.artifacts_dir.join(&request.run_id);
    std::fs::create_dir_all(&run_dir).map_err(|source| EngineError::Artifacts {
        path: run_dir.clone(),
        source,
    })?;
    let recorder = Recorder::spawn(store.clone());
    if create {
        let now = Timestamp::now();
        // One transaction: a run that exists is a run that started, so a crash can never
        // leave it `queued` for a server to pick up and run a second time.
        recorder.send_together(vec![
            RunEvent::RunCreated {
                run: new_run(&request, now),
            },
            RunEvent::RunStarted {
                run_id: request.run_id.clone(),
                at: now,
            },
        ]);
        recorder.flush().await?;
    }

    let overdue = crate::notify::watch_duration(store, &recorder, &request).await;
    let deadline = request.job.policy.timeout.map(|timeout| {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            stop.stop(StopReason::TimedOut);
        })
    });
    let shared = Arc::new(Shared {
        run_id: request.run_id.clone(),
        namespace: request.namespace.clone(),
        redactor: Redactor::new(request.secrets.values().cloned()),
        secrets: request.secrets.clone(),
        job: request.job.clone(),
        dry_run: request.dry_run,
        base_dir: request.base_dir.clone(),
        run_dir,
        config: config.clone(),
        recorder: recorder.clone(),
        updates,
        stop: stop.clone(),
        job_revision: request.job_revision,
        gates: request.gates.clone(),
        confirmations: request.confirmations.clone(),
        undo: std::sync::Mutex::new(Vec::new()),
        started: Timestamp::now(),
        artifact_bytes: std::sync::atomic::AtomicU64::new(0),
        resume: request.resume.clone(),
    });
    let request = Arc::new(request);
    let states = {
        // The run loop wakes once per finished step. As a task it runs on the runtime's
        // workers, where the step tasks finish, instead of on the thread that called
        // `execute` (the CLI's main thread), which costs a thread wake-up per step. The set
        // aborts the loop, and with it the steps, if this future is dropped.
        let (task_shared, task_request) = (Arc::clone(&shared), Arc::clone(&request));
        let mut run_loop = JoinSet::new();
        run_loop.spawn(async move { drive(&task_shared, &task_request).await });
        match run_loop.join_next().await {
            Some(Ok(states)) => states,
            Some(Err(error)) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("the run loop of {} ended: {error}", shared.run_id),
            },
            None => unreachable!("the set holds the run loop"),
        }
    };
    if let Some(deadline) = deadline {
        deadline.abort();
    }

    if let Some(overdue) = overdue {
        overdue.abort();
    }

    let mut states = states;
    let waiting: Vec<&str> = request
        .job
        .steps
        .iter()
        .zip(&states)
        .filter(|(_, s)| s.parked)
        .map(|(step, _)| step.id.as_str())
        .collect();
    if !waiting.is_empty() && stop.is_stopped() {
        // Stopped while gates waited: what never ran is cancelled, not left pending.
        for (i, state) in states.iter_mut().enumerate() {
            if state.outcome.is_none() {
                let reason = "the run was stopped while it waited for approval".to_owned();
                finish_without_running(&shared, state, i, Outcome::Cancelled, reason);
            }
        }
    } else if !waiting.is_empty() {
        let reason = format!("waiting for approval at {}", waiting.join(", "));
        return park(store, &recorder, &request, &shared, states, reason).await;
    }
    let (status, reason) = final_status(&request.job, &states, stop.reason());
    let finished_at = Timestamp::now();
    let failed_steps: Vec<String> = request
        .job
        .steps
        .iter()
        .zip(&states)
        .filter(|(_, s)| s.outcome.is_some_and(Outcome::is_failure))
        .map(|(step, _)| step.id.clone())
        .collect();
    // The run's end and the notifications it causes commit together: a run that ended is
    // a run whose notifications are in the outbox.
    let mut batch = vec![RunEvent::RunFinished {
        run_id: request.run_id.clone(),
        status,
        reason: reason.clone(),
        at: finished_at,
    }];
    batch.extend(
        crate::notify::queue_end(
            store,
            &request,
            &shared.redactor,
            status,
            reason.as_deref(),
            failed_steps,
            finished_at,
        )
        .await,
    );
    recorder.send_together(batch);
    recorder.flush().await?;
    Ok(RunSummary {
        run_id: request.run_id.clone(),
        status,
        reason,
        steps: summaries(&request.job, states),
    })
}

/// Ends this execution of a run that waits at its `approval:` gates: it becomes
/// `awaiting_approval` (or `queued`, when a gate it waits at was decided meanwhile) with
/// the `awaiting_approval` notifications, in one transaction, and nobody executes it until
/// a decision queues it again.
async fn park(
    store: &Store,
    recorder: &Recorder,
    request: &RunRequest,
    shared: &Shared,
    states: Vec<StepState>,
    reason: String,
) -> Result<RunSummary, EngineError> {
    let at = Timestamp::now();
    let status = RunStatus::AwaitingApproval;
    let mut batch = vec![RunEvent::RunAwaitingApproval {
        run_id: request.run_id.clone(),
        reason: reason.clone(),
        at,
    }];
    let notifications = crate::notify::queue_end(
        store,
        request,
        &shared.redactor,
        status,
        Some(&reason),
        Vec::new(),
        at,
    );
    batch.extend(notifications.await);
    recorder.send_together(batch);
    recorder.flush().await?;
    Ok(RunSummary {
        run_id: request.run_id.clone(),
        status,
        reason: Some(reason),
        steps: summaries(&request.job, states),
    })
}

fn new_run(request: &RunRequest, now: Timestamp) -> NewRun {
    NewRun {
        id: request.run_id.clone(),
        namespace: request.namespace.clone(),
        job_id: request.job.id.clone(),
        job_revision: request.job_revision,
        params: Value::Object(request.params.clone().into_iter().collect()),
        dry_run: request.dry_run,
        trigger: request.trigger.clone(),
        started_by: request.started_by.clone(),
        scheduled_at: request.scheduled_at,
        created_at: now,
        owner: crate::owner::this_process(),
        steps: request.job.steps.iter().map(|s| s.id.clone()).collect(),
        parent: request.parent.clone(),
    }
}

/// The scheduling loop proper: returns every step's final state.
async fn drive(shared: &Arc<Shared>, request: &RunRequest) -> Vec<StepState> {
    let job = &shared.job;
    let order = rota_core::dag::topological_order(job);
    let index_of: BTreeMap<&str, usize> = job
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let phases: Vec<Phase> = job
        .steps
        .iter()
        .map(|s| Phase::of(job, s, &index_of))
        .collect();
    // A rollback step also waits for the step it undoes, whose outputs its templates see.
    let needs: Vec<Vec<usize>> = job
        .steps
        .iter()
        .zip(&phases)
        .map(|(s, phase)| {
            s.needs
                .iter()
                .filter_map(|n| index_of.get(n.as_str()).copied())
                .chain(match phase {
                    Phase::Rollback { of } => Some(*of),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let mut states: Vec<StepState> = vec![
        StepState {
            outcome: None,
            started: false,
            parked: false,
            attempts: 0,
            exit_code: None,
            outputs: BTreeMap::new(),
            reason: None,
        };
        job.steps.len()
    ];
    for prior in &request.prior {
        if let Some(&i) = index_of.get(prior.step_id.as_str()) {
            resume_state(&mut states[i], prior);
        }
    }
    // The order steps ended in (rollbacks undo the last first); resumed steps, which ended
    // before, in the order the store gave them.
    let mut ended_at: Vec<u64> = vec![0; job.steps.len()];
    let mut ends: u64 = 0;
    for (i, state) in states.iter().enumerate() {
        if state.outcome.is_some() {
            ends += 1;
            ended_at[i] = ends;
            if state.outcome == Some(Outcome::Succeeded) {
                shared.succeeded(i);
            }
        }
    }
    let limit = job.concurrency.max(1) as usize;
    let mut running: JoinSet<(usize, StepResult)> = JoinSet::new();
    // Steps not yet started, in topological order; scanned after every completion.
    let mut waiting: Vec<usize> = order;

    // Steps whose `when` let them run and that wait only for a free slot. Their needs are
    // final, so only a stop can change that decision: while the run is not stopped they are
    // not gated again, which keeps a wide fan-out's scans cheap.
    let mut passed_gate = vec![false; job.steps.len()];

    loop {
        let mut still_waiting = Vec::with_capacity(waiting.len());
        // Read once per scan (it takes a lock): a stop that lands during the scan is seen by
        // the next one, which comes, since a step skipped here means every slot is busy.
        let stopped = shared.stop.is_stopped();
        let mut decided = false;
        for &i in &waiting {
            if states[i].started {
                continue;
            }
            match phases[i].turn(i, &phases, &states, &ended_at) {
                Turn::NotYet => {
                    still_waiting.push(i);
                    continue;
                }
                Turn::Skip(reason) => {
                    let outcome = Outcome::SkippedByCondition;
                    finish_without_running(shared, &mut states[i], i, outcome, reason);
                    ends += 1;
                    ended_at[i] = ends;
                    decided = true;
                    continue;
                }
                Turn::Now => {}
            }
            if running.len() >= limit && passed_gate[i] && !stopped {
                still_waiting.push(i);
                continue;
            }
            if !needs[i].iter().all(|&n| states[n].outcome.is_some()) {
                still_waiting.push(i);
                continue;
            }
            if let Some((outcome, reason)) = gate(shared, &states, &needs[i], i) {
                finish_without_running(shared, &mut states[i], i, outcome, reason);
                ends += 1;
                ended_at[i] = ends;
                decided = true;
                continue;
            }
            passed_gate[i] = true;
            if running.len() >= limit {
                still_waiting.push(i);
                continue;
            }
            let ctx = template_context(shared, request, &states, &needs, i);
            if let Some((outcome, reason)) = check_condition(shared, &ctx, i) {
                finish_without_running(shared, &mut states[i], i, outcome, reason);
                ends += 1;
                ended_at[i] = ends;
                decided = true;
                continue;
            }
            states[i].started = true;
            if let Phase::Rollback { of } = phases[i] {
                let undone = &job.steps[of].id;
                step::system_line(
                    shared,
                    &job.steps[i],
                    states[i].attempts + 1,
                    format!("rollback of `{undone}`, which succeeded before the run failed"),
                );
            }
            let shared = Arc::clone(shared);
            let before = states[i].attempts;
            // A `when: always` or `finally` step that starts after the stop is cleanup: only
            // a forced stop ends it. Any other step that got here is stopped by the run's stop.
            let cleanup = is_cleanup(&shared.job.steps[i]) && shared.stop.is_stopped();
            let stop = shared.stop.step_token(cleanup);
            running.spawn(async move { (i, step::run_step(&shared, i, ctx, before, stop).await) });
        }
        waiting = still_waiting;
        if running.is_empty() && decided {
            // A step decided in this scan may let a step scanned before it take its turn
            // (the rollbacks and `finally` steps wait for the whole main pass).
            continue;
        }
        match running.join_next().await {
            Some(Ok((i, result))) => {
                apply_result(shared, &mut states[i], i, result);
                ends += 1;
                ended_at[i] = ends;
                if states[i].outcome == Some(Outcome::Succeeded) {
                    shared.succeeded(i);
                }
            }
            Some(Err(join_error)) => {
                // A panicking step task is a bug; the run records it rather than hanging.
                tracing::error!(%join_error, "step task failed");
                if let Some(i) = states.iter().position(|s| s.started && s.outcome.is_none()) {
                    let result =
                        StepResult::internal_error(format!("internal error: {join_error}"));
                    apply_result(shared, &mut states[i], i, result);
                }
            }
            // Nothing runs: every remaining step was decided in the scan above.
            None => break,
        }
    }
    states
}

/// Takes over what a step did before the run was resumed: an ended step keeps its outcome
/// (it is not run again); any other step only carries its attempt count forward. A skip is
/// decided again, since its cause (condition or upstream) is not recorded.
fn resume_state(state: &mut StepState, prior: &PriorStep) {
    state.attempts = prior.attempts;
    let outcome = match prior.status {
        // A gate the run waited at: its attempt is made again, now that a decision came,
        // as the same attempt (its runner did not die: no backoff).
        StepStatus::AwaitingApproval => {
            state.attempts = prior.attempts.saturating_sub(1);
            return;
        }
        StepStatus::Succeeded => Outcome::Succeeded,
        StepStatus::Failed => Outcome::Failed,
        StepStatus::TimedOut => Outcome::TimedOut,
        StepStatus::Cancelled => Outcome::Cancelled,
        _ => return,
    };
    state.outcome = Some(outcome);
    state.started = true;
    state.exit_code = prior.exit_code;
    state.outputs = prior.outputs.clone();
    state.reason = prior.reason.clone();
}

/// Applies the run's stop and the step's `when` rule to a step whose needs are finished;
/// `Some` means the step does not run.
fn gate(
    shared: &Shared,
    states: &[StepState],
    needs: &[usize],
    index: usize,
) -> Option<(Outcome, String)> {
    let step = &shared.job.steps[index];
    let cleanup = is_cleanup(step) && !shared.stop.is_forced();
    if let Some(reason) = shared.stop.reason().filter(|_| !cleanup) {
        let why = match reason {
            StopReason::Cancelled(_) => "run cancelled before the step started",
            StopReason::TimedOut => "run timed out before the step started",
        };
        return Some((Outcome::Cancelled, why.to_owned()));
    }
    let outcomes: Vec<Outcome> = needs.iter().filter_map(|&n| states[n].outcome).collect();
    let upstream_failed = outcomes
        .iter()
        .any(|o| o.is_failure() || *o == Outcome::SkippedUpstream);
    match step.when {
        When::Success if upstream_failed || outcomes.contains(&Outcome::Cancelled) => Some((
            Outcome::SkippedUpstream,
            "a needed step did not succeed".to_owned(),
        )),
        When::Failure if !upstream_failed => Some((
            Outcome::SkippedByCondition,
            "no needed step failed (when: failure)".to_owned(),
        )),
        _ => None,
    }
}

/// Whether a step runs after a stop, as cleanup: `when: always` and `finally` steps.
fn is_cleanup(step: &rota_core::model::Step) -> bool {
    step.when == When::Always || step.finally
}

/// When a step may run: in the main pass, as the rollback of the step at `of`, or at the
/// very end (`finally`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Main,
    Rollback { of: usize },
    Finally,
}

/// Whether a step that is not in the main pass takes its turn in this scan.
enum Turn {
    NotYet,
    Now,
    Skip(String),
}

impl Phase {
    fn of(
        job: &rota_core::model::Job,
        step: &rota_core::model::Step,
        index_of: &BTreeMap<&str, usize>,
    ) -> Phase {
        if step.finally {
            return Phase::Finally;
        }
        rota_core::model::rollback_owner(job, &step.id)
            .and_then(|owner| index_of.get(owner.id.as_str()))
            .map_or(Phase::Main, |&of| Phase::Rollback { of })
    }

    /// Rollbacks wait for the whole main pass, then run only if it failed, only for steps
    /// that succeeded, one at a time and the last-ended first; `finally` steps wait for the
    /// main pass and every rollback. A main pass that waits at a gate lets neither start.
    fn turn(self, index: usize, phases: &[Phase], states: &[StepState], ended_at: &[u64]) -> Turn {
        let settled = |i: usize| states[i].outcome.is_some();
        let main_done = phases
            .iter()
            .enumerate()
            .all(|(i, p)| *p != Phase::Main || settled(i));
        match self {
            Phase::Main => Turn::Now,
            _ if !main_done => Turn::NotYet,
            Phase::Finally => {
                let rollbacks_done = phases
                    .iter()
                    .enumerate()
                    .all(|(i, p)| !matches!(p, Phase::Rollback { .. }) || settled(i));
                if rollbacks_done {
                    Turn::Now
                } else {
                    Turn::NotYet
                }
            }
            Phase::Rollback { of } => {
                let failed = phases
                    .iter()
                    .zip(states)
                    .any(|(p, s)| *p == Phase::Main && s.outcome.is_some_and(Outcome::is_failure));
                if !failed {
                    return Turn::Skip("no step failed: nothing to roll back".to_owned());
                }
                if states[of].outcome != Some(Outcome::Succeeded) {
                    return Turn::Skip("the step it undoes did not succeed".to_owned());
                }
                // Rollbacks of steps that ended later go first.
                let later_pending = phases.iter().enumerate().any(|(i, p)| match p {
                    Phase::Rollback { of: other } => {
                        i != index
                            && !settled(i)
                            && states[*other].outcome == Some(Outcome::Succeeded)
                            && ended_at[*other] > ended_at[of]
                    }
                    _ => false,
                });
                if later_pending {
                    Turn::NotYet
                } else {
                    Turn::Now
                }
            }
        }
    }
}

/// Evaluates the step's `if:`; `Some` means the step does not run.
fn check_condition(shared: &Shared, ctx: &Context, index: usize) -> Option<(Outcome, String)> {
    let expr = shared.job.steps[index].if_expr.as_ref()?;
    match template::eval_condition(expr, ctx) {
        Ok(true) => None,
        Ok(false) => Some((
            Outcome::SkippedByCondition,
            format!("`if: {expr}` is false"),
        )),
        Err(error) => Some((
            Outcome::Failed,
            format!("cannot evaluate `if: {expr}`: {error}"),
        )),
    }
}

/// The template context of step `index`: parameters, run facts, and the finished steps it
/// may reference — its ancestors, which validation guarantees are the only ones named.
fn template_context(
    shared: &Shared,
    request: &RunRequest,
    states: &[StepState],
    needs: &[Vec<usize>],
    index: usize,
) -> Context {
    let mut steps = BTreeMap::new();
    let mut stack: Vec<usize> = needs[index].clone();
    while let Some(n) = stack.pop() {
        let id = &shared.job.steps[n].id;
        if steps.contains_key(id) {
            continue;
        }
        if let Some(outcome) = states[n].outcome {
            steps.insert(
                id.clone(),
                StepContext {
                    status: outcome.status().as_str().to_owned(),
                    outputs: states[n].outputs.clone(),
                    exit_code: states[n].exit_code,
                },
            );
        }
        stack.extend(needs[n].iter().copied());
    }
    Context {
        params: request.params.clone(),
        steps,
        run: RunContext {
            id: request.run_id.clone(),
            job: request.job.id.clone(),
            namespace: request.namespace.clone(),
            scheduled_at: request
                .scheduled_at
                .unwrap_or_else(Timestamp::now)
                .to_string(),
            dry_run: request.dry_run,
        },
        secrets: shared.secrets.clone(),
    }
}

fn finish_without_running(
    shared: &Shared,
    state: &mut StepState,
    index: usize,
    outcome: Outcome,
    reason: String,
) {
    let step_id = shared.job.steps[index].id.clone();
    state.outcome = Some(outcome);
    state.started = true;
    state.reason = Some(reason.clone());
    shared.recorder.send(RunEvent::StepSkipped {
        run_id: shared.run_id.clone(),
        step_id: step_id.clone(),
        status: outcome.status(),
        reason: reason.clone(),
        at: Timestamp::now(),
    });
    shared.update(Update::StepFinished {
        step: step_id,
        status: outcome.status(),
        exit_code: None,
        reason: Some(reason),
    });
}

fn apply_result(shared: &Shared, state: &mut StepState, index: usize, result: StepResult) {
    if result.status == StepStatus::AwaitingApproval {
        state.parked = true;
        state.attempts = result.attempts;
        state.reason = result.reason.clone();
        shared.update(Update::StepFinished {
            step: shared.job.steps[index].id.clone(),
            status: result.status,
            exit_code: None,
            reason: result.reason,
        });
        return;
    }
    let outcome = match result.status {
        StepStatus::Succeeded => Outcome::Succeeded,
        StepStatus::TimedOut => Outcome::TimedOut,
        StepStatus::Cancelled => Outcome::Cancelled,
        StepStatus::Skipped => Outcome::SkippedByCondition,
        _ => Outcome::Failed,
    };
    state.outcome = Some(outcome);
    state.attempts = result.attempts;
    state.exit_code = result.exit_code;
    state.outputs = result.outputs;
    state.reason = result.reason.clone();
    shared.update(Update::StepFinished {
        step: shared.job.steps[index].id.clone(),
        status: result.status,
        exit_code: result.exit_code,
        reason: result.reason,
    });
}

/// The run's status from its steps and from why it was stopped, if it was.
fn final_status(
    job: &Job,
    states: &[StepState],
    stop: Option<StopReason>,
) -> (RunStatus, Option<String>) {
    match stop {
        Some(StopReason::Cancelled(by)) => {
            return (RunStatus::Cancelled, Some(format!("cancelled by {by}")));
        }
        Some(StopReason::TimedOut) => {
            let timeout = job.policy.timeout.unwrap_or_default();
            return (
                RunStatus::TimedOut,
                Some(format!(
                    "run exceeded its timeout of {}",
                    humantime(timeout)
                )),
            );
        }
        None => {}
    }
    let failed: Vec<&str> = job
        .steps
        .iter()
        .zip(states)
        .filter(|(_, s)| s.outcome.is_some_and(Outcome::is_failure))
        .map(|(step, _)| step.id.as_str())
        .collect();
    if failed.is_empty() {
        (RunStatus::Succeeded, None)
    } else {
        (
            RunStatus::Failed,
            Some(format!("failed steps: {}", failed.join(", "))),
        )
    }
}

fn summaries(job: &Job, states: Vec<StepState>) -> Vec<StepSummary> {
    job.steps
        .iter()
        .zip(states)
        .map(|(step, state)| StepSummary {
            id: step.id.clone(),
            status: match state.outcome {
                Some(outcome) => outcome.status(),
                None if state.parked => StepStatus::AwaitingApproval,
                None => StepStatus::Pending,
            },
            exit_code: state.exit_code,
            attempts: state.attempts,
            outputs: state.outputs,
            reason: state.reason,
        })
        .collect()
}

/// `90s` → `1m30s`, for messages.
pub fn humantime(duration: Duration) -> String {
    let total_ms = duration.as_millis();
    if total_ms < 1000 {
        return format!("{total_ms}ms");
    }
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if m > 0 {
        text.push_str(&format!("{m}m"));
    }
    if s > 0 || text.is_empty() {
        text.push_str(&format!("{s}s"));
    }
    text
}
