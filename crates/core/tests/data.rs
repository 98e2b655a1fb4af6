//! Data-driven job file cases: `data/ok/*` must parse (their normalized model is compared
//! with `<file>.expected`), `data/err/*` must fail with exactly the diagnostics in
//! `<file>.expected`. Run with `UPDATE_EXPECT=1` to rewrite the expected files.

use std::fs;
use std::path::{Path, PathBuf};

use rota_core::parse::{Format, parse_str};

fn data_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(kind)
}

/// The case files of a directory (everything but `.expected`), sorted.
fn cases(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(data_dir(kind))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e != "expected"));
    files.sort();
    files
}

fn expected_path(case: &Path) -> PathBuf {
    let mut name = case.as_os_str().to_owned();
    name.push(".expected");
    PathBuf::from(name)
}

/// Compares `actual` with the case's expected file (or rewrites it); returns a mismatch report.
fn check(case: &Path, actual: &str) -> Option<String> {
    let path = expected_path(case);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        if let Err(e) = fs::write(&path, actual) {
            return Some(format!("cannot write {}: {e}", path.display()));
        }
        return None;
    }
    let expected = fs::read_to_string(&path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "--- {}\nexpected:\n{expected}\nactual:\n{actual}\n",
            case.display()
        )
    })
}

/// The origin a case is reported under: `<kind>/<file name>`.
fn origin(kind: &str, case: &Path) -> String {
    let name = case
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{kind}/{name}")
}

#[test]
fn ok_cases_parse_to_their_expected_model() {
    let files = cases("ok");
    assert!(files.len() >= 5, "ok cases missing: {files:?}");
    let mut failures = Vec::new();
    for case in &files {
        let source = fs::read_to_string(case).unwrap_or_default();
        match parse_str(&source, &origin("ok", case), Format::from_path(case)) {
            Ok(jobs) => failures.extend(check(case, &format!("{jobs:#?}\n"))),
            Err(diags) => failures.push(format!(
                "--- {} should parse but got:\n{diags}\n",
                case.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn err_cases_report_exactly_their_expected_diagnostics() {
    let files = cases("err");
    assert!(files.len() >= 10, "err cases missing: {files:?}");
    let mut failures = Vec::new();
    for case in &files {
        let source = fs::read_to_string(case).unwrap_or_default();
        match parse_str(&source, &origin("err", case), Format::from_path(case)) {
            Ok(jobs) => failures.push(format!(
                "--- {} should fail but parsed to {} job(s)\n",
                case.display(),
                jobs.len()
            )),
            Err(diags) => failures.extend(check(case, &format!("{diags}\n"))),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The store keeps a job's definition as JSON and readers (`rota run`'s display, the
/// server) read it back: every ok case must come back equal.
#[test]
fn ok_cases_survive_a_json_round_trip() {
    let mut failures = Vec::new();
    for case in &cases("ok") {
        let source = fs::read_to_string(case).unwrap_or_default();
        let Ok(jobs) = parse_str(&source, &origin("ok", case), Format::from_path(case)) else {
            continue;
        };
        for job in jobs {
            let back = serde_json::to_value(&job)
                .and_then(serde_json::from_value::<rota_core::model::Job>);
            match back {
                Ok(back) if back == job => {}
                other => failures.push(format!("{}: {other:?}", case.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A job without `notify:` keeps the stored definition it had before notifications
/// existed, so upgrading does not make a new revision of every job.
#[test]
fn a_job_without_notify_rules_stores_no_notify_key() {
    let jobs = match parse_str(
        "id: plain\nsteps:\n  - id: a\n    sh: exit 0\n",
        "plain.yaml",
        Format::Yaml,
    ) {
        Ok(jobs) => jobs,
        Err(diags) => panic!("{diags}"),
    };
    let stored = serde_json::to_value(&jobs[0]).unwrap_or_default();
    assert!(stored.get("id").is_some(), "{stored}");
    assert!(stored.get("notify").is_none(), "{stored}");
}
