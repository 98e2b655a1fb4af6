//! Integration tests of the `/api/v1` router: in-process with `oneshot` against a real
//! SQLite store in a temp dir, plus one test over a real TCP listener.

mod support;

mod audit;
mod auth;
mod conformance;
mod errors;
mod features;
mod listener;
mod metrics;
mod pages;
mod plans;
mod retention;
mod writes;
