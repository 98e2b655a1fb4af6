//! Overlap and catch-up decision tables, interval due times and jitter.

use std::time::Duration;

use jiff::Timestamp;
use rota_sched::cron::CronExpr;
use rota_sched::interval::{
    Anchor, NextDue, ZeroInterval, grid_after, jitter_delay, next_interval,
};
use rota_sched::policy::{
    CATCHUP_LIMIT, CatchupDecision, CatchupMode, CatchupPolicy, MissedReason, OverlapDecision,
    OverlapPolicy, SkipReason, decide_overlap, plan_catchup,
};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn overlap_table() {
    use OverlapDecision::*;
    use OverlapPolicy as P;
    let skip_active = Skip {
        reason: SkipReason::RunActive,
    };
    let skip_full = Skip {
        reason: SkipReason::BufferFull,
    };
    // (policy, active, buffered, decision)
    let table = [
        (P::Skip, 0, 0, Start),
        (P::Skip, 1, 0, skip_active),
        (P::Skip, 3, 0, skip_active),
        (P::BufferOne, 0, 0, Start),
        (P::BufferOne, 1, 0, Buffer),
        (P::BufferOne, 1, 1, skip_full),
        (P::BufferOne, 0, 1, skip_full),
        (P::BufferAll, 0, 0, Start),
        (P::BufferAll, 1, 0, Buffer),
        (P::BufferAll, 1, 5, Buffer),
        (P::BufferAll, 0, 2, Buffer),
        (P::CancelRunning, 0, 0, Start),
        (P::CancelRunning, 2, 0, CancelRunningThenStart),
        (P::Allow, 0, 0, Start),
        (P::Allow, 4, 2, Start),
    ];
    for (policy, active, buffered, want) in table {
        assert_eq!(
            decide_overlap(policy, active, buffered),
            want,
            "{} {active} {buffered}",
            policy.as_str()
        );
    }
    assert_eq!(
        SkipReason::RunActive.to_string(),
        "overlap policy skip: a run is still active"
    );
}

/// The only code that calls `plan_catchup` for the tables: hourly cron in UTC, downtime from
/// `last` to `now`; `expect` lists (time, decision) as "HH:MM run" or "HH:MM <reason>".
fn check_catchup(mode: CatchupMode, window_h: u64, last: &str, now: &str, expect: &[&str]) {
    let expr = CronExpr::parse("0 * * * *").unwrap_or_else(|e| panic!("{e}"));
    let tz = jiff::tz::TimeZone::UTC;
    let policy = CatchupPolicy {
        window: Duration::from_secs(window_h * 3600),
        mode,
    };
    let plan = plan_catchup(ts(last), ts(now), &policy, |t| expr.next_timestamp(&tz, t));
    assert_eq!(plan.unlisted_after, None);
    let got: Vec<String> = plan
        .occurrences
        .iter()
        .map(|o| {
            let hm = o.at.strftime("%H:%M");
            match o.decision {
                CatchupDecision::Run => format!("{hm} run"),
                CatchupDecision::Missed { reason } => format!("{hm} {reason}"),
            }
        })
        .collect();
    assert_eq!(got, expect, "{} window {window_h}h", mode.as_str());
}

#[test]
fn catchup_table() {
    let (last, now) = ("2026-06-05T01:30:00Z", "2026-06-05T05:10:00Z");
    let out = "outside catch-up window";
    let sup = "catch-up mode last: superseded by a later occurrence";
    let none = "catch-up mode none";
    check_catchup(
        CatchupMode::All,
        2,
        last,
        now,
        &[
            &format!("02:00 {out}"),
            &format!("03:00 {out}"),
            "04:00 run",
            "05:00 run",
        ],
    );
    check_catchup(
        CatchupMode::Last,
        2,
        last,
        now,
        &[
            &format!("02:00 {out}"),
            &format!("03:00 {out}"),
            &format!("04:00 {sup}"),
            "05:00 run",
        ],
    );
    check_catchup(
        CatchupMode::None,
        2,
        last,
        now,
        &[
            &format!("02:00 {none}"),
            &format!("03:00 {none}"),
            &format!("04:00 {none}"),
            &format!("05:00 {none}"),
        ],
    );
    // Window too short for any occurrence: mode last runs nothing.
    check_catchup(
        CatchupMode::Last,
        0,
        last,
        now,
        &[
            &format!("02:00 {out}"),
            &format!("03:00 {out}"),
            &format!("04:00 {out}"),
            &format!("05:00 {out}"),
        ],
    );
    // The window edge is inclusive, and so is `now`.
    check_catchup(
        CatchupMode::All,
        1,
        "2026-06-05T03:30:00Z",
        "2026-06-05T05:00:00Z",
        &["04:00 run", "05:00 run"],
    );
    // Nothing fell due.
    check_catchup(
        CatchupMode::All,
        1,
        "2026-06-05T03:30:00Z",
        "2026-06-05T03:59:59Z",
        &[],
    );
    assert_eq!(MissedReason::Superseded.as_str(), sup);
}

