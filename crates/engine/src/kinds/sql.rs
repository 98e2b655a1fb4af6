//! The `sql:` step kind: statements run with sqlx against SQLite, PostgreSQL or
//! MySQL/MariaDB, in one transaction unless the step says `transaction: false`.
//!
//! No process runs: the connection and its statements are raced against the step's stop
//! and `timeout`; a lost race drops the connection before any `COMMIT` is sent, so the
//! database rolls the transaction back. Rows are streamed: at most [`TABLE_ROWS`] rows are
//! kept for the log's table and [`JSON_ROWS`] rows / [`JSON_BYTES`] bytes for the `json`
//! output; the rest are only counted. Log lines and outputs pass the step's redactor, and
//! the connection URL is only ever shown with its password masked.
//!
//! In a dry run (`dry_run: echo-only`, the default) the statements run in a transaction
//! that is rolled back, when the database can undo them: not with `transaction: false`,
//! nor on MySQL/MariaDB for a statement that commits implicitly (DDL), which are shown
//! instead.

mod cells;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures_util::TryStreamExt;
use rota_core::kinds::sql::{
    SqlSource, SqlStep, Statement, check_statement, first_words, one_line, redact_url_password,
    split_statements,
};
use rota_core::model::{DryRun, StepStatus, Value};
use sqlx::{Column as _, Connection as _, Database, Either, Executor as _, Row as _};

use self::cells::{Backend, Cell};
use super::{Executor, ResolveCx};
use crate::process::Stream;
use crate::step::{
    Attempt, AttemptCx, Interrupted, Resolved, Work, log_redacted, race, render_text, render_value,
    stopped_reason, stopped_status,
};

pub(crate) struct Sql;

/// Rows of a result shown as a table in the log.
pub const TABLE_ROWS: usize = 50;
/// Characters of a cell shown in the log's table; longer ones are cut with `…`.
pub const CELL_CHARS: usize = 60;
/// Characters of a statement shown on one line in the log and the attempt's start.
const SHOWN_CHARS: usize = 120;
/// Rows kept in the `json` output.
pub const JSON_ROWS: usize = 1000;
/// Bytes of the `json` output; rows past it are left out whole.
pub const JSON_BYTES: usize = 64 * 1024;
/// Time allowed to connect, so an unreachable server fails a step that has no `timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Statements MySQL/MariaDB can roll back: any other may commit implicitly (DDL, `SET
/// autocommit`, `CALL`…), so a dry run does not run a step holding one.
const MYSQL_UNDOABLE: &[&str] = &[
    "select", "insert", "update", "delete", "replace", "with", "values", "table", "do", "show",
    "explain", "describe", "desc",
];

impl Executor for Sql {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String> {
        let sql: SqlStep = r.step.kind.decode()?;
        let mut work = resolve(&sql, r)?;
        let display = r.shared.redactor.redact(&work.display()).into_owned();
        match r.dry_run {
            None | Some(DryRun::Run) => {}
            Some(_) if work.can_roll_back() => work.roll_back = true,
            Some(_) => {
                return Ok(Resolved::Echo {
                    display,
                    verb: "would run",
                });
            }
        }
        Ok(Resolved::Work {
            work: Box::new(work),
            display,
        })
    }
}

/// Which driver a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

/// What to run: one statement with its bound values, or a script sent whole.
#[derive(Debug)]
enum Plan {
    Statements(Vec<Bound>),
    Script(String),
}

/// A statement and its rendered parameter values.
#[derive(Debug)]
struct Bound {
    query: String,
    params: Vec<Value>,
}

/// A `sql` step with its templates rendered, ready to run.
pub(crate) struct SqlWork {
    dialect: Dialect,
    /// The URL to connect with (may hold a password: never shown).
    url: String,
    /// The URL as shown, its password masked.
    shown_url: String,
    /// The URL's password (as written and decoded), masked in any message the driver writes.
    passwords: Vec<String>,
    plan: Plan,
    transaction: bool,
    /// A dry run: run, then roll back.
    roll_back: bool,
    timeout: Option<Duration>,
}

impl SqlWork {
    /// `select …` on `postgres://app:***@db/prod`, before redaction.
    fn display(&self) -> String {
        let what = match &self.plan {
            Plan::Statements(list) if list.len() == 1 => one_line(&list[0].query, SHOWN_CHARS),
            Plan::Statements(list) => format!("{} statements", list.len()),
            Plan::Script(text) => {
                format!("a script of {} statements", split_statements(text).len())
            }
        };
        format!("{what} on {}", self.shown_url)
    }

