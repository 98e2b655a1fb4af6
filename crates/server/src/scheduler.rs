//! The scheduler's decisions as a pure, clock-injected state machine.
//!
//! [`Scheduler`] knows the loaded jobs, each trigger's cursor (every occurrence at or before
//! it is decided), each job's active and queued runs and its pause state. Given "now" it
//! lists what is due and decides each occurrence: a run (queued, then started when the job's
//! `concurrency` allows), `skipped` (overlap policy, paused) or `missed` (catch-up policy).
//! It does no IO and never reads the clock; the daemon ([`crate::daemon`]) records each
//! decision in the store before acting on it, and tells the scheduler when runs end.
//!
//! Which occurrences are "late" and go through the catch-up policy of `rota-sched`:
//! - every occurrence that fell due while no server had the job loaded (at or before the
//!   instant its trigger was loaded, [`Scheduler::upsert_job`]'s `now`), whatever its age;
//! - every occurrence found more than the misfire grace after it fell due;
//! - every occurrence of a trigger when several are due in one tick (the server fell behind
//!   by a whole period).
//!
//! Only one occurrence per trigger and tick can be on time: the latest one due, if it fell
//! due while this server ran and is within the grace. It runs; under catch-up mode `last` it
//! supersedes the late ones, so a trigger never makes more runs than its policy allows.
//! Every occurrence that runs then meets the pause state and the overlap policy.
//!
//! Idle cost does not grow with the jobs that are not due: each job's next "check" instant
//! (the earliest instant at which [`Scheduler::tick`] could decide anything for it) is kept
//! in an ordered queue, so a tick and [`Scheduler::next_wake`] touch only the jobs due, and
//! runs, `after` watchers and jobs with queued runs are indexed rather than searched.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::{CatchupMode, IntervalAnchor, Job, Overlap, RunStatus};
use rota_sched::policy::{
    CatchupDecision, CatchupPolicy, MissedReason, OverlapDecision, OverlapPolicy, decide_overlap,
    plan_catchup,
};

/// Catch-up mode `last`, as `rota-sched` spells it.
const LAST: rota_sched::policy::CatchupMode = rota_sched::policy::CatchupMode::Last;

use crate::trigger::{CompiledTrigger, TriggerKind, after_fires};

/// How late (after its due instant and jitter) a running server may fire an occurrence and
/// still count it as on time: the server's own small delays (a busy store, a slow wake-up).
/// Later ones, and every occurrence that fell due while no server ran, go through the job's
/// catch-up policy.
pub const DEFAULT_MISFIRE_GRACE: Duration = Duration::from_secs(5);

/// A job as the scheduler knows it: (namespace, job id).
pub type JobKey = (String, String);

/// What became of an occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A run with this id was queued for it.
    Run {
        /// The new run's id.
        run_id: String,
    },
    /// Not run, with the reason.
    Skipped(String),
    /// Fell due during downtime and not caught up, with the reason.
    Missed(String),
}

/// One decided occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The job.
    pub job: JobKey,
    /// The trigger's key.
    pub trigger_key: String,
    /// When it was due.
    pub scheduled_at: Timestamp,
    /// What became of it.
    pub outcome: Outcome,
}

/// The result of [`Scheduler::tick`] (and of the other entry points that decide).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    /// Occurrences to record, in order.
    pub occurrences: Vec<Decision>,
    /// Active runs to cancel (overlap policy `cancel_running`).
    pub cancel: Vec<String>,
}

struct TriggerEntry {
    trigger: CompiledTrigger,
    origin: Timestamp,
    cursor: Timestamp,
    /// When this server loaded the trigger: occurrences at or before it fell due while no
    /// server ran it, and go through the catch-up policy whatever their age.
    live_since: Timestamp,
    /// End-anchored intervals: the last run of this trigger finished at this instant.
    last_finished: Option<Timestamp>,
    /// End-anchored intervals: a run of this trigger is queued or active.
    outstanding: usize,
}

