//! The plans operations of [`crate::Rota`].

use super::Session;

/// The plans operations.
pub trait Plans {}

impl Plans for Session {}
