//! The secrets operations of [`crate::Rota`].

use super::Session;

/// The secrets operations.
pub trait Secrets {}

impl Secrets for Session {}
