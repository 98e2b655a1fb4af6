//! The scheduler state machine driven by an injected clock: every overlap and catch-up mode,
//! pause and resume, intervals, one-off and `after` triggers, jitter.

use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::RunStatus;
use rota_server::scheduler::{Cursor, Decision, JobKey, Outcome, Scheduler, TriggerRun};
use rota_server::trigger::CompiledTrigger;

fn t(text: &str) -> Timestamp {
    text.parse().expect("test instant")
}

fn key(job: &str) -> JobKey {
    ("default".to_owned(), job.to_owned())
}

/// A scheduler with one job parsed from `yaml`, its triggers' cursors at `start`; run ids
/// are `r1`, `r2`, ….
fn scheduler_with(yaml: &str, start: Timestamp) -> Scheduler {
    let mut scheduler = empty_scheduler();
    add(&mut scheduler, yaml, start);
    scheduler
}

/// A scheduler with job `tick` (every minute, with `policy`), last decided at 00:00:30.
fn minutely_tick(policy: &str) -> Scheduler {
    scheduler_with(
        &job_yaml("tick", MINUTELY, policy),
        t("2026-01-01T00:00:30Z"),
    )
}

/// Ticks at 00:01, 00:02 and 00:03: three occurrences of a minutely job.
fn tick_minutes_1_to_3(s: &mut Scheduler) {
    for minute in 1..=3 {
        s.tick(t(&format!("2026-01-01T00:0{minute}:00Z")));
    }
}

/// Job `tick`'s run `run` is the only one startable now.
fn assert_starts(s: &mut Scheduler, run: &str) {
    assert_eq!(s.take_startable(), [(key("tick"), run.to_owned())]);
}

/// A scheduler with no job; run ids are `r1`, `r2`, ….
fn empty_scheduler() -> Scheduler {
    let mut n = 0;
    Scheduler::new(
        Duration::from_secs(5),
        Box::new(move || {
            n += 1;
            format!("r{n}")
        }),
    )
}

fn add(scheduler: &mut Scheduler, yaml: &str, start: Timestamp) {
    add_with_cursor(scheduler, yaml, Cursor::fresh(start));
}

/// Loads the job of `yaml` with every trigger at `cursor`, as the server does at start-up
/// from what the store holds.
fn add_with_cursor(scheduler: &mut Scheduler, yaml: &str, cursor: Cursor) {
    let job = rota_core::parse::parse_str(yaml, "job.yaml", rota_core::parse::Format::Yaml)
        .expect("valid job")
        .remove(0);
    let triggers = CompiledTrigger::compile_all(&job).expect("triggers compile");
    let id = job.id.clone();
    let live_since = cursor.evaluated_until;
    scheduler.upsert_job(key(&id), job, triggers, |_| cursor.clone(), live_since);
}

fn job_yaml(id: &str, triggers: &str, policy: &str) -> String {
    format!(
        "id: {id}\ntriggers:\n{triggers}\npolicy:\n{policy}\nsteps:\n  - id: main\n    sh: 'true'\n"
    )
}

/// (instant, outcome) of each decided occurrence, outcomes spelled `run r1`, `skipped: …`.
fn summary(decisions: &[Decision]) -> Vec<(String, String)> {
    decisions
        .iter()
        .map(|d| {
            let outcome = match &d.outcome {
                Outcome::Run { run_id } => format!("run {run_id}"),
                Outcome::Skipped(reason) => format!("skipped: {reason}"),
                Outcome::Missed(reason) => format!("missed: {reason}"),
            };
            (d.scheduled_at.to_string(), outcome)
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const MINUTELY: &str = "  - cron: '* * * * *'";

#[test]
fn cron_fires_each_due_minute_once_and_sleeps_until_the_next() {
    let mut s = minutely_tick("  overlap: allow");
    assert_eq!(s.next_wake(), Some(t("2026-01-01T00:01:00Z")));
    assert!(s.tick(t("2026-01-01T00:00:59Z")).occurrences.is_empty());
    let d = s.tick(t("2026-01-01T00:01:00.002Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:01:00Z", "run r1")])
    );
    // The same instant again decides nothing: an occurrence is decided once.
    assert!(s.tick(t("2026-01-01T00:01:00.500Z")).occurrences.is_empty());
    assert_eq!(s.next_wake(), Some(t("2026-01-01T00:02:00Z")));
}

#[test]
fn overlap_skip_records_skipped_occurrence_while_a_run_is_active() {
    let mut s = minutely_tick("  overlap: skip");
    s.tick(t("2026-01-01T00:01:00Z"));
    assert_starts(&mut s, "r1");
    let d = s.tick(t("2026-01-01T00:02:00Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[(
            "2026-01-01T00:02:00Z",
            "skipped: overlap policy skip: a run is still active"
        )])
    );
    s.run_finished("r1", t("2026-01-01T00:02:10Z"), RunStatus::Succeeded);
    let d = s.tick(t("2026-01-01T00:03:00Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:03:00Z", "run r2")])
    );
}

