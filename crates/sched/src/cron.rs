//! Cron expressions. STUB: being written.

/// A parsed cron expression.
#[derive(Debug, Clone)]
pub struct CronExpr {
    text: String,
}

/// Why an expression is invalid; the message names the bad field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(pub String);

impl CronExpr {
    /// Parses 5, 6 (seconds first) or 7 (… year) fields.
    pub fn parse(text: &str) -> Result<CronExpr, CronError> {
        Ok(CronExpr {
            text: text.to_owned(),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}
