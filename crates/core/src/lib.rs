//! Rota's job model and everything that can be decided about a job without doing IO
//! beyond reading its file: parsing YAML, TOML, JSON and script headers into [`model::Job`],
//! validation that reports every problem with `file:line:col`, parameter coercion,
//! `{{ … }}` templating, `if:` expressions and the step DAG.
//!
//! This crate deliberately knows nothing of tokio, SQL, HTTP or processes.
//!
//! ```
//! use rota_core::parse::{Format, parse_str};
//!
//! let source = "id: hello\nsteps:\n  - id: greet\n    sh: echo hi\n";
//! let jobs = parse_str(source, "hello.yaml", Format::Yaml)?;
//! assert_eq!(jobs[0].steps[0].id, "greet");
//!
//! // Every problem is reported with file:line:col.
//! let bad = "id: hello\nsteps:\n  - id: greet\n    shh: echo hi\n";
//! let report = parse_str(bad, "hello.yaml", Format::Yaml)
//!     .err()
//!     .map(|diagnostics| diagnostics.to_string())
//!     .unwrap_or_default();
//! assert!(report.contains("hello.yaml:3:9: step `greet` has no kind"));
//! assert!(report.contains("hello.yaml:4:5: unknown key `shh` in step"));
//! # Ok::<(), rota_core::diag::Diagnostics>(())
//! ```
#![warn(missing_docs)]

pub mod calls;
mod check;
mod convert;
pub mod dag;
pub mod diag;
pub mod dotenv;
pub mod duration;
pub mod kinds;
pub mod limits;
pub mod model;
pub mod params;
pub mod parse;
pub mod plan;
pub mod resources;
pub mod runbook;
pub mod stored;
pub mod template;
mod tree;
