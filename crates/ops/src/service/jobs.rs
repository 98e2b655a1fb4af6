//! The jobs operations of [`crate::Rota`]: namespaces, jobs and their revisions, saving a
//! job file as a job's next revision, validating one, and deleting a job.

use std::future::Future;

use crate::OpsError;
use crate::auth::{Role, Scope};
use crate::ids;
use crate::records::{
    Job, JobList, JobLoadProblem, JobPageQuery, JobSubmission, JobSummary, Namespace,
    NamespaceList, NamespaceQuery, ProblemItem, RevisionPageQuery, ValidatedJob, Validation,
};

use super::Session;
use super::page::{cut_page, page_limit};

/// How diagnostics name a job file sent to be saved or validated.
const ORIGIN: &str = "<api>";

/// A job file saved as a job's revision.
#[derive(Debug, Clone)]
pub struct PutJob {
    /// The job's latest revision after the save.
    pub job: Job,
    /// True when the text was the latest revision's already: nothing new was saved.
    pub unchanged: bool,
}

/// The jobs operations.
pub trait Jobs {
    /// The namespaces the caller may view, by name, a page at a time.
    fn list_namespaces(
        &self,
        query: NamespaceQuery,
    ) -> impl Future<Output = Result<NamespaceList, OpsError>> + Send;

    /// The jobs of `namespace` (latest revision of each), by id, a page at a time.
    fn list_jobs(
        &self,
        namespace: &str,
        query: JobPageQuery,
    ) -> impl Future<Output = Result<JobList, OpsError>> + Send;

    /// Every revision of a job, newest first, a page at a time (not found if it has none).
    fn job_revisions(
        &self,
        namespace: &str,
        job: &str,
        query: RevisionPageQuery,
    ) -> impl Future<Output = Result<JobList, OpsError>> + Send;

    /// The latest revision of a job, with its source and definition.
    fn get_job(
        &self,
        namespace: &str,
        job: &str,
    ) -> impl Future<Output = Result<Job, OpsError>> + Send;

    /// Saves a job file that defines exactly job `job` as its next revision in `namespace`
    /// (`InvalidJob`, with each problem's position, when it does not).
    fn put_job(
        &self,
        namespace: &str,
        job: &str,
        file: JobSubmission,
    ) -> impl Future<Output = Result<PutJob, OpsError>> + Send;

    /// Deletes a job: its revisions and runs stay as history; a later put revives it.
    fn delete_job(
        &self,
        namespace: &str,
        job: &str,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;

    /// Checks a job file for `namespace` without saving anything.
    fn validate_job(
        &self,
        namespace: &str,
        file: JobSubmission,
    ) -> impl Future<Output = Result<Validation, OpsError>> + Send;

    /// The job files a server's job directory holds that do not load (their last good
    /// revision keeps running); a server does not expose them, so remotely none.
    fn job_load_problems(
        &self,
    ) -> impl Future<Output = Result<Vec<JobLoadProblem>, OpsError>> + Send;
}

impl Jobs for Session {
    async fn list_namespaces(&self, query: NamespaceQuery) -> Result<NamespaceList, OpsError> {
        let principal = self.principal();
        principal.require_somewhere(Role::Viewer)?;
        let limit = page_limit(query.limit)?;
        // Without a role everywhere, the caller sees the namespaces it holds a grant in; the
        // store filters, so that every page but the last is full.
        let only: Option<Vec<String>> = (!principal.can(Scope::Global, Role::Viewer)).then(|| {
            principal
                .grants
                .iter()
                .filter_map(|g| g.namespace.clone())
                .collect()
        });
        let rows = self
            .ops()
            .store()
            .list_namespaces_page(
                query.cursor.as_ref().map(ids::Namespace::as_str),
                only.as_deref(),
                limit + 1,
            )
            .await?;
        let (rows, next_cursor) = cut_page(rows, limit, |ns| ns.name.clone());
        // Few namespaces have a retention setting: one read of them all for the page.
        let retention: std::collections::HashMap<String, i64> = self
            .ops()
            .store()
            .retention_settings()
            .await?
            .into_iter()
            .map(|s| (s.namespace, s.keep_secs))
            .collect();
        let items = rows
            .into_iter()
            .map(|row| {
                let keep = retention.get(&row.name).copied();
                let mut namespace = Namespace::from(row);
                namespace.retention = keep.map(|secs| {
                    rota_core::duration::format_duration(std::time::Duration::from_secs(
                        secs.unsigned_abs(),
                    ))
                });
                namespace
            })
            .collect();
        Ok(NamespaceList { items, next_cursor })
    }

