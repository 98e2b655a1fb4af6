//! Overlap and catch-up decisions, as pure functions the scheduler daemon calls.
//!
//! Overlap: a new occurrence is due while runs of the same job are active or buffered; the
//! policy decides whether it starts, waits in the buffer, is skipped (and recorded as
//! `skipped` with the reason) or cancels the running one.
//!
//! Catch-up: after downtime, the occurrences between the last one seen and "now" are listed,
//! each either to run or recorded as `missed` with the reason. The list is capped at
//! [`CATCHUP_LIMIT`] occurrences so a per-second job after a month of downtime stays bounded.

use std::fmt;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// What to do when an occurrence is due while the job still has runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapPolicy {
    /// Skip the new occurrence while a run is active.
    Skip,
    /// Keep at most one occurrence waiting; further ones are skipped.
    BufferOne,
    /// Queue every occurrence; they start one after another.
    BufferAll,
    /// Cancel the active runs, then start the new one.
    CancelRunning,
    /// Start regardless; runs overlap.
    Allow,
}

impl OverlapPolicy {
    /// The job-file spelling: `skip`, `buffer_one`, `buffer_all`, `cancel_running`, `allow`.
    pub fn as_str(self) -> &'static str {
        match self {
            OverlapPolicy::Skip => "skip",
            OverlapPolicy::BufferOne => "buffer_one",
            OverlapPolicy::BufferAll => "buffer_all",
            OverlapPolicy::CancelRunning => "cancel_running",
            OverlapPolicy::Allow => "allow",
        }
    }
}

/// Why an occurrence was skipped by the overlap policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Policy `skip` and a run is active.
    RunActive,
    /// Policy `buffer_one` and one occurrence is already waiting.
    BufferFull,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::RunActive => "overlap policy skip: a run is still active",
            SkipReason::BufferFull => "overlap policy buffer_one: a run is already buffered",
        })
    }
}

/// The decision for a new occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapDecision {
    /// Start a run now.
    Start,
    /// Queue it behind the active and buffered runs.
    Buffer,
    /// Do not run it; record it as `skipped`.
    Skip {
        /// Why, for the record.
        reason: SkipReason,
    },
    /// Cancel the active runs, then start this one.
    CancelRunningThenStart,
}

/// Decides what happens to a new occurrence given the job's policy and how many of its runs are
/// active (started, not finished) and buffered (accepted, waiting for an active run to end).
///
/// Buffered runs keep their order: under the buffer policies a new occurrence never starts
/// ahead of a buffered one, even when nothing is active (the daemon is expected to promote
/// buffered runs as soon as the active ones finish).
pub fn decide_overlap(policy: OverlapPolicy, active: usize, buffered: usize) -> OverlapDecision {
    match policy {
        OverlapPolicy::Allow => OverlapDecision::Start,
        _ if active == 0 && buffered == 0 => OverlapDecision::Start,
        OverlapPolicy::Skip if active > 0 => OverlapDecision::Skip {
            reason: SkipReason::RunActive,
        },
        // Nothing active: whatever is buffered is stale for `skip` and `cancel_running`.
        OverlapPolicy::Skip => OverlapDecision::Start,
        OverlapPolicy::CancelRunning if active > 0 => OverlapDecision::CancelRunningThenStart,
        OverlapPolicy::CancelRunning => OverlapDecision::Start,
        OverlapPolicy::BufferOne if buffered > 0 => OverlapDecision::Skip {
            reason: SkipReason::BufferFull,
        },
        OverlapPolicy::BufferOne | OverlapPolicy::BufferAll => OverlapDecision::Buffer,
    }
}

/// Which missed occurrences run after downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchupMode {
    /// Every occurrence within the window runs, oldest first.
    All,
    /// Only the latest occurrence within the window runs.
    Last,
    /// None runs; all are recorded as missed.
    None,
}

impl CatchupMode {
    /// The job-file spelling: `all`, `last`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchupMode::All => "all",
            CatchupMode::Last => "last",
            CatchupMode::None => "none",
        }
    }
}

/// A job's catch-up policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchupPolicy {
    /// Only occurrences at or after `now - window` may run.
    pub window: Duration,
    /// Which of those run.
    pub mode: CatchupMode,
}

/// Why a missed occurrence does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedReason {
    /// Older than `now - window`.
    OutsideWindow,
    /// Mode `last` and a later occurrence within the window runs instead.
    Superseded,
    /// Mode `none`.
    ModeNone,
}

impl MissedReason {
    /// The text recorded with the `missed` occurrence.
    pub fn as_str(self) -> &'static str {
        match self {
            MissedReason::OutsideWindow => "outside catch-up window",
            MissedReason::Superseded => "catch-up mode last: superseded by a later occurrence",
            MissedReason::ModeNone => "catch-up mode none",
        }
    }
}

