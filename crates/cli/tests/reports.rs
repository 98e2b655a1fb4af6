//! `rota report RUN --format html|md [-o FILE]`, locally and through `rota serve`, and the
//! run digests `rota audit verify` checks: a stored log line edited after the run ended is
//! found and the run named.

use crate::util::{Rota, as_user, assert_code, describe, finish, json, stderr, stdout};

/// A value set with `rota secrets set`; reports must never show it.
const SECRET: &str = "s3cr3t-report-77";

/// Two steps: one prints its parameter, some markup and the secret (masked in the log),
/// the other fails with exit code 3.
const FAILS: &str = "\
id: reported
namespace: default
params:
  who: { type: string, default: nobody }
secrets: [REPORT_TOKEN]
steps:
  - id: greet
    sh: |
      echo \"hello {{ params.who }}\"
      echo '<b>bold</b> & more'
      echo \"token $REPORT_TOKEN\"
  - id: boom
    needs: [greet]
    sh: exit 3
";

/// Runs `FAILS` with `who=world` after storing the secret; the run's id.
fn failed_run(rota: &Rota) -> String {
    let set = rota.spawn_with_stdin(["secrets", "set", "REPORT_TOKEN"], &format!("{SECRET}\n"));
    assert_code(&finish(set, "rota secrets set"), 0);
    rota.write("reported.yaml", FAILS);
    let out = rota.run([
        "run",
        "reported.yaml",
        "-p",
        "who=world",
        "--output",
        "json",
    ]);
    assert_code(&out, 1);
    json(&out)["id"].as_str().expect("a run id").to_owned()
}

/// What any report of any run must not hold: the secret, scripts, network references.
fn assert_self_contained(html: &str) {
    assert!(!html.contains(SECRET), "the secret leaked:\n{html}");
    for banned in [
        "<script",
        "http://",
        "https://",
        "src=\"http",
        "@import",
        "<link",
    ] {
        assert!(!html.contains(banned), "{banned:?} in:\n{html}");
    }
}

#[test]
fn markdown_report_shows_params_steps_and_the_failure_without_the_secret() {
    let rota = Rota::new();
    let run = failed_run(&rota);

    let out = rota.run(["report", &run, "--format", "md"]);
    assert_code(&out, 0);
    let md = stdout(&out);
    for expected in [
        &format!("# Run {run} of default/reported"),
        "who = \"world\"",
        "| Status | failed |",
        "### Step greet: succeeded",
        "### Step boom: failed",
        "| Exit code | 3 |",
        "hello world",
        "echo \\\"hello world\\\"",
        "[stdout] token ***",
    ] {
        assert!(md.contains(expected), "{expected:?} not in:\n{md}");
    }
    assert!(!md.contains(SECRET), "the secret leaked:\n{md}");
}

#[test]
fn html_report_is_one_escaped_offline_file_written_with_dash_o() {
    let rota = Rota::new();
    let run = failed_run(&rota);
    // An abbreviated id works as for `rota runs`.
    let prefix = &run[..10];

    let out = rota.run(["report", prefix, "-o", "report.html"]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "", "the report went to the file only");
    let html = std::fs::read_to_string(rota.path("report.html")).expect("the report file");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<style>"), "{html}");
    assert!(html.contains(&run), "{html}");
    assert!(
        html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; more"),
        "{html}"
    );
    assert!(
        !html.contains("<b>bold</b>"),
        "log markup must be escaped:\n{html}"
    );
    assert!(html.contains("token ***"), "{html}");
    assert_self_contained(&html);

    let missing = rota.run(["report", "0000000000nosuchrun", "--format", "md"]);
    assert_code(&missing, 2);
    assert!(
        stderr(&missing).contains("not found"),
        "{}",
        describe(&missing)
    );
}

/// Two approvers of the local users.
const GATED: &str = "\
id: gated
params:
  target: { type: string, default: staging }
approval: { approvers: [alice, bob], quorum: 2 }
steps:
  - id: deploy
    sh: echo deploying {{ params.target }}
";

