//! Rota's engine: turns a validated job into a run — the step DAG executed as supervised
//! processes, with retries, timeouts, cancellation, outputs and live, redacted logs — and
//! records every state change in the store.
//!
//! It knows nothing of HTTP or terminals: callers (the CLI, the server) give it a job and
//! a store and watch the run through its events.
#![warn(missing_docs)]

pub mod artifacts;
pub mod cgroup;
pub mod children;
pub mod confirm;
pub mod guardian;
pub mod kernels;
mod kinds;
pub mod notify;
pub mod outputs;
pub mod owner;
pub mod process;
pub mod recorder;
pub mod recovery;
pub mod redact;
pub mod remote;
pub mod resources;
pub mod run;
pub mod sandbox;
mod step;
