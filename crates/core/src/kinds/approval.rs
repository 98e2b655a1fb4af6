//! `approval: {approvers, quorum, allow_self, expires, message}`: a gate in the middle of
//! a run. No process runs: the run waits as `awaiting_approval`, holding no process and no
//! worker slot, until enough approvers decide; the decision binds to the hash of what
//! comes after the gate ([`crate::plan::PlanContent::after_gate`]), as a plan's does.
//!
//! The rules are the job-level `approval:` rules (who, how many, self-approval, expiry);
//! `message` (a template) tells the approvers what they decide.

use serde::{Deserialize, Serialize};

use super::{KindSite, NoProcess, StepKindDef, encode, normalize};
use crate::convert::{APPROVAL_KEYS, approval_rules, get};
use crate::model::{Approval, Value};

pub(crate) struct ApprovalGate;

impl StepKindDef for ApprovalGate {
    fn name(&self) -> &'static str {
        "approval"
    }

    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value> {
        let (cx, node, label) = (site.cx, site.value, site.step.label);
        let what = format!("`approval` in {label}");
        let entries = cx.map(node, &what)?;
        let mut keys = APPROVAL_KEYS.to_vec();
        keys.push("message");
        cx.unknown_keys(entries, &keys, &what);
        let message = match get(entries, "message") {
            Some(n) => {
                let text = cx.string(n, &format!("`message` in {label}"))?;
                (site.sites)(&text, n.pos, false);
                Some(text)
            }
            None => None,
        };
        let rules = approval_rules(cx, node, entries, &what)?;
        encode(&ApprovalStep { rules, message })
    }

    fn no_process(&self) -> Option<NoProcess> {
        Some(NoProcess {
            article: "an",
            templated: "`message`",
        })
    }

    fn normalize(&self, config: Value) -> Result<Value, String> {
        normalize::<ApprovalStep>(config)
    }

    fn describe(&self, config: &Value) -> String {
        match serde_json::from_value::<ApprovalStep>(config.clone()) {
            Ok(gate) => gate.describe(),
            Err(_) => config.to_string(),
        }
    }
}

/// An `approval:` step's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalStep {
    /// Who may approve, how many must, whether the run's starter may, and for how long the
    /// gate stays open.
    #[serde(flatten)]
    pub rules: Approval,
    /// What the approvers are asked (a template, rendered when the gate opens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ApprovalStep {
    /// `approval by 2 of alice, role:admin`.
    pub fn describe(&self) -> String {
        format!(
            "approval by {} of {}",
            self.rules.quorum,
            self.rules.approvers.join(", ")
        )
    }
}
