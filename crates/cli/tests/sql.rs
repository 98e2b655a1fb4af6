//! `sql:` steps through the real binary against real databases: a SQLite file, a database
//! of its own on the PostgreSQL test cluster (`ROTA_TEST_POSTGRES`) and the MariaDB test
//! server (`ROTA_TEST_MARIADB`, from `scripts/mariadb`). Each test checks what the database
//! holds afterwards with a client of its own (Python's sqlite3, psql, the mariadb client),
//! not through Rota.

use std::process::Command;

use rota_testkit::postgres::TestDatabase;
use serde_json::Value;

use crate::util::{Rota, assert_code, assert_reason_has, describe, stderr, stdout, step};

/// Runs `sql` on the SQLite file at `path` with Python's sqlite3 module and returns the
/// rows, one per line, columns separated by `|`.
fn sqlite(path: &std::path::Path, sql: &str) -> String {
    let script = "import sqlite3, sys\n\
                  db = sqlite3.connect(sys.argv[1])\n\
                  for row in db.execute(sys.argv[2]):\n    print('|'.join(str(v) for v in row))\n";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .arg(sql)
        .output()
        .expect("run python3");
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The MariaDB test server's URL; fails, never skips, without it.
fn mariadb_url() -> String {
    std::env::var("ROTA_TEST_MARIADB").expect(
        "ROTA_TEST_MARIADB is not set: run `eval \"$(scripts/setup)\"` (or \
         `eval \"$(scripts/mariadb)\"`) in this shell first",
    )
}

/// Runs `sql` through the `mariadb` client on the test server; rows one per line,
/// columns separated by tabs.
fn mariadb(sql: &str) -> String {
    let url = reqwest::Url::parse(&mariadb_url()).expect("ROTA_TEST_MARIADB is a URL");
    let output = Command::new("mariadb")
        .arg(format!("--host={}", url.host_str().unwrap_or("127.0.0.1")))
        .arg(format!("--port={}", url.port().unwrap_or(3306)))
        .arg(format!("--user={}", url.username()))
        .arg(format!("--password={}", url.password().unwrap_or_default()))
        .arg(url.path().trim_start_matches('/'))
        .args(["--batch", "--skip-column-names", "-e", sql])
        .output()
        .expect("run the mariadb client");
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A table name no other test uses, for the shared MariaDB database.
fn unique_table(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// `rota run FILE ARGS --output json`: the run record and the whole output.
fn run_job(rota: &Rota, file: &str, args: &[&str]) -> (Value, std::process::Output) {
    let mut all = vec!["run", file];
    all.extend(args);
    rota.run_json(&all)
}

#[test]
fn the_answer_is_published_from_a_sqlite_query() {
    let rota = Rota::new();
    let db = rota.path("answer.db");
    rota.write(
        "answer.yaml",
        &format!(
            "id: answer\nsteps:\n  - id: q\n    sql: {{ url: \"sqlite://{}\", query: \"select 41 + 1 as answer\" }}\n",
            db.display()
        ),
    );
    let (run, output) = run_job(&rota, "answer.yaml", &[]);
    assert_code(&output, 0);
    let q = step(&run, "q");
    assert_eq!(q["status"], "succeeded", "{run:#}");
    assert_eq!(q["outputs"]["rows"], "1", "{run:#}");
    assert_eq!(q["outputs"]["answer"], "42", "{run:#}");
    assert_eq!(q["outputs"]["json"], r#"[{"answer":42}]"#, "{run:#}");
    // The result is a table in the log.
    let err = stderr(&output);
    assert!(
        err.contains("q | answer") && err.contains("q | 42"),
        "{err}"
    );
}

#[test]
fn a_sqlite_step_writes_rows_reads_them_back_and_publishes_them() {
    let rota = Rota::new().env("DB_URL", "sqlite://shop.db");
    let db = rota.path("shop.db");
    rota.write(
        "shop.yaml",
        r#"id: shop
secrets: [DB_URL]
params:
  who: { type: string, default: ada }
steps:
  - id: fill
    sql:
      url: "{{ secrets.DB_URL }}"
      statements:
        - create table items (id integer primary key, name text, price real, data blob, gone text)
        - query: insert into items (name, price, data) values (?, ?, x'cafe'), (?, 2.5, null)
          params: ["{{ params.who }}", 1.25, bob]
        - select id, name, price, data, gone from items order by id
  - id: use
    needs: [fill]
    sh: echo "first={{ steps.fill.outputs.name }} rows={{ steps.fill.outputs.rows }}"
"#,
    );
    let (run, output) = run_job(&rota, "shop.yaml", &[]);
    assert_code(&output, 0);
    let fill = step(&run, "fill");
    assert_eq!(fill["status"], "succeeded", "{run:#}");
    let outputs = &fill["outputs"];
    assert_eq!(outputs["rows"], "2", "{run:#}");
    assert_eq!(outputs["id"], "1");
    assert_eq!(outputs["name"], "ada");
    assert_eq!(outputs["price"], "1.25");
    assert_eq!(outputs["data"], "\\xcafe");
    assert_eq!(outputs["gone"], "");
    let rows: Value =
        serde_json::from_str(outputs["json"].as_str().expect("json output")).expect("JSON");
    assert_eq!(
        rows,
        serde_json::json!([
            { "id": 1, "name": "ada", "price": 1.25, "data": "\\xcafe", "gone": null },
            { "id": 2, "name": "bob", "price": 2.5, "data": null, "gone": null },
        ])
    );
    assert!(
        stderr(&output).contains("use | first=ada rows=2"),
        "{}",
        describe(&output)
    );
    // The relative URL is the job file's directory; the rows were committed.
    assert_eq!(
        sqlite(&db, "select name from items order by id"),
        "ada\nbob"
    );
}

#[test]
fn a_failing_statement_rolls_the_whole_step_back() {
    let rota = Rota::new();
    let db = rota.path("t.db");
    sqlite(&db, "create table t (n integer not null)");
    rota.write(
        "fail.yaml",
        &format!(
            r#"id: fail
steps:
  - id: write
    sql:
      url: "sqlite://{}"
      statements:
        - insert into t values (1)
        - insert into t values (2)
        - insert into t values (null)
        - insert into t values (4)
"#,
            db.display()
        ),
    );
    let (run, output) = run_job(&rota, "fail.yaml", &[]);
    assert_code(&output, 1);
    let write = step(&run, "write");
    assert_eq!(write["status"], "failed", "{run:#}");
    assert_reason_has(write, "statement 3 of 4 failed");
    assert_reason_has(write, "NOT NULL");
    assert_reason_has(write, "rolled back");
    assert_eq!(sqlite(&db, "select count(*) from t"), "0");
}

#[test]
fn parameters_are_bound_never_spliced() {
    let rota = Rota::new();
    let db = rota.path("p.db");
    sqlite(&db, "create table notes (body text)");
    let nasty = "it's'); drop table notes; --";
    rota.write(
        "p.yaml",
        &format!(
            r#"id: params
params:
  body: {{ type: string }}
steps:
  - id: add
    sql:
      url: "sqlite://{}"
      query: insert into notes (body) values (?)
      params: ["{{{{ params.body }}}}"]
"#,
            db.display()
        ),
    );
    let (run, output) = run_job(&rota, "p.yaml", &["-p", &format!("body={nasty}")]);
    assert_code(&output, 0);
    assert_eq!(step(&run, "add")["outputs"]["rows"], "1", "{run:#}");
    assert_eq!(sqlite(&db, "select body from notes"), nasty);
}

#[test]
fn templates_in_sql_text_are_refused_at_validation() {
    let rota = Rota::new();
    rota.write(
        "bad.yaml",
        "id: bad\nsteps:\n  - id: q\n    sql:\n      url: sqlite:///tmp/x.db\n      query: \"select * from t where name = '{{ params.x }}'\"\nparams:\n  x: { type: string }\n",
    );
    let output = rota.run(["validate", "bad.yaml"]);
    assert_code(&output, 2);
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        text.contains("bad.yaml:6:14") && text.contains("params:"),
        "{text}"
    );
}

#[test]
fn a_dry_run_shows_results_and_leaves_nothing_written() {
    let rota = Rota::new();
    let db = rota.path("dry.db");
    sqlite(&db, "create table t (n integer)");
    rota.write(
        "dry.yaml",
        &format!(
            r#"id: dry
steps:
  - id: write
    sql:
      url: "sqlite://{}"
      statements:
        - insert into t values (1), (2), (3)
        - create table made_in_dry_run (x integer)
        - select count(*) as n from t
"#,
            db.display()
        ),
    );
    let (run, output) = run_job(&rota, "dry.yaml", &["--dry-run"]);
    assert_code(&output, 0);
    let write = step(&run, "write");
    assert_eq!(write["status"], "succeeded", "{run:#}");
    assert_eq!(write["outputs"]["n"], "3", "{run:#}");
    assert!(
        stderr(&output).contains("dry run: rolled back"),
        "{}",
        describe(&output)
    );
    assert_eq!(sqlite(&db, "select count(*) from t"), "0");
    assert_eq!(
        sqlite(
            &db,
            "select count(*) from sqlite_master where name = 'made_in_dry_run'"
        ),
        "0"
    );
}

#[test]
fn a_million_rows_are_counted_not_held() {
    let rota = Rota::new();
    rota.write(
        "big.yaml",
        r#"id: big
steps:
  - id: q
    sql:
      url: "sqlite://big.db"
      query: >
        with recursive c(x) as (select 1 union all select x + 1 from c where x < 1000000)
        select x, 'row number ' || x as label from c
"#,
    );
    let (run, output) = run_job(&rota, "big.yaml", &[]);
    assert_code(&output, 0);
    let q = step(&run, "q");
    assert_eq!(q["outputs"]["rows"], "1000000", "{run:#}");
    assert_eq!(q["outputs"]["x"], "1");
    assert_eq!(q["outputs"]["json_truncated"], "true");
    let rows: Vec<Value> = serde_json::from_str(q["outputs"]["json"].as_str().expect("json"))
        .expect("the json output is whole JSON");
    assert!(!rows.is_empty() && rows.len() <= 1000, "{}", rows.len());
    let err = stderr(&output);
    assert!(err.contains("(1000000 rows, the first 50 shown)"), "{err}");
    assert!(!err.contains("q | 51 "), "only 50 rows are shown");
}

#[test]
fn the_example_runs() {
    let rota = Rota::new();
    let db = rota.path("example.db");
    let (run, output) = rota.run_json(&[
        "run",
        crate::util::example("sql.yaml")
            .to_str()
            .expect("utf-8 path"),
        "-p",
        &format!("db={}", db.display()),
    ]);
    assert_code(&output, 0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(step(&run, "summary")["outputs"]["rows"], "2", "{run:#}");
    assert_eq!(
        step(&run, "summary")["outputs"]["customer"],
        "bob",
        "{run:#}"
    );
    assert_eq!(sqlite(&db, "select count(*) from orders"), "3");
}

#[test]
fn postgres_writes_reads_types_and_rolls_back() {
    let db = TestDatabase::create().expect("a PostgreSQL test database");
    let rota = Rota::new().env("PG_URL", db.url());
    rota.write(
        "pg.yaml",
        r#"id: pg-types
secrets: [PG_URL]
params:
  qty: { type: int, default: 7 }
steps:
  - id: fill
    sql:
      url: "{{ secrets.PG_URL }}"
      statements:
        - create table orders (id serial primary key, qty int not null, price numeric(10,3), paid bool, at timestamptz, raw bytea, note text, doc jsonb)
        - query: >
            insert into orders (qty, price, paid, at, raw, note, doc)
            values ($1::int, 12345.678, true, '2024-03-09 14:05:59+00', '\xdead', $2, '{"a": [1, 2]}')
          params: ["{{ params.qty }}", "it's; drop table orders"]
        - select qty, price, paid, at, raw, note, doc, null::text as nothing from orders
  - id: half
    needs: [fill]
    sql:
      url: "{{ secrets.PG_URL }}"
      statements:
        - insert into orders (qty) values (1)
        - insert into orders (qty) values (null)
"#,
    );
    let (run, output) = run_job(&rota, "pg.yaml", &[]);
    assert_code(&output, 1);
    let outputs = &step(&run, "fill")["outputs"];
    assert_eq!(step(&run, "fill")["status"], "succeeded", "{run:#}");
    assert_eq!(outputs["rows"], "1");
    assert_eq!(outputs["qty"], "7");
    assert_eq!(outputs["price"], "12345.678");
    assert_eq!(outputs["paid"], "true");
    assert_eq!(outputs["at"], "2024-03-09T14:05:59Z");
    assert_eq!(outputs["raw"], "\\xdead");
    assert_eq!(outputs["note"], "it's; drop table orders");
    assert_eq!(outputs["doc"], r#"{"a":[1,2]}"#);
    assert_eq!(outputs["nothing"], "");
    let rows: Value = serde_json::from_str(outputs["json"].as_str().expect("json")).expect("JSON");
    assert_eq!(rows[0]["qty"], 7);
    assert_eq!(rows[0]["doc"], serde_json::json!({ "a": [1, 2] }));
    assert_eq!(rows[0]["nothing"], Value::Null);
    let half = step(&run, "half");
    assert_eq!(half["status"], "failed", "{run:#}");
    assert_reason_has(half, "statement 2 of 2 failed");
    assert_eq!(db.query("select count(*) from orders").expect("psql"), "1");
}

#[test]
fn a_secret_postgres_url_never_shows_its_password() {
    const PASSWORD: &str = "pw-9c1e77-not-for-logs";
    let db = TestDatabase::create().expect("a PostgreSQL test database");
    // The test cluster trusts loopback, so any password connects.
    let url = db
        .url()
        .replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
    assert!(url.contains(PASSWORD), "{url}");
    let rota = Rota::new().env("DB_URL", &url);
    rota.write(
        "s.yaml",
        r#"id: secret-url
secrets: [DB_URL]
steps:
  - id: q
    sql: { url: "{{ secrets.DB_URL }}", query: "select current_user as who" }
  - id: bad
    sql: { url: "{{ secrets.DB_URL }}", query: "select * from no_such_table" }
"#,
    );
    let (run, output) = run_job(&rota, "s.yaml", &[]);
    assert_code(&output, 1);
    assert_eq!(step(&run, "q")["outputs"]["who"], "postgres", "{run:#}");
    assert_reason_has(step(&run, "bad"), "no_such_table");
    let id = run["id"].as_str().expect("run id");
    let logs = rota.run(["logs", id]);
    let shown = rota.run(["runs", "show", id, "--output", "json"]);
    for text in [
        stdout(&output),
        stderr(&output),
        stdout(&logs),
        stderr(&logs),
        stdout(&shown),
    ] {
        assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    }
    assert!(stdout(&logs).contains("connect"), "{}", describe(&logs));
}

#[test]
fn a_timed_out_postgres_query_commits_nothing() {
    let db = TestDatabase::create().expect("a PostgreSQL test database");
    db.query("create table t (n int)").expect("psql");
    let rota = Rota::new().env("PG_URL", db.url());
    rota.write(
        "slow.yaml",
        r#"id: slow
secrets: [PG_URL]
steps:
  - id: q
    timeout: 1s
    sql:
      url: "{{ secrets.PG_URL }}"
      statements:
        - insert into t values (1)
        - select pg_sleep(60)
"#,
    );
    let (run, output) = run_job(&rota, "slow.yaml", &[]);
    assert_code(&output, 1);
    assert_eq!(step(&run, "q")["status"], "timed_out", "{run:#}");
    assert_eq!(db.query("select count(*) from t").expect("psql"), "0");
}

#[test]
fn mariadb_writes_reads_types_rolls_back_and_dry_runs() {
    let url = mariadb_url();
    let table = unique_table("orders");
    let rota = Rota::new().env("MY_URL", &url.replacen("mysql://", "mariadb://", 1));
    mariadb(&format!(
        "create table {table} (id int auto_increment primary key, qty int unsigned not null, \
         price decimal(10,3), paid boolean, at datetime, raw varbinary(8), note text, doc json)"
    ));
    rota.write(
        "my.yaml",
        &format!(
            r#"id: my-types
secrets: [MY_URL]
params:
  qty: {{ type: int, default: 7 }}
steps:
  - id: fill
    sql:
      url: "{{{{ secrets.MY_URL }}}}"
      statements:
        - query: >
            insert into {table} (qty, price, paid, at, raw, note, doc)
            values (?, 12345.678, true, '2024-03-09 14:05:59', x'dead', ?, '{{"a": [1, 2]}}')
          params: ["{{{{ params.qty }}}}", "it's'); drop table {table}; --"]
        - select qty, price, paid, at, raw, note, doc, null as nothing from {table}
  - id: half
    needs: [fill]
    sql:
      url: "{{{{ secrets.MY_URL }}}}"
      statements:
        - insert into {table} (qty) values (1)
        - insert into {table} (qty) values (null)
"#
        ),
    );
    let (run, output) = run_job(&rota, "my.yaml", &[]);
    assert_code(&output, 1);
    let fill = step(&run, "fill");
    assert_eq!(fill["status"], "succeeded", "{run:#}");
    let outputs = &fill["outputs"];
    assert_eq!(outputs["rows"], "1");
    assert_eq!(outputs["qty"], "7");
    assert_eq!(outputs["price"], "12345.678");
    assert_eq!(outputs["paid"], "true");
    assert_eq!(outputs["at"], "2024-03-09 14:05:59");
    assert_eq!(outputs["raw"], "\\xdead");
    assert_eq!(outputs["note"], format!("it's'); drop table {table}; --"));
    assert_eq!(outputs["nothing"], "");
    let half = step(&run, "half");
    assert_eq!(half["status"], "failed", "{run:#}");
    assert_reason_has(half, "rolled back");
    assert_eq!(mariadb(&format!("select count(*) from {table}")), "1");

    // A dry run of DML runs and is rolled back.
    let (run, output) = run_job(&rota, "my.yaml", &["--dry-run"]);
    assert_eq!(
        step(&run, "fill")["status"],
        "succeeded",
        "{}",
        describe(&output)
    );
    assert_eq!(step(&run, "fill")["outputs"]["rows"], "2", "{run:#}");
    assert_eq!(mariadb(&format!("select count(*) from {table}")), "1");
    mariadb(&format!("drop table {table}"));
}

#[test]
fn mariadb_ddl_is_only_shown_in_a_dry_run() {
    let table = unique_table("ddl");
    let rota = Rota::new().env("MY_URL", &mariadb_url());
    rota.write(
        "ddl.yaml",
        &format!(
            "id: ddl\nsecrets: [MY_URL]\nsteps:\n  - id: make\n    sql: {{ url: \"{{{{ secrets.MY_URL }}}}\", query: \"create table {table} (x int)\" }}\n"
        ),
    );
    let (run, output) = run_job(&rota, "ddl.yaml", &["--dry-run"]);
    assert_code(&output, 0);
    assert!(
        stderr(&output).contains("would run"),
        "{}",
        describe(&output)
    );
    assert_eq!(
        mariadb(&format!(
            "select count(*) from information_schema.tables where table_name = '{table}'"
        )),
        "0",
        "{run:#}"
    );
}
