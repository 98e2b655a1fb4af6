//! The retention operations of [`crate::Rota`]: prune finished runs older than a duration
//! (`rota prune`, `POST /api/v1/prune`), and set how long a namespace keeps its finished
//! runs (`rota namespaces set NS --retention 30d`), which `rota serve` applies at start and
//! hourly through [`Session::apply_retention`].
//!
//! Pruning deletes history, so it is for admins: of the namespace it is limited to, or of
//! every namespace for a prune of all of them (the only kind that may also remove audit
//! entries, the audit log being one for all namespaces). Each prune that deletes is one
//! audit entry with the cut-off and the counts, written by the store in the transaction of
//! its last batch; a refused one is audited here with its refusal.

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use rota_store::{NewAuditEntry, PruneSpec};

use super::Session;
use crate::OpsError;
use crate::auth::{Role, Scope};
use crate::records::{NamespaceRetention, PruneReport, PruneRequest, SetRetention};

/// How often `rota serve` applies the namespaces' retention settings (and once at start).
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// The retention operations.
pub trait Retention {
    /// Deletes finished runs older than `older_than` (in one namespace or all) with
    /// everything that belongs to them, or with `dry_run` counts them.
    fn prune(
        &self,
        request: PruneRequest,
    ) -> impl Future<Output = Result<PruneReport, OpsError>> + Send;

    /// Sets (or with `null` clears) how long `namespace` keeps its finished runs.
    fn set_retention(
        &self,
        namespace: &str,
        setting: SetRetention,
    ) -> impl Future<Output = Result<NamespaceRetention, OpsError>> + Send;
}

/// A retention as typed: a positive duration in `rota-core`'s syntax, in whole seconds.
fn parse_retention(text: &str, what: &str) -> Result<Duration, OpsError> {
    let duration = rota_core::duration::parse_duration(text)
        .map_err(|error| OpsError::Invalid(format!("{what}: {error}")))?;
    if duration.as_secs() == 0 {
        return Err(OpsError::Invalid(format!(
            "{what}: `{text}` is not a positive duration (at least 1s)"
        )));
    }
    Ok(duration)
}

fn checked_namespace(namespace: &str) -> Result<String, OpsError> {
    crate::ids::Namespace::try_from(namespace.to_owned())
        .map(|ns| ns.as_str().to_owned())
        .map_err(OpsError::InvalidId)
}

/// The audit target of a prune refused before it ran.
fn prune_target(request: &PruneRequest) -> String {
    format!("runs/{}", request.namespace.as_deref().unwrap_or("*"))
}

impl Session {
    /// The prune itself: checks, then the store's batches. `quiet`: no audit entry when
    /// nothing was deleted.
    async fn prune_checked(
        &self,
        request: &PruneRequest,
        quiet: bool,
    ) -> Result<PruneReport, OpsError> {
        let namespace = request
            .namespace
            .as_deref()
            .map(checked_namespace)
            .transpose()?;
        match &namespace {
            Some(ns) => self
                .principal()
                .require(Scope::Namespace(ns), Role::Admin)?,
            None => self.principal().require(Scope::Global, Role::Admin)?,
        }
        if request.audit && namespace.is_some() {
            return Err(OpsError::Invalid(
                "audit entries can only be pruned with runs of every namespace (the audit log \
                 is not per namespace): leave out the namespace"
                    .into(),
            ));
        }
        let older_than = parse_retention(&request.older_than, "older_than")?;
        let age = jiff::SignedDuration::try_from(older_than)
            .map_err(|_| OpsError::Invalid("older_than: too long".into()))?;
        // Whole seconds: the cut-off is shown and audited, and no one asks for less.
        let cutoff = Timestamp::now()
            .checked_sub(age)
            .and_then(|at| Timestamp::from_second(at.as_second()))
            .unwrap_or(Timestamp::MIN);
        if request.audit && !request.dry_run {
            // Entries about to go are checked first: pruning must not erase the evidence
            // of a chain that was tampered with.
            if let Some(broken) = self.ops().store().check_audit_chain().await? {
                return Err(OpsError::Conflict(format!(
                    "the audit log does not verify ({broken}); nothing was pruned"
                )));
            }
        }
        let spec = PruneSpec {
            cutoff,
            namespace: namespace.clone(),
            dry_run: request.dry_run,
            audit: request.audit,
            quiet_when_empty: quiet,
        };
        let actor = self.actor();
        let by = NewAuditEntry {
            at: Timestamp::now(),
            actor: actor.name,
            action: String::new(),
            target: String::new(),
            source: actor.source,
            result: String::new(),
        };
        let counts = self.ops().store().prune(&spec, &by).await?;
        self.ops().remove_run_dirs(&counts.run_ids);
        self.ops()
            .remove_artifact_bytes(&counts.artifact_keys)
            .await;
        Ok(PruneReport {
            cutoff,
            namespace,
            dry_run: request.dry_run,
            runs: counts.runs,
            step_runs: counts.step_runs,
            attempts: counts.attempts,
            log_lines: counts.log_lines,
            log_bytes: counts.log_bytes,
            events: counts.events,
            notifications: counts.notifications,
            artifacts: counts.artifacts,
            audit_entries: counts.audit_entries,
        })
    }

    /// Applies every namespace's retention setting once: what `rota serve` does at start
    /// and every [`RETENTION_EVERY`]. Each namespace is pruned like `rota prune
    /// --older-than <its retention> --namespace <it>` by this session's caller, audited the
    /// same way, except that a pass that deletes nothing is not audited. Answers the
    /// reports of the namespaces where runs went.
    pub async fn apply_retention(&self) -> Result<Vec<PruneReport>, OpsError> {
        self.principal().require(Scope::Global, Role::Admin)?;
        let mut reports = Vec::new();
        for setting in self.ops().store().retention_settings().await? {
            let request = PruneRequest {
                older_than: format!("{}s", setting.keep_secs),
                namespace: Some(setting.namespace),
                dry_run: false,
                audit: false,
            };
            let report = self.prune_checked(&request, true).await?;
            if report.runs > 0 {
                reports.push(report);
            }
        }
        Ok(reports)
    }
}

impl Retention for Session {
    async fn prune(&self, request: PruneRequest) -> Result<PruneReport, OpsError> {
        match self.prune_checked(&request, false).await {
            Ok(report) => Ok(report),
            // A prune that ran was audited by the store with its counts; a refusal here.
            Err(error) => {
                self.audited("runs.prune", &prune_target(&request), Err(error))
                    .await
            }
        }
    }

    async fn set_retention(
        &self,
        namespace: &str,
        setting: SetRetention,
    ) -> Result<NamespaceRetention, OpsError> {
        let outcome = async {
            let namespace = checked_namespace(namespace)?;
            self.principal()
                .require(Scope::Namespace(&namespace), Role::Admin)?;
            let keep = setting
                .retention
                .as_deref()
                .map(|text| parse_retention(text, "retention"))
                .transpose()?;
            let keep_secs = keep
                .map(|d| i64::try_from(d.as_secs()))
                .transpose()
                .map_err(|_| OpsError::Invalid("retention: too long".into()))?;
            self.ops()
                .store()
                .set_retention(
                    &namespace,
                    keep_secs,
                    Timestamp::now(),
                    &self.principal().actor,
                )
                .await?;
            Ok(NamespaceRetention {
                namespace,
                retention: keep.map(rota_core::duration::format_duration),
            })
        }
        .await;
        self.audited(
            "namespace.retention",
            &format!("namespace/{namespace}"),
            outcome,
        )
        .await
    }
}
