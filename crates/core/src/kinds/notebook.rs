//! `notebook: PATH` (or `{path, params, kernel, cell_timeout}`): a Jupyter notebook run
//! natively, papermill-compatible; the step-level `params:` is its parameters too.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{KindSite, Sites, StepKindDef, collect_strings, encode, normalize, text};
use crate::convert::{Cx, get};
use crate::model::Value;
use crate::tree::{Kind, Node};

/// A `notebook` step's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotebookStep {
    /// Path of the `.ipynb`, relative to the job file's directory.
    pub path: String,
    /// Parameters injected into the notebook (values may hold templates).
    pub params: BTreeMap<String, Value>,
    /// Kernel name; the notebook's own kernelspec when `None`.
    pub kernel: Option<String>,
    /// Per-cell execution timeout.
    pub cell_timeout: Option<Duration>,
}

pub(crate) struct Notebook;

impl StepKindDef for Notebook {
    fn name(&self) -> &'static str {
        "notebook"
    }

    fn step_keys(&self) -> &'static [&'static str] {
        &["params"]
    }

    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value> {
        let (cx, value, step, sites) = (site.cx, site.value, site.step, site.sites);
        let what = step.what("notebook");
        let label = step.label;
        let (path, path_pos, mut params, kernel, cell_timeout) = match &value.kind {
            Kind::Str(path) => (path.clone(), value.pos, BTreeMap::new(), None, None),
            _ => {
                let fields = cx.map(value, &what)?;
                cx.unknown_keys(fields, &["path", "params", "kernel", "cell_timeout"], &what);
                let Some(path_node) = get(fields, "path") else {
                    cx.err(value.pos, format!("missing required key `path` in {what}"));
                    return None;
                };
                let path = cx.string(path_node, &what)?;
                let params = get(fields, "params")
                    .map(|n| notebook_params(cx, n, label, sites))
                    .unwrap_or_default();
                let kernel = get(fields, "kernel")
                    .and_then(|n| cx.string(n, &format!("`kernel` in {label}")));
                let cell_timeout = get(fields, "cell_timeout")
                    .and_then(|n| cx.duration(n, &format!("`cell_timeout` in {label}")));
                (path, path_node.pos, params, kernel, cell_timeout)
            }
        };
        sites(&path, path_pos, false);
        if let Some(n) = step.get("params") {
            params.extend(notebook_params(cx, n, label, sites));
        }
        encode(&NotebookStep {
            path,
            params,
            kernel,
            cell_timeout,
        })
    }

    fn normalize(&self, config: Value) -> Result<Value, String> {
        normalize::<NotebookStep>(config)
    }

    fn describe(&self, config: &Value) -> String {
        text(config, "path").map_or_else(|| config.to_string(), str::to_owned)
    }

    fn start_line(&self, config: &Value) -> String {
        format!("notebook {}", self.describe(config))
    }
}

fn notebook_params(
    cx: &mut Cx,
    node: &Node,
    label: &str,
    sites: &mut Sites<'_>,
) -> BTreeMap<String, Value> {
    let Some(entries) = cx.map(node, &format!("`params` in {label}")) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        collect_strings(value, sites);
        out.insert(key.name.clone(), value.to_json());
    }
    out
}