    /// Whether a rolled-back transaction leaves the database as it was.
    fn can_roll_back(&self) -> bool {
        if !self.transaction {
            return false;
        }
        if self.dialect != Dialect::MySql {
            return true;
        }
        let texts: Vec<&str> = match &self.plan {
            Plan::Statements(list) => list.iter().map(|b| b.query.as_str()).collect(),
            Plan::Script(text) => split_statements(text),
        };
        texts.iter().all(|text| {
            split_statements(text).iter().all(|statement| {
                first_words(statement, 1)
                    .first()
                    .is_some_and(|w| MYSQL_UNDOABLE.contains(&w.as_str()))
            })
        })
    }

    /// `text` with the URL's password masked.
    fn mask(&self, text: &str) -> String {
        self.passwords
            .iter()
            .fold(text.to_owned(), |text, password| {
                text.replace(password.as_str(), "***")
            })
    }
}

/// Renders the URL and parameters and reads a `file:` script.
fn resolve(sql: &SqlStep, r: &ResolveCx<'_>) -> Result<SqlWork, String> {
    let rendered = render_text(&sql.url, r.ctx)?;
    let (dialect, url) = connection_url(rendered.trim(), &r.shared.base_dir)?;
    let shown_url = redact_url_password(&url);
    let passwords = url_passwords(&url);
    let plan = match &sql.source {
        SqlSource::Query(statement) => Plan::Statements(vec![bind(statement, r)?]),
        SqlSource::Statements(list) => {
            Plan::Statements(list.iter().map(|s| bind(s, r)).collect::<Result<_, _>>()?)
        }
        SqlSource::File(path) => {
            let path = r.shared.base_dir.join(render_text(path, r.ctx)?);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the SQL file {}: {e}", path.display()))?;
            check_statement(&text, sql.transaction)
                .map_err(|problem| format!("{}: {problem}", path.display()))?;
            Plan::Script(text)
        }
    };
    Ok(SqlWork {
        dialect,
        url,
        shown_url,
        passwords,
        plan,
        transaction: sql.transaction,
        roll_back: false,
        timeout: r.step.timeout,
    })
}

fn bind(statement: &Statement, r: &ResolveCx<'_>) -> Result<Bound, String> {
    let params = statement
        .params
        .iter()
        .map(|value| render_value(value, r.ctx))
        .collect::<Result<_, _>>()?;
    Ok(Bound {
        query: statement.query.clone(),
        params,
    })
}

/// The driver and the URL to give it: `mariadb://` is `mysql://`, and a relative SQLite
/// path is relative to the job file's directory.
fn connection_url(url: &str, base_dir: &Path) -> Result<(Dialect, String), String> {
    let (scheme, rest) = url
        .split_once(':')
        .ok_or_else(|| "the connection URL has no scheme".to_owned())?;
    match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => Ok((Dialect::Postgres, url.to_owned())),
        "mysql" => Ok((Dialect::MySql, url.to_owned())),
        "mariadb" => Ok((Dialect::MySql, format!("mysql:{rest}"))),
        "sqlite" => {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let (file, query) = rest
                .split_once('?')
                .map_or((rest, None), |(f, q)| (f, Some(q)));
            let file = if file.is_empty() || file == ":memory:" || Path::new(file).is_absolute() {
                file.to_owned()
            } else {
                base_dir.join(file).display().to_string()
            };
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            Ok((Dialect::Sqlite, format!("sqlite://{file}{query}")))
        }
        other => Err(format!(
            "unsupported database `{other}` in the connection URL (expected sqlite, postgres, \
             mysql or mariadb)"
        )),
    }
}

/// The password in a URL's user info or `password=` parameter, as written and decoded:
/// the forms a driver's message could repeat.
fn url_passwords(url: &str) -> Vec<String> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Vec::new();
    };
    let mut forms = Vec::new();
    if let Some(written) = parsed.password() {
        forms.push(percent_decode(written));
        forms.push(written.to_owned());
    }
    if let Some((_, value)) = parsed
        .query_pairs()
        .find(|(k, _)| k.eq_ignore_ascii_case("password"))
    {
        forms.push(value.into_owned());
    }
    forms.retain(|f| !f.is_empty());
    forms.dedup();
    forms
}