#[test]
fn overlap_buffer_one_keeps_one_waiting_and_skips_the_rest() {
    let mut s = minutely_tick("  overlap: buffer_one");
    s.tick(t("2026-01-01T00:01:00Z"));
    assert_eq!(s.take_startable().len(), 1);
    let d = s.tick(t("2026-01-01T00:02:00Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:02:00Z", "run r2")])
    );
    assert!(s.take_startable().is_empty(), "r2 waits for r1");
    let d = s.tick(t("2026-01-01T00:03:00Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[(
            "2026-01-01T00:03:00Z",
            "skipped: overlap policy buffer_one: a run is already buffered"
        )])
    );
    s.run_finished("r1", t("2026-01-01T00:03:30Z"), RunStatus::Succeeded);
    assert_starts(&mut s, "r2");
}

#[test]
fn overlap_buffer_all_queues_every_occurrence_and_runs_them_in_order() {
    let mut s = minutely_tick("  overlap: buffer_all");
    tick_minutes_1_to_3(&mut s);
    assert_eq!(s.load_of(&key("tick")), (0, 3));
    assert_starts(&mut s, "r1");
    s.run_finished("r1", t("2026-01-01T00:03:10Z"), RunStatus::Failed);
    assert_starts(&mut s, "r2");
    s.run_finished("r2", t("2026-01-01T00:03:20Z"), RunStatus::Succeeded);
    assert_starts(&mut s, "r3");
}

#[test]
fn overlap_cancel_running_cancels_the_active_run_then_starts() {
    let mut s = minutely_tick("  overlap: cancel_running");
    s.tick(t("2026-01-01T00:01:00Z"));
    s.take_startable();
    let d = s.tick(t("2026-01-01T00:02:00Z"));
    assert_eq!(d.cancel, ["r1"]);
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:02:00Z", "run r2")])
    );
    assert!(
        s.take_startable().is_empty(),
        "r2 starts once r1 has stopped"
    );
    s.run_finished("r1", t("2026-01-01T00:02:01Z"), RunStatus::Cancelled);
    assert_starts(&mut s, "r2");
}

#[test]
fn overlap_allow_accepts_every_occurrence_and_concurrency_caps_starts() {
    let mut s = minutely_tick("  overlap: allow\n  concurrency: 2");
    tick_minutes_1_to_3(&mut s);
    assert_eq!(s.take_startable().len(), 2);
    assert_eq!(s.load_of(&key("tick")), (2, 1));
}

fn downtime(policy: &str) -> Vec<(String, String)> {
    // Last decided at 00:00:30; the server comes back at 00:05:30: 00:01 … 00:05 were missed.
    let mut s = minutely_tick(policy);
    summary(&s.tick(t("2026-01-01T00:05:30Z")).occurrences)
}

#[test]
fn catchup_all_runs_every_missed_occurrence_in_the_window() {
    let got = downtime("  overlap: buffer_all\n  catchup: { window: 150s, mode: all }");
    assert_eq!(
        got,
        pairs(&[
            ("2026-01-01T00:01:00Z", "missed: outside catch-up window"),
            ("2026-01-01T00:02:00Z", "missed: outside catch-up window"),
            ("2026-01-01T00:03:00Z", "run r1"),
            ("2026-01-01T00:04:00Z", "run r2"),
            ("2026-01-01T00:05:00Z", "run r3"),
        ])
    );
}

