//! Schedule maths. STUB: being written.
#![warn(missing_docs)]

pub mod cron;
