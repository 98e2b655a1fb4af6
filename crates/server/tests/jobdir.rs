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
