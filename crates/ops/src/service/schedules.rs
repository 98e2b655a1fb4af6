//! The schedules operations of [`crate::Rota`].

use super::Session;

/// The schedules operations.
pub trait Schedules {}

impl Schedules for Session {}
