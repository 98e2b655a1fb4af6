//! Data-driven cron tables: expression, zone, start → next fire times as RFC 3339 strings,
//! DST days in New York and Berlin included; and parse errors naming their field.

use rota_sched::cron::{CronExpr, DayRule};
use rota_sched::next::{preview, rfc3339};

/// The only code in this file that calls the API for fire-time cases.
fn check_with(rule: DayRule, expr: &str, zone: &str, start: &str, expect: &[&str]) {
    let parsed = CronExpr::parse_with(expr, rule).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or_else(|e| panic!("{zone}: {e}"));
    let from: jiff::Timestamp = start.parse().unwrap_or_else(|e| panic!("{start}: {e}"));
    // Ask for one more than expected, so a table that ends early also checks the end.
    let got: Vec<String> = preview(&parsed, tz, from, expect.len() + 1)
        .iter()
        .map(rfc3339)
        .collect();
    let got: Vec<&str> = got.iter().map(String::as_str).collect();
    assert_eq!(
        &got[..expect.len().min(got.len())],
        expect,
        "{expr:?} in {zone} after {start}"
    );
}

fn check(expr: &str, zone: &str, start: &str, expect: &[&str]) {
    check_with(DayRule::default(), expr, zone, start, expect);
}

/// Like `check`, and the expression must not fire again after the listed times.
fn check_exhausted(expr: &str, zone: &str, start: &str, expect: &[&str]) {
    let parsed = CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or_else(|e| panic!("{zone}: {e}"));
    let from: jiff::Timestamp = start.parse().unwrap_or_else(|e| panic!("{start}: {e}"));
    let got: Vec<String> = preview(&parsed, tz, from, expect.len() + 3)
        .iter()
        .map(rfc3339)
        .collect();
    assert_eq!(got, expect, "{expr:?} in {zone} after {start}");
}

const NY: &str = "America/New_York";
const BERLIN: &str = "Europe/Berlin";
const UTC: &str = "UTC";

