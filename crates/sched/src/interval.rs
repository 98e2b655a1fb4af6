//! Intervals.
