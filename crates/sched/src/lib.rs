//! Rota's schedule maths: cron expressions with Vixie semantics, DST-correct next fire times in
//! any IANA time zone, intervals and jitter, and the overlap and catch-up decisions the scheduler
//! daemon takes.
//!
//! Everything here is pure: "now" is always an argument, the crate never reads the clock, does no
//! IO and knows nothing of processes or the store.
//!
//! ```
//! use rota_sched::cron::CronExpr;
//! use rota_sched::next::{preview, rfc3339};
//!
//! let expr = CronExpr::parse("0 30 2 * * *")?;
//! let tz = jiff::tz::TimeZone::get("Europe/Berlin")?;
//! let from: jiff::Timestamp = "2026-03-28T12:00:00Z".parse()?;
//! let times: Vec<String> = preview(&expr, tz, from, 2).iter().map(rfc3339).collect();
//! // 02:30 does not exist on 2026-03-29 in Berlin: the fixed-time job fires when the gap ends.
//! assert_eq!(times, ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod cron;
pub mod interval;
pub mod next;
pub mod policy;

pub use cron::{CronError, CronExpr};
pub use next::{preview, rfc3339};