struct JobEntry {
    job: Option<Job>,
    triggers: Vec<TriggerEntry>,
    paused: bool,
    resume_from: Option<Timestamp>,
    max_active: usize,
    active: BTreeSet<String>,
    queued: VecDeque<String>,
    /// Which trigger queued each outstanding run.
    run_trigger: HashMap<String, String>,
    /// The jobs (same namespace) its `after` triggers watch.
    watches: BTreeSet<String>,
}

impl JobEntry {
    fn empty(max_active: u32) -> JobEntry {
        JobEntry {
            job: None,
            triggers: Vec::new(),
            paused: false,
            resume_from: None,
            max_active: max_active.max(1) as usize,
            active: BTreeSet::new(),
            queued: VecDeque::new(),
            run_trigger: HashMap::new(),
            watches: BTreeSet::new(),
        }
    }
}

/// A trigger's stored cursor, given to [`Scheduler::upsert_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Grid origin of a start-anchored interval.
    pub origin: Timestamp,
    /// Every occurrence at or before this instant is decided.
    pub evaluated_until: Timestamp,
    /// The run of the trigger's latest occurrence that ran, as the store has it: an
    /// end-anchored interval counts from its end, or waits for it while it has not ended
    /// (a run a previous life of the server left queued or running).
    pub last_run: Option<TriggerRun>,
}

impl Cursor {
    /// A cursor at `at` with no run behind it (a trigger seen for the first time).
    pub fn fresh(at: Timestamp) -> Cursor {
        Cursor {
            origin: at,
            evaluated_until: at,
            last_run: None,
        }
    }
}

/// A run a trigger queued, with its end when it has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerRun {
    /// The run.
    pub run_id: String,
    /// When it ended; `None` while it is queued or running.
    pub finished_at: Option<Timestamp>,
}

/// The scheduler state machine.
pub struct Scheduler {
    jobs: BTreeMap<JobKey, JobEntry>,
    misfire_grace: Duration,
    new_id: Box<dyn FnMut() -> String + Send>,
    /// Each job's next check instant (see [`check_at`]), ordered: the jobs a tick must look
    /// at are a prefix of it. A job is in it at most once, with the instant of `checks`.
    wakes: BTreeSet<(Timestamp, JobKey)>,
    /// The instant each job is queued under in `wakes`.
    checks: HashMap<JobKey, Timestamp>,
    /// Which job each run that is queued, active or holding an end-anchored trigger belongs
    /// to, so finding a run does not search every job.
    run_jobs: HashMap<String, JobKey>,
    /// Jobs that may have a queued run able to start (a run was queued, or a slot freed).
    startable: BTreeSet<JobKey>,
    /// (namespace, watched job) → the jobs with an `after` trigger on it.
    watchers: BTreeMap<JobKey, BTreeSet<JobKey>>,
}

impl Scheduler {
    /// An empty scheduler; `new_id` names new runs.
    pub fn new(misfire_grace: Duration, new_id: Box<dyn FnMut() -> String + Send>) -> Scheduler {
        Scheduler {
            jobs: BTreeMap::new(),
            misfire_grace,
            new_id,
            wakes: BTreeSet::new(),
            checks: HashMap::new(),
            run_jobs: HashMap::new(),
            startable: BTreeSet::new(),
            watchers: BTreeMap::new(),
        }
    }

    /// Recomputes a job's place in the wake queue after its triggers or their state changed.
    fn reschedule(&mut self, key: &JobKey) {
        let next = self.jobs.get(key).and_then(|entry| {
            entry
                .triggers
                .iter()
                .filter_map(check_at)
                .min()
                .filter(|_| entry.job.is_some())
        });
        let previous = match next {
            Some(at) => self.checks.insert(key.clone(), at),
            None => self.checks.remove(key),
        };
        if previous == next {
            return;
        }
        if let Some(old) = previous {
            self.wakes.remove(&(old, key.clone()));
        }
        if let Some(at) = next {
            self.wakes.insert((at, key.clone()));
        }
    }

