//! Rota's scheduler daemon, `rota serve`: loads job files (and watches their directory),
//! fires their triggers — cron, interval, one-off `at`, `after` another job, webhooks — under
//! the job's overlap, catch-up, concurrency and pause policies, and runs the resulting runs
//! on a local worker pool through `rota-engine`, recording everything in `rota-store`.
//!
//! The promise: no occurrence is silently lost or run twice. Every occurrence is recorded —
//! as a run, or as `skipped`/`missed` with its reason — and an occurrence and its queued run
//! are written in one transaction before the run starts, so a crash at any moment leaves
//! either nothing (the occurrence is decided again, once) or a queued run (which runs).
//!
//! The decisions live in [`scheduler::Scheduler`], a pure state machine that takes "now" as
//! an argument; [`daemon`] is the thin tokio driver that sleeps until the next due instant.
//! It does not parse command lines or print tables (that is `rota-cli`).
//!
//! ```
//! use rota_server::scheduler::{Cursor, Outcome, Scheduler};
//! use rota_server::trigger::CompiledTrigger;
//!
//! let job = rota_core::parse::parse_str(
//!     "id: tick\ntriggers:\n  - cron: '0 * * * *'\nsteps:\n  - id: main\n    sh: 'true'\n",
//!     "tick.yaml",
//!     rota_core::parse::Format::Yaml,
//! )?
//! .remove(0);
//! let start: jiff::Timestamp = "2026-01-01T00:30:00Z".parse()?;
//! let mut ids = 0;
//! let mut scheduler = Scheduler::new(
//!     std::time::Duration::from_secs(5),
//!     Box::new(move || { ids += 1; format!("run-{ids}") }),
//! );
//! let triggers = CompiledTrigger::compile_all(&job)?;
//! let key = ("default".to_owned(), "tick".to_owned());
//! scheduler.upsert_job(key, job, triggers, |_| Cursor::fresh(start), start);
//! assert_eq!(scheduler.next_wake(), Some("2026-01-01T01:00:00Z".parse()?));
//! let decided = scheduler.tick("2026-01-01T01:00:00Z".parse()?);
//! assert_eq!(decided.occurrences[0].outcome, Outcome::Run { run_id: "run-1".into() });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod backfill;
pub mod daemon;
mod error;
pub mod fleet;
pub mod hooks;
pub mod http;
pub mod jobdir;
pub mod notifier;
pub mod retention;
pub mod scheduler;
pub mod tls;
pub mod trigger;
mod wake;

pub use daemon::{ServeConfig, serve};
pub use error::ServerError;
pub use rota_api::AuthMode;