    async fn list_jobs(&self, namespace: &str, query: JobPageQuery) -> Result<JobList, OpsError> {
        self.principal()
            .require(Scope::Namespace(namespace), Role::Viewer)?;
        let limit = page_limit(query.limit)?;
        let jobs = self
            .ops()
            .store()
            .list_jobs_page(
                namespace,
                query.cursor.as_ref().map(ids::JobId::as_str),
                limit + 1,
            )
            .await?;
        let (jobs, next_cursor) = cut_page(jobs, limit, |j| j.job_id.clone());
        Ok(JobList {
            items: jobs.into_iter().map(JobSummary::from).collect(),
            next_cursor,
        })
    }

    async fn job_revisions(
        &self,
        namespace: &str,
        job: &str,
        query: RevisionPageQuery,
    ) -> Result<JobList, OpsError> {
        self.principal()
            .require(Scope::Namespace(namespace), Role::Viewer)?;
        let limit = page_limit(query.limit)?;
        let before = query.cursor.as_deref().map(revision_cursor).transpose()?;
        let store = self.ops().store();
        let revisions = store
            .list_job_revisions_page(namespace, job, before, limit + 1)
            .await?;
        // An empty first page means no such job; a later page may be empty after a cursor.
        if revisions.is_empty() && store.latest_job_revision(namespace, job).await?.is_none() {
            return Err(OpsError::NotFound(format!("job {namespace}/{job}")));
        }
        let (revisions, next_cursor) = cut_page(revisions, limit, |r| r.revision.to_string());
        Ok(JobList {
            items: revisions.into_iter().map(JobSummary::from).collect(),
            next_cursor,
        })
    }

    async fn get_job(&self, namespace: &str, job: &str) -> Result<Job, OpsError> {
        self.principal()
            .require(Scope::Namespace(namespace), Role::Viewer)?;
        let revision = self
            .ops()
            .store()
            .latest_job_revision(namespace, job)
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("job {namespace}/{job}")))?;
        Ok(Job::from(revision))
    }

    async fn put_job(
        &self,
        namespace: &str,
        job: &str,
        file: JobSubmission,
    ) -> Result<PutJob, OpsError> {
        let outcome = async {
            self.principal()
                .require(Scope::Namespace(namespace), Role::Editor)?;
            let parsed = only_job(
                parse_submission(self.ops().store(), &file, namespace).await?,
                job,
            )?;
            let saved = self
                .ops()
                .put_job(namespace, &parsed, file.source.as_str())
                .await?;
            Ok(PutJob {
                job: Job::from(saved.revision),
                unchanged: saved.unchanged,
            })
        }
        .await;
        self.audited("job.put", &format!("job/{namespace}/{job}"), outcome)
            .await
    }

    async fn delete_job(&self, namespace: &str, job: &str) -> Result<(), OpsError> {
        let outcome = async {
            self.principal()
                .require(Scope::Namespace(namespace), Role::Editor)?;
            self.ops().delete_job(&self.actor(), namespace, job).await
        }
        .await;
        self.audited("job.delete", &format!("job/{namespace}/{job}"), outcome)
            .await
    }

    async fn validate_job(
        &self,
        namespace: &str,
        file: JobSubmission,
    ) -> Result<Validation, OpsError> {
        self.principal()
            .require(Scope::Namespace(namespace), Role::Viewer)?;
        let jobs = parse_submission(self.ops().store(), &file, namespace).await?;
        Ok(Validation {
            valid: true,
            jobs: jobs.into_iter().map(validated).collect(),
        })
    }

    async fn job_load_problems(&self) -> Result<Vec<JobLoadProblem>, OpsError> {
        self.principal().require_somewhere(Role::Viewer)?;
        let broken = self.ops().store().job_load_errors().await?;
        Ok(broken
            .into_iter()
            .map(|b| JobLoadProblem {
                path: b.path,
                message: b.message,
            })
            .collect())
    }
}

