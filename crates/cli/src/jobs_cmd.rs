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
    match &args.command {
        Some(JobsCommand::Put { file }) => {
            return put_local(&store, file, args.namespace.as_deref(), out).await;
        }
        Some(JobsCommand::Rm { job }) => {
            let namespace = args.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
            return rm_local(&store, namespace, job, out).await;
        }
        None => {}
    }
    let jobs = store.list_jobs(args.namespace.as_deref()).await?;
    // Files `rota serve --jobs DIR` could not load: their last good revision keeps running.
    for broken in store.job_load_errors().await? {
        eprintln!("rota: {} does not load:\n{}", broken.path, broken.message);
    }
    let jobs = jobs
        .into_iter()
        .map(|revision| via_wire(rota_ops::records::JobSummary::from(revision)))
        .collect::<anyhow::Result<Vec<JobView>>>()?;
    print_jobs(out, &jobs);
    Ok(0)
}

/// `rota jobs` against a server: the jobs of `-n NS`, or of every namespace the token sees.
pub async fn jobs_remote(remote: &Remote, args: JobsArgs, out: &Printer) -> anyhow::Result<u8> {
    match &args.command {
        Some(JobsCommand::Put { file }) => {
            return put_remote(remote, file, args.namespace.as_deref(), out).await;
        }
        Some(JobsCommand::Rm { job }) => {
            let namespace = args.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
            let path = format!("/api/v1/namespaces/{}/jobs/{}", seg(namespace), seg(job));
            return match remote.delete(&path).await {
                Ok(()) => {
                    print_removed(out, namespace, job);
                    Ok(0)
                }
                Err(failure) if failure.is(reqwest::StatusCode::NOT_FOUND) => {
                    eprintln!("rota: no job {job} in namespace {namespace:?}");
                    Ok(1)
                }
                Err(failure) => Err(failure.into()),
            };
        }
        None => {}
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
        jobs.extend(remote.get_all::<JobView>(&path, &[]).await?);
    }
    print_jobs(out, &jobs);
    Ok(0)
}

/// A namespace of `GET /api/v1/namespaces`, or of the local store.
#[derive(serde::Deserialize)]
struct NamespaceView {
    name: String,
    jobs: u64,
    runs: u64,
}

/// `rota namespaces` on the local store.
pub async fn namespaces(home: &Home, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    let namespaces = store
        .list_namespaces()
        .await?
        .into_iter()
        .map(|n| via_wire(rota_ops::records::Namespace::from(n)))
        .collect::<anyhow::Result<Vec<NamespaceView>>>()?;
    print_namespaces(out, &namespaces);
    Ok(0)
}

/// `rota namespaces` against a server: those the token can see.
pub async fn namespaces_remote(remote: &Remote, out: &Printer) -> anyhow::Result<u8> {
    let namespaces: Vec<NamespaceView> = remote.get_all("/api/v1/namespaces", &[]).await?;
    print_namespaces(out, &namespaces);
    Ok(0)
}

fn print_namespaces(out: &Printer, namespaces: &[NamespaceView]) {
    if out.is_json() {
        out.json(&serde_json::Value::Array(
            namespaces
                .iter()
                .map(|n| json!({ "name": n.name, "jobs": n.jobs, "runs": n.runs }))
                .collect(),
        ));
        return;
    }
    let rows: Vec<Vec<String>> = namespaces
        .iter()
        .map(|n| vec![n.name.clone(), n.jobs.to_string(), n.runs.to_string()])
        .collect();
    out.table(&["NAMESPACE", "JOBS", "RUNS"], &rows);
}

/// `rota jobs rm` on the local store.
async fn rm_local(
    store: &rota_store::Store,
    namespace: &str,
    job: &str,
    out: &Printer,
) -> anyhow::Result<u8> {
    let ops = rota_ops::Ops::new(store.clone());
    let actor = rota_ops::Actor::local();
    let deleted = ops.delete_job(&actor, namespace, job).await;
    let result = match &deleted {
        Ok(()) => "ok",
        Err(rota_ops::OpsError::NotFound(_)) => "not-found",
        Err(rota_ops::OpsError::Conflict(_)) => "conflict",
        Err(_) => "internal",
    };
    ops.audit(
        &actor,
        "job.delete",
        &format!("job/{namespace}/{job}"),
        result,
    )
    .await?;
    match deleted {
        Ok(()) => {
            print_removed(out, namespace, job);
            Ok(0)
        }
        Err(rota_ops::OpsError::NotFound(_)) => {
            eprintln!("rota: no job {job} in namespace {namespace:?}");
            Ok(1)
        }
        Err(error @ rota_ops::OpsError::Conflict(_)) => {
            eprintln!("rota: {error}");
            Ok(EXIT_USAGE)
        }
        Err(error) => Err(error.into()),
    }
}

fn print_removed(out: &Printer, namespace: &str, job: &str) {
    if out.is_json() {
        out.json(&json!({ "namespace": namespace, "id": job, "deleted": true }));
    } else {
        out.text(&format!("job {namespace}/{job} deleted\n"));
    }
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
    format: rota_ops::records::JobFormat,
    jobs: Vec<rota_core::model::Job>,
}

/// Reads and validates the file; prints the problems and returns `None` when it is invalid.
fn read_put_file(file: &Path) -> Option<PutFile> {
    use rota_ops::records::JobFormat;
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
    Some(PutFile {
        source: loaded.source,
        format,
        jobs: loaded.jobs,
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
        let ops = rota_ops::Ops::new(store.clone());
        let stored = ops.put_job(&namespace, job, &put.source).await?;
        let target = format!("job/{namespace}/{}", job.id);
        ops.audit(&rota_ops::Actor::local(), "job.put", &target, "ok")
            .await?;
        saved.push(via_wire(rota_ops::records::JobSummary::from(stored.revision))?);
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
