//! Secret redaction for step logs.
//!
//! A [`Redactor`] is built once per step from the secret values that step may see, and
//! replaces every occurrence of a value with `***` in each log line before the line leaves the
//! supervisor. Besides the plain value it looks for the forms a script commonly produces by
//! accident: JSON string escapes, base64 (standard and URL-safe alphabets, padded or not,
//! standalone or embedded in a longer base64 string such as an HTTP `Authorization: Basic`
//! header) and percent-encoding.
//! All forms of all secrets are searched in one pass with an Aho-Corasick automaton.
//!
//! Percent-encoding is not enumerated: encoders disagree on which characters they leave
//! alone (Python's `quote` keeps `/`, JavaScript's `encodeURI` keeps `@`, `:` and more),
//! on hex case, and on `+` for a space. A line holding `%` or `+` is also searched in a
//! decoded view, whose matches are mapped back to the spans of the line they came from, so
//! every mix of encoded and literal characters is found.
//!
//! Wrapped base64 (`base64` wraps at 76 columns, `openssl base64` and PEM at 64) puts a long
//! secret's encoding on several lines. Lines start at base64 quantum boundaries, so each line
//! that holds part of the secret is a substring of the secret's base64 form (for each of the
//! three alignments the secret can have in the encoded stream) that starts at a multiple of
//! four characters or at the secret's first whole character, and ends at one or at its last:
//! those chunks are registered too (at least [`MIN_CHUNK_LEN`] characters long, so a secret's
//! first or last few bytes may stay visible on a line of their own).
//!
//! Known limits: redaction works per line, so a value split over two lines (a multi-line
//! secret is also registered line by line) or across the supervisor's 64 KiB split of an
//! over-long line is not recognised as a whole.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Secret values shorter than this many bytes are not redacted: they would blank out
/// ordinary text everywhere.
pub const MIN_SECRET_LEN: usize = 3;

/// Derived (encoded) patterns shorter than this are dropped: a 3-character fragment of a
/// base64 string matches too much unrelated text.
const MIN_DERIVED_LEN: usize = 4;

/// Shortest chunk of a wrapped base64 form that is redacted: shorter ones (a secret's first
/// or last bytes on a line of their own) would match unrelated base64.
const MIN_CHUNK_LEN: usize = 12;

/// Line widths of wrapped base64: `base64` (GNU coreutils, MIME) and `openssl base64` (PEM).
const WRAP_WIDTHS: [usize; 2] = [76, 64];

/// Longest secret whose wrapped base64 lines are registered: a value of n bytes adds about
/// 8n/3 patterns, and larger values (keys, certificates) are multi-line text that is
/// registered line by line anyway.
const MAX_CHUNKED_LEN: usize = 16 * 1024;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Replaces secret values, and their base64 and percent-encoded forms, with `***`.
///
/// Cheap to clone (the automaton is shared). Its `Debug` output shows only how many patterns
/// it holds, never a value.
#[derive(Clone, Default)]
pub struct Redactor {
    automaton: Option<AhoCorasick>,
    patterns: usize,
}

