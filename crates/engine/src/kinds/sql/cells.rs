//! Values of each backend's rows as text and JSON, and parameters bound per backend.
//!
//! Rows are read as raw bytes and decoded here by the column's type, so any result can be
//! shown: integers, floats, booleans and text as themselves, NULL as null (an empty output),
//! bytes as `\x` and hex, dates and times in ISO 8601 (PostgreSQL's `timestamptz` in UTC),
//! decimals exactly as text, JSON columns as JSON. A type Rota does not know is shown as
//! its text when it is UTF-8, else as hex.

use rota_core::model::Value;
use sqlx::query::Query;
use sqlx::{Database, MySql, Postgres, Row as _, Sqlite, TypeInfo as _, ValueRef as _};

/// A value of a result, converted from the backend's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Json(Value),
    /// Dates, times, decimals: text in outputs and JSON alike.
    Shown(String),
}

impl Cell {
    /// The value as an output holds it (NULL is empty).
    pub(crate) fn to_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::UInt(u) => u.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Text(t) | Cell::Shown(t) => t.clone(),
            Cell::Bytes(b) => format!("\\x{}", hex(b)),
            Cell::Json(v) => v.to_string(),
        }
    }

    /// The value in the log's table: `NULL` shown, long values cut, one line.
    pub(crate) fn to_table_text(&self) -> String {
        if *self == Cell::Null {
            return "NULL".to_owned();
        }
        let text = self.to_text().replace(['\n', '\r', '\t'], " ");
        if text.chars().count() <= super::CELL_CHARS {
            return text;
        }
        let mut cut: String = text.chars().take(super::CELL_CHARS - 1).collect();
        cut.push('…');
        cut
    }

    /// The value in the `json` output.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Int(i) => Value::from(*i),
            Cell::UInt(u) => Value::from(*u),
            Cell::Float(f) => serde_json::Number::from_f64(*f)
                .map_or_else(|| Value::String(f.to_string()), Value::Number),
            Cell::Json(v) => v.clone(),
            other => Value::String(other.to_text()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Text when the bytes are UTF-8, else bytes.
fn text_or_bytes(bytes: &[u8]) -> Cell {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cell::Text(text.to_owned()),
        Err(_) => Cell::Bytes(bytes.to_vec()),
    }
}

/// A text-protocol value typed by how it reads: a number when it is one, else text.
fn typed_text(text: &str, numeric: bool) -> Cell {
    if numeric {
        if let Ok(i) = text.parse::<i64>() {
            return Cell::Int(i);
        }
        if let Ok(u) = text.parse::<u64>() {
            return Cell::UInt(u);
        }
        return Cell::Shown(text.to_owned());
    }
    Cell::Text(text.to_owned())
}

/// What the executor needs of a database beyond sqlx's traits.
pub(crate) trait Backend: Database {
    /// The value at `index` in `row`; `text_protocol` when the row came from a script.
    fn cell(row: &Self::Row, index: usize, text_protocol: bool) -> Cell;

    /// Rows a statement that returned none changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Binds one parameter: strings as text, integers, floats, booleans, null.
    fn bind_value<'q>(
        query: Query<'q, Self, <Self as Database>::Arguments<'q>>,
        value: &'q Value,
    ) -> Query<'q, Self, <Self as Database>::Arguments<'q>>;
}

/// Binds a JSON scalar with the encoders every backend has.
macro_rules! bind_scalar {
    ($query:expr, $value:expr) => {
        match $value {
            Value::Null => $query.bind(None::<String>),
            Value::Bool(b) => $query.bind(*b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => $query.bind(i),
                (None, Some(f)) if n.is_f64() => $query.bind(f),
                // Past i64: exact as text rather than rounded.
                _ => $query.bind(n.to_string()),
            },
            Value::String(s) => $query.bind(s.as_str()),
            // Validation refuses lists and maps; a stored revision could still hold one.
            other => $query.bind(other.to_string()),
        }
    };
}

impl Backend for Sqlite {
    fn cell(row: &Self::Row, index: usize, _text_protocol: bool) -> Cell {
        let Ok(raw) = row.try_get_raw(index) else {
            return Cell::Null;
        };
        if raw.is_null() {
            return Cell::Null;
        }
        // SQLite types each value, not each column: its storage class decides.
        let class = raw.type_info().name().to_owned();
        let got = match class.as_str() {
            "INTEGER" | "BOOLEAN" | "INT8" => row.try_get_unchecked::<i64, _>(index).map(Cell::Int),
            "REAL" => row.try_get_unchecked::<f64, _>(index).map(Cell::Float),
            "BLOB" => row.try_get_unchecked::<Vec<u8>, _>(index).map(Cell::Bytes),
            _ => row.try_get_unchecked::<String, _>(index).map(Cell::Text),
        };
        got.or_else(|_| {
            row.try_get_unchecked::<Vec<u8>, _>(index)
                .map(|b| text_or_bytes(&b))
        })
        .unwrap_or(Cell::Null)
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn bind_value<'q>(
        query: Query<'q, Self, <Self as Database>::Arguments<'q>>,
        value: &'q Value,
    ) -> Query<'q, Self, <Self as Database>::Arguments<'q>> {
        bind_scalar!(query, value)
    }
}

