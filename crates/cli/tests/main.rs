//! End-to-end tests of the `rota` binary: each test runs the real executable in a fresh
//! working directory with a fresh `ROTA_HOME` and checks its stdout, stderr, exit code,
//! the files its steps touch and the processes they leave (none).
//!
//! One integration-test binary with a module per area keeps link time down on 2-core CI.

mod util;

mod admin;
mod artifacts;
mod confirm;
mod container;
mod crash;
mod dag;
mod edges;
mod env_file;
mod gates;
mod job_steps;
mod jobs;
mod kept_reports;
mod logs;
mod notebook;
mod notebook_resume;
mod notebook_tools;
mod plans;
mod process;
mod remote;
mod reports;
mod resources;
mod retention;
mod retry;
mod rollback;
mod run;
mod runbooks;
mod runs;
mod sandbox;
mod schedule;
mod sql;
mod templates;
mod tls;
mod validate;