impl Redactor {
    /// Builds a redactor for the given secret values. Values shorter than
    /// [`MIN_SECRET_LEN`] bytes are ignored; a multi-line value is also registered line by
    /// line, since logs are redacted one line at a time.
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut patterns: BTreeSet<String> = BTreeSet::new();
        for value in values {
            if value.contains('\n') {
                for line in value.lines() {
                    add_forms(&mut patterns, line.trim_end_matches('\r'));
                }
            }
            add_forms(&mut patterns, &value);
        }
        if patterns.is_empty() {
            return Redactor::default();
        }
        let count = patterns.len();
        // Leftmost-longest makes a full base64 form (with its final, partially-determined
        // characters and padding) win over the shorter "embedded" middle part.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("a few thousand literal patterns always build");
        Redactor {
            automaton: Some(automaton),
            patterns: count,
        }
    }

    /// A redactor that redacts nothing.
    pub fn none() -> Redactor {
        Redactor::default()
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }

    /// Returns `line` with every secret form replaced by `***`; borrows when nothing matched.
    pub fn redact<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let Some(automaton) = &self.automaton else {
            return Cow::Borrowed(line);
        };
        let mut spans: Vec<(usize, usize)> = automaton
            .find_iter(line)
            .map(|m| (m.start(), m.end()))
            .collect();
        for plus_is_space in [false, true] {
            let Some(view) = DecodedView::of(line, plus_is_space) else {
                continue;
            };
            spans.extend(
                automaton
                    .find_iter(&view.bytes)
                    .filter_map(|m| view.original_span(m.start(), m.end()))
                    .filter(|&(start, end)| {
                        line.is_char_boundary(start) && line.is_char_boundary(end)
                    }),
            );
        }
        if spans.is_empty() {
            return Cow::Borrowed(line);
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(line.len());
        let mut last = 0;
        for (start, end) in spans {
            if end <= last {
                continue;
            }
            if start >= last {
                out.push_str(&line[last..start]);
                out.push_str(MASK);
            }
            // An overlapping span extends the mask already written.
            last = end;
        }
        out.push_str(&line[last..]);
        Cow::Owned(out)
    }
}

/// A line with its percent-escapes (and, for form encoding, `+`) decoded, and for each
/// decoded byte the span of the line it came from.
struct DecodedView {
    bytes: Vec<u8>,
    origin: Vec<(usize, usize)>,
}

impl DecodedView {
    /// The decoded view of `line`, or `None` when decoding would change nothing.
    fn of(line: &str, plus_is_space: bool) -> Option<DecodedView> {
        let raw = line.as_bytes();
        let decodes = |b: &u8| *b == b'%' || (plus_is_space && *b == b'+');
        if !raw.iter().any(decodes) {
            return None;
        }
        let mut view = DecodedView {
            bytes: Vec::with_capacity(raw.len()),
            origin: Vec::with_capacity(raw.len()),
        };
        let mut i = 0;
        while i < raw.len() {
            let escaped = match raw.get(i..i + 3) {
                Some([b'%', high, low]) => hex_digit(*high).zip(hex_digit(*low)),
                _ => None,
            };
            let (byte, width) = match (escaped, raw[i]) {
                (Some((high, low)), _) => ((high << 4) | low, 3),
                (None, b'+') if plus_is_space => (b' ', 1),
                (None, other) => (other, 1),
            };
            view.bytes.push(byte);
            view.origin.push((i, i + width));
            i += width;
        }
        Some(view)
    }

    /// The span of the line that decoded bytes `start..end` came from.
    fn original_span(&self, start: usize, end: usize) -> Option<(usize, usize)> {
        let first = self.origin.get(start)?;
        let last = self.origin.get(end.checked_sub(1)?)?;
        Some((first.0, last.1))
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns)
            .finish_non_exhaustive()
    }
}

/// Adds the plain and base64 forms of one secret value (percent-encoded forms are found
/// through [`DecodedView`]).
fn add_forms(patterns: &mut BTreeSet<String>, value: &str) {
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    patterns.insert(value.to_owned());
    let mut derived = Vec::new();
    // Standalone base64, padded and unpadded, in both alphabets.
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        derived.push(engine.encode(value));
    }
    // Embedded base64: the value may start at any of the three byte positions of a base64
    // quantum. Encoding it behind 0, 1 and 2 bytes of prefix and keeping only the characters
    // whose six bits all come from the value gives a substring that appears whatever
    // surrounds the value.
    let n = value.len();
    for prefix in 0..3usize {
        let mut bytes = vec![0u8; prefix];
        bytes.extend_from_slice(value.as_bytes());
        let encoded = STANDARD_NO_PAD.encode(&bytes);
        let first = (8 * prefix).div_ceil(6);
        let end = (8 * (prefix + n)) / 6;
        if first < end {
            let middle = &encoded[first..end];
            derived.push(middle.to_owned());
            derived.push(middle.replace('+', "-").replace('/', "_"));
            let chunks = if n <= MAX_CHUNKED_LEN {
                wrapped_chunks(&encoded, first, end)
            } else {
                Vec::new()
            };
            for chunk in chunks {
                derived.push(chunk.replace('+', "-").replace('/', "_"));
                derived.push(chunk.to_owned());
            }
        }
    }
    // Inside a JSON string: escaped quotes, backslashes and control characters, and with
    // non-ASCII characters as `\uXXXX` (what Python's `json.dumps` writes by default).
    let json = json_escaped(value, false);
    if json != value {
        derived.push(json);
    }
    if !value.is_ascii() {
        derived.push(json_escaped(value, true));
    }
    for form in derived {
        if form.len() >= MIN_DERIVED_LEN {
            patterns.insert(form);
        }
    }
}

