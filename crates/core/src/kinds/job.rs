//! `job: {id, params}`: runs the latest revision of another job of the same namespace as a
//! child run and waits for it; no process runs here (the engine's `kinds::job` asks its
//! `ChildRuns` port). The child's step outputs become this step's outputs, named
//! `<child step>.<key>`.
//!
//! The called job is named literally (never a template), so that the calls between jobs
//! loaded together can be checked for cycles at load time ([`crate::calls`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KindSite, NoProcess, StepKindDef, collect_strings, encode, normalize, text};
use crate::convert::{get, is_valid_job_id};
use crate::model::Value;

pub(crate) struct JobCall;

/// A `job` step's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStep {
    /// The job to run, in the parent run's namespace.
    pub id: String,
    /// Its parameters; every string inside a value is a template.
    pub params: BTreeMap<String, Value>,
}

impl StepKindDef for JobCall {
    fn name(&self) -> &'static str {
        "job"
    }

    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value> {
        let (cx, value, step, sites) = (site.cx, site.value, site.step, site.sites);
        let what = step.what("job");
        let label = step.label;
        let fields = cx.map(value, &what)?;
        // `namespace` gets a message of its own, saying why it is not there.
        let others: Vec<_> = fields
            .iter()
            .filter(|(k, _)| k.name != "namespace")
            .cloned()
            .collect();
        cx.unknown_keys(&others, &["id", "params"], &what);
        if let Some((key, _)) = fields.iter().find(|(k, _)| k.name == "namespace") {
            cx.err(
                key.pos,
                format!(
                    "{what}: a job step runs a job of its own run's namespace; \
                     `namespace` cannot be given"
                ),
            );
        }
        let Some(id_node) = get(fields, "id") else {
            cx.err(value.pos, format!("missing required key `id` in {what}"));
            return None;
        };
        let id = cx.string(id_node, &format!("`id` in {what}"))?;
        if id.contains("{{") || id.contains("{%") {
            cx.err(
                id_node.pos,
                format!(
                    "`id` in {what} is a template: the called job must be named as is, so \
                     calls between jobs can be checked for cycles"
                ),
            );
            return None;
        }
        if !is_valid_job_id(&id) {
            cx.err(
                id_node.pos,
                format!(
                    "invalid job id {id:?} in {what} (expected [a-z0-9-], 3–64 characters, \
                     starting with a letter or digit)"
                ),
            );
            return None;
        }
        let mut params = BTreeMap::new();
        if let Some(node) = get(fields, "params")
            && let Some(entries) = cx.map(node, &format!("`params` in {label}"))
        {
            for (key, value) in entries {
                collect_strings(value, sites);
                params.insert(key.name.clone(), value.to_json());
            }
        }
        encode(&JobStep { id, params })
    }

    fn no_process(&self) -> Option<NoProcess> {
        Some(NoProcess {
            article: "a",
            templated: "`params`",
        })
    }

    fn normalize(&self, config: Value) -> Result<Value, String> {
        normalize::<JobStep>(config)
    }

    fn describe(&self, config: &Value) -> String {
        format!("run job {}", text(config, "id").unwrap_or_default())
    }
}
