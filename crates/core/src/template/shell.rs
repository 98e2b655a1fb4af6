//! `sh:` commands rendered so that no value can run as shell code.
//!
//! A template's values (`{{ params.x }}`, `{{ secrets.X }}`, a step's outputs) are untrusted
//! text: spliced into `sh -c` they would run as code (`$(…)`, `;`, backticks, a stray
//! quote). Instead, each `{{ … }}` output becomes a reference to an environment variable
//! `ROTA_TPL_<n>` holding the value, chosen by where it lands in the command:
//!
//! - outside quotes: `${ROTA_TPL_n}` (the shell still splits it into words and expands
//!   globs, as it did the spliced text, but never runs it);
//! - inside double quotes: `${ROTA_TPL_n}`;
//! - inside single quotes: `'"${ROTA_TPL_n}"'` (close, expand in double quotes, reopen);
//! - inside a here-document with an unquoted delimiter: `${ROTA_TPL_n}`; with a quoted one
//!   (`<<'EOF'`, where the shell expands nothing) the value is written as is, and a value
//!   that would end the here-document early is refused.
//!
//! So `echo "{{ params.x }} from …"` still prints the value as given, `rotate.sh
//! {{ params.hosts | join(" ") }}` still passes one word per host, and a secret no longer
//! appears in the command line (`/proc/PID/cmdline`) of the step's shell.
//! `{{ x | safe }}` opts out: its text is spliced in raw, for templates that really generate
//! shell code. The output of a macro call is one value like any other.
//!
//! The scan of the rendered text knows quotes, backslashes, comments, `$(…)`, backticks and
//! here-documents; it does not parse `case` patterns inside `$(…)` (an unbalanced `)` there
//! ends the substitution early for the scan, which only matters if a single-quoted value
//! follows).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::{Object, ObjectRepr};

use super::{Context, TemplateError, environment, render_in};

/// Name prefix of the environment variables that carry a `sh:` command's values.
pub const VALUE_VAR_PREFIX: &str = "ROTA_TPL_";

/// Marks a value's place in the rendered text: `OPEN n CLOSE`. Private-use characters do not
/// occur in commands; one that does in a template's own text is left alone unless it forms
/// a valid marker of this render.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// A rendered `sh:` command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShellCommand {
    /// What `sh -c` runs: values referenced as `${ROTA_TPL_n}`.
    pub command: String,
    /// The command as a user reads it, values in place (for logs and plans; not yet
    /// redacted).
    pub display: String,
    /// `ROTA_TPL_n` variables to add to the step's environment.
    pub env: Vec<(String, String)>,
}

/// Renders a `sh:` command (see the module documentation).
pub fn render_shell(template: &str, ctx: &Context) -> Result<ShellCommand, TemplateError> {
    if let Some(isolation) = super::isolation_for(template, false) {
        let job = super::RenderJob {
            kind: super::RenderKind::Shell,
            template: template.to_owned(),
            ctx: ctx.clone(),
        };
        return match isolation.render(&job)? {
            super::Rendering::Shell(command) => Ok(command),
            _ => Err(TemplateError::Invalid(
                "the isolated render answered another kind".into(),
            )),
        };
    }
    render_shell_here(template, ctx)
}

/// [`render_shell`] in this process.
pub(crate) fn render_shell_here(
    template: &str,
    ctx: &Context,
) -> Result<ShellCommand, TemplateError> {
    let values: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut env = environment();
    env.add_filter("safe", |value: minijinja::Value| {
        minijinja::Value::from_object(Raw(plain_text(&value)))
    });
    let seen = Arc::clone(&values);
    env.set_formatter(move |out, _state, value| {
        if let Some(raw) = value.downcast_object_ref::<Raw>() {
            out.write_str(&raw.0)?;
            return Ok(());
        }
        let mut values = seen.lock().unwrap_or_else(PoisonError::into_inner);
        // Text captured from the template itself (a `{% set %}` block) may hold markers of
        // earlier values: the value is what they stand for.
        let text = substitute(&plain_text(value), &values);
        let n = values.len();
        values.push(text);
        write!(out, "{OPEN}{n}{CLOSE}")?;
        Ok(())
    });
    let text = render_in(&env, template, ctx)?;
    drop(env);
    let values = std::mem::take(&mut *values.lock().unwrap_or_else(PoisonError::into_inner));
    splice(&text, &values)
}

