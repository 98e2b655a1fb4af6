//! `.env` files: `KEY=VALUE` lines read as a run's secret environment (`env_file:` in a
//! job, `--env-file` on `rota run`).
//!
//! A small parser of its own rather than a dotenv crate: errors must name `file:line`, and
//! values are taken literally (no `$VAR` expansion), so a file never pulls this process's
//! environment into a run. Accepted: blank lines, `# comments`, an optional `export `
//! prefix, unquoted values (a ` #` starts a comment), `'single'` quotes (literal) and
//! `"double"` quotes (`\n`, `\t`, `\"`, `\\`, `\$` escapes); quoted values may span lines.

use std::path::Path;

/// The largest `.env` file read: it holds a handful of variables, not data.
pub const MAX_ENV_FILE_BYTES: u64 = 1024 * 1024;

/// Why a `.env` file cannot be used. Messages name the file and never hold a value.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    /// The file cannot be read.
    #[error("cannot read env file {path}: {source}")]
    Read {
        /// The file, as given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_ENV_FILE_BYTES`].
    #[error("env file {path} is larger than {MAX_ENV_FILE_BYTES} bytes")]
    TooLarge {
        /// The file, as given.
        path: String,
    },
    /// A line does not parse.
    #[error("{origin}:{line}: {message}")]
    Syntax {
        /// The file, as given.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// Reads and parses the `.env` file at `path`: its variables in file order (a name given
/// twice appears twice; the later one wins when collected into a map).
pub fn read(path: &Path) -> Result<Vec<(String, String)>, EnvFileError> {
    use std::io::Read as _;
    let shown = path.display().to_string();
    let read_error = |source| EnvFileError::Read {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_ENV_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_ENV_FILE_BYTES {
        return Err(EnvFileError::TooLarge { path: shown });
    }
    let text = String::from_utf8(bytes).map_err(|_| EnvFileError::Syntax {
        origin: shown.clone(),
        line: 1,
        message: "not UTF-8 text".to_owned(),
    })?;
    parse(&text, &shown)
}

/// Parses `.env` text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut vars = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let line_no = at + 1;
        let syntax = |message: String| EnvFileError::Syntax {
            origin: origin.to_owned(),
            line: line_no,
            message,
        };
        let line = lines[at].trim_start_matches('\u{feff}').trim();
        at += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((name, rest)) = line.split_once('=') else {
            return Err(syntax("expected NAME=VALUE".to_owned()));
        };
        let name = name.trim();
        if !is_name(name) {
            return Err(syntax(format!(
                "invalid variable name `{name}`: expected letters, digits and _, not starting with a digit"
            )));
        }
        if name.starts_with("ROTA_") {
            return Err(syntax(format!(
                "`{name}`: names starting with ROTA_ are set by Rota for each step"
            )));
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let (value, consumed) = quoted(&lines, at - 1, rest, quote).map_err(syntax)?;
                at += consumed;
                value
            }
            _ => unquoted(rest),
        };
        vars.push((name.to_owned(), value));
    }
    Ok(vars)
}

/// An unquoted value: up to a ` #` comment, trimmed.
fn unquoted(rest: &str) -> String {
    let end = rest
        .char_indices()
        .find(|&(i, c)| c == '#' && rest[..i].ends_with([' ', '\t']))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].trim().to_owned()
}

/// A quoted value starting at `rest` (on line index `first`), perhaps continued on the
/// following lines: the value and how many more lines it took.
fn quoted(
    lines: &[&str],
    first: usize,
    rest: &str,
    quote: char,
) -> Result<(String, usize), String> {
    let mut value = String::new();
    let mut chars = rest[1..].chars();
    let mut extra = 0;
    loop {
        match chars.next() {
            Some(c) if c == quote => break,
            Some('\\') if quote == '"' => match chars.next() {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some('r') => value.push('\r'),
                Some(c @ ('"' | '\\' | '$')) => value.push(c),
                Some(c) => {
                    value.push('\\');
                    value.push(c);
                }
                None => value.push('\\'),
            },
            Some(c) => value.push(c),
            None => {
                extra += 1;
                let Some(next) = lines.get(first + extra) else {
                    return Err(format!("unterminated {quote}quoted{quote} value"));
                };
                value.push('\n');
                chars = next.chars();
            }
        }
    }
    let after: String = chars.collect();
    let after = after.trim();
    if !after.is_empty() && !after.starts_with('#') {
        return Err(format!(
            "unexpected text after the closing {quote} (quote the whole value)"
        ));
    }
    Ok((value, extra))
}

/// An environment variable name: letters, digits and `_`, not starting with a digit.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vec<(String, String)> {
        parse(text, "t.env").expect("parses")
    }

    fn error(text: &str) -> String {
        parse(text, "t.env").expect_err("refused").to_string()
    }

    #[test]
    fn reads_the_usual_forms() {
        let text = "\
# comment

A=plain value # trailing comment
export B = 'single # not a comment'
C=\"line\\nbreak \\\"q\\\" $HOME\"
D=
E=x#y
F=\"two
lines\"
";
        assert_eq!(
            vars(text),
            [
                ("A", "plain value"),
                ("B", "single # not a comment"),
                ("C", "line\nbreak \"q\" $HOME"),
                ("D", ""),
                ("E", "x#y"),
                ("F", "two\nlines"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(error("A=1\nnot a pair\n"), "t.env:2: expected NAME=VALUE");
        assert!(error("A=1\n\n1X=2").starts_with("t.env:3: invalid variable name `1X`"));
        assert!(error("A=\"open\nB=2").starts_with("t.env:1: unterminated"));
        assert!(error("A='v' tail").starts_with("t.env:1: unexpected text"));
        assert!(error("ROTA_JOB=x").starts_with("t.env:1: `ROTA_JOB`"));
    }

    #[test]
    fn errors_never_hold_the_value() {
        let message = error("A='s3cr3t-value' tail");
        assert!(!message.contains("s3cr3t"), "{message}");
    }
}