#[test]
fn catchup_last_runs_only_the_latest_missed_occurrence() {
    let got = downtime("  catchup: { window: 1h, mode: last }");
    assert_eq!(got.len(), 5);
    assert!(
        got[..4]
            .iter()
            .all(|(_, o)| o.starts_with("missed: catch-up mode last")),
        "{got:?}"
    );
    assert_eq!(
        got[4],
        ("2026-01-01T00:05:00Z".to_owned(), "run r1".to_owned())
    );
}

#[test]
fn catchup_none_records_every_missed_occurrence() {
    let got = downtime("  catchup: { window: 1h, mode: none }");
    assert_eq!(got.len(), 5);
    assert!(
        got.iter().all(|(_, o)| o == "missed: catch-up mode none"),
        "{got:?}"
    );
}

#[test]
fn catchup_runs_meet_the_overlap_policy_too() {
    let got = downtime("  overlap: skip\n  catchup: { window: 1h, mode: all }");
    assert_eq!(got[0].1, "run r1");
    assert!(
        got[1..]
            .iter()
            .all(|(_, o)| o.starts_with("skipped: overlap policy skip")),
        "{got:?}"
    );
}

#[test]
fn paused_jobs_record_skipped_occurrences_until_resumed() {
    let mut s = minutely_tick("  overlap: allow");
    s.set_paused(&key("tick"), true, None);
    let d = s.tick(t("2026-01-01T00:01:00Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:01:00Z", "skipped: paused")])
    );
    // Resumed, but only from 00:03: 00:02 is still paused.
    s.set_paused(&key("tick"), false, Some(t("2026-01-01T00:03:00Z")));
    let d = s.tick(t("2026-01-01T00:02:00Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:02:00Z", "skipped: paused")])
    );
    let d = s.tick(t("2026-01-01T00:03:00Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:03:00Z", "run r1")])
    );
}

#[test]
fn a_start_anchored_interval_keeps_its_grid() {
    let yaml = job_yaml(
        "every",
        "  - every: 30s",
        "  overlap: allow\n  concurrency: 5",
    );
    let mut s = scheduler_with(&yaml, t("2026-01-01T00:00:00Z"));
    assert_eq!(s.next_wake(), Some(t("2026-01-01T00:00:30Z")));
    let d = s.tick(t("2026-01-01T00:00:30.001Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:00:30Z", "run r1")])
    );
    // Woken late (still within the grace): the grid does not move.
    let d = s.tick(t("2026-01-01T00:01:02Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:01:00Z", "run r2")])
    );
    assert_eq!(s.next_wake(), Some(t("2026-01-01T00:01:30Z")));
}

#[test]
fn an_end_anchored_interval_waits_for_the_run_to_end() {
    let yaml = job_yaml(
        "delay",
        "  - every: 30s\n    anchor: end",
        "  overlap: allow",
    );
    let mut s = scheduler_with(&yaml, t("2026-01-01T00:00:00Z"));
    let d = s.tick(t("2026-01-01T00:00:30Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:00:30Z", "run r1")])
    );
    s.take_startable();
    assert_eq!(s.next_wake(), None, "nothing is due while the run is going");
    assert!(s.tick(t("2026-01-01T00:02:00Z")).occurrences.is_empty());
    s.run_finished("r1", t("2026-01-01T00:02:10Z"), RunStatus::Succeeded);
    assert_eq!(s.next_wake(), Some(t("2026-01-01T00:02:40Z")));
}

/// A scheduler restarted with an end-anchored interval whose last occurrence was at 00:00:30
/// and ran as `old`.
fn restarted_delay(finished_at: Option<Timestamp>) -> Scheduler {
    let yaml = job_yaml(
        "delay",
        "  - every: 30s\n    anchor: end",
        "  overlap: allow",
    );
    let mut s = empty_scheduler();
    add_with_cursor(
        &mut s,
        &yaml,
        Cursor {
            origin: t("2026-01-01T00:00:00Z"),
            evaluated_until: t("2026-01-01T00:00:30Z"),
            last_run: Some(TriggerRun {
                run_id: "old".to_owned(),
                finished_at,
            }),
        },
    );
    s
}