/// `%XX` escapes decoded (bytes that do not form UTF-8 are replaced).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Work for SqlWork {
    fn run<'a>(
        self: Box<Self>,
        at: AttemptCx<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Attempt> + Send + 'a>> {
        Box::pin(async move {
            let log = |stream: Stream, text: &str| {
                log_redacted(at.shared, at.step, at.attempt_no, stream, &self.mask(text));
            };
            if self.roll_back {
                log(
                    Stream::Stderr,
                    "dry run: the statements run in a transaction that is rolled back",
                );
            }
            log(Stream::Stderr, &format!("> connect {}", self.shown_url));
            let (status, reason, outputs) = match race(execute(&self, &log), at.stop, self.timeout)
                .await
            {
                Ok(Ok(last)) => (StepStatus::Succeeded, None, outputs(&last)),
                Ok(Err(reason)) => {
                    let reason = self.mask(&reason);
                    log(Stream::Stderr, &format!("! {reason}"));
                    (StepStatus::Failed, Some(reason), BTreeMap::new())
                }
                Err(Interrupted::Stopped) => {
                    log(
                        Stream::Stderr,
                        "! stopped: the connection was dropped, nothing was committed",
                    );
                    let reason = stopped_reason(at.shared);
                    (stopped_status(at.shared), Some(reason), BTreeMap::new())
                }
                Err(Interrupted::TimedOut) => {
                    let reason = format!(
                        "timed out after {}",
                        crate::run::humantime(self.timeout.unwrap_or_default())
                    );
                    log(
                        Stream::Stderr,
                        &format!("! {reason}: the connection was dropped, nothing was committed"),
                    );
                    (StepStatus::TimedOut, Some(reason), BTreeMap::new())
                }
            };
            let outputs = outputs
                .into_iter()
                .map(|(k, v)| (k, at.shared.redactor.redact(&self.mask(&v)).into_owned()))
                .collect();
            Attempt {
                status,
                exit_code: None,
                outputs,
                reason: reason.map(|r| at.shared.redactor.redact(&r).into_owned()),
            }
        })
    }
}

type Log<'a> = dyn Fn(Stream, &str) + Sync + 'a;

/// Connects with the driver the URL names and runs the plan.
async fn execute(work: &SqlWork, log: &Log<'_>) -> Result<Outcome, String> {
    match work.dialect {
        Dialect::Sqlite => {
            let mut options = sqlx::sqlite::SqliteConnectOptions::from_str(&work.url)
                .map_err(|e| format!("invalid SQLite URL: {e}"))?;
            // Like the sqlite3 shell, a missing file is created, unless the URL says
            // `mode=ro` or `mode=rw`.
            if !work.url.contains("mode=") {
                options = options.create_if_missing(true);
            }
            let conn = connect(sqlx::SqliteConnection::connect_with(&options)).await?;
            run_plan::<sqlx::Sqlite>(conn, work, log).await
        }
        Dialect::Postgres => {
            let conn = connect(sqlx::PgConnection::connect(&work.url)).await?;
            run_plan::<sqlx::Postgres>(conn, work, log).await
        }
        Dialect::MySql => {
            let conn = connect(sqlx::MySqlConnection::connect(&work.url)).await?;
            run_plan::<sqlx::MySql>(conn, work, log).await
        }
    }
}

async fn connect<C>(
    connecting: impl std::future::Future<Output = Result<C, sqlx::Error>>,
) -> Result<C, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("cannot connect: {}", describe_error(&e))),
        Err(_) => Err(format!(
            "cannot connect: no answer within {}",
            crate::run::humantime(CONNECT_TIMEOUT)
        )),
    }
}

/// Runs every statement on `conn`, in one transaction unless the step opts out;
/// committed unless this is a dry run, rolled back on the first error.
async fn run_plan<DB: Backend>(
    mut conn: DB::Connection,
    work: &SqlWork,
    log: &Log<'_>,
) -> Result<Outcome, String>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    if !work.transaction {
        return run_statements::<DB>(&mut conn, work, log).await;
    }
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| format!("cannot begin a transaction: {}", describe_error(&e)))?;
    match run_statements::<DB>(&mut tx, work, log).await {
        Ok(outcome) if work.roll_back => {
            tx.rollback()
                .await
                .map_err(|e| format!("rollback failed: {}", describe_error(&e)))?;
            log(Stream::Stderr, "dry run: rolled back");
            Ok(outcome)
        }
        Ok(outcome) => {
            tx.commit()
                .await
                .map_err(|e| format!("commit failed: {}", describe_error(&e)))?;
            log(Stream::Stderr, "committed");
            Ok(outcome)
        }
        Err(reason) => {
            let undone = match tx.rollback().await {
                Ok(()) => "rolled back".to_owned(),
                Err(e) => format!(
                    "rollback failed ({}); the server discards the transaction as the \
                     connection closes",
                    describe_error(&e)
                ),
            };
            Err(format!("{reason}; {undone}"))
        }
    }
}

