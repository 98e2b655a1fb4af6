//! Conversions between Rust values and their stored form, shared by every query module.
//!
//! Timestamps are stored as integer microseconds since the Unix epoch (UTC), so they sort
//! and compare as numbers on SQLite and PostgreSQL alike; sub-microsecond precision is
//! dropped. JSON documents are stored as text.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rota_core::model::{RunStatus, StepStatus};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::StoreError;

/// The stored form of a timestamp.
pub(crate) fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// Reads a non-null timestamp column.
pub(crate) fn ts(row: &AnyRow, column: &'static str) -> Result<Timestamp, StoreError> {
    let value: i64 = row.try_get(column)?;
    from_micros(column, value)
}

/// Reads a nullable timestamp column.
pub(crate) fn opt_ts(row: &AnyRow, column: &'static str) -> Result<Option<Timestamp>, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    value.map(|v| from_micros(column, v)).transpose()
}

fn from_micros(column: &'static str, value: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(value).map_err(|e| StoreError::Corrupt {
        what: column,
        detail: e.to_string(),
    })
}

/// Reads a boolean: a `BOOLEAN` column selected as `CAST(col AS INTEGER)`, or a boolean
/// expression, which SQLite returns as an integer and PostgreSQL as a boolean.
pub(crate) fn flag(row: &AnyRow, column: &'static str) -> Result<bool, StoreError> {
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

/// Reads a run status column.
pub(crate) fn run_status(row: &AnyRow, column: &'static str) -> Result<RunStatus, StoreError> {
    let text: String = row.try_get(column)?;
    RunStatus::parse(&text).ok_or(StoreError::Corrupt {
        what: column,
        detail: format!("unknown run status {text:?}"),
    })
}

/// Reads a step status column.
pub(crate) fn step_status(row: &AnyRow, column: &'static str) -> Result<StepStatus, StoreError> {
    let text: String = row.try_get(column)?;
    StepStatus::parse(&text).ok_or(StoreError::Corrupt {
        what: column,
        detail: format!("unknown step status {text:?}"),
    })
}

/// Reads a JSON column.
pub(crate) fn json(row: &AnyRow, column: &'static str) -> Result<serde_json::Value, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        what: column,
        detail: e.to_string(),
    })
}

/// Reads a step-outputs column (a JSON object of strings).
pub(crate) fn outputs(
    row: &AnyRow,
    column: &'static str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        what: column,
        detail: e.to_string(),
    })
}

/// The stored form of step outputs.
pub(crate) fn outputs_text(outputs: &BTreeMap<String, String>) -> String {
    // A map of strings always serialises; the fallback only keeps this infallible.
    serde_json::to_string(outputs).unwrap_or_else(|_| "{}".to_owned())
}

/// Reads an unsigned counter (attempt numbers, pids) stored as BIGINT.
pub(crate) fn u32_col(row: &AnyRow, column: &'static str) -> Result<u32, StoreError> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        what: column,
        detail: format!("{value} is out of range"),
    })
}

/// Reads a nullable 32-bit signed column (exit codes, process group ids).
pub(crate) fn opt_i32(row: &AnyRow, column: &'static str) -> Result<Option<i32>, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|v| {
            i32::try_from(v).map_err(|_| StoreError::Corrupt {
                what: column,
                detail: format!("{v} is out of range"),
            })
        })
        .transpose()
}

/// Appends one row to the event log, inside the caller's transaction.
pub(crate) async fn append_event(
    conn: &mut AnyConnection,
    at: Timestamp,
    kind: &str,
    run_id: &str,
    step_id: Option<&str>,
    data: serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO events (at, kind, run_id, step_id, data) VALUES ($1, $2, $3, $4, $5)")
        .bind(micros(at))
        .bind(kind)
        .bind(run_id)
        .bind(step_id)
        .bind(data.to_string())
        .execute(&mut *conn)
        .await?;
    // A run's state change is also an audit entry, in the same transaction.
    if let Some(entry) = crate::audit::run_change_entry(at, kind, run_id, &data) {
        crate::run_digest::append_run_change_in(conn, &entry).await?;
    }
    Ok(())
}