    /// Records which jobs `key`'s `after` triggers watch, replacing what it watched before.
    fn set_watches(&mut self, key: &JobKey, watched: BTreeSet<String>) {
        let Some(entry) = self.jobs.get_mut(key) else {
            return;
        };
        let old = std::mem::replace(&mut entry.watches, watched.clone());
        for job in old {
            let target = (key.0.clone(), job);
            if let Some(jobs) = self.watchers.get_mut(&target) {
                jobs.remove(key);
                if jobs.is_empty() {
                    self.watchers.remove(&target);
                }
            }
        }
        for job in watched {
            self.watchers
                .entry((key.0.clone(), job))
                .or_default()
                .insert(key.clone());
        }
    }

    /// Loads or replaces a job's definition at `now`. Its runs are kept; triggers present
    /// before keep their in-memory state, new ones start from `cursor_of(key)`, and their
    /// occurrences due at or before `now` are treated as missed during downtime.
    pub fn upsert_job(
        &mut self,
        key: JobKey,
        job: Job,
        triggers: Vec<CompiledTrigger>,
        cursor_of: impl Fn(&str) -> Cursor,
        now: Timestamp,
    ) {
        let watched: BTreeSet<String> = triggers
            .iter()
            .filter_map(|t| match &t.kind {
                TriggerKind::After { job, .. } => Some(job.clone()),
                _ => None,
            })
            .collect();
        let entry = self
            .jobs
            .entry(key.clone())
            .or_insert_with(|| JobEntry::empty(job.policy.max_active_runs));
        let mut old: HashMap<String, TriggerEntry> = entry
            .triggers
            .drain(..)
            .map(|t| (t.trigger.key.clone(), t))
            .collect();
        let run_trigger = &mut entry.run_trigger;
        let mut resumed = Vec::new();
        let triggers = triggers
            .into_iter()
            .map(|trigger| match old.remove(&trigger.key) {
                Some(mut kept) => {
                    kept.trigger = trigger;
                    kept
                }
                None => {
                    let cursor = cursor_of(&trigger.key);
                    let mut last_finished = None;
                    let mut outstanding = 0;
                    let end_anchored = matches!(
                        trigger.kind,
                        TriggerKind::Interval {
                            anchor: IntervalAnchor::End,
                            ..
                        }
                    );
                    match cursor.last_run.filter(|_| end_anchored) {
                        Some(TriggerRun {
                            finished_at: Some(at),
                            ..
                        }) => last_finished = Some(at),
                        Some(TriggerRun {
                            run_id,
                            finished_at: None,
                        }) => {
                            // Its end releases the trigger, as for a run queued in this life.
                            resumed.push(run_id.clone());
                            run_trigger.insert(run_id, trigger.key.clone());
                            outstanding = 1;
                        }
                        None => {}
                    }
                    TriggerEntry {
                        trigger,
                        origin: cursor.origin,
                        cursor: cursor.evaluated_until,
                        live_since: now,
                        last_finished,
                        outstanding,
                    }
                }
            })
            .collect();
        entry.triggers = triggers;
        entry.max_active = job.policy.max_active_runs.max(1) as usize;
        entry.job = Some(job);
        for run_id in resumed {
            self.run_jobs.insert(run_id, key.clone());
        }
        // A larger `concurrency` may let queued runs start.
        self.startable.insert(key.clone());
        self.set_watches(&key, watched);
        self.reschedule(&key);
    }

    /// Unloads a job (its file was removed): its triggers stop; its runs finish.
    pub fn remove_job(&mut self, key: &JobKey) {
        if let Some(entry) = self.jobs.get_mut(key) {
            entry.job = None;
            entry.triggers.clear();
        }
        self.set_watches(key, BTreeSet::new());
        self.reschedule(key);
    }

