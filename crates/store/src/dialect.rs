//! What differs between the two backends, kept in one place, and the query builder every
//! dynamic query uses.
//!
//! Queries are written once, in SQL both SQLite and PostgreSQL accept: `$1..$n`
//! placeholders (SQLite reads `$1` as a named parameter, so a number used twice binds the
//! same value), `ON CONFLICT … DO NOTHING/UPDATE`, row values, `RETURNING`. The few places
//! where the dialects differ ask [`Backend`] here.
//!
//! Through sqlx's `Any` driver, values decode only as bool, integers, floats, text and bytes.
//! SQLite has no boolean type: a boolean expression (`NOT EXISTS …`) comes back as an
//! integer there and as a boolean on PostgreSQL ([`crate::convert::flag`] reads both), and a
//! column declared `BOOLEAN` is selected as `CAST(col AS INTEGER)`, because the `Any` driver
//! refuses SQLite's declared `BOOLEAN` column type outright.
//!
//! Other differences the queries keep clear of: SQLite's two-argument `MAX(a, b)` (a `CASE`
//! instead); `LIKE`, case-insensitive for ASCII and without an escape character on SQLite,
//! case-sensitive with `\` as escape on PostgreSQL (the one `LIKE` lowers both sides and
//! names its escape); NULL ordering (last in SQLite's `DESC`, first in PostgreSQL's): no query
//! orders by a nullable column, and one that does must say `NULLS FIRST`/`NULLS LAST`; text
//! comparison, by code point on both because PostgreSQL's text columns are `COLLATE "C"`;
//! `SUM()`, `NUMERIC` on PostgreSQL, which the `Any` driver cannot decode (cast it to
//! `BIGINT`); U+0000, which PostgreSQL's text cannot hold ([`Backend::text`]).

use std::fmt::Write as _;

use sqlx::any::AnyArguments;
use sqlx::error::BoxDynError;
use sqlx::{Any, Arguments as _, Encode, Type};

/// Which database a [`Store`](crate::Store) runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A SQLite file (the default: `$ROTA_HOME/rota.db`).
    Sqlite,
    /// A PostgreSQL database (`postgres://…`).
    Postgres,
}

/// The two keys of the advisory lock every PostgreSQL write transaction takes ("rota" in
/// ASCII, then 1). The two-key form lives in a key space apart from the single 64-bit keys
/// sqlx's migrator locks, so the two never collide.
const WRITE_LOCK: (i32, i32) = (0x726f_7461, 1);

impl Backend {
    /// The backend of a store URL, by its scheme.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// The backend of a connection.
    pub(crate) fn of_conn(conn: &sqlx::AnyConnection) -> Backend {
        if conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// `text` as this backend can store it. PostgreSQL's text cannot hold U+0000, which a
    /// step may print; there it becomes U+FFFD, as invalid UTF-8 in a step's output already
    /// does. SQLite stores every string as given.
    pub(crate) fn text(self, text: &str) -> std::borrow::Cow<'_, str> {
        match self {
            Backend::Postgres if text.contains('\0') => text.replace('\0', "\u{FFFD}").into(),
            _ => text.into(),
        }
    }

    /// The statement that begins a write transaction holding the store's one write lock.
    /// SQLite: `BEGIN IMMEDIATE` takes the database's write lock up front (a deferred
    /// transaction that reads and then writes can fail with `SQLITE_BUSY` without waiting).
    /// PostgreSQL: `BEGIN`, then a transaction-scoped advisory lock, in the same round trip;
    /// it is released at commit or rollback, so writers queue exactly as on SQLite.
    pub(crate) fn begin_write(self) -> String {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE".to_owned(),
            Backend::Postgres => format!(
                "BEGIN; SELECT pg_advisory_xact_lock({}, {})",
                WRITE_LOCK.0, WRITE_LOCK.1
            ),
        }
    }

    /// The statement that begins a transaction that writes only rows it locks itself, row by
    /// row: a claim of a dispatch and a lease's renewal (see `crate::fleet`). SQLite has one
    /// writer at a time whatever the statement: `BEGIN IMMEDIATE`, as every write.
    /// PostgreSQL: a plain `BEGIN`, without the store's write lock, so such transactions run
    /// beside each other and beside the write transactions, serialized only by row locks.
    pub(crate) fn begin_row_writes(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// What ends a `SELECT` that locks the rows it returns until the transaction ends:
    /// skipping the rows another transaction holds (`skip`: the next free one will do), or
    /// waiting for them. Nothing on SQLite, whose writer holds the whole database.
    pub(crate) fn lock_rows(self, skip: bool) -> &'static str {
        match (self, skip) {
            (Backend::Sqlite, _) => "",
            (Backend::Postgres, true) => " FOR UPDATE SKIP LOCKED",
            (Backend::Postgres, false) => " FOR UPDATE",
        }
    }

    /// A statement failing inside a PostgreSQL transaction aborts the transaction: nothing
    /// else runs in it until a rollback. Where the store looks into a failure before giving
    /// up (which run a log line names), it first sets this savepoint there, and rolls back to
    /// it ([`Backend::after_failure`]). SQLite keeps a transaction usable after a failed
    /// statement, so it needs none.
    pub(crate) fn savepoint(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("SAVEPOINT rota_inspect"),
        }
    }

    /// Makes the transaction usable again after a failed statement (see [`Backend::savepoint`]).
    pub(crate) fn after_failure(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("ROLLBACK TO SAVEPOINT rota_inspect"),
        }
    }
}

