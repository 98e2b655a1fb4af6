//! `rota validate` (local only), and `rota jobs`, `rota jobs put`, `rota jobs rm` and
//! `rota namespaces`, written once over [`Jobs`] for the local store or a server.

use std::path::Path;

use rota_ops::records::{JobPageQuery, JobSubmission, JobSummary, Namespace, NamespaceQuery};
use rota_ops::service::Jobs;
use serde_json::json;

use crate::EXIT_USAGE;
use crate::args::{JobsArgs, JobsCommand, ValidateArgs};
use crate::client::PAGE;
use crate::output::{self, Printer};

/// The namespace of commands given no `-n`.
const DEFAULT_NAMESPACE: &str = "default";

pub fn validate(args: ValidateArgs, out: &Printer) -> u8 {
    let loads: Vec<(
        String,
        Result<rota_core::parse::JobFile, rota_core::parse::LoadError>,
    )> = args
        .files
        .iter()
        .map(|path| {
            (
                path.display().to_string(),
                rota_core::parse::load_file(path),
            )
        })
        .collect();
    // Calls between the jobs of different files: a cycle is reported in the file whose
    // `job:` step closes it, which then does not validate.
    let loaded: Vec<(&str, &rota_core::parse::JobFile)> = loads
        .iter()
        .filter_map(|(name, load)| load.as_ref().ok().map(|f| (name.as_str(), f)))
        .collect();
    let cycles = rota_core::calls::across_files(&loaded, &Default::default());
    let mut reports = Vec::new();
    let mut all_valid = true;
    for (name, load) in loads {
        let mine: Vec<rota_core::diag::Diagnostic> =
            cycles.iter().filter(|d| d.file == name).cloned().collect();
        let load = match load {
            Ok(_) if !mine.is_empty() => Err(rota_core::parse::LoadError::Invalid(
                rota_core::diag::Diagnostics(mine),
            )),
            other => other,
        };
        match load {
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

/// `rota jobs`, `rota jobs put` and `rota jobs rm`: the jobs of `-n NS`, or of every
/// namespace the caller sees.
pub async fn jobs<R: Jobs>(rota: &R, args: JobsArgs, out: &Printer) -> anyhow::Result<u8> {
    match &args.command {
        Some(JobsCommand::Put { file }) => {
            return put(rota, file, args.namespace.as_deref(), out).await;
        }
        Some(JobsCommand::Rm { job }) => {
            let namespace = args.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
            return remove(rota, namespace, job, out).await;
        }
        None => {}
    }
    let namespaces = match &args.namespace {
        Some(namespace) => vec![namespace.clone()],
        None => all_namespaces(rota)
            .await?
            .into_iter()
            .map(|n| n.name)
            .collect(),
    };
    let mut jobs = Vec::new();
    for namespace in namespaces {
        jobs.extend(all_jobs(rota, &namespace).await?);
    }
    // Files `rota serve --jobs DIR` could not load: their last good revision keeps running.
    for broken in rota.job_load_problems().await? {
        eprintln!("rota: {} does not load:\n{}", broken.path, broken.message);
    }
    print_jobs(out, &jobs);
    Ok(0)
}

/// Every namespace the caller may view, page by page.
async fn all_namespaces<R: Jobs>(rota: &R) -> anyhow::Result<Vec<Namespace>> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let query = NamespaceQuery {
            limit: Some(PAGE),
            cursor,
        };
        let page = rota.list_namespaces(query).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next_cursor(next)?),
            None => return Ok(all),
        }
    }
}

/// Every job of `namespace`, page by page.
async fn all_jobs<R: Jobs>(rota: &R, namespace: &str) -> anyhow::Result<Vec<JobSummary>> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let query = JobPageQuery {
            limit: Some(PAGE),
            cursor,
        };
        let page = rota.list_jobs(namespace, query).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next_cursor(next)?),
            None => return Ok(all),
        }
    }
}

/// A listing's `next_cursor` as the id the next request continues after.
fn next_cursor<T: TryFrom<String, Error = String>>(text: String) -> anyhow::Result<T> {
    T::try_from(text).map_err(|e| anyhow::anyhow!("a listing answered with a bad cursor: {e}"))
}

