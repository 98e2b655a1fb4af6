//! The runs operations of [`crate::Rota`]: list, read, find by abbreviated id, read and
//! follow logs, cancel, retry and start runs.

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::RunStatus;
use rota_store::{Role, RunCursor, RunFilter};
use tokio::sync::mpsc;

use super::Session;
use super::plans::{Verdict, approver, check_comment};
use crate::OpsError;
use crate::auth::Scope;
use crate::records::{
    AttemptWorker, CancelAccepted, CreateRun, DecideGate, Event, EventPage, Gate, LogLine, LogPage,
    LogQuery, RetryRun, Run, RunPage, RunQuery,
};

pub use super::page::MAX_PAGE;
use super::page::page_limit;
/// How many lines or events a follower may hold unread: past that, following waits for the
/// reader (a slow client of a stream holds back its own follower, not the server's memory).
pub const FOLLOW_BUFFER: usize = 256;
/// How often a followed log looks for new lines when it has caught up.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Log lines read per query while following.
const FOLLOW_BATCH: u32 = 200;
/// How often a followed event log looks for new events when it has caught up.
const EVENTS_POLL: Duration = Duration::from_millis(250);
/// Events read per query while following.
const EVENTS_BATCH: u32 = 100;

/// What following a run's log yields: its lines in order, then once the run has ended and
/// every line was sent, how it ended.
#[derive(Debug, Clone)]
pub enum Followed {
    /// One log line.
    Line(LogLine),
    /// The run ended: its status and why.
    End {
        /// The run's final status.
        status: String,
        /// Why it ended as it did.
        reason: Option<String>,
    },
}

/// The runs operations.
pub trait Runs {
    /// Runs matching `query`, newest first, one page at a time.
    fn list_runs(&self, query: RunQuery) -> impl Future<Output = Result<RunPage, OpsError>> + Send;

    /// The run `id` with the latest state of each step.
    fn get_run(&self, id: &str) -> impl Future<Output = Result<Run, OpsError>> + Send;

    /// The run whose id is `id_or_prefix` or the only one whose id starts with it
    /// ([`OpsError::Ambiguous`] when several do).
    fn find_run(&self, id_or_prefix: &str) -> impl Future<Output = Result<Run, OpsError>> + Send;

    /// A page of the run's log lines (or one step's), oldest first.
    fn run_logs(
        &self,
        id: &str,
        query: LogQuery,
    ) -> impl Future<Output = Result<LogPage, OpsError>> + Send;