async fn run_statements<DB: Backend>(
    conn: &mut DB::Connection,
    work: &SqlWork,
    log: &Log<'_>,
) -> Result<Outcome, String>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    match &work.plan {
        Plan::Statements(list) => {
            let mut last = Outcome::default();
            for (index, bound) in list.iter().enumerate() {
                log(
                    Stream::Stderr,
                    &format!("> {}", one_line(&bound.query, SHOWN_CHARS)),
                );
                let mut query = sqlx::query::<DB>(&bound.query);
                for value in &bound.params {
                    query = DB::bind_value(query, value);
                }
                last = collect::<DB>(conn.fetch_many(query), false, log)
                    .await
                    .map_err(|e| statement_failed(index, list.len(), &e))?;
            }
            Ok(last)
        }
        Plan::Script(text) => {
            log(
                Stream::Stderr,
                &format!("> a script of {} statements", split_statements(text).len()),
            );
            // Sent whole: the database splits it (PostgreSQL's simple protocol, MySQL's
            // multi-statements, SQLite's own parser), so its results come as text.
            collect::<DB>(conn.fetch_many(sqlx::raw_sql(text)), true, log)
                .await
                .map_err(|e| format!("the script failed: {}", describe_error(&e)))
        }
    }
}

fn statement_failed(index: usize, count: usize, e: &sqlx::Error) -> String {
    if count == 1 {
        format!("the statement failed: {}", describe_error(e))
    } else {
        format!(
            "statement {} of {count} failed: {}",
            index + 1,
            describe_error(e)
        )
    }
}

/// The driver's error, with the database's own message when it sent one.
fn describe_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

/// The last result of a statement: its columns, the rows kept, how many there were.
#[derive(Default)]
struct Outcome {
    columns: Vec<String>,
    /// The first [`TABLE_ROWS`] rows, each cell as text.
    table: Vec<Vec<String>>,
    /// The first row's cells as text.
    first: Vec<String>,
    /// Rows as a JSON array, at most [`JSON_ROWS`] rows and [`JSON_BYTES`] bytes.
    json: String,
    json_cut: bool,
    /// Rows returned, or rows affected by a statement that returns none.
    rows: u64,
}

/// What the driver streams for a statement: rows, and a summary at each statement's end.
type Results<'s, DB> = futures_util::stream::BoxStream<
    's,
    Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, sqlx::Error>,
>;

/// Streams one statement's results (a script's: each statement's), logging each result
/// set and keeping the last; memory stays bounded whatever the row count.
async fn collect<DB: Backend>(
    mut stream: Results<'_, DB>,
    text_protocol: bool,
    log: &Log<'_>,
) -> Result<Outcome, sqlx::Error> {
    let mut current = Outcome::default();
    let mut returned_rows = false;
    let mut last = None;
    while let Some(item) = stream.try_next().await? {
        match item {
            Either::Right(row) => {
                if !returned_rows {
                    returned_rows = true;
                    current.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                    current.json.push('[');
                }
                current.rows += 1;
                let keep_table = current.table.len() < TABLE_ROWS;
                let keep_json = !current.json_cut;
                if keep_table || keep_json || current.rows == 1 {
                    let cells: Vec<Cell> = (0..current.columns.len())
                        .map(|i| DB::cell(&row, i, text_protocol))
                        .collect();
                    add_row(&mut current, &cells, keep_table, keep_json);
                }
            }
            Either::Left(result) => {
                // One statement is done: its rows, or what it changed.
                if returned_rows {
                    current.json.push(']');
                    log_table(&current, log);
                } else {
                    current.rows = DB::rows_affected(&result);
                    log(Stream::Stdout, &format!("{} rows affected", current.rows));
                }
                last = Some(std::mem::take(&mut current));
                returned_rows = false;
            }
        }
    }
    if returned_rows {
        // A driver that ends a row stream without its summary.
        current.json.push(']');
        log_table(&current, log);
        last = Some(current);
    }
    Ok(last.unwrap_or_default())
}