impl Backend for Postgres {
    fn cell(row: &Self::Row, index: usize, _text_protocol: bool) -> Cell {
        let Ok(raw) = row.try_get_raw(index) else {
            return Cell::Null;
        };
        if raw.is_null() {
            return Cell::Null;
        }
        let type_name = raw.type_info().name().to_owned();
        match raw.format() {
            sqlx::postgres::PgValueFormat::Text => match raw.as_str() {
                Ok(text) => pg_text(&type_name, text),
                Err(_) => Cell::Null,
            },
            sqlx::postgres::PgValueFormat::Binary => match raw.as_bytes() {
                Ok(bytes) => pg_binary(&type_name, bytes).unwrap_or_else(|| text_or_bytes(bytes)),
                Err(_) => Cell::Null,
            },
        }
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn bind_value<'q>(
        query: Query<'q, Self, <Self as Database>::Arguments<'q>>,
        value: &'q Value,
    ) -> Query<'q, Self, <Self as Database>::Arguments<'q>> {
        bind_scalar!(query, value)
    }
}

/// A value PostgreSQL sent as text (a script's results): typed where the type is plain.
fn pg_text(type_name: &str, text: &str) -> Cell {
    match type_name {
        "BOOL" => Cell::Bool(text == "t"),
        "INT2" | "INT4" | "INT8" | "OID" => typed_text(text, true),
        "FLOAT4" | "FLOAT8" => text
            .parse()
            .map_or_else(|_| Cell::Shown(text.to_owned()), Cell::Float),
        "JSON" | "JSONB" => {
            serde_json::from_str(text).map_or_else(|_| Cell::Text(text.to_owned()), Cell::Json)
        }
        "NUMERIC" | "DATE" | "TIME" | "TIMESTAMP" | "TIMESTAMPTZ" | "BYTEA" => {
            Cell::Shown(text.to_owned())
        }
        _ => Cell::Text(text.to_owned()),
    }
}

/// PostgreSQL's epoch, 2000-01-01, in microseconds since the Unix epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A value in PostgreSQL's binary format, for the types Rota knows.
fn pg_binary(type_name: &str, bytes: &[u8]) -> Option<Cell> {
    let be8 = || bytes.try_into().ok().map(i64::from_be_bytes);
    Some(match type_name {
        "BOOL" => Cell::Bool(*bytes.first()? != 0),
        "INT2" => Cell::Int(i16::from_be_bytes(bytes.try_into().ok()?).into()),
        "INT4" => Cell::Int(i32::from_be_bytes(bytes.try_into().ok()?).into()),
        "INT8" => Cell::Int(be8()?),
        "OID" => Cell::Int(u32::from_be_bytes(bytes.try_into().ok()?).into()),
        "FLOAT4" => Cell::Float(f32::from_be_bytes(bytes.try_into().ok()?).into()),
        "FLOAT8" => Cell::Float(f64::from_be_bytes(bytes.try_into().ok()?)),
        "BYTEA" => Cell::Bytes(bytes.to_vec()),
        "UUID" => Cell::Shown(uuid_text(bytes)?),
        "JSON" => Cell::Json(serde_json::from_slice(bytes).ok()?),
        // jsonb's binary form is a version byte (1), then the JSON text.
        "JSONB" => Cell::Json(serde_json::from_slice(bytes.get(1..)?).ok()?),
        "DATE" => {
            let days = i32::from_be_bytes(bytes.try_into().ok()?);
            Cell::Shown(match days {
                i32::MAX => "infinity".to_owned(),
                i32::MIN => "-infinity".to_owned(),
                _ => jiff::civil::date(2000, 1, 1)
                    .checked_add(jiff::Span::new().try_days(days).ok()?)
                    .ok()?
                    .to_string(),
            })
        }
        "TIMESTAMP" | "TIMESTAMPTZ" => {
            let micros = be8()?;
            Cell::Shown(match micros {
                i64::MAX => "infinity".to_owned(),
                i64::MIN => "-infinity".to_owned(),
                _ => {
                    let at =
                        jiff::Timestamp::from_microsecond(micros.checked_add(PG_EPOCH_MICROS)?)
                            .ok()?;
                    if type_name == "TIMESTAMPTZ" {
                        at.to_string()
                    } else {
                        at.to_zoned(jiff::tz::TimeZone::UTC).datetime().to_string()
                    }
                }
            })
        }
        "TIME" => {
            let micros = be8()?;
            let time = jiff::civil::Time::midnight()
                .checked_add(jiff::SignedDuration::from_micros(micros))
                .ok()?;
            Cell::Shown(time.to_string())
        }
        "NUMERIC" => Cell::Shown(pg_numeric(bytes)?),
        _ => return None,
    })
}