impl fmt::Display for MissedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to one occurrence found during catch-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchupDecision {
    /// Run it now (late).
    Run,
    /// Record it as `missed`.
    Missed {
        /// Why, for the record.
        reason: MissedReason,
    },
}

/// One occurrence that fell due during downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// When it was due.
    pub at: Timestamp,
    /// What to do with it.
    pub decision: CatchupDecision,
}

/// The result of [`plan_catchup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchupPlan {
    /// Occurrences in time order.
    pub occurrences: Vec<Occurrence>,
    /// Set when more than [`CATCHUP_LIMIT`] occurrences fell due: occurrences after this
    /// instant (up to `now`) are not listed, except that under [`CatchupMode::Last`] the latest
    /// one within the window is still found and listed to run. The caller records the unlisted
    /// stretch as one summary entry rather than one per occurrence.
    pub unlisted_after: Option<Timestamp>,
}

/// At most this many occurrences are enumerated by [`plan_catchup`].
pub const CATCHUP_LIMIT: usize = 10_000;

/// Lists the occurrences in `(last_seen, now]` and decides for each whether it runs or is
/// recorded as missed, under `policy`. `next_after(t)` gives the first occurrence strictly after
/// `t` (for cron, [`crate::cron::CronExpr::next_timestamp`]; for intervals,
/// [`crate::interval::grid_after`]); a result not after its argument ends the enumeration.
///
/// An occurrence is within the window when `at >= now - window`. Mode `none` marks everything
/// missed with that reason; otherwise occurrences outside the window are missed as such.
pub fn plan_catchup(
    last_seen: Timestamp,
    now: Timestamp,
    policy: &CatchupPolicy,
    mut next_after: impl FnMut(Timestamp) -> Option<Timestamp>,
) -> CatchupPlan {
    let window_start = now.checked_sub(policy.window).unwrap_or(Timestamp::MIN);
    let mut times = Vec::new();
    let mut cursor = last_seen;
    let mut unlisted_after = None;
    while let Some(t) = next_after(cursor).filter(|&t| t > cursor && t <= now) {
        if times.len() == CATCHUP_LIMIT {
            unlisted_after = Some(cursor);
            break;
        }
        times.push(t);
        cursor = t;
    }
    let mut run_last = None;
    if policy.mode == CatchupMode::Last {
        run_last = match unlisted_after {
            Some(floor) => latest_at_or_before(floor, now, &mut next_after),
            None => times.last().copied(),
        }
        .filter(|&t| t >= window_start);
    }
    let decide = |t: Timestamp| match policy.mode {
        CatchupMode::None => CatchupDecision::Missed {
            reason: MissedReason::ModeNone,
        },
        _ if t < window_start => CatchupDecision::Missed {
            reason: MissedReason::OutsideWindow,
        },
        CatchupMode::All => CatchupDecision::Run,
        CatchupMode::Last if Some(t) == run_last => CatchupDecision::Run,
        CatchupMode::Last => CatchupDecision::Missed {
            reason: MissedReason::Superseded,
        },
    };
    let mut occurrences: Vec<Occurrence> = times
        .into_iter()
        .map(|at| Occurrence {
            at,
            decision: decide(at),
        })
        .collect();
    if let (Some(at), Some(floor)) = (run_last, unlisted_after)
        && at > floor
    {
        occurrences.push(Occurrence {
            at,
            decision: CatchupDecision::Run,
        });
    }
    CatchupPlan {
        occurrences,
        unlisted_after,
    }
}

/// The latest occurrence in `(floor, now]`, found by probing back from `now` with doubling
/// steps and then walking forward (at most [`CATCHUP_LIMIT`] steps) from the first hit.
fn latest_at_or_before(
    floor: Timestamp,
    now: Timestamp,
    next_after: &mut impl FnMut(Timestamp) -> Option<Timestamp>,
) -> Option<Timestamp> {
    let mut back = SignedDuration::from_secs(1);
    loop {
        let probe = now.checked_sub(back).unwrap_or(floor).max(floor);
        if let Some(mut latest) = next_after(probe).filter(|&t| t > probe && t <= now) {
            for _ in 0..CATCHUP_LIMIT {
                match next_after(latest).filter(|&t| t > latest && t <= now) {
                    Some(t) => latest = t,
                    None => break,
                }
            }
            return Some(latest);
        }
        if probe == floor {
            return None;
        }
        back = back.checked_mul(2).unwrap_or(SignedDuration::MAX);
    }
}