    /// The loaded definition of a job.
    pub fn job(&self, key: &JobKey) -> Option<&Job> {
        self.jobs.get(key).and_then(|e| e.job.as_ref())
    }

    /// Keys of the loaded jobs.
    pub fn job_keys(&self) -> Vec<JobKey> {
        self.jobs
            .iter()
            .filter(|(_, e)| e.job.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A job's triggers.
    pub fn triggers(&self, key: &JobKey) -> Vec<CompiledTrigger> {
        self.jobs
            .get(key)
            .map(|e| e.triggers.iter().map(|t| t.trigger.clone()).collect())
            .unwrap_or_default()
    }

    /// Sets a job's pause state (`resume_from`: occurrences before it count as paused).
    pub fn set_paused(&mut self, key: &JobKey, paused: bool, resume_from: Option<Timestamp>) {
        let entry = self
            .jobs
            .entry(key.clone())
            .or_insert_with(|| JobEntry::empty(1));
        entry.paused = paused;
        entry.resume_from = resume_from;
    }

    /// Adds a run that is already queued in the store (found at start-up, or queued by
    /// another process such as `rota backfill`). Returns `false` if it is known already.
    pub fn adopt_queued(&mut self, key: &JobKey, run_id: &str, max_active: u32) -> bool {
        let entry = self
            .jobs
            .entry(key.clone())
            .or_insert_with(|| JobEntry::empty(max_active));
        if entry.active.contains(run_id) || entry.queued.iter().any(|r| r == run_id) {
            return false;
        }
        entry.queued.push_back(run_id.to_owned());
        self.run_jobs.insert(run_id.to_owned(), key.clone());
        self.startable.insert(key.clone());
        true
    }

    /// Whether the run is queued or active here.
    pub fn knows_run(&self, run_id: &str) -> bool {
        self.run_jobs
            .get(run_id)
            .and_then(|key| self.jobs.get(key))
            .is_some_and(|e| e.active.contains(run_id) || e.queued.iter().any(|r| r == run_id))
    }

    /// Drops a queued run the store refused (its occurrence was already recorded).
    pub fn forget(&mut self, run_id: &str) {
        let Some(key) = self.run_jobs.remove(run_id) else {
            return;
        };
        if let Some(entry) = self.jobs.get_mut(&key) {
            entry.queued.retain(|r| r != run_id);
            entry.active.remove(run_id);
            if let Some(trigger_key) = entry.run_trigger.remove(run_id) {
                release(entry, &trigger_key);
            }
        }
        self.startable.insert(key.clone());
        self.reschedule(&key);
    }

    /// Moves queued runs to active while each job's `concurrency` allows, oldest first;
    /// returns them for the daemon to start.
    pub fn take_startable(&mut self) -> Vec<(JobKey, String)> {
        let mut out = Vec::new();
        // A job left with queued runs is at its `concurrency`: it comes back here when one
        // of its runs ends or is dropped.
        for key in std::mem::take(&mut self.startable) {
            let Some(entry) = self.jobs.get_mut(&key) else {
                continue;
            };
            while entry.active.len() < entry.max_active {
                let Some(run_id) = entry.queued.pop_front() else {
                    break;
                };
                entry.active.insert(run_id.clone());
                out.push((key.clone(), run_id));
            }
        }
        out
    }

    /// Active and queued run counts of a job.
    pub fn load_of(&self, key: &JobKey) -> (usize, usize) {
        self.jobs
            .get(key)
            .map_or((0, 0), |e| (e.active.len(), e.queued.len()))
    }

    /// A run ended at `at` with `status`: frees its slot and fires the `after` triggers that
    /// watch its job.
    pub fn run_finished(&mut self, run_id: &str, at: Timestamp, status: RunStatus) -> Decisions {
        let mut finished_job = None;
        let owner = self.run_jobs.remove(run_id);
        if let Some(key) = &owner {
            self.startable.insert(key.clone());
        }
        if let Some((key, entry)) = owner
            .as_ref()
            .and_then(|key| self.jobs.get_mut(key).map(|entry| (key, entry)))
        {
            let was_active = entry.active.remove(run_id);
            entry.queued.retain(|r| r != run_id);
            if let Some(trigger_key) = entry.run_trigger.remove(run_id) {
                release(entry, &trigger_key);
                if let Some(t) = entry
                    .triggers
                    .iter_mut()
                    .find(|t| t.trigger.key == trigger_key)
                {
                    t.last_finished = Some(at);
                }
            }
            if was_active {
                finished_job = Some(key.clone());
            }
        }
        if let Some(key) = &owner {
            self.reschedule(key);
        }
        let mut decisions = Decisions::default();
        let Some(finished) = finished_job else {
            return decisions;
        };
        let job_id = &finished.1;
        let watching = self.watchers.get(&finished).cloned().unwrap_or_default();
        let watchers: Vec<(JobKey, String)> = watching
            .iter()
            .filter_map(|key| self.jobs.get(key).map(|entry| (key, entry)))
            .flat_map(|(key, entry)| {
                entry
                    .triggers
                    .iter()
                    .filter_map(move |t| match &t.trigger.kind {
                        TriggerKind::After { job, on }
                            if job == job_id && after_fires(*on, status) =>
                        {
                            Some((key.clone(), t.trigger.key.clone()))
                        }
                        _ => None,
                    })
            })
            .collect();
        for (key, trigger_key) in watchers {
            self.fire(&key, &trigger_key, at, &mut decisions);
        }
        decisions
    }

    /// Fires an event-driven trigger (webhook, after, manual) now; the occurrence is due at
    /// `at`. `None` when the job or trigger is unknown.
    pub fn fire_now(
        &mut self,
        key: &JobKey,
        trigger_key: &str,
        at: Timestamp,
    ) -> Option<Decisions> {
        let entry = self.jobs.get(key)?;
        entry.job.as_ref()?;
        let mut decisions = Decisions::default();
        self.fire(key, trigger_key, at, &mut decisions);
        Some(decisions)
    }

    /// Decides every occurrence due at `now`.
    pub fn tick(&mut self, now: Timestamp) -> Decisions {
        let mut decisions = Decisions::default();
        // Only the jobs whose check instant has come can have anything due; they are
        // decided in key order, as if every job had been looked at.
        let mut keys: Vec<JobKey> = self
            .wakes
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| key.clone())
            .collect();
        keys.sort();
        for key in keys {
            let due = self.due_occurrences(&key, now);
            for (trigger_key, at, catchup) in due {
                match catchup {
                    Some(reason) => decisions.occurrences.push(Decision {
                        job: key.clone(),
                        trigger_key,
                        scheduled_at: at,
                        outcome: Outcome::Missed(reason),
                    }),
                    None => self.fire(&key, &trigger_key, at, &mut decisions),
                }
            }
            self.reschedule(&key);
        }
        decisions
    }

    /// The next instant at which [`Scheduler::tick`] has something to decide.
    pub fn next_wake(&self) -> Option<Timestamp> {
        self.wakes.first().map(|(at, _)| *at)
    }

    /// Lists the occurrences of `key`'s timed triggers due at `now`, advancing cursors:
    /// (trigger key, due instant, `Some(reason)` when missed under the catch-up policy).
    fn due_occurrences(
        &mut self,
        key: &JobKey,
        now: Timestamp,
    ) -> Vec<(String, Timestamp, Option<String>)> {
        let Some(entry) = self.jobs.get_mut(key) else {
            return Vec::new();
        };
        let Some(job) = &entry.job else {
            return Vec::new();
        };
        let policy = CatchupPolicy {
            window: job.policy.catchup.window,
            mode: match job.policy.catchup.mode {
                CatchupMode::All => rota_sched::policy::CatchupMode::All,
                CatchupMode::Last => rota_sched::policy::CatchupMode::Last,
                CatchupMode::None => rota_sched::policy::CatchupMode::None,
            },
        };
        let grace = self.misfire_grace;
        // Whether an occurrence due at `at` (jitter included) is within the grace at `now`.
        let within_grace = |at: Timestamp| {
            Duration::try_from(now.duration_since(at)).map_or(true, |late| late <= grace)
        };
        let mut out = Vec::new();
        for t in &mut entry.triggers {
            if let TriggerKind::Interval {
                anchor: IntervalAnchor::End,
                ..
            } = t.trigger.kind
            {
                // Fixed delay: one occurrence at a time, due `every` after the last end.
                if let Some(at) = next_due(t) {
                    let fire = at.checked_add(t.trigger.jitter_at(at)).unwrap_or(at);
                    if fire <= now {
                        // Late (the server was down): it runs once now; a delay schedule
                        // has no backlog to catch up.
                        out.push((t.trigger.key.clone(), at, None));
                        t.cursor = at;
                        t.outstanding += 1;
                    }
                }
                continue;
            }
            if !t.trigger.is_timed() {
                continue;
            }
            let origin = t.origin;
            let cursor = t.cursor;
            let Some(first) = t
                .trigger
                .next_after(origin, cursor)
                .filter(|&at| at > cursor && at <= now)
            else {
                continue;
            };
            let several = t
                .trigger
                .next_after(origin, first)
                .is_some_and(|at| at > first && at <= now);
            if !several && first > t.live_since {
                // The one occurrence due, while this server runs: it waits for its jitter,
                // then fires normally unless the server is later than the grace.
                let fire = first
                    .checked_add(t.trigger.jitter_at(first))
                    .unwrap_or(first);
                if fire > now {
                    continue;
                }
                if within_grace(fire) {
                    out.push((t.trigger.key.clone(), first, None));
                    t.cursor = first;
                    continue;
                }
            }
            // Late occurrences: the catch-up policy decides each, as of `now`.
            let trig = &t.trigger;
            let plan = plan_catchup(cursor, now, &policy, |after| trig.next_after(origin, after));
            // The latest one may still be on time (the server fell behind while running,
            // so it is not late itself); it runs and, under mode `last`, is the one that does.
            let on_time = plan
                .occurrences
                .last()
                .map(|occ| occ.at)
                .filter(|&at| plan.unlisted_after.is_none() && at > t.live_since)
                .filter(|&at| within_grace(at));
            for occ in plan.occurrences {
                let reason = match occ.decision {
                    _ if Some(occ.at) == on_time => None,
                    CatchupDecision::Run if on_time.is_some() && policy.mode == LAST => {
                        Some(MissedReason::Superseded.as_str().to_owned())
                    }
                    CatchupDecision::Run => None,
                    CatchupDecision::Missed { reason } => Some(reason.as_str().to_owned()),
                };
                out.push((t.trigger.key.clone(), occ.at, reason));
            }
            // Everything up to `now` is decided, listed or not.
            t.cursor = now;
        }
        out
    }

    /// Decides one occurrence that is due to run: pause state, then overlap policy.
    fn fire(&mut self, key: &JobKey, trigger_key: &str, at: Timestamp, decisions: &mut Decisions) {
        let new_id = &mut self.new_id;
        let Some(entry) = self.jobs.get_mut(key) else {
            return;
        };
        let Some(job) = &entry.job else {
            return;
        };
        let decision = |outcome| Decision {
            job: key.clone(),
            trigger_key: trigger_key.to_owned(),
            scheduled_at: at,
            outcome,
        };
        let paused_until = entry.resume_from.is_some_and(|from| at < from);
        if entry.paused || paused_until {
            release(entry, trigger_key);
            decisions
                .occurrences
                .push(decision(Outcome::Skipped("paused".to_owned())));
            self.reschedule(key);
            return;
        }
        let policy = match job.policy.overlap {
            Overlap::Skip => OverlapPolicy::Skip,
            Overlap::BufferOne => OverlapPolicy::BufferOne,
            Overlap::BufferAll => OverlapPolicy::BufferAll,
            Overlap::CancelRunning => OverlapPolicy::CancelRunning,
            Overlap::Allow => OverlapPolicy::Allow,
        };
        // Runs accepted but not started yet (waiting for `concurrency`) count as running for
        // `skip` and `cancel_running`: they would overlap the new one all the same.
        let active = match policy {
            OverlapPolicy::Skip | OverlapPolicy::CancelRunning => {
                entry.active.len() + entry.queued.len()
            }
            _ => entry.active.len(),
        };
        match decide_overlap(policy, active, entry.queued.len()) {
            OverlapDecision::Skip { reason } => {
                release(entry, trigger_key);
                decisions
                    .occurrences
                    .push(decision(Outcome::Skipped(reason.to_string())));
                self.reschedule(key);
            }
            choice => {
                if choice == OverlapDecision::CancelRunningThenStart {
                    decisions.cancel.extend(entry.active.iter().cloned());
                    // Runs waiting behind the cancelled ones are superseded too.
                    decisions.cancel.extend(entry.queued.iter().cloned());
                }
                let run_id = new_id();
                entry.queued.push_back(run_id.clone());
                entry
                    .run_trigger
                    .insert(run_id.clone(), trigger_key.to_owned());
                self.run_jobs.insert(run_id.clone(), key.clone());
                self.startable.insert(key.clone());
                decisions
                    .occurrences
                    .push(decision(Outcome::Run { run_id }));
            }
        }
    }
}

/// An end-anchored trigger's outstanding count drops when its occurrence will not run or its
/// run ends.
fn release(entry: &mut JobEntry, trigger_key: &str) {
    if let Some(t) = entry
        .triggers
        .iter_mut()
        .find(|t| t.trigger.key == trigger_key)
    {
        t.outstanding = t.outstanding.saturating_sub(1);
    }
}

/// The earliest instant at which [`Scheduler::tick`] could decide anything for this trigger
/// in its current state (`None`: nothing until its state changes). It mirrors the conditions
/// of `due_occurrences`: an end-anchored interval acts once its jittered due instant came; a
/// timed trigger acts at once on an occurrence due while no server had it loaded, else once
/// its next occurrence's jitter passed or a second occurrence came due (then it is late).
fn check_at(t: &TriggerEntry) -> Option<Timestamp> {
    let jittered = |at: Timestamp| at.checked_add(t.trigger.jitter_at(at)).unwrap_or(at);
    if let TriggerKind::Interval {
        anchor: IntervalAnchor::End,
        ..
    } = t.trigger.kind
    {
        return next_due(t).map(jittered);
    }
    if !t.trigger.is_timed() {
        return None;
    }
    let first = t
        .trigger
        .next_after(t.origin, t.cursor)
        .filter(|&at| at > t.cursor)?;
    if first <= t.live_since {
        return Some(first);
    }
    let fire = jittered(first);
    match t
        .trigger
        .next_after(t.origin, first)
        .filter(|&at| at > first)
    {
        Some(second) => Some(fire.min(second)),
        None => Some(fire),
    }
}

/// The next due instant of a timed trigger, jitter not included.
fn next_due(t: &TriggerEntry) -> Option<Timestamp> {
    match t.trigger.kind {
        TriggerKind::Interval {
            every,
            anchor: IntervalAnchor::End,
        } => {
            if t.outstanding > 0 {
                return None;
            }
            // One period after the last run ended, or after the last decided occurrence
            // (the trigger's origin when it never fired).
            let base = t.last_finished.unwrap_or(t.cursor).max(t.cursor);
            base.checked_add(every).ok()
        }
        _ => t.trigger.next_after(t.origin, t.cursor),
    }
}
