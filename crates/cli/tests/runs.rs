//! `rota runs`: history newest first, filters, `runs show`, and `ROTA_HOME` selecting
//! the data directory.

use crate::util::{Rota, assert_code, describe, stdout};

fn job(rota: &Rota, id: &str, command: &str) {
    rota.write(
        &format!("{id}.yaml"),
        &format!("id: {id}\nsteps:\n  - id: only\n    sh: {command}\n"),
    );
}

fn run_id(rota: &Rota, file: &str) -> String {
    let (run, _) = rota.run_json(&["run", file]);
    run["id"].as_str().expect("run id").to_owned()
}

fn ids(runs: &serde_json::Value) -> Vec<String> {
    runs.as_array()
        .expect("an array of runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn runs_lists_newest_first_and_filters_by_job_and_status() {
    let rota = Rota::new();
    job(&rota, "good-job", "echo ok");
    job(&rota, "bad-job", "exit 1");
    let first = run_id(&rota, "good-job.yaml");
    let second = run_id(&rota, "bad-job.yaml");
    let third = run_id(&rota, "good-job.yaml");

    let all = rota.json_ok(&["runs"]);
    assert_eq!(ids(&all), [third.clone(), second.clone(), first.clone()]);
    for run in all.as_array().expect("array") {
        for key in ["id", "job", "namespace", "status", "steps"] {
            assert!(run.get(key).is_some(), "run lacks {key:?}: {run:#}");
        }
        let step = &run["steps"][0];
        for key in ["id", "status", "exit_code", "attempts", "outputs"] {
            assert!(step.get(key).is_some(), "step lacks {key:?}: {step:#}");
        }
    }

    let (good, _) = rota.run_json(&["runs", "--job", "good-job"]);
    assert_eq!(ids(&good), [third.clone(), first.clone()]);
    let (failed, _) = rota.run_json(&["runs", "--status", "failed"]);
    assert_eq!(ids(&failed), [second]);
    let (none, _) = rota.run_json(&["runs", "--job", "bad-job", "--status", "succeeded"]);
    assert_eq!(ids(&none), Vec::<String>::new());
    let (limited, _) = rota.run_json(&["runs", "--limit", "1"]);
    assert_eq!(ids(&limited), [third]);

    let human = rota.run(["runs"]);
    assert_code(&human, 0);
    let text = stdout(&human);
    assert!(
        text.contains(&first) && text.contains("bad-job") && text.contains("failed"),
        "{text}"
    );

    assert_code(&rota.run(["runs", "--status", "sideways"]), 2);
}

#[test]
fn runs_show_prints_one_run_with_its_steps() {
    let rota = Rota::new();
    job(&rota, "show-job", "echo \"answer=42\" >> \"$ROTA_OUTPUT\"");
    let id = run_id(&rota, "show-job.yaml");

    let run = rota.json_ok(&["runs", "show", &id]);
    assert_eq!(run["id"], id.as_str());
    assert_eq!(run["job"], "show-job");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["steps"][0]["outputs"]["answer"], "42");

    let human = rota.run(["runs", "show", &id[..10]]);
    assert_code(&human, 0);
    let text = stdout(&human);
    assert!(
        text.contains(&id) && text.contains("only") && text.contains("answer=42"),
        "{text}"
    );

    let missing = rota.run(["runs", "show", "zzzz-no-such-run"]);
    assert_code(&missing, 2);
}

#[test]
fn rota_home_selects_the_data_directory() {
    let one = Rota::new();
    let two = Rota::new();
    job(&one, "home-job", "echo home");
    let id = run_id(&one, "home-job.yaml");
    assert_eq!(ids(&serde_json::Value::Array(one.runs())), [id]);
    assert!(
        two.runs().is_empty(),
        "another ROTA_HOME has its own history"
    );
    let entries = std::fs::read_dir(one.home()).expect("home exists").count();
    assert!(entries > 0, "the store lives in ROTA_HOME");
    // `--home` names the same directory explicitly.
    let home = one.home().to_str().expect("utf-8 path").to_owned();
    let (runs, output) = two.run_json(&["runs", "--home", &home]);
    assert_code(&output, 0);
    assert_eq!(
        runs.as_array().map(Vec::len),
        Some(1),
        "{}",
        describe(&output)
    );
}

/// Local mode answers as a server does: an unknown run is "not found" (exit 2) and a
/// cancel of a run that already ended says so and exits 1.
#[test]
fn an_unknown_or_ended_run_is_refused_as_a_server_refuses_it() {
    let rota = Rota::new();
    job(&rota, "quick", "echo ok");
    let id = run_id(&rota, "quick.yaml");

    let unknown = rota.run(["logs", "zzzz"]);
    assert_code(&unknown, 2);
    crate::util::assert_stderr_has(&unknown, "not found");

    let ended = rota.run(["cancel", &id]);
    assert_code(&ended, 1);
    crate::util::assert_stderr_has(&ended, "already ended");
}
