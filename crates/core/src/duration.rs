//! Durations as job files write them, parsed and printed with jiff's "friendly" format:
//! `500ms`, `30s`, `10m`, `1h`, `2d`, combinations such as `1h30m`, the same with spaces or
//! words (`1h 30m`, `2 hours`), a fraction in the smallest unit (`1.5h`), or a bare integer
//! meaning seconds.
//!
//! Two things jiff alone does not do, kept so that every file that loaded before still
//! loads: a bare integer is a number of seconds (jiff wants a unit), and the units of a
//! compact text may come in any order or repeat (`30s1m`, `1m1m`; jiff wants each unit once,
//! largest first), which [`parse_duration`] reads piece by piece and adds up.
//! A day is always 24 hours: job durations are elapsed time, not calendar arithmetic.

use std::time::Duration;

use jiff::fmt::friendly::{Designator, Spacing, SpanParser, SpanPrinter};
use jiff::{SignedDuration, Span, SpanRelativeTo, SpanRound, Unit};

/// A duration text that does not parse; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{text}`: expected a number with a unit (ms, s, m, h, d), e.g. `30s` or `1h30m`"
)]
pub struct DurationError {
    /// The text as written.
    pub text: String,
}

static PARSER: SpanParser = SpanParser::new();

/// How durations are printed: `1d2h`, `1m30s`, `250ms` (compact, no spaces, largest unit
/// first), which [`parse_duration`] reads back. Zero is `0s`.
static PRINTER: SpanPrinter = SpanPrinter::new()
    .designator(Designator::HumanTime)
    .spacing(Spacing::None);

/// Parses `500ms`, `30s`, `10m`, `1h`, `2d`, `1h30m`, `1h 30m`, `90 minutes`, `1.5h` or a bare
/// number of seconds (`90`). Negative durations are refused.
///
/// ```
/// use std::time::Duration;
/// # fn main() -> Result<(), rota_core::duration::DurationError> {
/// assert_eq!(rota_core::duration::parse_duration("1h30m")?, Duration::from_secs(5400));
/// assert_eq!(rota_core::duration::parse_duration("250ms")?, Duration::from_millis(250));
/// assert_eq!(rota_core::duration::parse_duration("2 days")?, Duration::from_secs(172_800));
/// # Ok(())
/// # }
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        text: text.to_owned(),
    };
    let t = text.trim();
    // Rota's own shorthand, as in YAML's `timeout: 90`: a bare integer counts seconds.
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().map(Duration::from_secs).map_err(|_| err());
    }
    if let Some(duration) = friendly(t) {
        return Ok(duration);
    }
    // Compact texts whose units are out of order or repeated (`30s1m`) were accepted
    // before jiff read them: each `<digits><unit>` piece is read alone and they are added.
    let pieces = compact_pieces(t).ok_or_else(err)?;
    pieces.into_iter().try_fold(Duration::ZERO, |total, piece| {
        friendly(piece)
            .and_then(|d| total.checked_add(d))
            .ok_or_else(err)
    })
}

/// One text in jiff's friendly format as an elapsed time (days of 24 hours), or `None`
/// when jiff refuses it, it is negative, or it uses calendar units (months, years).
fn friendly(text: &str) -> Option<Duration> {
    let span = PARSER.parse_span(text).ok()?;
    if span.is_negative() {
        return None;
    }
    let signed = span.to_duration(SpanRelativeTo::days_are_24_hours()).ok()?;
    Duration::try_from(signed).ok()
}

/// Splits `1m30s1m` into `1m`, `30s`, `1m`: digits then letters, nothing else. `None` for
/// any other text (spaces, signs, fractions), which only jiff's own order may use.
fn compact_pieces(text: &str) -> Option<Vec<&str>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let letters = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || letters == 0 {
            return None;
        }
        let (piece, tail) = rest.split_at(digits + letters);
        pieces.push(piece);
        rest = tail;
    }
    (!pieces.is_empty()).then_some(pieces)
}

/// Prints a duration the way job files write it: `0s`, `250ms`, `1s`, `1m30s`, `2h`, `1d2h`
/// (days of 24 hours; below a millisecond, `us` and `ns`). [`parse_duration`] reads every
/// text this returns.
///
/// ```
/// use std::time::Duration;
/// use rota_core::duration::format_duration;
/// assert_eq!(format_duration(Duration::from_secs(93_600)), "1d2h");
/// assert_eq!(format_duration(Duration::from_millis(60_500)), "1m500ms");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let Ok(signed) = SignedDuration::try_from(duration) else {
        // Beyond 2^63 seconds: no job file can say that; keep it readable.
        return format!("{}s", duration.as_secs());
    };
    let span = Span::try_from(signed)
        .and_then(|span| span.round(SpanRound::new().largest(Unit::Day).days_are_24_hours()));
    match span {
        Ok(span) => PRINTER.span_to_string(&span),
        // Beyond what a span holds (about 20,000 years): hours are the largest unit.
        Err(_) => PRINTER.duration_to_string(&signed),
    }
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
            (" 90 ", Duration::from_secs(90)),
            ("0s", Duration::ZERO),
            ("007s", Duration::from_secs(7)),
            ("1d2h3m4s5ms", Duration::new(93_784, 5_000_000)),
            // What jiff's friendly format adds.
            ("1h 30m", Duration::from_secs(5400)),
            ("10 m", Duration::from_secs(600)),
            ("2 hours", Duration::from_secs(7200)),
            ("1 day, 2 hours", Duration::from_secs(93_600)),
            ("1.5h", Duration::from_secs(5400)),
            ("1w", Duration::from_secs(604_800)),
            ("250us", Duration::from_micros(250)),
            // Accepted before jiff: units out of order or repeated.
            ("30s1m", Duration::from_secs(90)),
            ("1m1m", Duration::from_secs(120)),
            ("500ms1s", Duration::from_millis(1500)),
            ("1h1d", Duration::from_secs(90_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_texts_are_rejected() {
        for text in [
            "",
            " ",
            "s",
            "10x",
            "-3s",
            "3s ago",
            "h1",
            "1y",
            "2 months",
            "1.5",
            "1s-1s",
            "PT1H",
            "99999999999999999999d",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(DurationError {
                    text: text.to_owned()
                }),
                "{text} should fail"
            );
        }
    }

    #[test]
    fn printed_durations_read_back() {
        for (duration, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(60_500), "1m500ms"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(93_600), "1d2h"),
            (Duration::from_secs(30 * 86_400), "30d"),
            (Duration::new(1, 1_500), "1s1us500ns"),
        ] {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration), "{text}");
        }
    }
}
