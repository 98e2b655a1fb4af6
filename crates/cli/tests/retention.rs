//! `rota prune` and namespace retention with the real binary: finished runs older than the
//! cut-off go with their logs and files, queued runs and other namespaces stay; the audit
//! chain still verifies after entries are pruned and still finds tampering; a real `rota
//! serve` applies a namespace's retention at start, audited as `rota serve`.

use std::time::Duration;

use serde_json::Value;

use crate::admin::tamper;
use crate::remote::remote;
use crate::util::{Rota, assert_code, assert_stderr_has, json, wait_until};

const HELLO: &str = "id: hello\nsteps:\n  - id: a\n    sh: echo hello from a step\n";

/// A yearly job, stored, so `rota backfill` can queue runs that no server executes here.
const YEARLY: &str =
    "id: yearly\ntriggers:\n  - cron: \"0 0 1 1 *\"\nsteps:\n  - id: a\n    sh: echo new year\n";

/// Long enough for every run finished before it to be older than a `1s` cut-off, which is
/// rounded down to a whole second.
const AGE: Duration = Duration::from_millis(2_100);

fn ids(runs: &Value) -> Vec<String> {
    runs.as_array()
        .expect("a list of runs")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn prune_deletes_finished_runs_and_their_files_and_keeps_the_rest() {
    let rota = Rota::new();
    let hello = rota.write("hello.yaml", HELLO);
    let hello = hello.display().to_string();
    for namespace in ["default", "default", "keep"] {
        assert_code(&rota.run(["run", &hello, "-n", namespace]), 0);
    }
    let yearly = rota.write("yearly.yaml", YEARLY).display().to_string();
    assert_code(&rota.run(["jobs", "put", &yearly]), 0);
    let queued = rota.run([
        "backfill",
        "yearly",
        "--from",
        "2020-12-31T00:00:00Z",
        "--to",
        "2021-01-02T00:00:00Z",
    ]);
    assert_code(&queued, 0);
    let before = rota.json_ok(&["runs", "-n", "default"]);
    assert_eq!(before.as_array().map(Vec::len), Some(3), "{before}");
    let finished: Vec<String> = ids(&before)
        .into_iter()
        .filter(|id| rota.home().join("runs").join(id).is_dir())
        .collect();
    assert_eq!(finished.len(), 2, "each run executed has its directory");
    std::thread::sleep(AGE);

    let dry = rota.json_ok(&["prune", "--older-than", "1s", "-n", "default", "--dry-run"]);
    assert_eq!(dry["runs"], 2, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["log_lines"], 2, "{dry}");
    assert_eq!(rota.runs().len(), 4, "a dry run deletes nothing");

    let pruned = rota.run(["prune", "--older-than", "1s", "-n", "default"]);
    assert_code(&pruned, 0);
    let said = String::from_utf8_lossy(&pruned.stdout).into_owned();
    assert!(
        said.starts_with("deleted 2 runs of namespace default finished before "),
        "{said}"
    );
    assert!(said.contains("2 log lines"), "{said}");

    // The queued run and the other namespace's run stay; the pruned runs' files are gone.
    let left = rota.runs();
    let statuses: Vec<(&str, &str)> = left
        .iter()
        .map(|r| {
            (
                r["namespace"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 2, "{left:?}");
    assert!(statuses.contains(&("default", "queued")), "{statuses:?}");
    assert!(statuses.contains(&("keep", "succeeded")), "{statuses:?}");
    for id in ids(&before) {
        let kept = left.iter().any(|r| r["id"] == id.as_str());
        if !kept {
            let dir = rota.home().join("runs").join(&id);
            assert!(!dir.exists(), "{} is left", dir.display());
        }
    }

    // One audit entry with the counts; bad input is refused with a clear message.
    let audit = rota.json_ok(&["audit", "list"]);
    let last = audit
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["action"], "runs.prune", "{last}");
    assert!(
        last["target"]
            .as_str()
            .unwrap_or_default()
            .contains(": 2 runs,"),
        "{last}"
    );
    let bad = rota.run(["prune", "--older-than", "soon"]);
    assert_code(&bad, 2);
    assert_stderr_has(&bad, "invalid duration `soon`");
    let both = rota.run(["prune", "--older-than", "1d", "-n", "keep", "--audit"]);
    assert_code(&both, 2);
}

#[test]
fn pruning_the_audit_log_keeps_it_verifiable_and_tampering_is_still_found() {
    let rota = Rota::new();
    let hello = rota.write("hello.yaml", HELLO).display().to_string();
    for _ in 0..3 {
        assert_code(&rota.run(["run", &hello]), 0);
    }
    let before = rota.json_ok(&["audit", "list"]);
    let entries = before.as_array().map_or(0, Vec::len);
    // Each run is audited when it is created and when it finishes.
    assert!(entries >= 6, "three runs' state changes: {before}");
    std::thread::sleep(AGE);

    let pruned = rota.json_ok(&["prune", "--older-than", "1s", "--audit"]);
    assert_eq!(pruned["runs"], 3, "{pruned}");
    assert_eq!(pruned["audit_entries"], entries, "{pruned}");
    let after = rota.json_ok(&["audit", "list"]);
    let actions: Vec<&str> = after
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["audit.checkpoint", "runs.prune"]);
    let verified = rota.run(["audit", "verify"]);
    assert_code(&verified, 0);

    // The entries kept are still protected.
    let checkpoint = after[0]["id"].as_i64().expect("id");
    tamper(
        &rota,
        &format!("UPDATE audit SET actor = 'mallory' WHERE id = {checkpoint}"),
    );
    let broken = rota.run(["audit", "verify"]);
    assert_code(&broken, 1);
    assert_stderr_has(&broken, &format!("audit log broken at entry {checkpoint}"));
}

#[test]
fn rota_serve_applies_a_namespace_retention_at_start() {
    let rota = Rota::new();
    let hello = rota.write("hello.yaml", HELLO).display().to_string();
    assert_code(&rota.run(["run", &hello, "-n", "default"]), 0);
    assert_code(&rota.run(["run", &hello, "-n", "forever"]), 0);
    assert_eq!(rota.runs().len(), 2);
    let set = rota.run(["namespaces", "set", "default", "--retention", "1s"]);
    assert_code(&set, 0);
    assert_eq!(
        String::from_utf8_lossy(&set.stdout),
        "namespace default: finished runs are kept 1s; rota serve prunes older ones\n"
    );
    std::thread::sleep(AGE);
    std::fs::create_dir_all(rota.path("jobs")).expect("jobs dir");
    let server = rota.serve(&rota.path("jobs"));
    wait_until("the server to prune the default namespace", || {
        rota.runs().iter().all(|r| r["namespace"] != "default")
    });
    assert_eq!(rota.runs().len(), 1, "the other namespace keeps its run");

    // Audited as the server; the chain verifies.
    let audit = json(&remote(
        &rota,
        &server,
        &["audit", "list", "--output", "json"],
    ));
    let pruned = audit
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "runs.prune")
        .cloned()
        .expect("a runs.prune entry");
    assert_eq!(pruned["actor"], "rota serve");
    assert!(
        pruned["target"]
            .as_str()
            .unwrap_or_default()
            .starts_with("runs/default before ")
    );
    assert_code(&remote(&rota, &server, &["audit", "verify"]), 0);

    // Over the API: the setting is listed, changed, and a dry run answers.
    let listed = json(&remote(&rota, &server, &["namespaces", "--output", "json"]));
    let default = listed
        .as_array()
        .expect("namespaces")
        .iter()
        .find(|n| n["name"] == "default")
        .cloned()
        .expect("default");
    assert_eq!(default["retention"], "1s");
    let cleared = remote(
        &rota,
        &server,
        &["namespaces", "set", "default", "--retention", "none"],
    );
    assert_code(&cleared, 0);
    let dry = json(&remote(
        &rota,
        &server,
        &[
            "prune",
            "--older-than",
            "1d",
            "--dry-run",
            "--output",
            "json",
        ],
    ));
    assert_eq!(dry["runs"], 0, "{dry}");
    assert_code(&rota.run(["namespaces"]), 0);
}