/// The pieces of `encoded[first..end]` that can stand on one line of wrapped base64: lines
/// start and end at multiples of four characters of the stream (the secret's own start and
/// end aside), so a line is either a whole window of a wrap width, or the secret's first or
/// last part up to a quantum boundary. Only needed when the form is longer than a line.
fn wrapped_chunks(encoded: &str, first: usize, end: usize) -> Vec<&str> {
    let mut chunks = Vec::new();
    let widest = WRAP_WIDTHS.iter().copied().max().unwrap_or(76);
    if end - first <= WRAP_WIDTHS.iter().copied().min().unwrap_or(64) {
        return chunks;
    }
    let boundaries = (first.div_ceil(4) * 4..=end).step_by(4);
    for start in boundaries.clone() {
        for width in WRAP_WIDTHS {
            if let Some(window) = encoded.get(start..start + width)
                && start + width <= end
            {
                chunks.push(window);
            }
        }
        // The secret's last part, at the start of a line.
        if end - start < widest && end - start >= MIN_CHUNK_LEN {
            chunks.push(&encoded[start..end]);
        }
        // The secret's first part, at the end of a line.
        if start > first && start - first <= widest && start - first >= MIN_CHUNK_LEN {
            chunks.push(&encoded[first..start]);
        }
    }
    chunks
}

/// `value` as the inside of a JSON string; with `ascii_only`, every non-ASCII character as
/// `\uXXXX` escapes (UTF-16, lower-case hex, as Python writes them).
fn json_escaped(value: &str, ascii_only: bool) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default();
    if !ascii_only {
        return inner.to_owned();
    }
    let mut out = String::with_capacity(inner.len() * 2);
    for c in inner.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wraps `text` at `width` columns, as `base64` does.
    fn wrap(text: &str, width: usize) -> Vec<String> {
        text.as_bytes()
            .chunks(width)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }

    #[test]
    fn wrapped_base64_of_a_long_secret_is_redacted_at_every_alignment() {
        let secret: String = (0..200)
            .map(|i| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7) % 36]))
            .collect();
        let redactor = Redactor::new([secret.clone()]);
        for prefix in ["", "x", "xy", "k=", "head: 1234567"] {
            for width in WRAP_WIDTHS {
                let stream = STANDARD.encode(format!("{prefix}{secret}\n"));
                let lines = wrap(&stream, width);
                let shown: Vec<String> = lines
                    .iter()
                    .map(|l| redactor.redact(l).into_owned())
                    .collect();
                // What is left of the encoding decodes to at most a few bytes of the secret.
                let kept: usize = shown.iter().map(|l| l.replace(MASK, "").len()).sum();
                // The prefix's and the newline's own characters, and a secret's first and
                // last few bytes on lines of their own.
                let allowance = (prefix.len() + 2) * 4 / 3 + 2 + 2 * MIN_CHUNK_LEN;
                assert!(kept <= allowance, "{prefix:?} {width}: {shown:?}");
            }
        }
    }
}