#[test]
fn dst_gap_fixed_time_fires_once_after_gap() {
    check(
        "30 2 * * *",
        NY,
        "2026-03-07T12:00:00-05:00",
        &["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    );
    check(
        "0 30 2 * * *",
        BERLIN,
        "2026-03-28T12:00:00+01:00",
        &["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    );
    check(
        "30 2 * * *",
        BERLIN,
        "2026-03-28T12:00:00+01:00",
        &["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    );
    // Starting inside the day, right before the gap.
    check(
        "30 2 * * *",
        NY,
        "2026-03-08T01:59:59-05:00",
        &["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    );
}

#[test]
fn dst_gap_other_jobs_skip_missing_wall_times() {
    check(
        "0 * * * *",
        NY,
        "2026-03-08T00:30:00-05:00",
        &[
            "2026-03-08T01:00:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T04:00:00-04:00",
        ],
    );
    check(
        "*/30 * * * *",
        BERLIN,
        "2026-03-29T01:00:00+01:00",
        &[
            "2026-03-29T01:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T03:30:00+02:00",
        ],
    );
    // Only 02:xx matches and 02:xx does not exist that day: the next match is a day later.
    check(
        "*/30 2 * * *",
        NY,
        "2026-03-08T00:00:00-05:00",
        &["2026-03-09T02:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    );
}

#[test]
fn dst_overlap_fixed_time_fires_once_at_earlier_instant() {
    check(
        "30 1 * * *",
        NY,
        "2026-11-01T00:00:00-04:00",
        &["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    );
    // Starting between the two 01:30s does not fire the second one.
    check(
        "30 1 * * *",
        NY,
        "2026-11-01T01:45:00-04:00",
        &["2026-11-02T01:30:00-05:00"],
    );
    check(
        "30 1 * * *",
        NY,
        "2026-11-01T01:10:00-05:00",
        &["2026-11-02T01:30:00-05:00"],
    );
    check(
        "0 30 2 * * *",
        BERLIN,
        "2026-10-24T12:00:00+02:00",
        &["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    );
}

#[test]
fn dst_overlap_other_jobs_fire_at_each_instant() {
    check(
        "0 * * * *",
        NY,
        "2026-11-01T00:30:00-04:00",
        &[
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    );
    check(
        "*/30 * * * *",
        NY,
        "2026-11-01T00:45:00-04:00",
        &[
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    );
    check(
        "*/15 1 * * *",
        NY,
        "2026-11-01T00:00:00-04:00",
        &[
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:15:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:45:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:15:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T01:45:00-05:00",
            "2026-11-02T01:00:00-05:00",
        ],
    );
    check(
        "0 * * * *",
        BERLIN,
        "2026-10-25T01:30:00+02:00",
        &[
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
    );
    check(
        "*/30 * * * *",
        BERLIN,
        "2026-10-25T02:10:00+01:00",
        &["2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"],
    );
}

#[test]
fn leap_day_fires_in_leap_years_only() {
    check(
        "0 0 29 2 *",
        UTC,
        "2026-01-01T00:00:00Z",
        &[
            "2028-02-29T00:00:00+00:00",
            "2032-02-29T00:00:00+00:00",
            "2036-02-29T00:00:00+00:00",
        ],
    );
    // 2100 is not a leap year.
    check(
        "0 0 29 2 *",
        UTC,
        "2096-03-01T00:00:00Z",
        &["2104-02-29T00:00:00+00:00"],
    );
}

#[test]
fn day_fields_or_when_both_restricted() {
    check(
        "0 0 1,15 * MON",
        UTC,
        "2026-05-31T12:00:00Z",
        &[
            "2026-06-01T00:00:00+00:00",
            "2026-06-08T00:00:00+00:00",
            "2026-06-15T00:00:00+00:00",
            "2026-06-22T00:00:00+00:00",
            "2026-06-29T00:00:00+00:00",
            "2026-07-01T00:00:00+00:00",
        ],
    );
}

#[test]
fn day_field_starting_with_star_is_unrestricted_under_vixie_rule() {
    // Vixie's entry.c: `*/2` begins with `*`, so DOM_STAR is set and the days are ANDed:
    // odd days of the month that are Mondays.
    check_with(
        DayRule::VixieStar,
        "0 0 */2 * MON",
        UTC,
        "2026-05-31T12:00:00Z",
        &[
            "2026-06-01T00:00:00+00:00",
            "2026-06-15T00:00:00+00:00",
            "2026-06-29T00:00:00+00:00",
            "2026-07-13T00:00:00+00:00",
            "2026-07-27T00:00:00+00:00",
        ],
    );
    // The same with a leading digit (`1-31/2`) is restricted: odd days OR Mondays.
    check(
        "0 0 1-31/2 * MON",
        UTC,
        "2026-06-01T12:00:00Z",
        &[
            "2026-06-03T00:00:00+00:00",
            "2026-06-05T00:00:00+00:00",
            "2026-06-07T00:00:00+00:00",
            "2026-06-08T00:00:00+00:00",
            "2026-06-09T00:00:00+00:00",
        ],
    );
    // Under the crontab(5) wording, Rota's default (SPEC §3), `*/2` is restricted too.
    check(
        "0 0 */2 * MON",
        UTC,
        "2026-06-01T12:00:00Z",
        &[
            "2026-06-03T00:00:00+00:00",
            "2026-06-05T00:00:00+00:00",
            "2026-06-07T00:00:00+00:00",
            "2026-06-08T00:00:00+00:00",
            "2026-06-09T00:00:00+00:00",
        ],
    );
}

#[test]
fn year_field() {
    check_exhausted(
        "0 0 0 1 1 * 2030",
        UTC,
        "2026-06-01T00:00:00Z",
        &["2030-01-01T00:00:00+00:00"],
    );
    check_exhausted("0 0 0 1 1 * 2020", UTC, "2026-06-01T00:00:00Z", &[]);
    check_exhausted(
        "0 0 12 29 2 * 2027-2033",
        UTC,
        "2026-06-01T00:00:00Z",
        &["2028-02-29T12:00:00+00:00", "2032-02-29T12:00:00+00:00"],
    );
    check_exhausted(
        "0 0 0 * * * 2199",
        UTC,
        "2199-12-30T00:00:00Z",
        &["2199-12-31T00:00:00+00:00"],
    );
}

#[test]
fn names_are_case_insensitive() {
    check(
        "0 12 * JAN,jul sun",
        UTC,
        "2026-06-30T00:00:00Z",
        &["2026-07-05T12:00:00+00:00", "2026-07-12T12:00:00+00:00"],
    );
    check(
        "0 9 * * Mon-fri",
        UTC,
        "2026-06-05T10:00:00Z",
        &["2026-06-08T09:00:00+00:00", "2026-06-09T09:00:00+00:00"],
    );
    // 7 is Sunday too, also as the end of a range.
    check(
        "0 0 * * 5-7",
        UTC,
        "2026-06-05T10:00:00Z",
        &[
            "2026-06-06T00:00:00+00:00",
            "2026-06-07T00:00:00+00:00",
            "2026-06-12T00:00:00+00:00",
        ],
    );
}

#[test]
fn macros() {
    let start = "2026-06-05T10:20:00Z";
    check(
        "@hourly",
        UTC,
        start,
        &["2026-06-05T11:00:00+00:00", "2026-06-05T12:00:00+00:00"],
    );
    check("@daily", UTC, start, &["2026-06-06T00:00:00+00:00"]);
    check("@midnight", UTC, start, &["2026-06-06T00:00:00+00:00"]);
    check(
        "@weekly",
        UTC,
        start,
        &["2026-06-07T00:00:00+00:00", "2026-06-14T00:00:00+00:00"],
    );
    check("@monthly", UTC, start, &["2026-07-01T00:00:00+00:00"]);
    check("@yearly", UTC, start, &["2027-01-01T00:00:00+00:00"]);
    check("@ANNUALLY", UTC, start, &["2027-01-01T00:00:00+00:00"]);
}

#[test]
fn steps_ranges_lists_and_seconds() {
    let start = "2026-06-05T10:20:00Z";
    check(
        "*/15 * * * * *",
        UTC,
        start,
        &["2026-06-05T10:20:15+00:00", "2026-06-05T10:20:30+00:00"],
    );
    check(
        "10-50/20 * * * *",
        UTC,
        start,
        &[
            "2026-06-05T10:30:00+00:00",
            "2026-06-05T10:50:00+00:00",
            "2026-06-05T11:10:00+00:00",
        ],
    );
    // `5/10` means 5-59/10.
    check(
        "5/10 * * * *",
        UTC,
        start,
        &["2026-06-05T10:25:00+00:00", "2026-06-05T10:35:00+00:00"],
    );
    check(
        "0 0 8,12-13 * * *",
        UTC,
        start,
        &[
            "2026-06-05T12:00:00+00:00",
            "2026-06-05T13:00:00+00:00",
            "2026-06-06T08:00:00+00:00",
        ],
    );
    // Sub-second starts: the next whole matching second strictly after.
    check(
        "* * * * * *",
        UTC,
        "2026-06-05T10:20:00.5Z",
        &["2026-06-05T10:20:01+00:00"],
    );
}

/// The only code in this file that checks parse errors.
fn check_err(expr: &str, detail: &str) {
    match CronExpr::parse(expr) {
        Ok(_) => panic!("{expr:?} parsed"),
        Err(e) => assert_eq!(
            e.to_string(),
            format!("invalid cron expression {expr:?}: {detail}")
        ),
    }
}

#[test]
fn parse_errors_name_their_field() {
    check_err("61 * * * *", "minute field: value 61 out of range 0-59");
    check_err("60 * * * * *", "second field: value 60 out of range 0-59");
    check_err("* 24 * * *", "hour field: value 24 out of range 0-23");
    check_err("* * 0 * *", "day-of-month field: value 0 out of range 1-31");
    check_err("* * * 13 *", "month field: value 13 out of range 1-12");
    check_err("* * * * 8", "day-of-week field: value 8 out of range 0-7");
    check_err(
        "0 0 0 * * * 1969",
        "year field: value 1969 out of range 1970-2199",
    );
    check_err(
        "* * * FOO *",
        r#"month field: "FOO" is neither a number nor a name (JAN-DEC)"#,
    );
    check_err(
        "* * * * MONDAY",
        r#"day-of-week field: "MONDAY" is neither a number nor a name (SUN-SAT)"#,
    );
    check_err("x * * * *", r#"minute field: "x" is not a number"#);
    check_err("*/0 * * * *", r#"minute field: step 0 in "*/0""#);
    check_err(
        "*/a * * * *",
        r#"minute field: step "a" is not a number from 1 to 65535"#,
    );
    check_err(
        "50-10 * * * *",
        r#"minute field: range "50-10" runs backwards"#,
    );
    check_err("1,,2 * * * *", r#"minute field: empty list item in "1,,2""#);
    check_err("1- * * * *", "minute field: missing value");
    check_err(
        "* * L * *",
        r#"day-of-month field: "L" is not supported (L, W, # and ? are not Vixie cron syntax)"#,
    );
    check_err(
        "* * 15W * *",
        r#"day-of-month field: "15W" is not supported (L, W, # and ? are not Vixie cron syntax)"#,
    );
    check_err(
        "* * * * MON#2",
        r#"day-of-week field: "MON#2" is not supported (L, W, # and ? are not Vixie cron syntax)"#,
    );
    check_err(
        "* * ? * MON",
        r#"day-of-month field: "?" is not supported (L, W, # and ? are not Vixie cron syntax)"#,
    );
    check_err(
        "* * * * 5L",
        r#"day-of-week field: "5L" is not supported (L, W, # and ? are not Vixie cron syntax)"#,
    );
    check_err("", "empty expression");
    check_err(
        "* * * *",
        "expected 5 fields (minute hour day-of-month month day-of-week), 6 (seconds first) or 7 (seconds … year), found 4",
    );
    check_err(
        "* * * * * * * *",
        "expected 5 fields (minute hour day-of-month month day-of-week), 6 (seconds first) or 7 (seconds … year), found 8",
    );
    check_err(
        "@reboot",
        r#"unknown macro "@reboot" (supported: @yearly @annually @monthly @weekly @daily @midnight @hourly)"#,
    );
}

#[test]
fn never_firing_expressions_are_rejected() {
    let never =
        "it can never fire (no date matches its day-of-month, month, day-of-week and year fields)";
    check_err("0 0 31 2 *", never);
    check_err("0 0 30 2 *", never);
    check_err("0 0 31 4,6,9,11 *", never);
    // Feb 29 2027 does not exist.
    check_err("0 0 0 29 2 * 2027", never);
    // Possible: OR with a weekday rescues the impossible date.
    assert!(CronExpr::parse("0 0 31 2 MON").is_ok());
}

#[test]
fn fixed_time_classification() {
    for (expr, fixed) in [
        ("30 2 * * *", true),
        ("0 30 2 * * *", true),
        ("0 0 1 1 *", true),
        ("0 * * * *", false),
        ("*/30 2 * * *", false),
        ("0,30 2 * * *", false),
        ("* 30 2 * * *", false),
    ] {
        let e = CronExpr::parse(expr).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.is_fixed_time(), fixed, "{expr}");
    }
}

#[test]
fn next_after_keeps_the_zone_and_is_strictly_after() {
    let e = CronExpr::parse("0 0 * * * *").unwrap_or_else(|e| panic!("{e}"));
    let at: jiff::Zoned = "2026-06-05T10:00:00[Europe/Berlin]"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let next = e.next_after(&at).unwrap_or_else(|| panic!("no next"));
    assert_eq!(next.time_zone().iana_name(), Some("Europe/Berlin"));
    assert_eq!(rfc3339(&next), "2026-06-05T11:00:00+02:00");
}

#[test]
fn huge_steps_and_extreme_instants_do_not_panic() {
    for expr in [
        "0 0 0 1 1 * */65535",
        "*/65535 * * * *",
        "0 0 0 1 1 * 1970/65000",
    ] {
        let e = CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert!(
            e.matches(jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0)),
            "{expr}"
        );
    }
    let e = CronExpr::parse("* * * * * *").unwrap_or_else(|e| panic!("{e}"));
    for zone in [UTC, NY, "Australia/Lord_Howe"] {
        let tz = jiff::tz::TimeZone::get(zone).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            e.next_after(&jiff::Timestamp::MAX.to_zoned(tz.clone())),
            None,
            "{zone}"
        );
        let from_min = e.next_after(&jiff::Timestamp::MIN.to_zoned(tz));
        assert!(
            from_min
                .as_ref()
                .is_some_and(|z| z.timestamp() > jiff::Timestamp::MIN),
            "{zone}: {from_min:?}"
        );
    }
}
