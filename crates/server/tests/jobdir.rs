//! The watched job directory: added, changed, broken and removed files.

use rota_server::jobdir::{Change, JobDir};

fn job(id: &str, cron: &str) -> String {
    format!("id: {id}\ntriggers:\n  - cron: '{cron}'\nsteps:\n  - id: main\n    sh: 'true'\n")
}

fn kinds(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match c {
            Change::Loaded { path, jobs, .. } => format!(
                "loaded {} {}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default(),
                jobs.iter()
                    .map(|j| j.id.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Change::Broken { path, message } => format!(
                "broken {} {}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default(),
                message.contains(":2:")
            ),
            Change::Removed { path } => format!(
                "removed {}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
            ),
        })
        .collect()
}

#[test]
fn scans_report_added_changed_broken_and_removed_files() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut jobs = JobDir::new(dir.path());
    std::fs::write(dir.path().join("a.yaml"), job("alpha", "* * * * *"))?;
    std::fs::write(dir.path().join("notes.txt"), "not a job")?;
    std::fs::write(dir.path().join(".a.yaml.swp"), "editor swap")?;
    assert_eq!(kinds(&jobs.scan()?), ["loaded a.yaml alpha"]);
    assert!(jobs.scan()?.is_empty(), "nothing changed");

    // Same text rewritten: not a change. New text: a change.
    std::fs::write(dir.path().join("a.yaml"), job("alpha", "* * * * *"))?;
    assert!(jobs.scan()?.is_empty());
    std::fs::write(
        dir.path().join("a.yaml"),
        job("alpha", "*/5 * * * *") + "# v2\n",
    )?;
    assert_eq!(kinds(&jobs.scan()?), ["loaded a.yaml alpha"]);

    // A broken file is reported with positions.
    std::fs::write(
        dir.path().join("a.yaml"),
        "id: alpha\nbogus: 1\nsteps: []\n",
    )?;
    assert_eq!(kinds(&jobs.scan()?), ["broken a.yaml true"]);

    std::fs::remove_file(dir.path().join("a.yaml"))?;
    assert_eq!(kinds(&jobs.scan()?), ["removed a.yaml"]);
    Ok(())
}

/// Edits in quick succession between two scans — rewrites, an editor's save by renaming a
/// temporary file over the job file, a removal followed by a new file of the same name — are
/// reported once each, as the file's last text.
#[test]
fn rapid_successive_edits_report_the_last_text_once() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut jobs = JobDir::new(dir.path());
    let a = dir.path().join("a.yaml");
    std::fs::write(&a, job("alpha", "* * * * *"))?;
    std::fs::write(dir.path().join("b.yaml"), job("beta", "* * * * *"))?;
    assert_eq!(
        kinds(&jobs.scan()?),
        ["loaded a.yaml alpha", "loaded b.yaml beta"]
    );

    for minute in 1..=20 {
        std::fs::write(&a, job("alpha", &format!("{minute} * * * *")))?;
    }
    let changes = jobs.scan()?;
    assert_eq!(kinds(&changes), ["loaded a.yaml alpha"]);
    let Change::Loaded { source, .. } = &changes[0] else {
        unreachable!("checked above")
    };
    assert_eq!(source, &job("alpha", "20 * * * *"));

    // An editor's save: a temporary file renamed over the job file, twice.
    for minute in [30, 31] {
        let tmp = dir.path().join(".a.yaml.tmp");
        std::fs::write(&tmp, job("alpha", &format!("{minute} * * * *")))?;
        std::fs::rename(&tmp, &a)?;
    }
    let changes = jobs.scan()?;
    assert_eq!(kinds(&changes), ["loaded a.yaml alpha"]);
    let Change::Loaded { source, .. } = &changes[0] else {
        unreachable!("checked above")
    };
    assert_eq!(source, &job("alpha", "31 * * * *"));

    // Removed and written again before the scan: changed, not removed.
    std::fs::remove_file(dir.path().join("b.yaml"))?;
    std::fs::write(dir.path().join("b.yaml"), job("beta", "5 * * * *"))?;
    assert_eq!(kinds(&jobs.scan()?), ["loaded b.yaml beta"]);
    // Written and removed before the scan: removed.
    std::fs::write(&a, job("alpha", "40 * * * *"))?;
    std::fs::remove_file(&a)?;
    assert_eq!(kinds(&jobs.scan()?), ["removed a.yaml"]);
    // Renamed away from a job file name: removed, and a new file under the new name.
    std::fs::rename(dir.path().join("b.yaml"), dir.path().join("c.yaml"))?;
    let mut changes = kinds(&jobs.scan()?);
    changes.sort();
    assert_eq!(changes, ["loaded c.yaml beta", "removed b.yaml"]);
    assert!(jobs.scan()?.is_empty(), "nothing changed");
    Ok(())
}

/// A file that used to panic the validator (an `http` step without `url` whose body names a
/// step's outputs), one over a limit and one too large to read: each is reported as broken
/// with its problem, and the scan goes on to the good file.
const FORMERLY_PANICKING: &str = "id: panicky\nsteps:\n  - id: a\n    sh: echo hi\n  - id: b\n    needs: [a]\n    http:\n      method: POST\n      body: \"{{ steps.a.outputs.x }}\"\n";

/// A broken job file: job `deep` whose `x` nests a hundred arrays deep.
fn deep_json() -> String {
    format!(
        "{{\"id\": \"deep\", \"x\": {}{}}}",
        "[".repeat(100),
        "]".repeat(100)
    )
}