#[test]
fn a_plan_applied_run_reports_the_plan_hash_and_who_planned_approved_and_applied() {
    let rota = Rota::new();
    rota.write("gated.yaml", GATED);
    let (plan, out) = as_user(&rota, "carol", &["plan", "gated.yaml", "-p", "target=prod"]);
    assert_code(&out, 0);
    let id = plan["id"].as_str().expect("a plan id");
    let hash = plan["hash"].as_str().expect("a plan hash");
    for approver in ["alice", "bob"] {
        let (_, out) = as_user(&rota, approver, &["approve", id]);
        assert_code(&out, 0);
    }
    let (run, out) = as_user(&rota, "dave", &["apply", id]);
    assert_code(&out, 0);
    let run = run["id"].as_str().expect("a run id");

    let out = rota.run(["report", run, "--format", "md"]);
    assert_code(&out, 0);
    let md = stdout(&out);
    for expected in [
        "## Plan",
        &format!("| Plan | {id} |"),
        &format!("| Plan hash | {hash} |"),
        "| Planned by | local:carol |",
        "local:alice approve",
        "local:bob approve",
        "| Applied by | local:dave |",
        "deploying prod",
    ] {
        assert!(md.contains(expected), "{expected:?} not in:\n{md}");
    }
}

#[test]
fn a_notebook_step_is_rendered_inline_with_its_outputs() {
    let rota = Rota::new();
    let nb = serde_json::json!({
        "cells": [{"cell_type": "code", "execution_count": null, "id": "c0", "metadata": {},
                   "outputs": [], "source": "print('from' + ' the kernel')\n6 * 7"}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5
    });
    rota.write("calc.ipynb", &nb.to_string());
    rota.write(
        "calc.yaml",
        "id: calc\nsteps:\n  - id: nb\n    notebook: calc.ipynb\n",
    );
    let out = rota.run(["run", "calc.yaml", "--output", "json"]);
    assert_code(&out, 0);
    let run = json(&out)["id"].as_str().expect("a run id").to_owned();

    let out = rota.run(["report", &run, "--format", "html"]);
    assert_code(&out, 0);
    let html = stdout(&out);
    let notebook = html
        .split_once("Notebook (attempt 1)")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no notebook section in:\n{html}"));
    // The cell's source (escaped) and both outputs, from the executed notebook.
    assert!(
        notebook.contains("print(&#39;from&#39; + &#39; the kernel&#39;)")
            || notebook.contains("print('from' + ' the kernel')"),
        "{notebook}"
    );
    assert!(notebook.contains("from the kernel"), "{notebook}");
    assert!(notebook.contains("42"), "{notebook}");
    assert_self_contained(&html);

    let out = rota.run(["report", &run, "--format", "md"]);
    assert_code(&out, 0);
    let md = stdout(&out);
    assert!(md.contains("#### Notebook (attempt 1)"), "{md}");
    assert!(md.contains("42"), "{md}");
}

#[test]
fn the_server_writes_the_same_report_for_rota_dash_dash_server() {
    let rota = Rota::new();
    let run = failed_run(&rota);
    let local = stdout(&rota.run(["report", &run, "--format", "md"]));
    std::fs::create_dir_all(rota.path("jobs")).expect("a jobs directory");
    let server = rota.serve(&rota.path("jobs"));

    let out = rota.run([
        "--server",
        &server.url,
        "--token",
        &server.admin_token,
        "report",
        &run[..12],
        "--format",
        "md",
        "-o",
        "remote.md",
    ]);
    assert_code(&out, 0);
    let remote = std::fs::read_to_string(rota.path("remote.md")).expect("the report file");
    assert_eq!(remote, local);

    let html = server.get(&format!("/api/v1/runs/{run}/report?format=html"));
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert_self_contained(&html);
}

#[test]
fn audit_verify_names_a_run_whose_stored_log_was_edited_after_it_ended() {
    let rota = Rota::new();
    let run = failed_run(&rota);
    let ok = rota.run(["audit", "verify"]);
    assert_code(&ok, 0);

    crate::admin::tamper(
        &rota,
        "UPDATE logs SET text = 'hello nobody' WHERE text = 'hello world'",
    );
    let broken = rota.run(["audit", "verify"]);
    assert_code(&broken, 1);
    let expected = format!("run {run}'s logs changed after it ended");
    assert!(stderr(&broken).contains(&expected), "{}", describe(&broken));
    let (report, out) = rota.run_json(&["audit", "verify"]);
    assert_code(&out, 1);
    assert_eq!(report["intact"], false, "{report}");
}
