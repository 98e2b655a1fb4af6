//! All results pass through here: a human table by default, JSON with `--output json`.
//! Results go to stdout, diagnostics to stderr. A closed stdout pipe is not an error.

use std::io::Write;

use serde_json::Value;

use crate::args::OutputFormat;

/// Prints results in the chosen format.
pub struct Printer {
    pub format: OutputFormat,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Printer {
        Printer { format }
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints a JSON value, pretty, on stdout.
    pub fn json(&self, value: &Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
        write_stdout(&format!("{text}\n"));
    }

    /// Prints rows as an aligned table with a header. Control characters in a cell (a
    /// newline in a step's output, an escape sequence in a reason) are shown escaped, so a
    /// cell stays on its row and cannot drive the terminal.
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|row| row.iter().map(|cell| escape_cell(cell)).collect())
            .collect();
        let rows = &rows;
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        let mut text = String::new();
        let line = |cells: Vec<&str>, text: &mut String| {
            let last = cells.len().saturating_sub(1);
            for (i, cell) in cells.iter().enumerate() {
                text.push_str(cell);
                if i < last {
                    let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                    text.push_str(&" ".repeat(pad));
                }
            }
            text.push('\n');
        };
        line(header.to_vec(), &mut text);
        for row in rows {
            line(row.iter().map(String::as_str).collect(), &mut text);
        }
        write_stdout(&text);
    }

    /// Prints plain text on stdout.
    pub fn text(&self, text: &str) {
        write_stdout(text);
    }
}

/// A table cell with its control characters escaped (`\n`, `\t`, `\u{1b}`); other text
/// as is.
pub fn escape_cell(cell: &str) -> String {
    if !cell.chars().any(char::is_control) {
        return cell.to_owned();
    }
    let mut escaped = String::with_capacity(cell.len() + 8);
    for c in cell.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Writes to stdout. A closed pipe (`rota runs | head`) is not an error, and it must not
/// stop `rota run`, whose record and exit code matter more than its echo: the text is dropped.
pub fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush());
}

/// `1.234s`, `2m03s`: a duration between two instants, for tables.
pub fn elapsed(from: Option<jiff::Timestamp>, to: Option<jiff::Timestamp>) -> String {
    let (Some(from), Some(to)) = (from, to) else {
        return "-".to_owned();
    };
    let millis = to.as_millisecond() - from.as_millisecond();
    if millis < 60_000 {
        format!("{:.3}s", millis as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", millis / 60_000, millis / 1000 % 60)
    }
}

/// An instant in local time without sub-seconds, for tables.
pub fn when(at: Option<jiff::Timestamp>) -> String {
    match at {
        Some(at) => at
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::escape_cell;

    #[test]
    fn control_characters_in_a_cell_are_escaped() {
        assert_eq!(escape_cell("a\nb\tc\u{1b}[31m"), "a\\nb\\tc\\u{1b}[31m");
        assert_eq!(escape_cell("plain — text"), "plain — text");
    }
}
