//! The audit operations of [`crate::Rota`].

use super::Session;

/// The audit operations.
pub trait Audit {}

impl Audit for Session {}