/// What a valid file says of one of its jobs.
fn validated(job: rota_core::model::Job) -> ValidatedJob {
    ValidatedJob {
        params: job.params.iter().map(|p| p.name.clone()).collect(),
        steps: job.steps.iter().map(|s| s.id.clone()).collect(),
        triggers: job.triggers.len(),
        id: job.id,
        namespace: job.namespace,
    }
}

/// The one job of a file saved as job `id`.
fn only_job(
    mut jobs: Vec<rota_core::model::Job>,
    id: &str,
) -> Result<rota_core::model::Job, OpsError> {
    let parsed = match (jobs.pop(), jobs.is_empty()) {
        (Some(parsed), true) => parsed,
        _ => {
            return Err(OpsError::InvalidJob {
                detail: "the job file must define exactly one job".into(),
                problems: Vec::new(),
            });
        }
    };
    if parsed.id != id {
        return Err(OpsError::InvalidJob {
            detail: format!("the file defines job {:?}, not {:?}", parsed.id, id),
            problems: Vec::new(),
        });
    }
    Ok(parsed)
}

/// Parses and validates a submitted job file; its jobs must not name a namespace other than
/// `namespace`, nor close a cycle of calls (`job:` steps) with the jobs stored there.
/// Every problem is a [`ProblemItem`] of one `InvalidJob`.
async fn parse_submission(
    store: &rota_store::Store,
    file: &JobSubmission,
    namespace: &str,
) -> Result<Vec<rota_core::model::Job>, OpsError> {
    let (jobs, calls) =
        rota_core::parse::parse_str_with_calls(&file.source, ORIGIN, file.format.to_core())
            .map_err(|diagnostics| {
                let problems: Vec<ProblemItem> =
                    diagnostics.0.into_iter().map(problem_at).collect();
                OpsError::InvalidJob {
                    detail: format!("the job file has {} problem(s)", problems.len()),
                    problems,
                }
            })?;
    let elsewhere: Vec<ProblemItem> = jobs
        .iter()
        .filter(|j| j.namespace.as_deref().is_some_and(|ns| ns != namespace))
        .map(|j| ProblemItem {
            line: None,
            column: None,
            param: None,
            message: format!(
                "job {:?} names namespace {:?}, not {:?}",
                j.id,
                j.namespace.as_deref().unwrap_or_default(),
                namespace
            ),
        })
        .collect();
    if !elsewhere.is_empty() {
        return Err(OpsError::InvalidJob {
            detail: format!("the job file belongs to another namespace than {namespace:?}"),
            problems: elsewhere,
        });
    }
    if !calls.is_empty() {
        let mut known = std::collections::BTreeMap::new();
        for revision in store.list_jobs(Some(namespace)).await? {
            // A stored definition this release cannot read calls nothing it can check.
            if let Ok(job) = revision.job() {
                known.insert(revision.job_id.clone(), rota_core::calls::callees(&job));
            }
        }
        let loaded = [rota_core::calls::LoadedCalls {
            file: ORIGIN,
            jobs: jobs.iter().map(|j| j.id.clone()).collect(),
            calls: &calls,
        }];
        let cycles: Vec<ProblemItem> = rota_core::calls::cycles(&loaded, &known)
            .into_iter()
            .map(problem_at)
            .collect();
        if !cycles.is_empty() {
            return Err(OpsError::InvalidJob {
                detail: "the job file closes a cycle of job calls with the stored jobs".into(),
                problems: cycles,
            });
        }
    }
    Ok(jobs)
}

/// A revision listing's cursor: a revision number.
fn revision_cursor(text: &str) -> Result<i64, OpsError> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| OpsError::InvalidQuery(format!("{text:?} is not a cursor from this API")))
}

/// A job file's problem as a problem item, at its line and column.
fn problem_at(d: rota_core::diag::Diagnostic) -> ProblemItem {
    ProblemItem {
        line: Some(d.line),
        column: Some(d.col),
        param: None,
        message: d.message,
    }
}
