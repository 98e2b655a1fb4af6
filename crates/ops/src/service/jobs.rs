//! The jobs operations of [`crate::Rota`].

use super::Session;

/// The jobs operations.
pub trait Jobs {}

impl Jobs for Session {}
