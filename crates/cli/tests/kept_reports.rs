//! Reports kept when a run ends (`report: html|md` in its job): listed and got back with
//! `rota artifacts` (step `@run`), byte for byte what `rota report` writes, audited as
//! `run.report` with their hash, and checked by `rota audit verify`, which names the run
//! once the stored bytes are edited or removed. A run that waits at a gate has not ended;
//! a job without `report:` keeps none; a cancelled run, a child run of a `job:` step and a
//! run `rota serve` executes keep one too.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::remote::{remote, remote_json};
use crate::util::{Rota, as_user, assert_code, describe, finish, json, stderr, stdout, wait_until};

/// Two steps, one printing markup and a secret (masked in the stored log), kept as HTML.
const KEPT: &str = "\
id: kept
namespace: default
report: html
secrets: [KEPT_TOKEN]
steps:
  - id: greet
    sh: |
      echo 'hello <b>kept</b>'
      echo \"token $KEPT_TOKEN\"
  - id: after
    needs: [greet]
    sh: echo after
";

/// A value of `KEPT_TOKEN`; no kept report may hold it.
const SECRET: &str = "kept-s3cr3t-4410";

/// The same job with no `report:`.
const NOT_KEPT: &str = "id: not-kept\nsteps:\n  - id: only\n    sh: echo nothing kept\n";

/// Runs `file` here (exit `code`) and returns its run id.
fn run_here(rota: &Rota, file: &str, code: i32) -> String {
    let out = rota.run(["run", file, "--output", "json"]);
    assert_code(&out, code);
    json(&out)["id"].as_str().expect("a run id").to_owned()
}

/// Where the local artifact store keeps run `run`'s kept report `name`.
fn stored_report(rota: &Rota, run: &str, name: &str) -> PathBuf {
    let tail = Path::new(run).join("@run").join(name);
    let mut todo = vec![rota.home().join("artifacts")];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.ends_with(&tail) {
                return path;
            }
            if path.is_dir() {
                todo.push(path);
            }
        }
    }
    panic!("no {} under {}", tail.display(), rota.home().display());
}

/// `rota ARGS` that must succeed: its stdout.
fn ok_stdout(output: std::process::Output) -> String {
    assert_code(&output, 0);
    stdout(&output)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The `run.report` audit entries of run `run`.
fn report_entries(rota: &Rota, run: &str) -> Vec<Value> {
    let entries = rota.json_ok(&["audit", "list"]);
    let target = format!("run/{run}");
    entries
        .as_array()
        .expect("an array of entries")
        .iter()
        .filter(|e| e["action"] == "run.report" && e["target"] == target.as_str())
        .cloned()
        .collect()
}

#[test]
fn a_run_keeps_its_html_report_listed_identical_to_rota_report_and_audited() {
    let rota = Rota::new();
    let set = rota.spawn_with_stdin(["secrets", "set", "KEPT_TOKEN"], &format!("{SECRET}\n"));
    assert_code(&finish(set, "rota secrets set"), 0);
    rota.write("kept.yaml", KEPT);
    let run = run_here(&rota, "kept.yaml", 0);

    // Listed with the run's artifacts under the run's own step, before `rota run` exited.
    let listed = rota.json_ok(&["artifacts", &run]);
    let kept = ok_stdout(rota.run(["artifacts", &run, "--get", "report.html"]));
    assert_eq!(
        listed,
        json!([{"step": "@run", "path": "report.html", "size": kept.len()}])
    );
    // What `rota report` writes of the ended run, byte for byte: both read the same store.
    let on_demand = rota.run(["report", &run]);
    assert_code(&on_demand, 0);
    assert_eq!(kept, stdout(&on_demand));
    assert!(kept.starts_with("<!DOCTYPE html>"), "{kept}");
    assert!(kept.contains("hello &lt;b&gt;kept&lt;/b&gt;"), "{kept}");
    assert!(kept.contains("token ***"), "{kept}");
    assert!(!kept.contains(SECRET), "the secret reached the kept report");
    // Named by its step too, and written to a file.
    let file = rota.path("got.html").display().to_string();
    let got = rota.run([
        "artifacts",
        &run,
        "@run",
        "--get",
        "report.html",
        "-o",
        &file,
    ]);
    assert_code(&got, 0);
    assert_eq!(std::fs::read_to_string(&file).expect("written"), kept);

    // Audited once by the engine, with the hash of those bytes and the path.
    let entries = report_entries(&rota, &run);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["actor"], "engine");
    assert_eq!(
        entries[0]["result"],
        format!("sha256:{} report.html", sha256_hex(kept.as_bytes()))
    );
    assert_code(&rota.run(["audit", "verify"]), 0);

    // The stored bytes edited: the run is named, exit 1 as for a changed log.
    let stored = stored_report(&rota, &run, "report.html");
    std::fs::write(&stored, kept.replace("after", "AFTER")).expect("edit the stored report");
    let broken = rota.run(["audit", "verify"]);
    assert_code(&broken, 1);
    let expected = format!(
        "audit log broken at entry {}: run {run}'s kept report report.html changed after it was kept",
        entries[0]["id"]
    );
    assert!(stderr(&broken).contains(&expected), "{}", describe(&broken));
    let (verdict, out) = rota.run_json(&["audit", "verify"]);
    assert_code(&out, 1);
    assert_eq!(verdict["intact"], false, "{verdict}");
    assert_eq!(verdict["break"]["entry_id"], entries[0]["id"], "{verdict}");

    // Removed: missing. Put back as kept: intact again.
    std::fs::remove_file(&stored).expect("remove the stored report");
    let missing = rota.run(["audit", "verify"]);
    assert_code(&missing, 1);
    let expected = format!("run {run}'s kept report report.html is missing");
    assert!(
        stderr(&missing).contains(&expected),
        "{}",
        describe(&missing)
    );
    std::fs::write(&stored, &kept).expect("restore the stored report");
    assert_code(&rota.run(["audit", "verify"]), 0);
}

