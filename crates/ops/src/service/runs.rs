//! The runs operations of [`crate::Rota`].

use super::Session;

/// The runs operations.
pub trait Runs {}

impl Runs for Session {}