fn uuid_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let h = hex(bytes);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// PostgreSQL's binary `numeric` as exact decimal text: a header (digit count, weight of the
/// first base-10000 digit, sign, display scale), then the base-10000 digits.
fn pg_numeric(bytes: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes([
            *bytes.get(i * 2)?,
            *bytes.get(i * 2 + 1)?,
        ]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let scale = usize::from(word(3)?);
    match sign {
        0xC000 => return Some("NaN".to_owned()),
        0xD000 => return Some("Infinity".to_owned()),
        0xF000 => return Some("-Infinity".to_owned()),
        _ => {}
    }
    let digit = |k: i64| -> u16 {
        usize::try_from(k)
            .ok()
            .filter(|k| *k < ndigits)
            .and_then(|k| word(4 + k))
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for k in 0..=weight {
            if k == 0 {
                text.push_str(&digit(0).to_string());
            } else {
                text.push_str(&format!("{:04}", digit(k)));
            }
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut k = weight + 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", digit(k)));
            k += 1;
        }
        fraction.truncate(scale);
        text.push('.');
        text.push_str(&fraction);
    }
    Some(text)
}

impl Backend for MySql {
    fn cell(row: &Self::Row, index: usize, text_protocol: bool) -> Cell {
        let Ok(raw) = row.try_get_raw(index) else {
            return Cell::Null;
        };
        if raw.is_null() {
            return Cell::Null;
        }
        let type_name = raw.type_info().name().to_owned();
        let Ok(bytes) = row.try_get_unchecked::<&[u8], _>(index) else {
            return Cell::Null;
        };
        if text_protocol {
            return mysql_text(&type_name, bytes);
        }
        mysql_binary(&type_name, bytes).unwrap_or_else(|| text_or_bytes(bytes))
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn bind_value<'q>(
        query: Query<'q, Self, <Self as Database>::Arguments<'q>>,
        value: &'q Value,
    ) -> Query<'q, Self, <Self as Database>::Arguments<'q>> {
        bind_scalar!(query, value)
    }
}

fn is_mysql_binary(type_name: &str) -> bool {
    type_name.contains("BLOB") || type_name.contains("BINARY") || type_name == "BIT"
}

fn is_mysql_int(type_name: &str) -> bool {
    type_name.contains("INT") || type_name == "YEAR"
}

/// A value MySQL sent as text (a script's results).
fn mysql_text(type_name: &str, bytes: &[u8]) -> Cell {
    if is_mysql_binary(type_name) {
        return Cell::Bytes(bytes.to_vec());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Cell::Bytes(bytes.to_vec());
    };
    match type_name {
        "BOOLEAN" => Cell::Bool(text != "0"),
        "FLOAT" | "DOUBLE" => text
            .parse()
            .map_or_else(|_| Cell::Shown(text.to_owned()), Cell::Float),
        "JSON" => {
            serde_json::from_str(text).map_or_else(|_| Cell::Text(text.to_owned()), Cell::Json)
        }
        "DECIMAL" | "DATE" | "TIME" | "DATETIME" | "TIMESTAMP" => Cell::Shown(text.to_owned()),
        t if is_mysql_int(t) => typed_text(text, true),
        _ => Cell::Text(text.to_owned()),
    }
}

/// A value in MySQL's binary protocol, for the types Rota knows.
fn mysql_binary(type_name: &str, bytes: &[u8]) -> Option<Cell> {
    let unsigned = type_name.ends_with("UNSIGNED");
    Some(match type_name {
        "BOOLEAN" => Cell::Bool(*bytes.first()? != 0),
        "FLOAT" => Cell::Float(f32::from_le_bytes(bytes.try_into().ok()?).into()),
        "DOUBLE" => Cell::Float(f64::from_le_bytes(bytes.try_into().ok()?)),
        "JSON" => Cell::Json(serde_json::from_slice(bytes).ok()?),
        "DECIMAL" => Cell::Shown(std::str::from_utf8(bytes).ok()?.to_owned()),
        "DATE" | "DATETIME" | "TIMESTAMP" => Cell::Shown(mysql_datetime(type_name, bytes)?),
        "TIME" => Cell::Shown(mysql_time(bytes)?),
        t if is_mysql_int(t) => {
            let mut wide = [0u8; 8];
            wide.get_mut(..bytes.len())?.copy_from_slice(bytes);
            if unsigned || t == "YEAR" {
                Cell::UInt(u64::from_le_bytes(wide))
            } else {
                // Sign-extend from the value's width.
                let shift = 64 - 8 * bytes.len() as u32;
                Cell::Int(
                    i64::from_le_bytes(wide)
                        .wrapping_shl(shift)
                        .wrapping_shr(shift),
                )
            }
        }
        t if is_mysql_binary(t) => Cell::Bytes(bytes.to_vec()),
        _ => return None,
    })
}

/// `DATE`, `DATETIME`, `TIMESTAMP` in the binary protocol: a length byte (0, 4, 7 or 11),
/// then year (2 bytes), month, day, hour, minute, second, microseconds (4 bytes).
fn mysql_datetime(type_name: &str, bytes: &[u8]) -> Option<String> {
    let len = usize::from(*bytes.first()?);
    let b = bytes.get(1..=len)?;
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let year = if len >= 2 {
        u16::from_le_bytes([b[0], b[1]])
    } else {
        0
    };
    let date = format!("{year:04}-{:02}-{:02}", at(2), at(3));
    if type_name == "DATE" {
        return Some(date);
    }
    let micros = if len >= 11 {
        u32::from_le_bytes([b[7], b[8], b[9], b[10]])
    } else {
        0
    };
    let fraction = if micros > 0 {
        format!(".{micros:06}")
    } else {
        String::new()
    };
    Some(format!(
        "{date} {:02}:{:02}:{:02}{fraction}",
        at(4),
        at(5),
        at(6)
    ))
}

/// `TIME` in the binary protocol: a length byte (0, 8 or 12), then a sign byte, days
/// (4 bytes), hours, minutes, seconds, microseconds (4 bytes).
fn mysql_time(bytes: &[u8]) -> Option<String> {
    let len = usize::from(*bytes.first()?);
    let b = bytes.get(1..=len)?;
    if len == 0 {
        return Some("00:00:00".to_owned());
    }
    let negative = *b.first()? == 1;
    let days = u32::from_le_bytes(b.get(1..5)?.try_into().ok()?);
    let hours = days * 24 + u32::from(*b.get(5)?);
    let micros = if len >= 12 {
        u32::from_le_bytes(b.get(8..12)?.try_into().ok()?)
    } else {
        0
    };
    let fraction = if micros > 0 {
        format!(".{micros:06}")
    } else {
        String::new()
    };
    Some(format!(
        "{}{hours:02}:{:02}:{:02}{fraction}",
        if negative { "-" } else { "" },
        b.get(6)?,
        b.get(7)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_decode_exactly() {
        // 12345.678: weight 1, digits [1, 2345, 6780], scale 3.
        let bytes: Vec<u8> = [3u16, 1, 0, 3, 1, 2345, 6780]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(pg_numeric(&bytes).as_deref(), Some("12345.678"));
        // -0.0005: weight -1, digits [5], scale 4.
        let bytes: Vec<u8> = [1u16, 0xFFFF, 0x4000, 4, 5]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(pg_numeric(&bytes).as_deref(), Some("-0.0005"));
    }

    #[test]
    fn mysql_dates_and_ints_decode() {
        let dt = [7u8, 0xE8, 0x07, 3, 9, 14, 5, 59];
        assert_eq!(
            mysql_datetime("DATETIME", &dt).as_deref(),
            Some("2024-03-09 14:05:59")
        );
        assert_eq!(mysql_binary("SMALLINT", &[0xFE, 0xFF]), Some(Cell::Int(-2)));
        assert_eq!(
            mysql_binary("INT UNSIGNED", &[0xFF, 0xFF, 0xFF, 0xFF]),
            Some(Cell::UInt(u64::from(u32::MAX)))
        );
    }

    #[test]
    fn cells_read_as_text_and_json() {
        assert_eq!(Cell::Bytes(vec![0xde, 0xad]).to_text(), "\\xdead");
        assert_eq!(Cell::Null.to_text(), "");
        assert_eq!(Cell::Null.to_table_text(), "NULL");
        assert_eq!(Cell::Float(f64::NAN).to_json(), Value::String("NaN".into()));
    }
}