#[test]
fn a_job_without_report_keeps_none_and_report_md_keeps_markdown() {
    let rota = Rota::new();
    rota.write("not-kept.yaml", NOT_KEPT);
    let run = run_here(&rota, "not-kept.yaml", 0);
    assert_eq!(rota.json_ok(&["artifacts", &run]), json!([]));
    assert!(report_entries(&rota, &run).is_empty());

    rota.write(
        "md.yaml",
        "id: kept-md\nreport: md\nsteps:\n  - id: boom\n    sh: echo failing; exit 4\n",
    );
    let run = run_here(&rota, "md.yaml", 1);
    let kept = ok_stdout(rota.run(["artifacts", &run, "--get", "report.md"]));
    assert_eq!(
        kept,
        ok_stdout(rota.run(["report", &run, "--format", "md"]))
    );
    assert!(kept.contains("| Status | failed |"), "{kept}");
    assert!(kept.contains("| Exit code | 4 |"), "{kept}");
    assert_code(&rota.run(["audit", "verify"]), 0);
}

/// A step that waits, then one at a gate, then one after it.
const GATED: &str = "\
id: gated-kept
report: html
steps:
  - id: before
    sh: echo before the gate
  - id: gate
    needs: [before]
    approval: { approvers: [alice] }
  - id: after
    needs: [gate]
    sh: echo after the gate
";

#[test]
fn a_run_at_its_gate_has_not_ended_and_keeps_its_report_once_it_has() {
    let rota = Rota::new();
    rota.write("gated.yaml", GATED);
    let (waiting, out) = as_user(&rota, "carol", &["run", "gated.yaml"]);
    assert_code(&out, 3);
    let run = waiting["id"].as_str().expect("a run id").to_owned();
    assert_eq!(rota.json_ok(&["artifacts", &run]), json!([]));

    // `rota approve` continues the run here; it ends, and keeps its report then.
    let (done, out) = as_user(&rota, "alice", &["approve", &run]);
    assert_code(&out, 0);
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let kept = ok_stdout(rota.run(["artifacts", &run, "--get", "report.html"]));
    assert!(kept.contains("after the gate"), "{kept}");
    assert!(kept.contains("local:alice"), "{kept}");
    assert_eq!(report_entries(&rota, &run).len(), 1);

    // A waiting run cancelled where it stands has ended too.
    let (waiting, out) = as_user(&rota, "carol", &["run", "gated.yaml"]);
    assert_code(&out, 3);
    let run = waiting["id"].as_str().expect("a run id").to_owned();
    assert_code(&rota.run(["cancel", &run]), 0);
    let kept = ok_stdout(rota.run(["artifacts", &run, "--get", "report.html"]));
    assert!(kept.contains("cancelled"), "{kept}");
    assert_eq!(kept, ok_stdout(rota.run(["report", &run])));
}