#[test]
fn catchup_is_capped_and_last_still_finds_the_latest() {
    let expr = CronExpr::parse("* * * * * *").unwrap_or_else(|e| panic!("{e}"));
    let tz = jiff::tz::TimeZone::UTC;
    let (last, now) = (ts("2026-06-01T00:00:00Z"), ts("2026-06-02T00:00:00Z"));
    let next = |t| expr.next_timestamp(&tz, t);

    let all = CatchupPolicy {
        window: Duration::from_secs(7 * 86400),
        mode: CatchupMode::All,
    };
    let plan = plan_catchup(last, now, &all, next);
    assert_eq!(plan.occurrences.len(), CATCHUP_LIMIT);
    let last_listed = ts("2026-06-01T02:46:40Z"); // 10,000 s after midnight
    assert_eq!(plan.occurrences.last().map(|o| o.at), Some(last_listed));
    assert_eq!(plan.unlisted_after, Some(last_listed));
    assert!(
        plan.occurrences
            .iter()
            .all(|o| o.decision == CatchupDecision::Run)
    );

    let last_mode = CatchupPolicy {
        window: Duration::from_secs(7 * 86400),
        mode: CatchupMode::Last,
    };
    let plan = plan_catchup(last, now, &last_mode, next);
    assert_eq!(plan.occurrences.len(), CATCHUP_LIMIT + 1);
    let tail = plan.occurrences.last().copied();
    assert_eq!(
        tail.map(|o| (o.at, o.decision)),
        Some((now, CatchupDecision::Run))
    );
    let runs = plan
        .occurrences
        .iter()
        .filter(|o| o.decision == CatchupDecision::Run)
        .count();
    assert_eq!(runs, 1);
}

#[test]
fn catchup_stops_on_a_non_increasing_next_after() {
    let policy = CatchupPolicy {
        window: Duration::from_secs(3600),
        mode: CatchupMode::All,
    };
    let stuck = ts("2026-06-05T01:00:00Z");
    let plan = plan_catchup(
        ts("2026-06-05T00:00:00Z"),
        ts("2026-06-05T02:00:00Z"),
        &policy,
        |_| Some(stuck),
    );
    assert_eq!(plan.occurrences.len(), 1);
}

#[test]
fn interval_table() {
    let every = Duration::from_secs(600);
    let (due, done, now) = (
        ts("2026-06-05T10:00:00Z"),
        ts("2026-06-05T10:07:00Z"),
        ts("2026-06-05T10:08:00Z"),
    );
    // (anchor, last_due, last_finished, expected)
    let table = [
        (Anchor::Start, None, None, NextDue::At(now)),
        (Anchor::End, None, None, NextDue::At(now)),
        (
            Anchor::Start,
            Some(due),
            None,
            NextDue::At(ts("2026-06-05T10:10:00Z")),
        ),
        (
            Anchor::Start,
            Some(due),
            Some(done),
            NextDue::At(ts("2026-06-05T10:10:00Z")),
        ),
        (
            Anchor::End,
            Some(due),
            Some(done),
            NextDue::At(ts("2026-06-05T10:17:00Z")),
        ),
        (Anchor::End, Some(due), None, NextDue::WhenRunFinishes),
        // The finish belongs to an earlier run.
        (
            Anchor::End,
            Some(due),
            Some(ts("2026-06-05T09:55:00Z")),
            NextDue::WhenRunFinishes,
        ),
        (Anchor::Start, Some(Timestamp::MAX), None, NextDue::Never),
    ];
    for (anchor, last_due, last_finished, want) in table {
        assert_eq!(
            next_interval(every, anchor, last_due, last_finished, now),
            Ok(want),
            "{anchor:?} {last_due:?} {last_finished:?}"
        );
    }
    assert_eq!(
        next_interval(Duration::ZERO, Anchor::Start, None, None, now),
        Err(ZeroInterval)
    );
}

#[test]
fn grid_after_steps_from_the_origin() {
    let origin = ts("2026-06-05T10:00:00Z");
    let every = Duration::from_secs(600);
    for (after, want) in [
        ("2026-06-05T09:00:00Z", "2026-06-05T10:00:00Z"),
        ("2026-06-05T10:00:00Z", "2026-06-05T10:10:00Z"),
        ("2026-06-05T10:09:59.999Z", "2026-06-05T10:10:00Z"),
        ("2026-06-05T13:25:00Z", "2026-06-05T13:30:00Z"),
    ] {
        assert_eq!(
            grid_after(origin, every, ts(after)),
            Ok(Some(ts(want))),
            "{after}"
        );
    }
    assert_eq!(
        grid_after(origin, Duration::ZERO, origin),
        Err(ZeroInterval)
    );
}

#[test]
fn jitter_is_deterministic_bounded_and_spread() {
    let bound = Duration::from_secs(30);
    let delays: Vec<Duration> = (0..1000).map(|seed| jitter_delay(bound, seed)).collect();
    assert!(delays.iter().all(|d| *d <= bound));
    assert_eq!(
        delays,
        (0..1000)
            .map(|seed| jitter_delay(bound, seed))
            .collect::<Vec<_>>()
    );
    // Nearby seeds spread over the range: both halves are hit often.
    let low = delays.iter().filter(|d| **d < bound / 2).count();
    assert!((300..700).contains(&low), "{low} of 1000 in the lower half");
    assert_eq!(jitter_delay(Duration::ZERO, 7), Duration::ZERO);
    // Bounds beyond u64 nanoseconds are clamped, not overflowed.
    assert!(jitter_delay(Duration::MAX, 7) <= Duration::from_nanos(u64::MAX));
}
