//! `check: {prometheus, query, below, above, for, every, wait, no_data, headers}`: a metric
//! polled from a Prometheus-compatible API and compared with thresholds over a window; no
//! process runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::http::header_map;
use super::{KindSite, NoProcess, Sites, StepKindDef, StepSite, encode, normalize, text};
use crate::convert::{Cx, boolean, check_url, get};
use crate::model::Value;
use crate::tree::{Key, Kind, Node, Pos};

pub(crate) struct Check;

impl StepKindDef for Check {
    fn name(&self) -> &'static str {
        "check"
    }

    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value> {
        let (cx, value, step, sites) = (site.cx, site.value, site.step, site.sites);
        check_step(cx, value, step.label, sites).and_then(|c| encode(&c))
    }

    fn check_step(
        &self,
        cx: &mut Cx,
        config: &Value,
        step: &StepSite<'_>,
        timeout: Option<Duration>,
    ) {
        if let Ok(check) = serde_json::from_value::<CheckStep>(config.clone()) {
            check_timing(cx, &check, step.entries, timeout, step.label);
        }
    }

    fn no_process(&self) -> Option<NoProcess> {
        Some(NoProcess {
            article: "a",
            templated: "`prometheus`, `query` or `headers`",
        })
    }

    fn normalize(&self, config: Value) -> Result<Value, String> {
        normalize::<CheckStep>(config)
    }

    fn describe(&self, config: &Value) -> String {
        text(config, "query").map_or_else(|| config.to_string(), str::to_owned)
    }

    fn start_line(&self, config: &Value) -> String {
        format!(
            "check {} against {}",
            text(config, "query").unwrap_or_default(),
            text(config, "prometheus").unwrap_or_default()
        )
    }
}

/// A `check:` step: an instant query evaluated every `every`, which must stay within its
/// thresholds over `for`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStep {
    /// Base URL of a Prometheus-compatible HTTP API, e.g. `http://prom:9090` (template).
    pub prometheus: String,
    /// PromQL instant query (template).
    pub query: String,
    /// Every value must be strictly below this.
    pub below: Option<f64>,
    /// Every value must be strictly above this.
    pub above: Option<f64>,
    /// How long the condition must hold; zero means one evaluation.
    #[serde(rename = "for")]
    pub hold: Duration,
    /// Time between evaluations: at least [`CHECK_MIN_EVERY`]; by default
    /// [`CHECK_DEFAULT_EVERY`], or `hold` when that is shorter.
    pub every: Duration,
    /// `false`: fail at the first evaluation that breaks the condition (a verification);
    /// `true`: keep evaluating until it has held for `hold` (a gate), bounded by the step's
    /// `timeout`.
    pub wait: bool,
    /// What an empty result means.
    pub no_data: NoData,
    /// Request headers; values are templates. Never logged.
    pub headers: BTreeMap<String, String>,
}

/// The default time between a check's evaluations.
pub const CHECK_DEFAULT_EVERY: Duration = Duration::from_secs(15);
/// The shortest time allowed between a check's evaluations.
pub const CHECK_MIN_EVERY: Duration = Duration::from_secs(1);

impl CheckStep {
    /// Whether `value` satisfies the thresholds (strict comparisons; NaN never does).
    pub fn accepts(&self, value: f64) -> bool {
        value.is_finite()
            && self.below.is_none_or(|b| value < b)
            && self.above.is_none_or(|a| value > a)
    }

    /// The thresholds as a reader says them: `below 0.01`, `above 1 and below 5`.
    pub fn condition(&self) -> String {
        match (self.above, self.below) {
            (Some(a), Some(b)) => format!("above {a} and below {b}"),
            (Some(a), None) => format!("above {a}"),
            (None, Some(b)) => format!("below {b}"),
            (None, None) => "no threshold".to_owned(),
        }
    }
}

/// What a `check` step makes of a query that returns no series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// An empty result breaks the condition (the default).
    #[default]
    Fail,
    /// An empty result satisfies it.
    Pass,
}

/// Keys a `check:` step mapping may hold.
const CHECK_KEYS: &[&str] = &[
    "prometheus",
    "query",
    "below",
    "above",
    "for",
    "every",
    "wait",
    "no_data",
    "headers",
];

