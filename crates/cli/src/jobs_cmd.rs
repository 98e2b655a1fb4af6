//! `rota validate` and `rota jobs`.

use serde_json::json;

use crate::EXIT_USAGE;
use crate::args::{JobsArgs, ValidateArgs};
use crate::home::Home;
use crate::output::{self, Printer};

pub fn validate(args: ValidateArgs, out: &Printer) -> u8 {
    let mut reports = Vec::new();
    let mut all_valid = true;
    for path in &args.files {
        let name = path.display().to_string();
        match rota_core::parse::load_file(path) {
            Ok(file) => {
                let ids: Vec<&str> = file.jobs.iter().map(|j| j.id.as_str()).collect();
                if !out.is_json() {
                    out.text(&format!("ok  {name}: {}\n", ids.join(", ")));
                }
                reports.push(json!({ "file": name, "valid": true, "jobs": ids, "problems": [] }));
            }
            Err(rota_core::parse::LoadError::Invalid(diagnostics)) => {
                all_valid = false;
                eprintln!("{diagnostics}");
                let problems: Vec<_> = diagnostics
                    .0
                    .iter()
                    .map(|d| json!({ "line": d.line, "column": d.col, "message": d.message }))
                    .collect();
                reports.push(
                    json!({ "file": name, "valid": false, "jobs": [], "problems": problems }),
                );
            }
            Err(error) => {
                all_valid = false;
                eprintln!("rota: {error}");
                reports.push(json!({ "file": name, "valid": false, "jobs": [], "problems": [{ "message": error.to_string() }] }));
            }
        }
    }
    if out.is_json() {
        out.json(&serde_json::Value::Array(reports));
    }
    if all_valid { 0 } else { EXIT_USAGE }
}

pub async fn jobs(home: &Home, args: JobsArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    let jobs = store.list_jobs(args.namespace.as_deref()).await?;
    // Files `rota serve --jobs DIR` could not load: their last good revision keeps running.
    for broken in store.job_load_errors().await? {
        eprintln!("rota: {} does not load:\n{}", broken.path, broken.message);
    }
    if out.is_json() {
        let items: Vec<_> = jobs
            .iter()
            .map(|j| {
                json!({
                    "id": j.job_id,
                    "namespace": j.namespace,
                    "revision": j.revision,
                    "hash": j.hash,
                    "source_path": j.source_path,
                    "created_at": j.created_at.to_string(),
                })
            })
            .collect();
        out.json(&serde_json::Value::Array(items));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.job_id.clone(),
                j.namespace.clone(),
                j.revision.to_string(),
                output::when(Some(j.created_at)),
                j.source_path.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.table(
        &["JOB", "NAMESPACE", "REVISION", "UPDATED", "SOURCE"],
        &rows,
    );
    Ok(0)
}
