//! Property tests: for random valid expressions and starts, `next_after` is strictly increasing
//! and every result matches the expression (or, for fixed-time jobs, is the end of a DST gap).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use rota_sched::cron::CronExpr;

/// One field: `*`, a value, a range, a step form or a list of values.
fn field(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    let value = lo..=hi;
    prop_oneof![
        Just("*".to_owned()),
        value.clone().prop_map(|v| v.to_string()),
        (value.clone(), value.clone()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (1..=hi.max(2)).prop_map(|s| format!("*/{s}")),
        (value.clone(), 1..=hi.max(2)).prop_map(|(a, s)| format!("{a}/{s}")),
        proptest::collection::vec(value, 1..4)
            .prop_map(|vs| { vs.iter().map(u32::to_string).collect::<Vec<_>>().join(",") }),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(None), field(0, 59).prop_map(Some)],
        field(0, 59),
        field(0, 23),
        field(1, 31),
        field(1, 12),
        field(0, 7),
    )
        .prop_map(|(s, mi, h, dom, mon, dow)| {
            let five = format!("{mi} {h} {dom} {mon} {dow}");
            match s {
                Some(s) => format!("{s} {five}"),
                None => five,
            }
        })
}

/// Expressions that fire often around DST transitions (01:00–03:00 local), so the
/// second-by-second check below has something to find.
fn dense_expression() -> impl Strategy<Value = String> {
    let day = |lo, hi| prop_oneof![6 => Just("*".to_owned()), 1 => field(lo, hi)];
    (
        prop_oneof![Just(None), field(0, 59).prop_map(Some)],
        field(0, 59),
        prop_oneof![
            Just("*".to_owned()),
            Just("1".to_owned()),
            Just("2".to_owned()),
            Just("1-3".to_owned()),
            field(0, 23)
        ],
        day(1, 31),
        day(1, 12),
        day(0, 7),
    )
        .prop_map(|(s, mi, h, dom, mon, dow)| {
            let five = format!("{mi} {h} {dom} {mon} {dow}");
            match s {
                Some(s) => format!("{s} {five}"),
                None => five,
            }
        })
}

fn is_transition(tz: &TimeZone, t: Timestamp) -> bool {
    let after = t.checked_add(SignedDuration::from_nanos(1)).ok();
    after
        .and_then(|a| tz.preceding(a).next())
        .is_some_and(|tr| tr.timestamp() == t)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn next_after_increases_and_matches(
        text in expression(),
        zone in prop_oneof![Just("UTC"), Just("America/New_York"), Just("Europe/Berlin"), Just("Australia/Lord_Howe")],
        start_secs in 1_600_000_000i64..2_000_000_000,
    ) {
        // Random day fields may never fire (`0 0 31 2 *`); those must be rejected, not looped on.
        let Ok(expr) = CronExpr::parse(&text) else { return Ok(()) };
        let tz = TimeZone::get(zone).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let start = Timestamp::from_second(start_secs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut cur = start.to_zoned(tz.clone());
        for _ in 0..20 {
            let Some(next) = expr.next_after(&cur) else {
                return Err(TestCaseError::fail(format!("{text:?} stopped firing after {cur}")));
            };
            prop_assert!(next.timestamp() > cur.timestamp(), "{text:?}: {next} not after {cur}");
            let wall: DateTime = next.datetime();
            prop_assert!(
                expr.matches(wall) || (expr.is_fixed_time() && is_transition(&tz, next.timestamp())),
                "{text:?}: {next} does not match"
            );
            cur = next;
        }
    }

    #[test]
    fn no_matching_instant_is_skipped(
        text in dense_expression(),
        zone in prop_oneof![Just("UTC"), Just("America/New_York"), Just("Europe/Berlin"), Just("Australia/Lord_Howe")],
        nth_transition in 0usize..4,
        shift in -10_800i64..10_800,
    ) {
        // Start near a DST transition of 2026 (or 2026-01-01 in UTC). Between `start` and the
        // next result, no whole second whose wall time matches may exist, except the second
        // occurrence of a repeated wall time for a fixed-time job. Checked when that stretch is
        // at most 3 hours, second by second.
        let Ok(expr) = CronExpr::parse(&text) else { return Ok(()) };
        let tz = TimeZone::get(zone).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let year_start = Timestamp::from_second(1_767_225_600).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let anchor = tz.following(year_start).nth(nth_transition).map_or(year_start, |tr| tr.timestamp());
        let start = anchor.as_second() + shift;
        let from = Timestamp::from_second(start).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let Some(next) = expr.next_after(&from.to_zoned(tz.clone())) else {
            return Err(TestCaseError::fail(format!("{text:?} never fires")));
        };
        if next.timestamp().as_second() - start <= 10_800 {
            for s in start + 1..next.timestamp().as_second() {
                let t = Timestamp::from_second(s).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let wall = tz.to_datetime(t);
                let repeated_later = tz.to_ambiguous_zoned(wall).is_ambiguous()
                    && tz.to_ambiguous_timestamp(wall).earlier().is_ok_and(|e| e < t);
                if expr.is_fixed_time() && repeated_later {
                    continue;
                }
                prop_assert!(!expr.matches(wall), "{text:?} in {zone}: skipped {t} ({wall}), next was {next}");
            }
        }
    }
}
