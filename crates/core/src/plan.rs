//! Plans: a run resolved but not executed, and the content hash approvals bind to.
//!
//! [`PlanContent::resolve`] renders every template of a job's steps (and its job-level
//! `env`) with the run's resolved parameters, while secrets render as the literal text
//! `{{ secrets.NAME }}`, so a plan shows exactly what will run and never a secret's value.
//! References that only exist while running (`{{ steps.X.outputs.Y }}`, `{{ run.id }}`)
//! keep their template text. [`PlanContent::hash`] is the SHA-256 of a canonical JSON
//! (object keys sorted, no whitespace) of the whole content, so the same inputs always
//! give the same hash. [`PlanContent::changes_since`] names what differs between a plan and
//! the same plan resolved again later, in words an operator reads ("job revision 3 → 4").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::model::{Job, Value};
use crate::template::{Context, RunContext, StepContext, render};

/// One secret a plan's job receives: its name and the stored version it would get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSecret {
    /// The secret's name.
    pub name: String,
    /// The latest stored version in the namespace, or `None` when the store has none (the
    /// value would come from the environment of the process that runs it).
    pub version: Option<i64>,
}

/// One step as it will run, with its templates rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// The step id.
    pub id: String,
    /// The step kind: `sh`, `exec`, `script`, `notebook`, `http` or `check`.
    pub kind: String,
    /// The whole step definition (command, URL, query, env, needs, `if`, dry-run mode…)
    /// with every string rendered.
    pub resolved: Json,
}

/// What a plan pins: everything a run of it would be made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanContent {
    /// The job's namespace.
    pub namespace: String,
    /// The job id.
    pub job: String,
    /// The job revision the plan was made from.
    pub revision: i64,
    /// The resolved parameters (after type coercion and defaults).
    pub params: BTreeMap<String, Value>,
    /// The job-level environment, rendered.
    pub env: BTreeMap<String, String>,
    /// The steps in file order, rendered.
    pub steps: Vec<PlannedStep>,
    /// The job's secrets: names and versions, never values.
    pub secrets: Vec<PlanSecret>,
}

impl PlanContent {
    /// Resolves `job` (revision `revision` in `namespace`) with the resolved `params`;
    /// `secret_version` gives the latest stored version of each of the job's secrets.
    pub fn resolve(
        namespace: &str,
        job: &Job,
        revision: i64,
        params: &BTreeMap<String, Value>,
        secret_version: impl Fn(&str) -> Option<i64>,
    ) -> PlanContent {
        let part = Part {
            upstream: &BTreeMap::new(),
            includes: &|_| true,
        };
        resolve_part(namespace, job, revision, params, &part, secret_version)
    }

    /// What an `approval:` gate in the middle of a run binds its decision to: the steps
    /// from `gate` on (the gate and everything downstream of it), rendered with the run's
    /// parameters and the outcomes of the steps that ended before it (`upstream`), so an
    /// approver approves exactly what runs next. Secrets appear by name only; their
    /// versions are not pinned, since the run read its secrets when it started.
    pub fn after_gate(
        namespace: &str,
        job: &Job,
        revision: i64,
        params: &BTreeMap<String, Value>,
        gate: &str,
        upstream: &BTreeMap<String, StepContext>,
    ) -> PlanContent {
        let next = crate::dag::downstream(job, gate).unwrap_or_default();
        let part = Part {
            upstream,
            includes: &|id| next.contains(id),
        };
        resolve_part(namespace, job, revision, params, &part, |_| None)
    }

