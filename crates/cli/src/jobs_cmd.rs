//! `rota validate`, `rota jobs` and `rota jobs put`, on the local store or a server.

use std::path::Path;

use rota_store::DEFAULT_NAMESPACE;
use serde_json::json;

use crate::EXIT_USAGE;
use crate::args::{JobsArgs, JobsCommand, ValidateArgs};
use crate::client::{Remote, seg};
use crate::home::Home;
use crate::output::{self, Printer};
use crate::view::{JobView, via_wire};

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
    if let Some(JobsCommand::Put { file }) = &args.command {
        return put_local(&store, file, args.namespace.as_deref(), out).await;
    }
    let jobs = store.list_jobs(args.namespace.as_deref()).await?;
    // Files `rota serve --jobs DIR` could not load: their last good revision keeps running.
    for broken in store.job_load_errors().await? {
        eprintln!("rota: {} does not load:\n{}", broken.path, broken.message);
    }
    let jobs = jobs
        .into_iter()
        .map(|revision| {
            let source_path = revision.source_path.clone();
            let mut view: JobView = via_wire(rota_api::wire::JobSummary::from(revision))?;
            view.source_path = source_path;
            Ok(view)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    print_jobs(out, &jobs);
    Ok(0)
}

/// `rota jobs` against a server: the jobs of `-n NS`, or of every namespace the token sees.
pub async fn jobs_remote(remote: &Remote, args: JobsArgs, out: &Printer) -> anyhow::Result<u8> {
    if let Some(JobsCommand::Put { file }) = &args.command {
        return put_remote(remote, file, args.namespace.as_deref(), out).await;
    }
    let namespaces = match &args.namespace {
        Some(namespace) => vec![namespace.clone()],
        None => {
            let list: Vec<NamespaceView> = remote.get_all("/api/v1/namespaces", &[]).await?;
            list.into_iter().map(|n| n.name).collect()
        }
    };
    let mut jobs = Vec::new();
    for namespace in namespaces {
        let path = format!("/api/v1/namespaces/{}/jobs", seg(&namespace));
        let list: Vec<JobView> = remote.get_all(&path, &[]).await?;
        // Listings leave out where each file came from; the job itself says it.
        for job in list {
            let one: JobView = remote.get(&format!("{path}/{}", seg(&job.id)), &[]).await?;
            jobs.push(one);
        }
    }
    print_jobs(out, &jobs);
    Ok(0)
}

/// A namespace of `GET /api/v1/namespaces`.
#[derive(serde::Deserialize)]
struct NamespaceView {
    name: String,
}

fn print_jobs(out: &Printer, jobs: &[JobView]) {
    if out.is_json() {
        out.json(&serde_json::Value::Array(
            jobs.iter().map(JobView::json).collect(),
        ));
        return;
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
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
}

/// A job file read for `rota jobs put`: its text, format and the jobs it defines.
struct PutFile {
    source: String,
    format: rota_api::wire::JobFormat,
    jobs: Vec<rota_core::model::Job>,
    absolute: String,
}

/// Reads and validates the file; prints the problems and returns `None` when it is invalid.
fn read_put_file(file: &Path) -> Option<PutFile> {
    use rota_api::wire::JobFormat;
    use rota_core::parse::Format;
    let loaded = match rota_core::parse::load_file(file) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return None;
        }
    };
    let format = match Format::from_path(file) {
        Format::Yaml => JobFormat::Yaml,
        Format::Toml => JobFormat::Toml,
        Format::Json => JobFormat::Json,
        _ => {
            eprintln!(
                "rota: {}: `rota jobs put` takes YAML, TOML or JSON job files",
                file.display()
            );
            return None;
        }
    };
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    Some(PutFile {
        source: loaded.source,
        format,
        jobs: loaded.jobs,
        absolute: absolute.display().to_string(),
    })
}

/// The namespace a job is saved into: the file's, else `-n`, else `default`.
fn put_namespace(job: &rota_core::model::Job, namespace: Option<&str>) -> Result<String, String> {
    match (&job.namespace, namespace) {
        (Some(own), Some(given)) if own != given => Err(format!(
            "rota: job {:?} names namespace {own:?}, not {given:?}",
            job.id
        )),
        (Some(own), _) => Ok(own.clone()),
        (None, Some(given)) => Ok(given.to_owned()),
        (None, None) => Ok(DEFAULT_NAMESPACE.to_owned()),
    }
}

async fn put_local(
    store: &rota_store::Store,
    file: &Path,
    namespace: Option<&str>,
    out: &Printer,
) -> anyhow::Result<u8> {
    let Some(put) = read_put_file(file) else {
        return Ok(EXIT_USAGE);
    };
    let mut saved = Vec::new();
    for job in &put.jobs {
        let namespace = match put_namespace(job, namespace) {
            Ok(namespace) => namespace,
            Err(message) => {
                eprintln!("{message}");
                return Ok(EXIT_USAGE);
            }
        };
        let mut revision = rota_store::NewJobRevision::new(
            namespace,
            job.id.clone(),
            put.source.clone(),
            serde_json::to_value(job)?,
            jiff::Timestamp::now(),
        );
        revision.source_path = Some(put.absolute.clone());
        let stored = store.save_job_revision(&revision).await?;
        let source_path = stored.source_path.clone();
        let mut view: JobView = via_wire(rota_api::wire::JobSummary::from(stored))?;
        view.source_path = source_path;
        saved.push(view);
    }
    print_jobs(out, &saved);
    Ok(0)
}

/// `rota jobs put` against a server: `PUT …/jobs/{job}` per job; the server validates the
/// file again and its problems come back with their lines.
async fn put_remote(
    remote: &Remote,
    file: &Path,
    namespace: Option<&str>,
    out: &Printer,
) -> anyhow::Result<u8> {
    let Some(put) = read_put_file(file) else {
        return Ok(EXIT_USAGE);
    };
    if put.jobs.len() != 1 {
        eprintln!(
            "rota: {}: the API saves one job per file; this file defines {}",
            file.display(),
            put.jobs.len()
        );
        return Ok(EXIT_USAGE);
    }
    let job = &put.jobs[0];
    let namespace = match put_namespace(job, namespace) {
        Ok(namespace) => namespace,
        Err(message) => {
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    let body = serde_json::json!({ "format": put.format, "source": put.source });
    let path = format!(
        "/api/v1/namespaces/{}/jobs/{}",
        seg(&namespace),
        seg(&job.id)
    );
    let view: JobView = remote.send(reqwest::Method::PUT, &path, &body).await?;
    print_jobs(out, &[view]);
    Ok(0)
}