#[test]
fn after_a_restart_an_end_anchored_interval_counts_from_its_last_run_end() {
    // The run of the 00:00:30 occurrence ended at 00:02:10: due 30 s later, not at 00:01:00.
    let mut s = restarted_delay(Some(t("2026-01-01T00:02:10Z")));
    assert_eq!(s.next_wake(), Some(t("2026-01-01T00:02:40Z")));
    assert!(s.tick(t("2026-01-01T00:02:00Z")).occurrences.is_empty());
    let d = s.tick(t("2026-01-01T00:02:40Z"));
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T00:02:40Z", "run r1")])
    );
}

#[test]
fn after_a_restart_an_end_anchored_interval_waits_for_its_unfinished_run() {
    // The server died while the 00:00:30 run was going; it resumes as `old`.
    let mut s = restarted_delay(None);
    s.adopt_queued(&key("delay"), "old", 1);
    s.take_startable();
    assert_eq!(
        s.next_wake(),
        None,
        "nothing is due while the old run is going"
    );
    assert!(s.tick(t("2026-01-01T00:05:00Z")).occurrences.is_empty());
    s.run_finished("old", t("2026-01-01T00:06:00Z"), RunStatus::Succeeded);
    assert_eq!(s.next_wake(), Some(t("2026-01-01T00:06:30Z")));
}

#[test]
fn an_at_trigger_fires_once() {
    let yaml = job_yaml("once", "  - at: '2026-01-01T00:10:00Z'", "  overlap: allow");
    let mut s = scheduler_with(&yaml, t("2026-01-01T00:00:00Z"));
    assert_eq!(s.next_wake(), Some(t("2026-01-01T00:10:00Z")));
    assert_eq!(s.tick(t("2026-01-01T00:10:00Z")).occurrences.len(), 1);
    assert_eq!(s.next_wake(), None);
    assert!(s.tick(t("2026-01-02T00:00:00Z")).occurrences.is_empty());
}

#[test]
fn an_after_trigger_fires_on_the_watched_outcome_only() {
    let mut s = scheduler_with(
        &job_yaml("upstream", MINUTELY, "  overlap: allow"),
        t("2026-01-01T00:00:30Z"),
    );
    add(
        &mut s,
        &job_yaml(
            "downstream",
            "  - after: { job: upstream, on: success }",
            "  overlap: allow",
        ),
        t("2026-01-01T00:00:30Z"),
    );
    s.tick(t("2026-01-01T00:01:00Z"));
    s.take_startable();
    let d = s.run_finished("r1", t("2026-01-01T00:01:05Z"), RunStatus::Failed);
    assert!(
        d.occurrences.is_empty(),
        "a failure does not fire `on: success`"
    );
    s.tick(t("2026-01-01T00:02:00Z"));
    s.take_startable();
    let d = s.run_finished("r2", t("2026-01-01T00:02:05Z"), RunStatus::Succeeded);
    assert_eq!(d.occurrences.len(), 1);
    assert_eq!(d.occurrences[0].job, key("downstream"));
    assert_eq!(d.occurrences[0].scheduled_at, t("2026-01-01T00:02:05Z"));
}

#[test]
fn jitter_delays_the_firing_within_its_bound_and_deterministically() {
    let yaml = job_yaml(
        "jit",
        "  - cron: '0 * * * *'\n    jitter: 10m",
        "  overlap: allow",
    );
    let a = scheduler_with(&yaml, t("2026-01-01T00:30:00Z"))
        .next_wake()
        .expect("wake");
    let b = scheduler_with(&yaml, t("2026-01-01T00:30:00Z"))
        .next_wake()
        .expect("wake");
    assert_eq!(a, b);
    assert!(
        a >= t("2026-01-01T01:00:00Z") && a <= t("2026-01-01T01:10:00Z"),
        "{a}"
    );
    let mut s = scheduler_with(&yaml, t("2026-01-01T00:30:00Z"));
    // Due at 01:00 but jittered: recorded with its scheduled instant once the delay passed.
    let d = s.tick(a);
    assert_eq!(
        summary(&d.occurrences),
        pairs(&[("2026-01-01T01:00:00Z", "run r1")])
    );
}

