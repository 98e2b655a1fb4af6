//! [`SecretValue`]: a plaintext that never shows itself by accident.

use std::fmt;

/// A secret's plaintext. `Debug` and `Display` print `***`; [`SecretValue::expose`] is the
/// one, greppable, way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a plaintext.
    pub fn new(text: impl Into<String>) -> SecretValue {
        SecretValue(text.into())
    }

    /// The plaintext.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The plaintext, consuming the wrapper.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