/// A query put together piece by piece, numbering its placeholders `$1..$n` as values are
/// bound (sqlx's `QueryBuilder` writes `?` for the `Any` driver, which PostgreSQL refuses).
pub(crate) struct Sql<'a> {
    text: String,
    args: AnyArguments<'a>,
    count: usize,
    error: Option<BoxDynError>,
}

impl<'a> Sql<'a> {
    /// A query starting with `text`.
    pub(crate) fn new(text: impl Into<String>) -> Sql<'a> {
        Sql {
            text: text.into(),
            args: AnyArguments::default(),
            count: 0,
            error: None,
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, text: impl AsRef<str>) -> &mut Sql<'a> {
        self.text.push_str(text.as_ref());
        self
    }

    /// Appends a placeholder and binds `value` to it.
    pub(crate) fn push_bind<T>(&mut self, value: T) -> &mut Sql<'a>
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
    {
        let number = self.bind(value);
        // Writing to a String cannot fail.
        let _ = write!(self.text, "${number}");
        self
    }

    /// Binds `value` to the next placeholder number without writing it, for text that uses
    /// the number itself (several times, or before the text is assembled); returns it.
    pub(crate) fn bind<T>(&mut self, value: T) -> usize
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
    {
        self.count += 1;
        if let Err(error) = self.args.add(value)
            && self.error.is_none()
        {
            self.error = Some(error);
        }
        self.count
    }

    /// Appends `items` as a comma-separated list, each written by `each` (which separates
    /// its own values with [`Sql::sep`]).
    pub(crate) fn push_list<I, F>(&mut self, items: I, mut each: F) -> &mut Sql<'a>
    where
        I: IntoIterator,
        F: FnMut(&mut Sql<'a>, I::Item),
    {
        for (index, item) in items.into_iter().enumerate() {
            if index > 0 {
                self.text.push_str(", ");
            }
            each(self, item);
        }
        self
    }

    /// `VALUES (…), (…)` of `items`, each row's values bound by `each` through [`Sql::sep`].
    pub(crate) fn push_values<I, F>(&mut self, items: I, mut each: F) -> &mut Sql<'a>
    where
        I: IntoIterator,
        F: FnMut(&mut Sql<'a>, I::Item),
    {
        self.text.push_str("VALUES ");
        self.push_list(items, |sql, item| {
            sql.text.push('(');
            let start = sql.text.len();
            each(sql, item);
            // `sep` writes a comma before every value; the row's first one drops it.
            if sql.text[start..].starts_with(", ") {
                sql.text.replace_range(start..start + 2, "");
            }
            sql.text.push(')');
        })
    }

    /// Binds one value of a [`Sql::push_values`] row.
    pub(crate) fn sep<T>(&mut self, value: T) -> &mut Sql<'a>
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
    {
        self.text.push_str(", ");
        self.push_bind(value)
    }

    /// The query, ready to run.
    pub(crate) fn build(
        &mut self,
    ) -> Result<sqlx::query::Query<'_, Any, AnyArguments<'_>>, sqlx::Error> {
        if let Some(error) = self.error.take() {
            return Err(sqlx::Error::Encode(error));
        }
        Ok(sqlx::query_with(&self.text, std::mem::take(&mut self.args)))
    }

    /// The SQL text so far.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::Sql;

    #[test]
    fn placeholders_are_numbered_as_values_are_bound() {
        let mut sql = Sql::new("SELECT 1 FROM t WHERE a = ");
        sql.push_bind("x").push(" AND b IN (");
        sql.push_list([1_i64, 2], |sql, n| {
            sql.push_bind(n);
        });
        sql.push(") ")
            .push_values([(1_i64, "a"), (2, "b")], |sql, (n, s)| {
                sql.sep(n).sep(s);
            });
        assert_eq!(
            sql.text(),
            "SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3) VALUES ($4, $5), ($6, $7)"
        );
    }
}
