//! Masking secrets in everything a run writes to disk: the output notebook (every save,
//! not only the last) and its report.
//!
//! The notebook itself keeps the real values in memory, since the kernel must execute the
//! injected parameters as given; masking happens where text leaves for a file. This crate
//! knows nothing of how secrets are found: the caller (the engine) supplies a [`Redact`]
//! that masks one line at a time, the same one its log lines pass through.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// Masks secret values in one line of text.
pub trait Redact: Send + Sync {
    /// `line` (without its line break) with every secret masked; borrowed when unchanged.
    fn redact_line<'a>(&self, line: &'a str) -> Cow<'a, str>;
}

/// A shared [`Redact`], as carried by run and step requests.
#[derive(Clone)]
pub struct Redaction(Arc<dyn Redact>);

impl fmt::Debug for Redaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never shows what it masks.
        f.write_str("Redaction")
    }
}

impl Redaction {
    /// Wraps a line masker.
    pub fn new(redact: impl Redact + 'static) -> Redaction {
        Redaction(Arc::new(redact))
    }

    /// `text` with secrets masked, line by line (line breaks kept as they were).
    ///
    /// A line holding ANSI escapes (IPython colours its tracebacks) is also checked with
    /// the escapes removed, since a colour change may sit inside a value; when that view
    /// holds a secret, the line is kept without its colours, masked.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !text.contains(['\n', '\r']) {
            return self.line(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        for piece in crate::document::split_lines(text) {
            let body = piece.trim_end_matches(['\n', '\r']);
            let masked = self.line(body);
            changed |= matches!(masked, Cow::Owned(_));
            out.push_str(&masked);
            out.push_str(&piece[body.len()..]);
        }
        if changed {
            Cow::Owned(out)
        } else {
            Cow::Borrowed(text)
        }
    }

    fn line<'a>(&self, line: &'a str) -> Cow<'a, str> {
        if line.contains('\u{1b}') {
            let plain = strip_ansi(line);
            if let Cow::Owned(masked) = self.0.redact_line(&plain) {
                return Cow::Owned(masked);
            }
        }
        self.0.redact_line(line)
    }

    /// A copy of `value` with every string and object key masked.
    pub fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s).into_owned()),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.text(k).into_owned(), self.value(v)))
                    .collect::<Map<String, Value>>(),
            ),
            other => other.clone(),
        }
    }
}

/// `s` without ANSI CSI sequences (`ESC [ … letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mask(&'static str);

    impl Redact for Mask {
        fn redact_line<'a>(&self, line: &'a str) -> Cow<'a, str> {
            if line.contains(self.0) {
                Cow::Owned(line.replace(self.0, "***"))
            } else {
                Cow::Borrowed(line)
            }
        }
    }

    #[test]
    fn masks_each_line_and_keeps_line_breaks() {
        let r = Redaction::new(Mask("hunter2"));
        assert_eq!(r.text("a hunter2\r\nb\nhunter2"), "a ***\r\nb\n***");
        assert!(matches!(r.text("nothing\nhere\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_split_by_colours_is_masked_without_them() {
        let r = Redaction::new(Mask("hunter2"));
        assert_eq!(r.text("x \u{1b}[31mhunt\u{1b}[0mer2 y"), "x *** y");
        assert_eq!(r.text("\u{1b}[31mok\u{1b}[0m"), "\u{1b}[31mok\u{1b}[0m");
    }

    #[test]
    fn masks_keys_and_nested_strings() {
        let r = Redaction::new(Mask("hunter2"));
        let v = serde_json::json!({"hunter2": ["a hunter2", {"k": "hunter2\n"}], "n": 1});
        assert_eq!(
            r.value(&v),
            serde_json::json!({"***": ["a ***", {"k": "***\n"}], "n": 1})
        );
    }
}