#[test]
fn a_cancelled_run_keeps_its_report() {
    let rota = Rota::new();
    rota.write(
        "slow.yaml",
        "id: slow-kept\nreport: md\nsteps:\n  - id: wait\n    sh: echo started; sleep 300\n",
    );
    let child = rota.spawn(["run", "slow.yaml", "--output", "json"]);
    let run = rota.wait_for_running_run();
    assert_code(&rota.run(["cancel", &run]), 0);
    assert_code(&finish(child, "rota run"), 130);
    let kept = ok_stdout(rota.run(["artifacts", &run, "--get", "report.md"]));
    assert!(kept.contains("| Status | cancelled |"), "{kept}");
    assert_eq!(
        kept,
        ok_stdout(rota.run(["report", &run, "--format", "md"]))
    );
}

#[test]
fn a_run_the_server_executes_keeps_its_report_too() {
    let rota = Rota::new();
    rota.write(
        "jobs/kept.yaml",
        &KEPT.replace("secrets: [KEPT_TOKEN]\n", ""),
    );
    let server = rota.serve(&rota.path("jobs"));
    let run = remote_json(&rota, &server, &["run", "kept"]);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let id = run["id"].as_str().expect("a run id");

    // Kept by the server just after the run's end: wait for it to be listed.
    let mut listed = Value::Null;
    wait_until("the kept report to be listed", || {
        listed = remote_json(&rota, &server, &["artifacts", id]);
        listed.as_array().is_some_and(|a| !a.is_empty())
    });
    assert_eq!(listed[0]["step"], "@run", "{listed}");
    assert_eq!(listed[0]["path"], "report.html", "{listed}");
    let kept = ok_stdout(remote(
        &rota,
        &server,
        &["artifacts", id, "--get", "report.html"],
    ));
    let on_demand = ok_stdout(remote(&rota, &server, &["report", id]));
    assert_eq!(kept, on_demand);
    assert!(kept.contains("hello &lt;b&gt;kept&lt;/b&gt;"), "{kept}");
    // Through the API as the web UI downloads it.
    assert_eq!(
        server.get(&format!("/api/v1/runs/{id}/artifacts/%40run/report.html")),
        kept
    );
    let verify = remote(&rota, &server, &["audit", "verify"]);
    assert_code(&verify, 0);
    let verdict: Value = serde_json::from_str(&server.get("/api/v1/audit/verify")).expect("JSON");
    assert_eq!(verdict["intact"], true, "{verdict}");
}

#[test]
fn a_child_run_of_a_job_step_keeps_its_own_report() {
    let rota = Rota::new();
    rota.write(
        "child.yaml",
        "id: kept-child\nnamespace: default\nreport: md\nsteps:\n  - id: work\n    sh: echo from the child\n",
    );
    assert_code(&rota.run(["jobs", "put", "child.yaml"]), 0);
    rota.write(
        "parent.yaml",
        "id: plain-parent\nnamespace: default\nsteps:\n  - id: call\n    job: { id: kept-child }\n",
    );
    let (run, out) = rota.run_json(&["run", "parent.yaml"]);
    assert_code(&out, 0);
    let parent = run["id"].as_str().expect("a run id").to_owned();
    let child = run["steps"][0]["child_run"]
        .as_str()
        .expect("the step names its child run")
        .to_owned();
    // The parent's job asks for nothing; the child's job asks for Markdown.
    assert_eq!(rota.json_ok(&["artifacts", &parent]), json!([]));
    let kept = ok_stdout(rota.run(["artifacts", &child, "--get", "report.md"]));
    assert!(kept.contains("from the child"), "{kept}");
    assert_code(&rota.run(["audit", "verify"]), 0);
}

#[test]
fn a_runbook_keeps_an_html_report_unless_it_says_report_none() {
    let rota = Rota::new();
    let runbook = "---\ndescription: Greet\n---\n# Greet\n\n```sh {id=hello}\necho hello\n```\n";
    rota.write("greet.md", runbook);
    let run = run_here(&rota, "greet.md", 0);
    let listed = rota.json_ok(&["artifacts", &run]);
    assert_eq!(listed[0]["step"], "@run", "{listed}");
    assert_eq!(listed[0]["path"], "report.html", "{listed}");

    let quiet = runbook.replace("description: Greet", "description: Greet\nreport: none");
    rota.write("quiet.md", &quiet);
    let run = run_here(&rota, "quiet.md", 0);
    assert_eq!(rota.json_ok(&["artifacts", &run]), json!([]));
}