/// `| safe` in a `sh:` command: text to splice in raw.
#[derive(Debug)]
struct Raw(String);

impl Object for Raw {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value as it prints (booleans as `true`/`false`, like the main formatter).
fn plain_text(value: &minijinja::Value) -> String {
    match value.kind() {
        minijinja::value::ValueKind::Bool => value.is_true().to_string(),
        _ => match value.downcast_object_ref::<Raw>() {
            Some(raw) => raw.0.clone(),
            None => value.to_string(),
        },
    }
}

/// Reads a marker at the start of `rest`; returns its index and byte length.
fn marker(rest: &str, count: usize) -> Option<(usize, usize)> {
    let body = rest.strip_prefix(OPEN)?;
    let close = body.find(CLOSE)?;
    let digits = &body[..close];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = digits.parse().ok()?;
    (n < count).then_some((n, OPEN.len_utf8() + close + CLOSE.len_utf8()))
}

/// `text` with every marker replaced by its value.
fn substitute(text: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if let Some((n, len)) = marker(rest, values.len()) {
            out.push_str(&values[n]);
            i += len;
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out
}

/// Where the scan is in the shell's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// Outside quotes: the top level, or inside `$(…)` (with its open parentheses).
    Plain(u32),
    Double,
    Single,
    Backtick,
}

/// A here-document announced on the current line, read after its newline.
struct Heredoc {
    delimiter: String,
    quoted: bool,
    strip_tabs: bool,
}

fn splice(text: &str, values: &[String]) -> Result<ShellCommand, TemplateError> {
    let mut scan = Scan {
        values,
        out: String::with_capacity(text.len()),
        used: vec![false; values.len()],
    };
    let mut stack = vec![Quote::Plain(0)];
    let mut pending: Vec<Heredoc> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let top = *stack.last().unwrap_or(&Quote::Plain(0));
        if let Some((n, len)) = marker(rest, values.len()) {
            scan.reference(n, top == Quote::Single);
            i += len;
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        let width = c.len_utf8().max(1);
        let next = rest[width..].chars().next();
        match (top, c) {
            (Quote::Single, '\'') => {
                stack.pop();
            }
            (Quote::Single, _) => {}
            (_, '\\') => {
                // A backslash before a value escaped its first character when values were
                // spliced; the value is literal now, so the backslash goes.
                if marker(&rest[width..], values.len()).is_some() {
                    i += width;
                    continue;
                }
                scan.out.push(c);
                i += width;
                if let Some(escaped) = next {
                    scan.out.push(escaped);
                    i += escaped.len_utf8();
                }
                continue;
            }
            (Quote::Double, '"') => {
                stack.pop();
            }
            (_, '$') if next == Some('(') => {
                scan.out.push_str("$(");
                stack.push(Quote::Plain(1));
                i += 2;
                continue;
            }
            (Quote::Backtick, '`') => {
                stack.pop();
            }
            (_, '`') => stack.push(Quote::Backtick),
            (Quote::Double, _) => {}
            (_, '\'') => stack.push(Quote::Single),
            (_, '"') => stack.push(Quote::Double),
            (Quote::Plain(depth), '(') if depth > 0 => {
                if let Some(Quote::Plain(d)) = stack.last_mut() {
                    *d += 1;
                }
            }
            (Quote::Plain(depth), ')') if depth > 0 => {
                if depth == 1 {
                    stack.pop();
                } else if let Some(Quote::Plain(d)) = stack.last_mut() {
                    *d -= 1;
                }
            }
            (_, '#') if word_start(&scan.out) => {
                // A comment runs to the end of the line; quotes in it mean nothing.
                let end = rest.find('\n').unwrap_or(rest.len());
                scan.plain(&rest[..end]);
                i += end;
                continue;
            }
            (_, '<') if rest.starts_with("<<") && !rest.starts_with("<<<") => {
                if let Some((heredoc, len)) = heredoc_start(&rest[2..]) {
                    pending.push(heredoc);
                    scan.out.push_str(&rest[..2 + len]);
                    i += 2 + len;
                    continue;
                }
            }
            (_, '\n') if !pending.is_empty() => {
                scan.out.push('\n');
                i += 1;
                for heredoc in std::mem::take(&mut pending) {
                    i += scan.heredoc_body(&text[i..], &heredoc)?;
                }
                continue;
            }
            _ => {}
        }
        scan.out.push(c);
        i += width;
    }
    let env = scan
        .used
        .iter()
        .enumerate()
        .filter(|(_, used)| **used)
        .map(|(n, _)| (format!("{VALUE_VAR_PREFIX}{n}"), values[n].clone()))
        .collect();
    Ok(ShellCommand {
        command: scan.out,
        display: substitute(text, values),
        env,
    })
}

/// Whether a `#` written next would start a word (and so a comment).
fn word_start(out: &str) -> bool {
    out.chars()
        .next_back()
        .is_none_or(|c| c.is_whitespace() || ";&|()<>".contains(c))
}

/// Parses what follows `<<`: an optional `-`, blanks, and the delimiter word. Returns the
/// here-document and the bytes consumed.
fn heredoc_start(rest: &str) -> Option<(Heredoc, usize)> {
    let mut i = 0;
    let strip_tabs = rest.starts_with('-');
    if strip_tabs {
        i += 1;
    }
    i += rest[i..].len() - rest[i..].trim_start_matches([' ', '\t']).len();
    let start = i;
    let mut delimiter = String::new();
    let mut quoted = false;
    let mut quote: Option<char> = None;
    for c in rest[start..].chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => delimiter.push(c),
            (None, '\'' | '"') => {
                quoted = true;
                quote = Some(c);
            }
            (None, '\\') => quoted = true,
            (None, c) if c.is_whitespace() || ";&|<>()".contains(c) => break,
            (None, c) => delimiter.push(c),
        }
        i += c.len_utf8();
    }
    (!delimiter.is_empty() && quote.is_none()).then_some((
        Heredoc {
            delimiter,
            quoted,
            strip_tabs,
        },
        i,
    ))
}