    /// Follows the run's log (or one step's) after line `after` as it is written, sending
    /// each line to `to`, then [`Followed::End`] once the run has ended. Returns when the
    /// run has ended or `to` is closed.
    fn follow_logs(
        &self,
        id: &str,
        step: Option<String>,
        after: i64,
        to: mpsc::Sender<Followed>,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;

    /// Asks whoever executes the run to cancel it ([`OpsError::Conflict`] if it has ended).
    fn cancel_run(&self, id: &str)
    -> impl Future<Output = Result<CancelAccepted, OpsError>> + Send;

    /// Approves or rejects, as the caller, the `approval:` gate `decision.step` of run
    /// `id` (or the one gate it waits at); the decision that settles the gate queues the
    /// run again. Answers the run with its gates.
    fn decide_gate(
        &self,
        id: &str,
        verdict: Verdict,
        decision: DecideGate,
    ) -> impl Future<Output = Result<Run, OpsError>> + Send;

    /// Queues a retry of the ended run `id`: a new run of the same job revision and
    /// parameters, from `how.from` on or whole.
    fn retry_run(
        &self,
        id: &str,
        how: RetryRun,
    ) -> impl Future<Output = Result<Run, OpsError>> + Send;

    /// Queues a run of the stored job `namespace/job`'s latest revision.
    fn start_run(
        &self,
        namespace: &str,
        job: &str,
        run: CreateRun,
    ) -> impl Future<Output = Result<Run, OpsError>> + Send;

    /// The event log after position `after` (0 or absent: the start), oldest first, at most
    /// `limit`. It spans namespaces, so it needs the viewer role in every namespace.
    fn list_events(
        &self,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> impl Future<Output = Result<EventPage, OpsError>> + Send;

    /// Follows the event log after position `after` as it grows: the events come on the
    /// receiver until it is dropped or reading fails.
    fn follow_events(
        &self,
        after: i64,
    ) -> impl Future<Output = Result<mpsc::Receiver<Event>, OpsError>> + Send;
}

impl Runs for Session {
    async fn list_runs(&self, query: RunQuery) -> Result<RunPage, OpsError> {
        let scope = query
            .namespace
            .as_ref()
            .map_or(Scope::Global, |ns| Scope::Namespace(ns.as_str()));
        self.principal().require(scope, Role::Viewer)?;
        let filter = filter_of(&query)?;
        let mut runs = self.ops().store().list_runs(&filter).await?;
        let page_size = (filter.limit - 1) as usize;
        let next_cursor = (runs.len() > page_size).then(|| {
            runs.truncate(page_size);
            runs.last().map(|r| encode_cursor(&r.cursor()))
        });
        Ok(RunPage {
            items: runs.into_iter().map(Run::from).collect(),
            next_cursor: next_cursor.flatten(),
        })
    }

    async fn get_run(&self, id: &str) -> Result<Run, OpsError> {
        let run = self.ops().run(id).await?;
        self.principal()
            .require(Scope::Namespace(&run.namespace), Role::Viewer)?;
        self.with_details(Run::from(run)).await
    }

    async fn find_run(&self, id_or_prefix: &str) -> Result<Run, OpsError> {
        let run = match self.ops().store().find_run(id_or_prefix).await {
            Ok(run) => run,
            Err(rota_store::StoreError::RunNotFound(_)) => {
                return Err(OpsError::NotFound(format!("run {id_or_prefix:?}")));
            }
            Err(rota_store::StoreError::Ambiguous { prefix, candidates }) => {
                return Err(OpsError::Ambiguous { prefix, candidates });
            }
            Err(other) => return Err(other.into()),
        };
        self.principal()
            .require(Scope::Namespace(&run.namespace), Role::Viewer)?;
        self.with_details(Run::from(run)).await
    }

    async fn run_logs(&self, id: &str, query: LogQuery) -> Result<LogPage, OpsError> {
        let run = self.get_run(id).await?;
        let after = query.after.unwrap_or(0);
        if after < 0 {
            return Err(OpsError::InvalidQuery(
                "`after` must not be negative".into(),
            ));
        }
        let limit = page_limit(query.limit)?;
        let lines = self
            .ops()
            .store()
            .logs(&run.id, query.step.as_deref(), after, limit)
            .await?;
        Ok(LogPage {
            next_after: lines.last().map_or(after, |l| l.seq),
            items: lines.into_iter().map(LogLine::from).collect(),
        })
    }

    async fn follow_logs(
        &self,
        id: &str,
        step: Option<String>,
        mut after: i64,
        to: mpsc::Sender<Followed>,
    ) -> Result<(), OpsError> {
        let run = self.get_run(id).await?;
        let store = self.ops().store();
        loop {
            // The run's state is read before its lines: a run seen ended has committed
            // every line, so the read that follows sees them all.
            let Some(current) = store.get_run(&run.id).await? else {
                return Ok(());
            };
            let batch = store
                .logs(&run.id, step.as_deref(), after, FOLLOW_BATCH)
                .await?;
            if let Some(last) = batch.last() {
                after = last.seq;
                for line in batch {
                    if to.send(Followed::Line(LogLine::from(line))).await.is_err() {
                        return Ok(());
                    }
                }
            } else if current.status.is_terminal() || current.status == RunStatus::AwaitingApproval
            {
                // A run waiting at its gates ends this follow: nothing runs until a
                // decision, which may be days away.
                let _ = to
                    .send(Followed::End {
                        status: current.status.as_str().to_owned(),
                        reason: current.reason,
                    })
                    .await;
                return Ok(());
            } else {
                tokio::select! {
                    () = tokio::time::sleep(FOLLOW_POLL) => {}
                    () = to.closed() => return Ok(()),
                }
            }
        }
    }

    async fn cancel_run(&self, id: &str) -> Result<CancelAccepted, OpsError> {
        let outcome = async {
            let run = self.ops().run(id).await?;
            self.principal()
                .require(Scope::Namespace(&run.namespace), Role::Operator)?;
            self.ops().cancel_run(&self.actor(), &run.id).await
        }
        .await;
        let run = self
            .audited("run.cancel", &format!("run/{id}"), outcome)
            .await?;
        // Once the request is on record: the owner reads it when it wakes.
        wake_foreground_owner(&run);
        Ok(CancelAccepted {
            run_id: run.id,
            cancel_requested: true,
        })
    }

    async fn decide_gate(
        &self,
        id: &str,
        verdict: Verdict,
        decision: DecideGate,
    ) -> Result<Run, OpsError> {
        let outcome = async {
            check_comment(decision.comment.as_deref())?;
            let run = self.ops().run(id).await?;
            self.principal()
                .require(Scope::Namespace(&run.namespace), Role::Operator)?;
            let who = approver(self.principal(), &run.namespace);
            if verdict == Verdict::Skip {
                self.ops()
                    .check_skippable(&run.id, decision.step.as_deref())
                    .await?;
            }
            let decided = self
                .ops()
                .store()
                .decide_gate(
                    &run.id,
                    decision.step.as_deref(),
                    &who,
                    verdict.decision(),
                    decision.comment.as_deref(),
                    decision.hash.as_deref(),
                    Timestamp::now(),
                )
                .await;
            // A decision, or an expiry found on the way, may have queued the run.
            self.ops().hub().run_queued();
            decided.map_err(crate::gates::gate_error)?;
            Ok(run.id)
        }
        .await;
        let action = format!("run.{}", verdict.as_str());
        let target = match &decision.step {
            Some(step) => format!("run/{id}/{step}"),
            None => format!("run/{id}"),
        };
        let run_id = self.audited(&action, &target, outcome).await?;
        self.get_run(&run_id).await
    }

    async fn retry_run(&self, id: &str, how: RetryRun) -> Result<Run, OpsError> {
        let outcome = async {
            let original = self.ops().run(id).await?;
            self.principal()
                .require(Scope::Namespace(&original.namespace), Role::Operator)?;
            self.ops().queue_retry(&self.actor(), id, &how).await
        }
        .await;
        let run = self
            .audited("run.retry", &format!("run/{id}"), outcome)
            .await?;
        Ok(Run::from(run))
    }

    async fn start_run(&self, namespace: &str, job: &str, run: CreateRun) -> Result<Run, OpsError> {
        let outcome = async {
            self.principal()
                .require(Scope::Namespace(namespace), Role::Operator)?;
            let given = run.params.into_iter().collect();
            // `confirm`: its `confirm:` steps confirmed by the caller, if they may.
            let confirmed_by = run.confirm.then(|| self.principal());
            self.ops()
                .queue_run(
                    namespace,
                    job,
                    given,
                    run.dry_run,
                    "api",
                    Some(&self.actor().name),
                    confirmed_by,
                )
                .await
        }
        .await;
        let target = match &outcome {
            Ok(run) => format!("run/{}", run.id),
            Err(_) => format!("job/{namespace}/{job}"),
        };
        let run = self.audited("run.create", &target, outcome).await?;
        Ok(Run::from(run))
    }

    async fn list_events(
        &self,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<EventPage, OpsError> {
        self.events_page(after, limit).await
    }

    async fn follow_events(&self, after: i64) -> Result<mpsc::Receiver<Event>, OpsError> {
        self.principal().require(Scope::Global, Role::Viewer)?;
        // A position the feed was cut past is refused before the stream starts, where the
        // caller still gets an answer (`events_after` refuses it the same way).
        let pruned_through = self.ops().store().event_feed_pruned_through().await?;
        if after > 0 && after < pruned_through {
            return Err(rota_store::StoreError::EventsPruned {
                after,
                pruned_through,
            }
            .into());
        }
        self.events_from(after)
    }
}

impl Session {
    /// `run` with its gates and the worker that ran each attempt of its steps handed to
    /// workers.
    async fn with_details(&self, run: Run) -> Result<Run, OpsError> {
        self.ops().run_details(run).await
    }

    /// See [`Runs::list_events`].
    async fn events_page(
        &self,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<EventPage, OpsError> {
        self.principal().require(Scope::Global, Role::Viewer)?;
        let after = after.unwrap_or(0);
        if after < 0 {
            return Err(OpsError::InvalidQuery(
                "`after` must not be negative".into(),
            ));
        }
        let events = self
            .ops()
            .store()
            .events_after(after, page_limit(limit)?)
            .await?;
        Ok(EventPage {
            next_after: events.last().map_or(after, |e| e.id),
            items: events.into_iter().map(Event::from).collect(),
        })
    }

    /// See [`Runs::follow_events`].
    fn events_from(&self, mut after: i64) -> Result<mpsc::Receiver<Event>, OpsError> {
        self.principal().require(Scope::Global, Role::Viewer)?;
        let store = self.ops().store().clone();
        let (to, from) = mpsc::channel(FOLLOW_BUFFER);
        tokio::spawn(async move {
            loop {
                match store.events_after(after, EVENTS_BATCH).await {
                    Ok(batch) if batch.is_empty() => tokio::select! {
                        () = tokio::time::sleep(EVENTS_POLL) => {}
                        () = to.closed() => return,
                    },
                    Ok(batch) => {
                        after = batch.last().map_or(after, |e| e.id);
                        for event in batch {
                            if to.send(Event::from(event)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(error) => {
                        // The client reconnects with `Last-Event-ID` and resumes.
                        tracing::error!(%error, "event stream stopped");
                        return;
                    }
                }
            }
        });
        Ok(from)
    }
}

/// Wakes the `rota run` that executes `run` in the foreground on this host, so it stops at
/// once; it also polls the cancel flag, so a failed signal only delays the cancel. A
/// server's run is left to the server's own poll: its owner is `rota serve`, which a signal
/// would shut down.
fn wake_foreground_owner(run: &rota_store::RunRecord) {
    let owner = &run.owner;
    if run.is_foreground()
        && owner.host == rota_engine::owner::host_name()
        && rota_engine::owner::is_alive(&owner.host, owner.pid, &owner.start_token)
        && let Ok(pid) = i32::try_from(owner.pid)
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// The store filter of a listing; asks for one run more than the page, to know if another
/// follows.
fn filter_of(query: &RunQuery) -> Result<RunFilter, OpsError> {
    let status = query
        .status
        .as_deref()
        .map(|s| {
            RunStatus::parse(s)
                .ok_or_else(|| OpsError::InvalidQuery(format!("unknown run status {s:?}")))
        })
        .transpose()?;
    Ok(RunFilter {
        namespace: query.namespace.as_ref().map(|n| n.to_string()),
        job_id: query.job.as_ref().map(|j| j.to_string()),
        status,
        created_since: query.since,
        created_until: query.until,
        id_prefix: query.id_prefix.as_ref().map(|id| id.to_string()),
        limit: page_limit(query.limit)? + 1,
        before: query.cursor.as_deref().map(decode_cursor).transpose()?,
    })
}

/// A cursor's text: `<created_at in µs>.<run id>`. Clients treat it as opaque.
fn encode_cursor(cursor: &RunCursor) -> String {
    format!("{}.{}", cursor.created_at.as_microsecond(), cursor.id)
}

fn decode_cursor(text: &str) -> Result<RunCursor, OpsError> {
    let bad = || OpsError::InvalidQuery(format!("{text:?} is not a cursor from this API"));
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok(RunCursor {
        created_at: Timestamp::from_microsecond(micros).map_err(|_| bad())?,
        id: crate::ids::RunId::try_from(id.to_owned())
            .map_err(|_| bad())?
            .to_string(),
    })
}

impl crate::Ops {
    /// `run` with its gates and the worker that ran each attempt of its steps handed to
    /// workers: the run as `GET /runs/{id}` and a report show it.
    pub(crate) async fn run_details(&self, mut run: Run) -> Result<Run, OpsError> {
        let gates = self.store().run_gates(&run.id).await?;
        run.gates = gates.into_iter().map(Gate::from).collect();
        let workers = self.store().attempt_workers(&run.id).await?;
        if workers.is_empty() {
            return Ok(run);
        }
        for step in &mut run.steps {
            step.workers = workers
                .iter()
                .filter(|((step_id, _), _)| *step_id == step.id)
                .map(|((_, attempt), worker)| AttemptWorker {
                    attempt: *attempt,
                    worker: worker.clone(),
                })
                .collect();
        }
        Ok(run)
    }
}
