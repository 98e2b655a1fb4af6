//! `sql: {url, query | statements | file, params, transaction}`: statements run against a
//! SQLite, PostgreSQL or MySQL/MariaDB database; no process runs.
//!
//! The SQL text is never a template: values reach a statement only as bound parameters
//! (`params:`), so a `{{` in the SQL is refused where it is written. The engine's executor
//! (`rota_engine`'s `kinds::sql`) connects, runs the statements in one transaction and
//! publishes the last statement's result.

use serde::{Deserialize, Serialize};

use super::{KindSite, NoProcess, Sites, StepKindDef, collect_strings, encode, normalize, text};
use crate::convert::{Cx, boolean, get};
use crate::model::Value;
use crate::tree::{Kind, Node};

pub(crate) struct Sql;

impl StepKindDef for Sql {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value> {
        sql_step(site.cx, site.value, site.step.label, site.sites).and_then(|s| encode(&s))
    }

    fn no_process(&self) -> Option<NoProcess> {
        Some(NoProcess {
            article: "an",
            templated: "`url` or `params`",
        })
    }

    fn normalize(&self, config: Value) -> Result<Value, String> {
        normalize::<SqlStep>(config)
    }

    fn describe(&self, config: &Value) -> String {
        let url = text(config, "url").unwrap_or_default();
        let what = match config.get("source") {
            Some(Value::Object(source)) => match source.iter().next() {
                Some((kind, Value::Array(items))) if kind == "statements" => {
                    format!("{} statements", items.len())
                }
                Some((kind, Value::String(path))) if kind == "file" => path.clone(),
                Some((_, Value::Object(one))) => one
                    .get("query")
                    .and_then(Value::as_str)
                    .map(|sql| one_line(sql, 80))
                    .unwrap_or_default(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        format!("{} on {}", what, redact_url_password(url))
    }
}

/// A `sql` step's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlStep {
    /// `sqlite://…`, `postgres://…`, `mysql://…` or `mariadb://…` (a template, typically
    /// `{{ secrets.DB_URL }}`).
    pub url: String,
    /// The SQL to run.
    pub source: SqlSource,
    /// Run every statement in one transaction, rolled back on error (the default).
    pub transaction: bool,
}

/// Where a `sql` step's statements come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlSource {
    /// `query:` one statement, with the step's `params:`.
    Query(Statement),
    /// `statements:` a list run in order, each with its own parameters.
    Statements(Vec<Statement>),
    /// `file:` a `.sql` file relative to the job file's directory (a template), run as one
    /// script of any number of statements, without parameters.
    File(String),
}

/// One statement and the values bound to its placeholders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// The SQL text, never rendered.
    pub query: String,
    /// Values bound to `$1`, `$2`… (PostgreSQL, SQLite) or `?` (MySQL, SQLite) in order;
    /// strings are templates.
    pub params: Vec<Value>,
}

/// Keys a `sql:` mapping may hold.
const SQL_KEYS: &[&str] = &["url", "query", "statements", "file", "params", "transaction"];

/// URL schemes a `sql` step connects with.
pub const SQL_SCHEMES: &[&str] = &["sqlite", "postgres", "postgresql", "mysql", "mariadb"];