/// Converts the mapping under `check:`.
fn check_step(cx: &mut Cx, node: &Node, label: &str, site: &mut Sites<'_>) -> Option<CheckStep> {
    let what = format!("`check` in {label}");
    let fields = cx.map(node, &what)?;
    cx.unknown_keys(fields, CHECK_KEYS, &what);

    let prometheus = match get(fields, "prometheus") {
        Some(n) => {
            let url = cx.string(n, &format!("`prometheus` in {label}"));
            if let Some(url) = &url {
                site(url, n.pos, false);
                if let Err(problem) = check_url(url) {
                    cx.err(
                        n.pos,
                        format!("invalid `prometheus` URL {url:?} in {label}: {problem}"),
                    );
                }
            }
            url
        }
        None => {
            cx.err(
                node.pos,
                format!("missing required key `prometheus` in {what}"),
            );
            None
        }
    };
    let query = match get(fields, "query") {
        Some(n) => {
            let query = cx.string(n, &format!("`query` in {label}"));
            if let Some(query) = &query {
                if query.trim().is_empty() {
                    cx.err(n.pos, format!("`query` in {label} is empty"));
                }
                site(query, n.pos, false);
            }
            query
        }
        None => {
            cx.err(node.pos, format!("missing required key `query` in {what}"));
            None
        }
    };

    let below = get(fields, "below").and_then(|n| threshold(cx, n, &format!("`below` in {label}")));
    let above = get(fields, "above").and_then(|n| threshold(cx, n, &format!("`above` in {label}")));
    if get(fields, "below").is_none() && get(fields, "above").is_none() {
        cx.err(
            node.pos,
            format!("{what} needs a threshold: `below`, `above`, or both for a band"),
        );
    }
    if let (Some(b), Some(a), Some(n)) = (below, above, get(fields, "below"))
        && b <= a
    {
        cx.err(
            n.pos,
            format!(
                "`below` ({b}) must be greater than `above` ({a}) in {label}: \
                 no value could pass"
            ),
        );
    }

    let hold = get(fields, "for")
        .and_then(|n| cx.duration(n, &format!("`for` in {label}")))
        .unwrap_or(Duration::ZERO);
    let every = match get(fields, "every") {
        Some(n) => {
            let every = cx.duration(n, &format!("`every` in {label}"));
            if let Some(every) = every {
                if every < CHECK_MIN_EVERY {
                    cx.err(n.pos, format!("`every` in {label} must be at least 1s"));
                } else if !hold.is_zero() && every > hold {
                    cx.err(
                        n.pos,
                        format!(
                            "`every` in {label} must not be longer than `for`: \
                             the condition is evaluated several times within `for`"
                        ),
                    );
                }
            }
            every.unwrap_or(CHECK_DEFAULT_EVERY)
        }
        // A window shorter than the default interval is still evaluated more than once.
        None if !hold.is_zero() => hold.clamp(CHECK_MIN_EVERY, CHECK_DEFAULT_EVERY),
        None => CHECK_DEFAULT_EVERY,
    };
    let wait = get(fields, "wait")
        .and_then(|n| boolean(cx, n, &format!("`wait` in {label}")))
        .unwrap_or(false);
    let no_data = get(fields, "no_data")
        .and_then(|n| {
            cx.choice(
                n,
                &format!("`no_data` in {label}"),
                &[("fail", NoData::Fail), ("pass", NoData::Pass)],
            )
        })
        .unwrap_or_default();
    let headers = get(fields, "headers")
        .map(|n| header_map(cx, n, label, site))
        .unwrap_or_default();
    Some(CheckStep {
        prometheus: prometheus?,
        query: query?,
        below,
        above,
        hold,
        every,
        wait,
        no_data,
        headers,
    })
}

/// A threshold: a finite number.
fn threshold(cx: &mut Cx, node: &Node, what: &str) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    let value = match node.kind {
        Kind::Int(i) => i as f64,
        Kind::Float(f) => f,
        _ => {
            cx.expected(node, "a number", what);
            return None;
        }
    };
    if !value.is_finite() {
        cx.err(node.pos, format!("{what} must be a finite number"));
        return None;
    }
    Some(value)
}

/// Checks a `check` step against its step's `timeout`: a gate must have one, and a
/// `timeout` no longer than `for` could never let the condition hold long enough.
fn check_timing(
    cx: &mut Cx,
    check: &CheckStep,
    entries: &[(Key, Node)],
    timeout: Option<Duration>,
    label: &str,
) {
    let check_pos = get(entries, "check").map_or(Pos::default(), |n| n.pos);
    match timeout {
        None if check.wait => cx.err(
            check_pos,
            format!(
                "`check` in {label} has `wait: true` but the step has no `timeout`: \
                 a gate needs a bound"
            ),
        ),
        Some(timeout) if !check.hold.is_zero() && timeout <= check.hold => {
            let pos = get(entries, "timeout").map_or(check_pos, |n| n.pos);
            cx.err(
                pos,
                format!(
                    "`timeout` in {label} must be longer than the check's `for`: \
                     the condition could never hold long enough"
                ),
            );
        }
        _ => {}
    }
}
