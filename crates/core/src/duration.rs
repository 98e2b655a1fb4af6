//! Durations as job files write them: `500ms`, `30s`, `10m`, `1h`, `2d`, combinations such as
//! `1h30m`, or a bare integer meaning seconds.

use std::time::Duration;

/// A duration text that does not parse; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{text}`: expected a number with a unit (ms, s, m, h, d), e.g. `30s` or `1h30m`"
)]
pub struct DurationError {
    /// The text as written.
    pub text: String,
}

/// Parses `500ms`, `30s`, `10m`, `1h`, `2d`, `1h30m` or a bare number of seconds (`90`).
///
/// ```
/// use std::time::Duration;
/// # fn main() -> Result<(), rota_core::duration::DurationError> {
/// assert_eq!(rota_core::duration::parse_duration("1h30m")?, Duration::from_secs(5400));
/// assert_eq!(rota_core::duration::parse_duration("250ms")?, Duration::from_millis(250));
/// # Ok(())
/// # }
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        text: text.to_owned(),
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(err());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().map(Duration::from_secs).map_err(|_| err());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(err)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(err)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(err)?),
            _ => return Err(err()),
        };
        total = total.checked_add(part).ok_or_else(err)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_combinations() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("10m", Duration::from_secs(600)),
            ("1h", Duration::from_secs(3600)),
            ("2d", Duration::from_secs(172_800)),
            ("1h30m", Duration::from_secs(5400)),
            ("1m500ms", Duration::from_millis(60_500)),
            ("90", Duration::from_secs(90)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_texts_are_rejected() {
        for text in [
            "",
            "s",
            "10x",
            "1.5h",
            "-3s",
            "h1",
            "10 m",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(text).is_err(), "{text} should fail");
        }
    }
}