#[test]
fn a_changed_job_keeps_its_runs_and_an_unloaded_job_stops_firing() {
    let mut s = minutely_tick("  overlap: skip");
    s.tick(t("2026-01-01T00:01:00Z"));
    s.take_startable();
    add(
        &mut s,
        &job_yaml("tick", "  - cron: '*/2 * * * *'", "  overlap: skip"),
        t("2026-01-01T00:01:00Z"),
    );
    assert_eq!(s.load_of(&key("tick")), (1, 0));
    assert_eq!(s.next_wake(), Some(t("2026-01-01T00:02:00Z")));
    s.remove_job(&key("tick"));
    assert_eq!(s.next_wake(), None);
    assert!(s.tick(t("2026-01-01T01:00:00Z")).occurrences.is_empty());
}

const EVERY_SECOND: &str = "  - interval: 1s";

/// A per-second job last decided at 00:00:00; the server came back (loaded the job) at
/// `restart` and ticks at `tick`: 00:00:01 … were due while no server ran.
fn after_downtime(policy: &str, restart: &str, tick: &str) -> Vec<(String, String)> {
    let mut s = empty_scheduler();
    let job = rota_core::parse::parse_str(
        &job_yaml("tick", EVERY_SECOND, policy),
        "job.yaml",
        rota_core::parse::Format::Yaml,
    )
    .expect("valid job")
    .remove(0);
    let triggers = CompiledTrigger::compile_all(&job).expect("triggers compile");
    let cursor = Cursor::fresh(t("2026-01-01T00:00:00Z"));
    s.upsert_job(key("tick"), job, triggers, |_| cursor.clone(), t(restart));
    summary(&s.tick(t(tick)).occurrences)
}

fn runs(got: &[(String, String)]) -> Vec<String> {
    got.iter()
        .filter(|(_, o)| o.starts_with("run "))
        .map(|(at, _)| at.clone())
        .collect()
}

#[test]
fn occurrences_due_during_downtime_all_go_through_catchup_none() {
    // 6 s down, back 0.4 s after the last missed occurrence: all within the misfire grace.
    let got = after_downtime(
        "  overlap: allow\n  catchup: { mode: none }",
        "2026-01-01T00:00:06.400Z",
        "2026-01-01T00:00:06.500Z",
    );
    assert_eq!(got.len(), 6, "{got:?}");
    assert!(
        got.iter().all(|(_, o)| o == "missed: catch-up mode none"),
        "{got:?}"
    );
}

#[test]
fn occurrences_due_during_downtime_run_once_under_catchup_last() {
    let got = after_downtime(
        "  overlap: allow\n  catchup: { mode: last }",
        "2026-01-01T00:00:06.400Z",
        "2026-01-01T00:00:06.500Z",
    );
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(runs(&got), ["2026-01-01T00:00:06Z"], "{got:?}");
}

#[test]
fn occurrences_due_during_downtime_outside_the_window_are_missed_under_catchup_all() {
    let got = after_downtime(
        "  overlap: allow\n  catchup: { window: 3s, mode: all }",
        "2026-01-01T00:00:06.400Z",
        "2026-01-01T00:00:06.500Z",
    );
    // The window reaches back to 00:00:03.5.
    assert_eq!(
        runs(&got),
        [
            "2026-01-01T00:00:04Z",
            "2026-01-01T00:00:05Z",
            "2026-01-01T00:00:06Z"
        ],
        "{got:?}"
    );
    assert!(
        got[..3]
            .iter()
            .all(|(_, o)| o == "missed: outside catch-up window"),
        "{got:?}"
    );
    let all = after_downtime(
        "  overlap: allow\n  catchup: { mode: all }",
        "2026-01-01T00:00:06.400Z",
        "2026-01-01T00:00:06.500Z",
    );
    assert_eq!(runs(&all).len(), 6, "{all:?}");
}