#[test]
fn broken_files_are_reported_and_skipped() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut jobs = JobDir::new(dir.path());
    std::fs::write(dir.path().join("a.yaml"), FORMERLY_PANICKING)?;
    std::fs::write(dir.path().join("b.json"), deep_json())?;
    std::fs::write(
        dir.path().join("c.yaml"),
        "#".repeat(rota_core::limits::MAX_FILE_BYTES + 1),
    )?;
    std::fs::write(dir.path().join("d.yaml"), job("delta", "* * * * *"))?;
    let mut changes = jobs.scan()?;
    changes.sort_by_key(|c| match c {
        Change::Loaded { path, .. } | Change::Broken { path, .. } | Change::Removed { path } => {
            path.clone()
        }
    });
    let messages: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Broken { message, .. } => message.clone(),
            Change::Loaded { jobs, .. } => format!("loaded {}", jobs[0].id),
            Change::Removed { .. } => "removed".to_owned(),
        })
        .collect();
    assert_eq!(messages.len(), 4, "{messages:#?}");
    assert!(
        messages[0].ends_with("a.yaml:8:7: missing required key `url` in `http` in step `b`"),
        "{messages:#?}"
    );
    assert!(
        messages[1].contains("nesting deeper than 64 levels"),
        "{messages:#?}"
    );
    assert!(
        messages[2].ends_with(
            "c.yaml: job file too large: more than 1048576 bytes (the limit of a job file)"
        ),
        "{messages:#?}"
    );
    assert_eq!(messages[3], "loaded delta");
    // Reported once: an unchanged broken file is not reported again.
    assert!(jobs.scan()?.is_empty());
    Ok(())
}

/// `rota serve --jobs DIR` with the formerly panicking file (and the other broken ones) in
/// DIR starts, keeps serving, and schedules the good job; a restart does the same.
#[test]
fn serve_skips_broken_files_and_schedules_the_rest() -> Result<(), Box<dyn std::error::Error>> {
    use crate::support::{Server, get, server_dirs_with_job, wait_for};
    let (_dir, home, jobs) = server_dirs_with_job("panicky.yaml", FORMERLY_PANICKING)?;
    std::fs::write(jobs.join("deep.json"), deep_json())?;
    std::fs::write(
        jobs.join("tick.yaml"),
        "id: tick\ntriggers:\n  - interval: 1s\nsteps:\n  - id: one\n    sh: echo tick\n",
    )?;
    // The admin token file exists only until the next start: keep the token from the first.
    let mut token = String::new();
    for start in ["first", "second"] {
        let mut server = Server::start(&home, &jobs, &[])?;
        let addr = server.addr()?;
        if token.is_empty() {
            token = std::fs::read_to_string(home.join("admin.token"))?
                .trim()
                .to_owned();
        }
        let succeeded = || {
            get(&addr, "/api/v1/runs?status=succeeded", Some(&token))
                .ok()
                .and_then(|(_, _, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
                .and_then(|page| page["items"].as_array().map(Vec::len))
                .unwrap_or(0)
        };
        let before = succeeded();
        wait_for(&format!("a scheduled run after the {start} start"), || {
            succeeded() > before
        })?;
        assert!(
            server.child().try_wait()?.is_none(),
            "rota serve exited after its {start} start"
        );
        let log = std::fs::read_to_string(home.join("serve.log"))?;
        assert!(
            log.contains("missing required key `url` in `http` in step `b`"),
            "{log}"
        );
        assert!(!log.contains("panicked"), "{log}");
        server.terminate()?;
    }
    Ok(())
}

#[test]
fn runbooks_load_from_the_directory_and_other_documents_are_left_alone()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut jobs = JobDir::new(dir.path());
    let runbook = "---\ndescription: Restart the web tier\n---\n# Restart\n\n```sh {id=restart}\necho restarted\n```\n";
    std::fs::write(dir.path().join("restart.md"), runbook)?;
    std::fs::write(
        dir.path().join("README.md"),
        "# Our jobs\n\n```sh\nrm -rf /\n```\n",
    )?;
    let notebook = |rota: Option<serde_json::Value>| {
        let mut nb = serde_json::json!({
            "cells": [{"cell_type": "code", "execution_count": null, "id": "c0",
                       "metadata": {"tags": ["parameters"]}, "outputs": [], "source": "n = 1"}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5
        });
        if let Some(rota) = rota {
            nb["metadata"]["rota"] = rota;
        }
        nb.to_string()
    };
    std::fs::write(
        dir.path().join("report.ipynb"),
        notebook(Some(serde_json::json!({"description": "A report"}))),
    )?;
    // The notebook a job's step runs, beside the job file.
    std::fs::write(dir.path().join("analysis.ipynb"), notebook(None))?;
    let mut loaded = kinds(&jobs.scan()?);
    loaded.sort();
    assert_eq!(
        loaded,
        ["loaded report.ipynb report", "loaded restart.md restart"]
    );

    // A runbook that loses its front matter is no job any more; a document that goes
    // away is no change.
    std::fs::write(dir.path().join("restart.md"), "# Restart\n")?;
    std::fs::remove_file(dir.path().join("README.md"))?;
    assert_eq!(kinds(&jobs.scan()?), ["removed restart.md"]);
    assert!(jobs.scan()?.is_empty());
    Ok(())
}