/// Converts the mapping under `sql:`.
fn sql_step(cx: &mut Cx, node: &Node, label: &str, site: &mut Sites<'_>) -> Option<SqlStep> {
    let what = format!("`sql` in {label}");
    let fields = cx.map(node, &what)?;
    cx.unknown_keys(fields, SQL_KEYS, &what);

    let url = match get(fields, "url") {
        Some(n) => cx.string(n, &format!("`url` in {label}")).inspect(|url| {
            site(url, n.pos, false);
            if let Err(problem) = check_sql_url(url) {
                cx.err(n.pos, format!("invalid `url` in {label}: {problem}"));
            }
        }),
        None => {
            cx.err(node.pos, format!("missing required key `url` in {what}"));
            None
        }
    };
    let transaction = get(fields, "transaction")
        .and_then(|n| boolean(cx, n, &format!("`transaction` in {label}")))
        .unwrap_or(true);

    let given: Vec<&str> = ["query", "statements", "file"]
        .into_iter()
        .filter(|k| get(fields, k).is_some())
        .collect();
    if given.len() > 1 {
        let second = get(fields, given[1]).map_or(node.pos, |n| n.pos);
        cx.err(
            second,
            format!(
                "{what} has both `{}` and `{}`; give exactly one of `query`, `statements` or `file`",
                given[0], given[1]
            ),
        );
        return None;
    }
    let params = get(fields, "params");
    let source = match given.first().copied() {
        Some("query") => {
            let n = get(fields, "query")?;
            let query = statement_text(cx, n, &format!("`query` in {label}"), transaction)?;
            let params = params.map(|p| param_list(cx, p, label, site)).unwrap_or_default();
            SqlSource::Query(Statement { query, params })
        }
        Some("statements") => {
            if let Some(p) = params {
                cx.err(
                    p.pos,
                    format!(
                        "`params` in {what} goes with `query`; give each entry of \
                         `statements` its own: `{{ query: \"…\", params: [ … ] }}`"
                    ),
                );
            }
            let n = get(fields, "statements")?;
            let items = cx.seq(n, &format!("`statements` in {label}"))?;
            if items.is_empty() {
                cx.err(n.pos, format!("`statements` in {label} is empty"));
            }
            let list: Vec<Statement> = items
                .iter()
                .filter_map(|item| statement_entry(cx, item, label, transaction, site))
                .collect();
            SqlSource::Statements(list)
        }
        Some(_) => {
            if let Some(p) = params {
                cx.err(
                    p.pos,
                    format!(
                        "`params` in {what}: a `file` runs as a script without parameters; \
                         use `query` or `statements` to bind values"
                    ),
                );
            }
            let n = get(fields, "file")?;
            let path = cx.string(n, &format!("`file` in {label}"))?;
            site(&path, n.pos, false);
            SqlSource::File(path)
        }
        None => {
            cx.err(
                node.pos,
                format!("{what} needs one of `query`, `statements` or `file`"),
            );
            return None;
        }
    };
    Some(SqlStep {
        url: url?,
        source,
        transaction,
    })
}

/// One entry of `statements:`: its SQL, or `{query, params}`.
fn statement_entry(
    cx: &mut Cx,
    node: &Node,
    label: &str,
    transaction: bool,
    site: &mut Sites<'_>,
) -> Option<Statement> {
    let what = format!("an entry of `statements` in {label}");
    match &node.kind {
        Kind::Map(fields) => {
            cx.unknown_keys(fields, &["query", "params"], &what);
            let Some(q) = get(fields, "query") else {
                cx.err(node.pos, format!("missing required key `query` in {what}"));
                return None;
            };
            let query = statement_text(cx, q, &format!("`query` in {what}"), transaction)?;
            let params = get(fields, "params")
                .map(|p| param_list(cx, p, label, site))
                .unwrap_or_default();
            Some(Statement { query, params })
        }
        _ => {
            let query = statement_text(cx, node, &what, transaction)?;
            Some(Statement {
                query,
                params: Vec::new(),
            })
        }
    }
}

/// The SQL of one statement: a non-empty string without templates, and without
/// transaction control when the step runs in its own transaction.
fn statement_text(cx: &mut Cx, node: &Node, what: &str, transaction: bool) -> Option<String> {
    let sql = cx.string(node, what)?;
    if sql.trim().is_empty() {
        cx.err(node.pos, format!("{what} is empty"));
        return None;
    }
    if let Err(problem) = check_statement(&sql, transaction) {
        cx.err(node.pos, format!("{what}: {problem}"));
        return None;
    }
    Some(sql)
}

/// What is wrong with a statement's text, if anything: a template in it (values go in as
/// bound parameters), or a statement that ends the step's transaction itself.
pub fn check_statement(sql: &str, transaction: bool) -> Result<(), String> {
    if sql.contains("{{") || sql.contains("{%") {
        return Err("templates are not rendered into SQL; write a placeholder ($1, ?) and \
             pass the value in `params:`"
            .to_owned());
    }
    if transaction && let Some(word) = transaction_control(sql) {
        return Err(format!(
            "`{word}` ends the step's own transaction; remove it, or set \
             `transaction: false` to manage transactions yourself"
        ));
    }
    Ok(())
}

/// The `params:` list: any scalar (strings are templates); lists and maps are refused,
/// since no backend binds them the same way.
fn param_list(cx: &mut Cx, node: &Node, label: &str, site: &mut Sites<'_>) -> Vec<Value> {
    let what = format!("`params` in {label}");
    let Some(items) = cx.seq(node, &what) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match &item.kind {
            Kind::Seq(_) | Kind::Map(_) => {
                cx.expected(item, "a string, number, boolean or null", &what);
                None
            }
            _ => {
                collect_strings(item, site);
                Some(item.to_json())
            }
        })
        .collect()
}

