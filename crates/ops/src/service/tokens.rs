//! The tokens operations of [`crate::Rota`].

use super::Session;

/// The tokens operations.
pub trait Tokens {}

impl Tokens for Session {}