fn add_row(outcome: &mut Outcome, cells: &[Cell], keep_table: bool, keep_json: bool) {
    if outcome.rows == 1 {
        outcome.first = cells.iter().map(Cell::to_text).collect();
    }
    if keep_table {
        outcome
            .table
            .push(cells.iter().map(|c| c.to_table_text()).collect());
    }
    if keep_json {
        let object: serde_json::Map<String, Value> = outcome
            .columns
            .iter()
            .cloned()
            .zip(cells.iter().map(Cell::to_json))
            .collect();
        let text = Value::Object(object).to_string();
        let kept = outcome.rows as usize - 1;
        // `[` + rows + `,` between them + `]` must fit.
        if kept >= JSON_ROWS || outcome.json.len() + text.len() + 2 > JSON_BYTES {
            outcome.json_cut = true;
            return;
        }
        if kept > 0 {
            outcome.json.push(',');
        }
        outcome.json.push_str(&text);
    }
}

/// The result set as an aligned table, its first [`TABLE_ROWS`] rows.
fn log_table(outcome: &Outcome, log: &Log<'_>) {
    let mut widths: Vec<usize> = outcome.columns.iter().map(|c| c.chars().count()).collect();
    for row in &outcome.table {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str(" | ");
            }
            let _ = write!(text, "{cell:<width$}");
        }
        text.trim_end().to_owned()
    };
    log(Stream::Stdout, &line(&outcome.columns));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    log(Stream::Stdout, &line(&rule).replace(" | ", "-+-"));
    for row in &outcome.table {
        log(Stream::Stdout, &line(row));
    }
    let shown = outcome.table.len() as u64;
    let plural = if outcome.rows == 1 { "" } else { "s" };
    if shown < outcome.rows {
        log(
            Stream::Stdout,
            &format!("({} row{plural}, the first {shown} shown)", outcome.rows),
        );
    } else {
        log(Stream::Stdout, &format!("({} row{plural})", outcome.rows));
    }
}

/// The step's outputs from its last statement: `rows`, the first row's columns by name,
/// `json` (and `json_truncated` when rows were left out of it).
fn outputs(last: &Outcome) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    for (name, value) in last.columns.iter().zip(&last.first) {
        outputs.insert(name.clone(), value.clone());
    }
    outputs.insert("rows".to_owned(), last.rows.to_string());
    let json = if last.json.is_empty() {
        "[]"
    } else {
        &last.json
    };
    outputs.insert("json".to_owned(), json.to_owned());
    if last.json_cut {
        outputs.insert("json_truncated".to_owned(), "true".to_owned());
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_paths_are_under_the_job_directory() {
        let base = Path::new("/jobs");
        assert_eq!(
            connection_url("sqlite://data/x.db?mode=ro", base).unwrap(),
            (
                Dialect::Sqlite,
                "sqlite:///jobs/data/x.db?mode=ro".to_owned()
            )
        );
        assert_eq!(
            connection_url("sqlite:///abs.db", base).unwrap().1,
            "sqlite:///abs.db"
        );
        assert_eq!(
            connection_url("mariadb://u:p@h/db", base).unwrap(),
            (Dialect::MySql, "mysql://u:p@h/db".to_owned())
        );
        assert!(connection_url("oracle://h", base).is_err());
    }

    #[test]
    fn passwords_are_found_decoded() {
        assert_eq!(
            url_passwords("postgres://u:p%40ss@h/db"),
            ["p@ss", "p%40ss"]
        );
        assert_eq!(url_passwords("mysql://u@h/db?password=x"), ["x"]);
        assert!(url_passwords("sqlite:///x.db").is_empty());
    }

    #[test]
    fn json_keeps_whole_rows_within_its_cap() {
        let mut outcome = Outcome {
            columns: vec!["v".to_owned()],
            json: "[".to_owned(),
            ..Outcome::default()
        };
        let big = Cell::Text("x".repeat(1000));
        for _ in 0..200 {
            outcome.rows += 1;
            let keep_json = !outcome.json_cut;
            add_row(&mut outcome, std::slice::from_ref(&big), false, keep_json);
        }
        outcome.json.push(']');
        assert!(outcome.json_cut);
        assert!(outcome.json.len() <= JSON_BYTES);
        let parsed: Vec<Value> = serde_json::from_str(&outcome.json).expect("valid JSON");
        assert!(parsed.len() > 10 && parsed.len() < 200, "{}", parsed.len());
    }
}