#[test]
fn a_single_occurrence_due_during_downtime_is_late_however_recent() {
    // Down for 0.8 s only: the one missed occurrence is 0.2 s old, yet no server ran then.
    let got = after_downtime(
        "  overlap: allow\n  catchup: { mode: none }",
        "2026-01-01T00:00:01.200Z",
        "2026-01-01T00:00:01.300Z",
    );
    assert_eq!(
        got,
        pairs(&[("2026-01-01T00:00:01Z", "missed: catch-up mode none")])
    );
}

#[test]
fn after_the_catchup_the_next_occurrence_fires_on_time() {
    let mut s = empty_scheduler();
    let job = rota_core::parse::parse_str(
        &job_yaml(
            "tick",
            EVERY_SECOND,
            "  overlap: allow\n  catchup: { mode: none }",
        ),
        "job.yaml",
        rota_core::parse::Format::Yaml,
    )
    .expect("valid job")
    .remove(0);
    let triggers = CompiledTrigger::compile_all(&job).expect("triggers compile");
    let cursor = Cursor::fresh(t("2026-01-01T00:00:00Z"));
    s.upsert_job(
        key("tick"),
        job,
        triggers,
        |_| cursor.clone(),
        t("2026-01-01T00:00:06.400Z"),
    );
    assert_eq!(s.tick(t("2026-01-01T00:00:06.500Z")).occurrences.len(), 6);
    assert_eq!(s.next_wake(), Some(t("2026-01-01T00:00:07Z")));
    assert_eq!(
        summary(&s.tick(t("2026-01-01T00:00:07.010Z")).occurrences),
        pairs(&[("2026-01-01T00:00:07Z", "run r1")])
    );
}

/// A per-second job loaded at 00:00:00 by a server that then stalls until `tick`.
fn after_stall(policy: &str, tick: &str) -> Vec<(String, String)> {
    let mut s = scheduler_with(
        &job_yaml("tick", EVERY_SECOND, policy),
        t("2026-01-01T00:00:00Z"),
    );
    summary(&s.tick(t(tick)).occurrences)
}

#[test]
fn a_running_server_that_falls_behind_fires_the_latest_occurrence_and_catches_up_the_rest() {
    let tick = "2026-01-01T00:00:03.200Z";
    // `none`: the late ones are missed, the one still on time runs.
    let none = after_stall("  overlap: allow\n  catchup: { mode: none }", tick);
    assert_eq!(runs(&none), ["2026-01-01T00:00:03Z"], "{none:?}");
    assert_eq!(none.len(), 3);
    // `last`: one run only, the on-time one; the late ones are superseded by it.
    let last = after_stall("  overlap: allow\n  catchup: { mode: last }", tick);
    assert_eq!(runs(&last), ["2026-01-01T00:00:03Z"], "{last:?}");
    assert!(
        last[..2]
            .iter()
            .all(|(_, o)| o.starts_with("missed: catch-up mode last")),
        "{last:?}"
    );
    // `all`: every one in the window.
    let all = after_stall("  overlap: allow\n  catchup: { mode: all }", tick);
    assert_eq!(runs(&all).len(), 3, "{all:?}");
}

#[test]
fn one_occurrence_later_than_the_misfire_grace_meets_the_catchup_policy() {
    let start = t("2026-01-01T00:00:30Z");
    let mut none = scheduler_with(
        &job_yaml("tick", MINUTELY, "  catchup: { mode: none }"),
        start,
    );
    assert_eq!(
        summary(&none.tick(t("2026-01-01T00:01:07Z")).occurrences),
        pairs(&[("2026-01-01T00:01:00Z", "missed: catch-up mode none")])
    );
    let mut on_time = scheduler_with(
        &job_yaml("tick", MINUTELY, "  catchup: { mode: none }"),
        start,
    );
    assert_eq!(
        summary(&on_time.tick(t("2026-01-01T00:01:04Z")).occurrences),
        pairs(&[("2026-01-01T00:01:00Z", "run r1")])
    );
}
