//! Rota's job model and everything that can be decided about a job without doing IO
//! beyond reading its file: parsing YAML, TOML, JSON and script headers into [`model::Job`],
//! validation that reports every problem with `file:line:col`, parameter coercion,
//! `{{ … }}` templating, `if:` expressions and the step DAG.
//!
//! This crate deliberately knows nothing of tokio, SQL, HTTP or processes.
#![warn(missing_docs)]

mod check;
mod convert;
pub mod dag;
pub mod diag;
pub mod duration;
pub mod model;
pub mod params;
pub mod parse;
pub mod template;
mod tree;
