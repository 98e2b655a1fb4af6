//! Tests of the scheduler daemon: the clock-driven state machine, webhook verification and
//! routing, the job directory, and the real `rota` binary killed and restarted.

mod api_features;
mod container;
mod fleet;
mod fleet_paths;
mod hooks;
mod jobdir;
mod notify;
mod postgres;
mod process;
mod process_sched;
mod scheduler;
mod support;
mod takeover;
