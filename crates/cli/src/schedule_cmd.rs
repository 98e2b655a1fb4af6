//! `rota schedule preview`: the next fire times of a cron expression.

use serde_json::Value;

use crate::EXIT_USAGE;
use crate::args::ScheduleCommand;
use crate::output::Printer;

pub fn schedule(command: ScheduleCommand, out: &Printer) -> u8 {
    match command {
        ScheduleCommand::Preview {
            cron,
            tz,
            from,
            count,
        } => preview(&cron, &tz, from.as_deref(), count, out),
        // Commands that read the store are dispatched to serve_cmd by main.
        ScheduleCommand::Next(_) | ScheduleCommand::History(_) => EXIT_USAGE,
    }
}

fn preview(cron: &str, tz: &str, from: Option<&str>, count: usize, out: &Printer) -> u8 {
    let expr = match rota_sched::cron::CronExpr::parse(cron) {
        Ok(expr) => expr,
        Err(error) => {
            eprintln!("rota: {error}");
            return EXIT_USAGE;
        }
    };
    let zone = match jiff::tz::TimeZone::get(tz) {
        Ok(zone) => zone,
        Err(error) => {
            eprintln!("rota: unknown time zone {tz:?}: {error}");
            return EXIT_USAGE;
        }
    };
    let from = match from {
        None => jiff::Timestamp::now(),
        Some(text) => match parse_instant(text) {
            Some(at) => at,
            None => {
                eprintln!(
                    "rota: --from {text:?} is not an RFC 3339 instant (e.g. 2026-03-29T00:00:00Z)"
                );
                return EXIT_USAGE;
            }
        },
    };
    let times: Vec<String> = rota_sched::next::preview(&expr, zone, from, count.min(10_000))
        .iter()
        .map(rota_sched::next::rfc3339)
        .collect();
    if times.len() < count {
        eprintln!(
            "rota: {cron:?} fires only {} more time(s) after {from}",
            times.len()
        );
    }
    if out.is_json() {
        out.json(&Value::Array(
            times.into_iter().map(Value::String).collect(),
        ));
    } else {
        out.text(&times.iter().map(|t| format!("{t}\n")).collect::<String>());
    }
    0
}

/// RFC 3339 with an offset, or a zoned datetime jiff understands.
fn parse_instant(text: &str) -> Option<jiff::Timestamp> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| text.parse::<jiff::Zoned>().ok().map(|z| z.timestamp()))
}
