//! `rota schedule preview`: the preview contract later checks rely on.

use serde_json::Value;

use crate::util::{Rota, assert_code, stderr};

fn preview(rota: &Rota, args: &[&str]) -> Vec<String> {
    let json = rota.json_ok(&[&["schedule", "preview"], args].concat());
    match json {
        Value::Array(items) => items
            .into_iter()
            .map(|v| v.as_str().expect("an RFC 3339 string").to_owned())
            .collect(),
        other => panic!("expected a JSON array, got {other}"),
    }
}

#[test]
fn preview_prints_fire_times_with_the_zones_offset_across_a_dst_gap() {
    let rota = Rota::new();
    let times = preview(
        &rota,
        &[
            "--cron",
            "30 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-03-28T12:00:00Z",
            "--count",
            "3",
        ],
    );
    // 02:30 does not exist on 2026-03-29 in Berlin: a fixed-time job fires when the gap ends.
    assert_eq!(
        times,
        [
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
            "2026-03-31T02:30:00+02:00",
        ]
    );
}

#[test]
fn preview_of_a_bad_expression_exits_2_naming_the_field() {
    let rota = Rota::new();
    let output = rota.run([
        "schedule",
        "preview",
        "--cron",
        "61 * * * *",
        "--output",
        "json",
    ]);
    assert_code(&output, 2);
    let message = stderr(&output);
    assert!(message.contains("minute"), "{message}");
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout for a bad expression"
    );
    let output = rota.run([
        "schedule",
        "preview",
        "--cron",
        "0 0 * * *",
        "--tz",
        "Mars/Olympus",
    ]);
    assert_code(&output, 2);
    assert!(stderr(&output).contains("time zone"), "{}", stderr(&output));
}