    /// The content hash: lowercase hex SHA-256 of the canonical JSON.
    pub fn hash(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(Json::Null);
        let mut text = String::new();
        canonical(&value, &mut text);
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// What differs in `now` (this plan resolved again) compared with `self`, one
    /// sentence per change; empty when nothing that the hash covers changed.
    pub fn changes_since(&self, now: &PlanContent) -> Vec<String> {
        let mut changes = Vec::new();
        if self.namespace != now.namespace || self.job != now.job {
            changes.push(format!(
                "job {}/{} → {}/{}",
                self.namespace, self.job, now.namespace, now.job
            ));
        }
        if self.revision != now.revision {
            changes.push(format!("job revision {} → {}", self.revision, now.revision));
        }
        if self.params != now.params {
            let names: std::collections::BTreeSet<&String> =
                self.params.keys().chain(now.params.keys()).collect();
            for name in names {
                let (old, new) = (self.params.get(name), now.params.get(name));
                if old != new {
                    changes.push(format!("parameter {name} {} → {}", show(old), show(new)));
                }
            }
        }
        if self.env != now.env {
            changes.push("job environment changed".to_owned());
        }
        if self.steps != now.steps {
            let old: Vec<&str> = self.steps.iter().map(|s| s.id.as_str()).collect();
            let new: Vec<&str> = now.steps.iter().map(|s| s.id.as_str()).collect();
            if old != new {
                changes.push(format!("steps [{}] → [{}]", old.join(", "), new.join(", ")));
            } else {
                for (a, b) in self.steps.iter().zip(&now.steps) {
                    if a != b {
                        changes.push(format!("step {} changed", a.id));
                    }
                }
            }
        }
        let old: BTreeMap<&str, Option<i64>> = self
            .secrets
            .iter()
            .map(|s| (s.name.as_str(), s.version))
            .collect();
        let new: BTreeMap<&str, Option<i64>> = now
            .secrets
            .iter()
            .map(|s| (s.name.as_str(), s.version))
            .collect();
        let names: std::collections::BTreeSet<&&str> = old.keys().chain(new.keys()).collect();
        for name in names {
            let (a, b) = (old.get(*name), new.get(*name));
            if a != b {
                changes.push(format!(
                    "secret {name} version {} → {}",
                    version_text(a),
                    version_text(b)
                ));
            }
        }
        if changes.is_empty() && self.hash() != now.hash() {
            changes.push("the plan's content changed".to_owned());
        }
        changes
    }
}

/// Which steps a plan's content holds, and the outcomes of the steps before them.
struct Part<'a> {
    upstream: &'a BTreeMap<String, StepContext>,
    includes: &'a dyn Fn(&str) -> bool,
}

/// Resolves the steps of `job` that `part` includes (see [`PlanContent::resolve`]).
fn resolve_part(
    namespace: &str,
    job: &Job,
    revision: i64,
    params: &BTreeMap<String, Value>,
    part: &Part<'_>,
    secret_version: impl Fn(&str) -> Option<i64>,
) -> PlanContent {
    let ctx = Context {
        params: params.clone(),
        steps: part.upstream.clone(),
        run: RunContext {
            id: "{{ run.id }}".to_owned(),
            job: job.id.clone(),
            namespace: namespace.to_owned(),
            scheduled_at: "{{ run.scheduled_at }}".to_owned(),
            dry_run: false,
        },
        secrets: job
            .secrets
            .iter()
            .map(|name| (name.clone(), format!("{{{{ secrets.{name} }}}}")))
            .collect(),
    };
    let steps = job
        .steps
        .iter()
        .filter(|step| (part.includes)(&step.id))
        .map(|step| {
            let mut resolved = serde_json::to_value(step).unwrap_or(Json::Null);
            render_strings(&mut resolved, &ctx);
            PlannedStep {
                id: step.id.clone(),
                kind: step.kind.name().to_owned(),
                resolved,
            }
        })
        .collect();
    PlanContent {
        namespace: namespace.to_owned(),
        job: job.id.clone(),
        revision,
        params: params.clone(),
        env: job
            .env
            .iter()
            .map(|(k, v)| (k.clone(), render_or_keep(v, &ctx)))
            .collect(),
        steps,
        secrets: job
            .secrets
            .iter()
            .map(|name| PlanSecret {
                name: name.clone(),
                version: secret_version(name),
            })
            .collect(),
    }
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "(unset)".to_owned(), |v| v.to_string())
}

fn version_text(version: Option<&Option<i64>>) -> String {
    match version {
        None => "(not used)".to_owned(),
        Some(None) => "(none stored)".to_owned(),
        Some(Some(v)) => v.to_string(),
    }
}

/// Renders `text` with `ctx`, or keeps it when it names something only a running run
/// has (another step's outputs).
fn render_or_keep(text: &str, ctx: &Context) -> String {
    if !text.contains("{{") && !text.contains("{%") {
        return text.to_owned();
    }
    render(text, ctx).unwrap_or_else(|_| text.to_owned())
}

/// Renders every string inside `value` in place (object keys stay as they are).
fn render_strings(value: &mut Json, ctx: &Context) {
    match value {
        Json::String(s) => *s = render_or_keep(s, ctx),
        Json::Array(items) => items.iter_mut().for_each(|v| render_strings(v, ctx)),
        Json::Object(map) => map.values_mut().for_each(|v| render_strings(v, ctx)),
        _ => {}
    }
}

/// Writes `value` as JSON with object keys sorted and no whitespace.
fn canonical(value: &Json, out: &mut String) {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(key.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}