/// `rota namespaces`: those the caller can see.
pub async fn namespaces<R: Jobs>(rota: &R, out: &Printer) -> anyhow::Result<u8> {
    let namespaces = all_namespaces(rota).await?;
    if out.is_json() {
        out.json(&serde_json::to_value(&namespaces)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = namespaces
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.jobs.to_string(),
                n.runs.to_string(),
                n.retention.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    out.table(&["NAMESPACE", "JOBS", "RUNS", "RETENTION"], &rows);
    Ok(0)
}

/// `rota jobs rm`: a job that does not exist exits 1; one a file defines is refused.
async fn remove<R: Jobs>(
    rota: &R,
    namespace: &str,
    job: &str,
    out: &Printer,
) -> anyhow::Result<u8> {
    match rota.delete_job(namespace, job).await {
        Ok(()) => {
            if out.is_json() {
                out.json(&json!({ "namespace": namespace, "id": job, "deleted": true }));
            } else {
                out.text(&format!("job {namespace}/{job} deleted\n"));
            }
            Ok(0)
        }
        Err(error) if error.is_not_found() => {
            eprintln!("rota: no job {job} in namespace {namespace:?}");
            Ok(1)
        }
        Err(error) => Err(error.into()),
    }
}

/// The JSON of `rota jobs --output json`: a job's latest revision, keyed as it always was.
fn job_json(job: &JobSummary) -> serde_json::Value {
    json!({
        "id": job.id,
        "namespace": job.namespace,
        "revision": job.revision,
        "hash": job.hash,
        "source_path": job.source_path,
        "created_at": job.created_at.to_string(),
    })
}

fn print_jobs(out: &Printer, jobs: &[JobSummary]) {
    if out.is_json() {
        out.json(&serde_json::Value::Array(
            jobs.iter().map(job_json).collect(),
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
    use rota_core::parse::Format;
    use rota_ops::records::JobFormat;
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
        Format::Markdown => JobFormat::Markdown,
        _ => {
            eprintln!(
                "rota: {}: `rota jobs put` takes YAML, TOML, JSON or Markdown job files",
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

/// `rota jobs put`: saves the file's one job as its next revision (the file is checked
/// here first, and again where it is saved).
async fn put<R: Jobs>(
    rota: &R,
    file: &Path,
    namespace: Option<&str>,
    out: &Printer,
) -> anyhow::Result<u8> {
    let Some(put) = read_put_file(file) else {
        return Ok(EXIT_USAGE);
    };
    let [job] = put.jobs.as_slice() else {
        eprintln!(
            "rota: {}: the API saves one job per file; this file defines {}",
            file.display(),
            put.jobs.len()
        );
        return Ok(EXIT_USAGE);
    };
    let namespace = match put_namespace(job, namespace) {
        Ok(namespace) => namespace,
        Err(message) => {
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    let submission = JobSubmission {
        format: put.format,
        source: put.source,
    };
    let saved = match rota.put_job(&namespace, &job.id, submission).await {
        Ok(saved) => saved.job,
        // Each problem at its position in the file, as `rota validate` shows them (a cycle
        // of job calls with the stored jobs is only found here).
        Err(rota_ops::OpsError::InvalidJob { detail, problems }) if !problems.is_empty() => {
            eprintln!("rota: {}: {detail}", file.display());
            for problem in problems {
                match (problem.line, problem.column) {
                    (Some(line), Some(col)) => {
                        eprintln!("{}:{line}:{col}: {}", file.display(), problem.message);
                    }
                    _ => eprintln!("{}: {}", file.display(), problem.message),
                }
            }
            return Ok(EXIT_USAGE);
        }
        Err(error) => return Err(error.into()),
    };
    let summary = JobSummary {
        namespace: saved.namespace,
        id: saved.id,
        revision: saved.revision,
        hash: saved.hash,
        source_path: saved.source_path,
        created_at: saved.created_at,
    };
    print_jobs(out, &[summary]);
    Ok(0)
}