/// The command being built, and which values it references.
struct Scan<'a> {
    values: &'a [String],
    out: String,
    used: Vec<bool>,
}

impl Scan<'_> {
    /// Writes a reference to value `n`.
    fn reference(&mut self, n: usize, single_quoted: bool) {
        self.used[n] = true;
        if single_quoted {
            self.out
                .push_str(&format!("'\"${{{VALUE_VAR_PREFIX}{n}}}\"'"));
        } else {
            self.out.push_str(&format!("${{{VALUE_VAR_PREFIX}{n}}}"));
        }
    }

    /// Copies text in which quotes mean nothing (a comment), values still by reference.
    fn plain(&mut self, text: &str) {
        let mut i = 0;
        while i < text.len() {
            if let Some((n, len)) = marker(&text[i..], self.values.len()) {
                self.reference(n, false);
                i += len;
                continue;
            }
            let c = text[i..].chars().next().unwrap_or_default();
            self.out.push(c);
            i += c.len_utf8().max(1);
        }
    }

    /// Copies a here-document's body and its delimiter line; returns the bytes consumed.
    fn heredoc_body(&mut self, text: &str, heredoc: &Heredoc) -> Result<usize, TemplateError> {
        let ends = |line: &str| {
            let line = if heredoc.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            line == heredoc.delimiter
        };
        let mut consumed = 0;
        for line in text.split_inclusive('\n') {
            consumed += line.len();
            let bare = line.strip_suffix('\n').unwrap_or(line);
            if ends(bare) {
                self.out.push_str(line);
                break;
            }
            if heredoc.quoted {
                // The shell expands nothing here, so the value itself is written; it must
                // not hold a line that ends the document and lets the rest run as code.
                let written = substitute(bare, self.values);
                if written.split('\n').any(ends) {
                    return Err(TemplateError::Invalid(format!(
                        "a value would end the here-document <<'{}' early; \
                         use an unquoted delimiter to pass it as a variable",
                        heredoc.delimiter
                    )));
                }
                self.out.push_str(&written);
                if line.ends_with('\n') {
                    self.out.push('\n');
                }
                for (n, used) in self.used.iter_mut().enumerate() {
                    *used |= bare.contains(&format!("{OPEN}{n}{CLOSE}"));
                }
            } else {
                self.plain(line);
            }
        }
        Ok(consumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        let mut ctx = Context::default();
        ctx.params.insert("x".into(), json!("a'b\"c $(id) `id`; d"));
        ctx.params
            .insert("hosts".into(), json!(["edge-1", "edge-2"]));
        ctx.params.insert("flag".into(), json!(true));
        ctx
    }

    fn run(cmd: &ShellCommand) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd.command)
            .env_clear()
            .envs(cmd.env.iter().cloned())
            .output()
            .expect("sh runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn values_are_printed_as_given_in_every_quoting() -> Result<(), TemplateError> {
        let value = "a'b\"c $(id) `id`; d";
        for template in [
            "printf '%s\\n' \"{{ params.x }}\"",
            "printf '%s\\n' '{{ params.x }}'",
            "printf '%s\\n' \"$(printf '%s' '{{ params.x }}')\"",
            "printf '%s\\n' \"pre {{ params.x }}\" | sed 's/^pre //'",
        ] {
            let cmd = render_shell(template, &ctx())?;
            let shown = run(&cmd);
            assert_eq!(
                shown.trim_end(),
                value.replace("pre ", ""),
                "{template}: {cmd:?}"
            );
            assert!(!cmd.command.contains("$(id)"), "{cmd:?}");
        }
        Ok(())
    }

    #[test]
    fn unquoted_values_split_into_words_but_do_not_run() -> Result<(), TemplateError> {
        let cmd = render_shell("printf '<%s>' {{ params.hosts | join(\" \") }}", &ctx())?;
        assert_eq!(run(&cmd), "<edge-1><edge-2>");
        let cmd = render_shell("printf '<%s>' {{ params.x }}", &ctx())?;
        assert_eq!(run(&cmd), "<a'b\"c><$(id)><`id`;><d>");
        assert_eq!(cmd.display, "printf '<%s>' a'b\"c $(id) `id`; d");
        Ok(())
    }

    #[test]
    fn safe_opts_out_and_booleans_print_lowercase() -> Result<(), TemplateError> {
        let mut c = ctx();
        c.params.insert("code".into(), json!("echo one; echo two"));
        let cmd = render_shell("{{ params.code | safe }}", &c)?;
        assert_eq!(run(&cmd), "one\ntwo\n");
        let cmd = render_shell("echo {{ params.flag }} {{ params.flag | safe }}", &c)?;
        assert_eq!(run(&cmd), "true true\n");
        Ok(())
    }

    #[test]
    fn comments_and_heredocs() -> Result<(), TemplateError> {
        let cmd = render_shell("# don't\necho '{{ params.x }}'", &ctx())?;
        assert_eq!(run(&cmd).trim_end(), "a'b\"c $(id) `id`; d");
        let cmd = render_shell("cat <<EOF\nit's {{ params.x }}\nEOF\necho done", &ctx())?;
        assert_eq!(run(&cmd), "it's a'b\"c $(id) `id`; d\ndone\n");
        let cmd = render_shell("cat <<'EOF'\n{{ params.hosts[0] }}\nEOF", &ctx())?;
        assert_eq!(run(&cmd), "edge-1\n");
        let mut c = ctx();
        c.params.insert("end".into(), json!("x\nEOF\nid"));
        assert!(render_shell("cat <<'EOF'\n{{ params.end }}\nEOF", &c).is_err());
        Ok(())
    }
}