/// Checks the literal parts of a connection URL: a scheme Rota connects with. A URL that
/// starts with a template (`{{ secrets.DB_URL }}`) is checked once rendered.
fn check_sql_url(url: &str) -> Result<(), String> {
    let text = url.trim();
    if text.starts_with("{{") || text.starts_with("{%") {
        return Ok(());
    }
    let scheme = text.split_once(':').map_or("", |(scheme, _)| scheme);
    if SQL_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
        Ok(())
    } else {
        Err(format!(
            "expected a URL starting with one of {} (e.g. `sqlite:///path/to/file.db`)",
            SQL_SCHEMES
                .iter()
                .map(|s| format!("`{s}:`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// `url` with the password of its user info replaced by `***`, for every place a
/// connection URL is shown (the password need not be a secret to be kept out of logs).
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    // A password may also ride in the query (`?password=…`).
    let tail = redact_query_password(tail);
    format!("{scheme}://{user}@{host}{tail}")
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// The statements of a SQL script as written, split at `;` outside quotes, identifiers,
/// comments and PostgreSQL dollar quotes. Only used to look at each statement's first
/// words; a script is sent to the database whole.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' | b'`' => i = skip_quoted(bytes, i),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 2);
            }
            b'$' => i = skip_dollar_quoted(sql, i),
            b';' => {
                parts.push(&sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    parts.push(&sql[start..]);
    parts.retain(|p| !first_words(p, 1).is_empty());
    parts
}

/// Past a quoted run starting at `at` (a doubled quote stays inside it).
fn skip_quoted(bytes: &[u8], at: usize) -> usize {
    let quote = bytes[at];
    let mut i = at + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' && quote == b'\'' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Past a `$tag$ … $tag$` run starting at `at`, or just past the `$` when it opens none.
fn skip_dollar_quoted(sql: &str, at: usize) -> usize {
    let rest = &sql[at + 1..];
    let tag_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if !rest[tag_len..].starts_with('$') || rest[..tag_len].starts_with(|c: char| c.is_ascii_digit())
    {
        return at + 1;
    }
    let tag = &sql[at..at + tag_len + 2];
    let body = at + tag.len();
    sql[body..]
        .find(tag)
        .map_or(sql.len(), |n| body + n + tag.len())
}

/// The first `n` words of a statement, lowercased, past leading comments and whitespace.
pub fn first_words(statement: &str, n: usize) -> Vec<String> {
    let mut rest = statement;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .take(n)
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The statement of `sql` that begins or ends a transaction (`COMMIT`, `ROLLBACK`,
/// `BEGIN`, `START TRANSACTION`), if any. `ROLLBACK TO` a savepoint stays inside the
/// transaction, and a `BEGIN` that opens a trigger's body is part of a `CREATE` statement.
pub fn transaction_control(sql: &str) -> Option<String> {
    split_statements(sql).into_iter().find_map(|statement| {
        let words = first_words(statement, 2);
        let first = words.first().map(String::as_str)?;
        let second = words.get(1).map(String::as_str);
        let ends = match first {
            "commit" | "begin" => true,
            "rollback" => !matches!(second, Some("to")),
            "start" => second == Some("transaction"),
            _ => false,
        };
        ends.then(|| first.to_ascii_uppercase())
    })
}

/// A statement on one line, cut to `max` characters, for descriptions and logs.
pub fn one_line(sql: &str, max: usize) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_shown_urls() {
        assert_eq!(
            redact_url_password("postgres://app:s3cr%40t@db:5432/prod?sslmode=require"),
            "postgres://app:***@db:5432/prod?sslmode=require"
        );
        assert_eq!(
            redact_url_password("mysql://root@127.0.0.1/x?password=hunter2&ssl=1"),
            "mysql://root@127.0.0.1/x?password=***&ssl=1"
        );
        assert_eq!(
            redact_url_password("sqlite:///tmp/a.db"),
            "sqlite:///tmp/a.db"
        );
    }

    #[test]
    fn scripts_split_outside_quotes_and_comments() {
        let parts = split_statements(
            "insert into t values ('a;b'); -- c;d\n select $x$ ; $x$; /* ; */ commit;",
        );
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert_eq!(first_words(parts[2], 1), vec!["commit"]);
    }

    #[test]
    fn transaction_control_is_found_but_not_savepoints_or_triggers() {
        assert_eq!(transaction_control("select 1; COMMIT"), Some("COMMIT".into()));
        assert_eq!(
            transaction_control("start transaction"),
            Some("START".into())
        );
        assert_eq!(transaction_control("rollback to savepoint a"), None);
        assert_eq!(
            transaction_control(
                "create trigger t after insert on a begin insert into b values (1); end"
            ),
            None
        );
        assert_eq!(transaction_control("select 'commit'"), None);
    }

    #[test]
    fn templates_in_sql_point_to_params() {
        let problem = check_statement("select '{{ params.x }}'", true).unwrap_err();
        assert!(problem.contains("params"), "{problem}");
        assert!(check_statement("select $1", true).is_ok());
    }
}
