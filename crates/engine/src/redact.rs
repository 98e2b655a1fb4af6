//! Secret redaction for step logs.
//!
//! A [`Redactor`] is built once per step from the secret values that step may see, and
//! replaces every occurrence of a value with `***` in each log line before the line leaves the
//! supervisor. Besides the plain value it looks for the forms a script commonly produces by
//! accident: base64 (standard and URL-safe alphabets, padded or not, standalone or embedded in
//! a longer base64 string such as an HTTP `Authorization: Basic` header) and percent-encoding.
//! All forms of all secrets are searched in one pass with an Aho-Corasick automaton.
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
        let mut matches = automaton.find_iter(line).peekable();
        if matches.peek().is_none() {
            return Cow::Borrowed(line);
        }
        let mut out = String::with_capacity(line.len());
        let mut last = 0;
        for m in matches {
            out.push_str(&line[last..m.start()]);
            out.push_str(MASK);
            last = m.end();
        }
        out.push_str(&line[last..]);
        Cow::Owned(out)
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns)
            .finish_non_exhaustive()
    }
}

/// Adds the plain, base64 and percent-encoded forms of one secret value.
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
        }
    }
    // Percent-encoding (RFC 3986 unreserved characters kept), upper- and lower-case hex, and
    // the form-encoding variant with `+` for a space.
    let upper = percent_encode(value, false);
    derived.push(upper.replace("%20", "+"));
    derived.push(percent_encode(value, true));
    derived.push(upper);
    for form in derived {
        if form.len() >= MIN_DERIVED_LEN {
            patterns.insert(form);
        }
    }
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
fn percent_encode(value: &str, lower_hex: bool) -> String {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    let digits = if lower_hex { LOWER } else { UPPER };
    let mut out = String::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(digits[usize::from(b >> 4)]));
            out.push(char::from(digits[usize::from(b & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(percent_encode("a b/c~é", false), "a%20b%2Fc~%C3%A9");
        assert_eq!(percent_encode("/", true), "%2f");
    }
}
