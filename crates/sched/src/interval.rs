//! Interval triggers (`every: 10m`, anchored on a run's start or its end) and jitter.
//!
//! Like the rest of the crate these are pure functions: the caller passes the history it knows
//! (last due time, last finish time) and "now", and for jitter its own random seed.

use std::time::Duration;

use jiff::Timestamp;

/// What an interval is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Fixed rate: due times are `last_due + every`, whatever the runs took.
    Start,
    /// Fixed delay: the next run is due `every` after the previous one finished.
    End,
}

/// When an interval trigger is next due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextDue {
    /// Due at this instant (possibly in the past: the caller's catch-up policy decides).
    At(Timestamp),
    /// End-anchored and the last run has not finished: nothing is due until it does.
    WhenRunFinishes,
    /// The next due time is past the last instant jiff can represent.
    Never,
}

/// An interval of zero cannot be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an interval must be longer than zero")]
pub struct ZeroInterval;

/// The next due time of an interval trigger.
///
/// * Never ran (`last_due` is `None`): due `now`.
/// * [`Anchor::Start`]: `last_due + every`.
/// * [`Anchor::End`]: `last_finished + every` once the run due at `last_due` has finished
///   (`last_finished >= last_due`), else [`NextDue::WhenRunFinishes`].
///
/// ```
/// use rota_sched::interval::{next_interval, Anchor, NextDue};
/// use std::time::Duration;
/// let due: jiff::Timestamp = "2026-06-05T10:00:00Z".parse()?;
/// let done: jiff::Timestamp = "2026-06-05T10:07:00Z".parse()?;
/// let now: jiff::Timestamp = "2026-06-05T10:08:00Z".parse()?;
/// let every = Duration::from_secs(600);
/// assert_eq!(
///     next_interval(every, Anchor::End, Some(due), Some(done), now)?,
///     NextDue::At("2026-06-05T10:17:00Z".parse()?)
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn next_interval(
    every: Duration,
    anchor: Anchor,
    last_due: Option<Timestamp>,
    last_finished: Option<Timestamp>,
    now: Timestamp,
) -> Result<NextDue, ZeroInterval> {
    if every.is_zero() {
        return Err(ZeroInterval);
    }
    let Some(due) = last_due else {
        return Ok(NextDue::At(now));
    };
    let base = match anchor {
        Anchor::Start => due,
        Anchor::End => match last_finished {
            Some(finished) if finished >= due => finished,
            _ => return Ok(NextDue::WhenRunFinishes),
        },
    };
    Ok(base.checked_add(every).map_or(NextDue::Never, NextDue::At))
}

/// The first point of the grid `origin + k × every` (k ≥ 0) strictly after `after`: the
/// `next_after` of a start-anchored interval, e.g. for [`crate::policy::plan_catchup`].
/// `None` past the last representable instant.
pub fn grid_after(
    origin: Timestamp,
    every: Duration,
    after: Timestamp,
) -> Result<Option<Timestamp>, ZeroInterval> {
    let step = i128::try_from(every.as_nanos()).map_err(|_| ZeroInterval)?;
    if step == 0 {
        return Err(ZeroInterval);
    }
    if after < origin {
        return Ok(Some(origin));
    }
    let elapsed = after.as_nanosecond() - origin.as_nanosecond();
    let k = elapsed / step + 1;
    let next = origin
        .as_nanosecond()
        .checked_add(k.checked_mul(step).unwrap_or(i128::MAX));
    Ok(next.and_then(|n| Timestamp::from_nanosecond(n).ok()))
}

/// A delay in `[0, bound]` derived only from `seed` (the caller provides the randomness, so
/// the same seed always gives the same delay). Bounds beyond ~584 years are clamped.
///
/// ```
/// use rota_sched::interval::jitter_delay;
/// use std::time::Duration;
/// let bound = Duration::from_secs(30);
/// let d = jitter_delay(bound, 42);
/// assert!(d <= bound);
/// assert_eq!(d, jitter_delay(bound, 42));
/// ```
pub fn jitter_delay(bound: Duration, seed: u64) -> Duration {
    let span = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    // Multiply-high maps the 64-bit mix onto [0, span] without the bias of a modulo.
    let nanos = (u128::from(splitmix64(seed)) * (u128::from(span) + 1)) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(span))
}

/// SplitMix64's finaliser: spreads nearby seeds (run ids, counters) over the whole range.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
