//! Spanned tree → [`Job`], by hand, so that every wrong key, type or value becomes a
//! diagnostic at its own line:col and conversion goes on to find the next one.
//!
//! Cross-field rules (unknown `needs`, cycles, template references) are checked afterwards by
//! `check`, from the positions this module records in a [`Draft`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::kinds::{KindSite, StepKindDef, StepSite};
use crate::limits::{MAX_NEEDS, MAX_PARAMS, MAX_STEPS};
use crate::model::{
    AfterOutcome, Approval, Backoff, Catchup, CatchupMode, DryRun, IntervalAnchor, Job, KeptReport,
    Notification, NotifyChannel, NotifyEvent, OnFailure, Overlap, ParamSpec, ParamType, Policy,
    Retry, Step, StepKind, Trigger, Value, WebhookSignature, When,
};
use crate::tree::{Key, Kind, Node, Pos};

/// Keys a job mapping may hold.
const JOB_KEYS: &[&str] = &[
    "id",
    "namespace",
    "description",
    "concurrency",
    "secrets",
    "env",
    "env_file",
    "params",
    "triggers",
    "policy",
    "steps",
    "notify",
    "approval",
    "report",
];
/// Keys every step may hold besides its kind's: those before the kinds in messages, and
/// those after (a kind's own step-level keys, such as a notebook's `params`, sit between).
const STEP_KEYS_BEFORE: &[&str] = &["id", "needs"];
const STEP_KEYS_AFTER: &[&str] = &[
    "if",
    "when",
    "env",
    "workdir",
    "timeout",
    "retry",
    "dry_run",
    "runs_on",
    "resources",
    "confirm",
    "rollback",
    "finally",
    "on_failure",
];

/// Keys a step mapping may hold: the common ones, every kind's name and their own keys.
fn step_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = STEP_KEYS_BEFORE.to_vec();
    keys.extend(crate::kinds::names());
    for def in crate::kinds::all() {
        for key in def.step_keys() {
            if !keys.contains(key) {
                keys.push(key);
            }
        }
    }
    keys.extend(STEP_KEYS_AFTER);
    keys
}
/// Keys the spec names that are not built yet, at job level.
const FUTURE_JOB_KEYS: &[&str] = &[];
/// Keys a `notify:` rule may hold.
const NOTIFY_KEYS: &[&str] = &["on", "after", "webhook", "slack"];
/// Channels a `notify:` rule may name.
const NOTIFY_CHANNELS: &[&str] = &["webhook", "slack"];

/// A template found in the job, with where it is and which step it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct TemplateSite {
    pub text: String,
    pub pos: Pos,
    /// Index of the step, `None` for job-level `env`.
    pub step: Option<usize>,
    /// An `if:` expression rather than a `{{ }}` template.
    pub is_expr: bool,
    /// A `notify:` template: only `params`, `secrets` and `run` exist there.
    pub notify: bool,
}

/// A converted job plus the positions later checks need.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub job: Job,
    /// Position of the job mapping.
    pub pos: Pos,
    /// Position of each step's id (or of the step when it has none).
    pub step_pos: Vec<Pos>,
    /// Position of each entry of each step's `needs`.
    pub needs_pos: Vec<Vec<Pos>>,
    /// Position of each step's `rollback` value, if it has one.
    pub rollback_pos: Vec<Option<Pos>>,
    pub templates: Vec<TemplateSite>,
}

/// Where a step's parts are written, for the checks that come after conversion.
pub(crate) struct StepPositions {
    /// The step's id (or the step, when it has none).
    id: Pos,
    /// Each entry of its `needs`.
    needs: Vec<Pos>,
    /// Its `rollback` value.
    rollback: Option<Pos>,
}

/// Where the job comes from, for script-header defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScriptInfo {
    /// The script's file name, run by the default step.
    pub file_name: String,
    /// A default job id derived from the file name, if it is a valid id.
    pub default_id: Option<String>,
    /// Interpreter from the `#!` line.
    pub shebang: Option<String>,
}

/// Collects diagnostics while converting.
pub(crate) struct Cx {
    pub errors: Vec<(Pos, String)>,
    /// The source's lines, to point inside a template at the offending reference.
    pub lines: Vec<String>,
}

impl Cx {
    pub(crate) fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push((pos, message.into()));
    }

    pub(crate) fn expected(&mut self, node: &Node, expected: &str, what: &str) {
        self.err(
            node.pos,
            format!("expected {expected} for {what}, found {}", node.describe()),
        );
    }

    pub(crate) fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Key, Node)]> {
        match &node.kind {
            Kind::Map(entries) => Some(entries),
            _ => {
                self.expected(node, "a mapping", what);
                None
            }
        }
    }

    pub(crate) fn seq<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.expected(node, "a list", what);
                None
            }
        }
    }

    pub(crate) fn unknown_keys(&mut self, entries: &[(Key, Node)], allowed: &[&str], what: &str) {
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                self.err(
                    key.pos,
                    format!(
                        "unknown key `{}` in {what} (expected one of: {})",
                        key.name,
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    pub(crate) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            _ => {
                self.expected(node, "a string", what);
                None
            }
        }
    }

    /// A string, also accepting numbers and booleans written bare (env values, argv).
    pub(crate) fn scalar_string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Bool(b) => Some(b.to_string()),
            _ => {
                self.expected(node, "a string", what);
                None
            }
        }
    }

    pub(crate) fn int_at_least(&mut self, node: &Node, min: i64, what: &str) -> Option<u32> {
        match &node.kind {
            Kind::Int(i) if *i >= min && *i <= i64::from(u32::MAX) => u32::try_from(*i).ok(),
            Kind::Int(i) => {
                self.err(
                    node.pos,
                    format!("{what} must be an integer of at least {min}, found {i}"),
                );
                None
            }
            _ => {
                self.expected(node, "an integer", what);
                None
            }
        }
    }

    pub(crate) fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        match &node.kind {
            Kind::Int(i) if *i >= 0 => u64::try_from(*i).ok().map(Duration::from_secs),
            Kind::Str(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(
                        node.pos,
                        format!(
                            "invalid duration `{}` for {what}: expected a number with a unit \
                             (ms, s, m, h, d), e.g. `30s` or `1h30m`",
                            e.text
                        ),
                    );
                    None
                }
            },
            _ => {
                self.expected(node, "a duration (e.g. `30s`, `10m`, `1h30m`)", what);
                None
            }
        }
    }

    pub(crate) fn choice<T: Copy>(
        &mut self,
        node: &Node,
        what: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        match &node.kind {
            Kind::Str(s) => match choices.iter().find(|(n, _)| n == s) {
                Some((_, v)) => Some(*v),
                None => {
                    self.err(
                        node.pos,
                        format!(
                            "invalid value {s:?} for {what} (expected one of: {})",
                            names.join(", ")
                        ),
                    );
                    None
                }
            },
            _ => {
                self.expected(node, &format!("one of {}", names.join(", ")), what);
                None
            }
        }
    }

    /// A list of strings; a single string counts as a one-element list when `single_ok`.
    pub(crate) fn strings(
        &mut self,
        node: &Node,
        what: &str,
        single_ok: bool,
    ) -> Vec<(String, Pos)> {
        match &node.kind {
            Kind::Str(s) if single_ok => vec![(s.clone(), node.pos)],
            Kind::Seq(items) => items
                .iter()
                .filter_map(|n| self.string(n, what).map(|s| (s, n.pos)))
                .collect(),
            _ => {
                self.expected(node, "a list of strings", what);
                Vec::new()
            }
        }
    }
}

pub(crate) fn get<'n>(entries: &'n [(Key, Node)], name: &str) -> Option<&'n Node> {
    entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

/// Whether `id` is a valid job id or namespace: `[a-z0-9-]`, 3–64, starting alphanumeric.
pub(crate) fn is_valid_job_id(id: &str) -> bool {
    (3..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

fn is_valid_step_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Converts one job mapping. `script` is set for script headers (extra key `interpreter`,
/// default id and default step).
pub(crate) fn job(cx: &mut Cx, node: &Node, script: Option<&ScriptInfo>) -> Option<Draft> {
    let entries = cx.map(node, "a job")?;
    let mut allowed: Vec<&str> = JOB_KEYS.to_vec();
    if script.is_some() {
        allowed.push("interpreter");
    }
    for (key, _) in entries {
        if FUTURE_JOB_KEYS.contains(&key.name.as_str()) {
            cx.err(key.pos, format!("`{}` is not supported yet", key.name));
        }
    }
    let known: Vec<(Key, Node)> = entries
        .iter()
        .filter(|(k, _)| !FUTURE_JOB_KEYS.contains(&k.name.as_str()))
        .cloned()
        .collect();
    cx.unknown_keys(&known, &allowed, "job");

    let id = match get(entries, "id") {
        Some(n) => cx.string(n, "`id`").inspect(|id| {
            if !is_valid_job_id(id) {
                cx.err(
                    n.pos,
                    format!(
                        "invalid job id `{id}`: expected 3–64 characters of a-z, 0-9 and -, \
                         starting with a letter or digit"
                    ),
                );
            }
        }),
        None => match script.and_then(|s| s.default_id.clone()) {
            Some(id) => Some(id),
            None => {
                cx.err(node.pos, "missing required key `id` in job");
                None
            }
        },
    };
    let namespace = get(entries, "namespace").and_then(|n| {
        let ns = cx.string(n, "`namespace`")?;
        if !is_valid_job_id(&ns) {
            cx.err(
                n.pos,
                format!(
                    "invalid namespace `{ns}`: expected 3–64 characters of a-z, 0-9 and -, \
                     starting with a letter or digit"
                ),
            );
        }
        Some(ns)
    });
    let description = get(entries, "description").and_then(|n| cx.string(n, "`description`"));
    let concurrency = get(entries, "concurrency")
        .map_or(Some(4), |n| cx.int_at_least(n, 1, "`concurrency`"))
        .unwrap_or(4);
    let secrets: Vec<String> = get(entries, "secrets")
        .map(|n| cx.strings(n, "`secrets`", false))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, pos)| {
            if is_identifier(&name) {
                Some(name)
            } else {
                cx.err(
                    pos,
                    format!(
                        "invalid secret name `{name}`: expected an environment variable name \
                         (letters, digits and _, not starting with a digit)"
                    ),
                );
                None
            }
        })
        .collect();

    let mut templates = Vec::new();
    let env = get(entries, "env")
        .map(|n| env_map(cx, n, "`env`", None, &mut templates))
        .unwrap_or_default();
    let env_file = get(entries, "env_file").and_then(|n| {
        let path = cx.string(n, "`env_file`")?;
        if path.trim().is_empty() {
            cx.err(n.pos, "`env_file` must name a file");
        }
        Some(path)
    });
    let params = get(entries, "params")
        .map(|n| params(cx, n))
        .unwrap_or_default();
    let triggers = get(entries, "triggers")
        .map(|n| triggers(cx, n))
        .unwrap_or_default();
    let policy = get(entries, "policy")
        .map(|n| policy(cx, n))
        .unwrap_or_default();
    let notify = get(entries, "notify")
        .map(|n| notify(cx, n, &mut templates))
        .unwrap_or_default();
    let approval = get(entries, "approval").and_then(|n| approval(cx, n));
    let report = get(entries, "report")
        .and_then(|n| {
            cx.choice(
                n,
                "`report`",
                &[
                    ("html", KeptReport::Html),
                    ("md", KeptReport::Md),
                    ("none", KeptReport::None),
                ],
            )
        })
        .unwrap_or_default();

    let interpreter = match (script, get(entries, "interpreter")) {
        (Some(_), Some(n)) => {
            if get(entries, "steps").is_some() {
                cx.err(
                    n.pos,
                    "`interpreter` only applies when `steps` is not given (the script is then the only step)",
                );
            }
            cx.string(n, "`interpreter`")
        }
        _ => None,
    };

    let mut step_pos = Vec::new();
    let mut needs_pos = Vec::new();
    let mut rollback_pos = Vec::new();
    let mut steps = Vec::new();
    match (get(entries, "steps"), script) {
        (Some(n), _) => {
            if let Some(items) = cx.seq(n, "`steps`") {
                if items.is_empty() {
                    cx.err(n.pos, "`steps` must hold at least one step");
                }
                if items.len() > MAX_STEPS {
                    // Refused before any step is converted: the checks that follow grow with
                    // the number of steps.
                    let at = entries
                        .iter()
                        .find(|(k, _)| k.name == "steps")
                        .map_or(n.pos, |(k, _)| k.pos);
                    cx.err(
                        at,
                        format!(
                            "too many steps: {} (a job holds at most {MAX_STEPS})",
                            items.len()
                        ),
                    );
                } else {
                    for item in items {
                        // A step that fails to convert is left out of `steps`; the templates
                        // it recorded under its would-be index are dropped with it, or they
                        // would be checked against the next step (or past the last one).
                        let before = templates.len();
                        match step(cx, item, steps.len(), &mut templates) {
                            Some((step, pos)) => {
                                steps.push(step);
                                step_pos.push(pos.id);
                                needs_pos.push(pos.needs);
                                rollback_pos.push(pos.rollback);
                            }
                            None => templates.truncate(before),
                        }
                    }
                }
            }
        }
        (None, Some(info)) => {
            steps.push(Step {
                id: "main".to_owned(),
                kind: crate::kinds::script::step_kind(
                    info.file_name.clone(),
                    interpreter.or_else(|| info.shebang.clone()),
                ),
                needs: Vec::new(),
                when: When::Success,
                if_expr: None,
                env: BTreeMap::new(),
                workdir: None,
                timeout: None,
                retry: Retry::default(),
                dry_run: DryRun::default(),
                runs_on: BTreeMap::new(),
                resources: Default::default(),
                confirm: None,
                rollback: None,
                finally: false,
                on_failure: OnFailure::Fail,
            });
            step_pos.push(node.pos);
            needs_pos.push(Vec::new());
            rollback_pos.push(None);
        }
        (None, None) => cx.err(node.pos, "missing required key `steps` in job"),
    }

    Some(Draft {
        job: Job {
            id: id.unwrap_or_default(),
            namespace,
            description,
            params,
            secrets,
            env,
            triggers,
            policy,
            concurrency,
            steps,
            notify,
            approval,
            env_file,
            report,
        },
        pos: node.pos,
        step_pos,
        needs_pos,
        rollback_pos,
        templates,
    })
}

fn env_map(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    step: Option<usize>,
    templates: &mut Vec<TemplateSite>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Some(entries) = cx.map(node, what) else {
        return env;
    };
    for (key, value) in entries {
        if !is_identifier(&key.name) {
            cx.err(
                key.pos,
                format!(
                    "invalid environment variable name `{}` in {what}: expected letters, digits and _, not starting with a digit",
                    key.name
                ),
            );
        }
        if let Some(text) = cx.scalar_string(value, &format!("`{}` in {what}", key.name)) {
            templates.push(TemplateSite {
                text: text.clone(),
                pos: value.pos,
                step,
                is_expr: false,
                notify: false,
            });
            env.insert(key.name.clone(), text);
        }
    }
    env
}

/// A worker-label selector (`runs_on:`): a mapping of label names to the values a worker
/// must carry. Names are identifiers with `-` and `.` allowed (`pool`, `gpu.kind`); values
/// are plain strings (no templates: a run is routed before anything renders).
fn labels(cx: &mut Cx, node: &Node, what: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let Some(entries) = cx.map(node, what) else {
        return labels;
    };
    for (key, value) in entries {
        if !crate::model::is_label(&key.name) {
            cx.err(
                key.pos,
                format!(
                    "invalid label name `{}` in {what}: expected 1–63 letters, digits, `_`, `-` and `.`",
                    key.name
                ),
            );
            continue;
        }
        if let Some(text) = cx.scalar_string(value, &format!("`{}` in {what}", key.name)) {
            labels.insert(key.name.clone(), text);
        }
    }
    labels
}

const PARAM_TYPES: &[(&str, ParamType)] = &[
    ("string", ParamType::String),
    ("int", ParamType::Int),
    ("float", ParamType::Float),
    ("bool", ParamType::Bool),
    ("list", ParamType::List),
    ("map", ParamType::Map),
    ("enum", ParamType::Enum),
];

fn type_name(ty: ParamType) -> &'static str {
    PARAM_TYPES
        .iter()
        .find(|(_, t)| *t == ty)
        .map_or("string", |(n, _)| n)
}

/// Checks that `node` fits `ty`; returns the JSON value (ints widen to floats).
fn typed_value(cx: &mut Cx, node: &Node, ty: ParamType, what: &str) -> Option<Value> {
    let ok = match (ty, &node.kind) {
        (ParamType::String | ParamType::Enum, Kind::Str(_))
        | (ParamType::Int, Kind::Int(_))
        | (ParamType::Float, Kind::Float(_))
        | (ParamType::Bool, Kind::Bool(_))
        | (ParamType::List, Kind::Seq(_))
        | (ParamType::Map, Kind::Map(_)) => true,
        (ParamType::Float, Kind::Int(i)) => {
            #[allow(clippy::cast_precision_loss)]
            let f = *i as f64;
            return serde_json::Number::from_f64(f).map(Value::Number);
        }
        _ => false,
    };
    if ok {
        Some(node.to_json())
    } else {
        let article = if matches!(ty, ParamType::Int | ParamType::Enum) {
            "an"
        } else {
            "a"
        };
        cx.expected(node, &format!("{article} {}", type_name(ty)), what);
        None
    }
}

fn params(cx: &mut Cx, node: &Node) -> Vec<ParamSpec> {
    let mut out = Vec::new();
    let Some(entries) = cx.map(node, "`params`") else {
        return out;
    };
    if entries.len() > MAX_PARAMS {
        cx.err(
            node.pos,
            format!(
                "too many parameters: {} (a job declares at most {MAX_PARAMS})",
                entries.len()
            ),
        );
        return out;
    }
    for (key, spec) in entries {
        let name = key.name.clone();
        if !is_identifier(&name) {
            cx.err(
                key.pos,
                format!(
                    "invalid parameter name `{name}`: expected letters, digits and _, not starting with a digit"
                ),
            );
        }
        let what = format!("parameter `{name}`");
        let param = match &spec.kind {
            Kind::Map(fields) => param_spec(cx, name, fields, spec.pos, &what),
            Kind::Null => Some(ParamSpec {
                name,
                ty: ParamType::String,
                default: None,
                choices: None,
                help: None,
            }),
            Kind::Str(_) | Kind::Bool(_) | Kind::Int(_) | Kind::Float(_) | Kind::Seq(_) => {
                let ty = match spec.kind {
                    Kind::Bool(_) => ParamType::Bool,
                    Kind::Int(_) => ParamType::Int,
                    Kind::Float(_) => ParamType::Float,
                    Kind::Seq(_) => ParamType::List,
                    _ => ParamType::String,
                };
                Some(ParamSpec {
                    name,
                    ty,
                    default: Some(spec.to_json()),
                    choices: None,
                    help: None,
                })
            }
        };
        out.extend(param);
    }
    out
}

fn param_spec(
    cx: &mut Cx,
    name: String,
    fields: &[(Key, Node)],
    pos: Pos,
    what: &str,
) -> Option<ParamSpec> {
    cx.unknown_keys(fields, &["type", "default", "enum", "values", "help"], what);
    let declared =
        get(fields, "type").map(|n| cx.choice(n, &format!("`type` of {what}"), PARAM_TYPES));
    let choices_node = get(fields, "values").or_else(|| get(fields, "enum"));
    let default_node = get(fields, "default");
    let ty = match declared {
        Some(None) => return None,
        Some(Some(ty)) => ty,
        None => match default_node.map(|n| &n.kind) {
            _ if choices_node.is_some() => ParamType::String,
            Some(Kind::Int(_)) => ParamType::Int,
            Some(Kind::Float(_)) => ParamType::Float,
            Some(Kind::Bool(_)) => ParamType::Bool,
            Some(Kind::Seq(_)) => ParamType::List,
            Some(Kind::Map(_)) => ParamType::Map,
            _ => ParamType::String,
        },
    };
    let mut choices = None;
    if let Some(n) = choices_node.filter(|n| {
        let allowed = !matches!(ty, ParamType::List | ParamType::Map | ParamType::Bool);
        if !allowed {
            cx.err(
                n.pos,
                format!("{what} of type {} cannot have choices", type_name(ty)),
            );
        }
        allowed
    }) {
        if let Some(items) = cx.seq(n, &format!("the choices of {what}")) {
            if items.is_empty() {
                cx.err(n.pos, format!("the choices of {what} must not be empty"));
            }
            let vals: Vec<Value> = items
                .iter()
                .filter_map(|item| typed_value(cx, item, ty, &format!("a choice of {what}")))
                .collect();
            choices = Some(vals);
        }
    } else if ty == ParamType::Enum {
        cx.err(
            pos,
            format!("{what} has type enum but no `values` (the list of choices)"),
        );
    }
    let default = default_node.and_then(|n| {
        let v = typed_value(cx, n, ty, &format!("the default of {what}"))?;
        if let Some(choices) = &choices
            && !choices.is_empty()
            && !choices.contains(&v)
        {
            let listed: Vec<String> = choices.iter().map(Value::to_string).collect();
            cx.err(
                n.pos,
                format!(
                    "default {} of {what} is not one of its choices: {}",
                    v,
                    listed.join(", ")
                ),
            );
        }
        Some(v)
    });
    let help = get(fields, "help").and_then(|n| cx.string(n, &format!("`help` of {what}")));
    Some(ParamSpec {
        name,
        ty,
        default,
        choices,
        help,
    })
}

const TRIGGER_KINDS: &[&str] = &["cron", "interval", "every", "at", "after", "webhook"];

fn triggers(cx: &mut Cx, node: &Node) -> Vec<Trigger> {
    let Some(items) = cx.seq(node, "`triggers`") else {
        return Vec::new();
    };
    items.iter().filter_map(|item| trigger(cx, item)).collect()
}

fn trigger(cx: &mut Cx, node: &Node) -> Option<Trigger> {
    let entries = cx.map(node, "a trigger")?;
    let kinds: Vec<&(Key, Node)> = entries
        .iter()
        .filter(|(k, _)| TRIGGER_KINDS.contains(&k.name.as_str()))
        .collect();
    let Some((kind_key, value)) = kinds.first().map(|(k, v)| (k, v)) else {
        cx.err(
            node.pos,
            format!(
                "trigger has no kind (expected one of: {})",
                TRIGGER_KINDS.join(", ")
            ),
        );
        return None;
    };
    if let Some((second, _)) = kinds.get(1) {
        cx.err(
            second.pos,
            format!(
                "trigger has more than one kind: `{}` and `{}`",
                kind_key.name, second.name
            ),
        );
    }
    let jitter = |cx: &mut Cx| get(entries, "jitter").and_then(|n| cx.duration(n, "`jitter`"));
    match kind_key.name.as_str() {
        "cron" => {
            cx.unknown_keys(entries, &["cron", "timezone", "jitter"], "cron trigger");
            let expr = cx.string(value, "`cron`")?;
            if let Err(e) = rota_sched::cron::CronExpr::parse(&expr) {
                // The error's own text repeats the expression; the kind is what the user needs.
                cx.err(value.pos, format!("invalid cron expression: {}", e.kind));
            }
            let timezone = match get(entries, "timezone") {
                Some(n) => {
                    let tz = cx.string(n, "`timezone`")?;
                    if !is_known_zone(&tz) {
                        cx.err(n.pos, format!("unknown time zone `{tz}` (expected an IANA name such as Europe/Berlin or UTC)"));
                    }
                    tz
                }
                None => "UTC".to_owned(),
            };
            Some(Trigger::Cron {
                expr,
                timezone,
                jitter: jitter(cx),
            })
        }
        "interval" | "every" => {
            cx.unknown_keys(
                entries,
                &[kind_key.name.as_str(), "anchor", "jitter"],
                "interval trigger",
            );
            let every = cx.duration(value, &format!("`{}`", kind_key.name))?;
            if every.is_zero() {
                cx.err(value.pos, "the interval must be greater than zero");
            }
            let anchor = get(entries, "anchor")
                .and_then(|n| {
                    cx.choice(
                        n,
                        "`anchor`",
                        &[
                            ("start", IntervalAnchor::Start),
                            ("end", IntervalAnchor::End),
                        ],
                    )
                })
                .unwrap_or(IntervalAnchor::Start);
            Some(Trigger::Interval {
                every,
                anchor,
                jitter: jitter(cx),
            })
        }
        "at" => {
            cx.unknown_keys(entries, &["at"], "at trigger");
            let time = cx.string(value, "`at`")?;
            if !is_rfc3339(&time) {
                cx.err(
                    value.pos,
                    format!("invalid time `{time}`: expected RFC 3339, e.g. 2026-12-01T10:00:00Z"),
                );
            }
            Some(Trigger::At { time })
        }
        "after" => {
            cx.unknown_keys(entries, &["after"], "after trigger");
            let fields = cx.map(value, "`after`")?;
            cx.unknown_keys(fields, &["job", "on"], "`after`");
            let Some(job_node) = get(fields, "job") else {
                cx.err(value.pos, "missing required key `job` in `after`");
                return None;
            };
            let job = cx.string(job_node, "`job`")?;
            if !is_valid_job_id(&job) {
                cx.err(job_node.pos, format!("invalid job id `{job}`: expected 3–64 characters of a-z, 0-9 and -, starting with a letter or digit"));
            }
            let on = get(fields, "on")
                .and_then(|n| {
                    cx.choice(
                        n,
                        "`on`",
                        &[
                            ("success", AfterOutcome::Success),
                            ("failure", AfterOutcome::Failure),
                            ("any", AfterOutcome::Any),
                        ],
                    )
                })
                .unwrap_or(AfterOutcome::Success);
            Some(Trigger::After { job, on })
        }
        _ => {
            cx.unknown_keys(entries, &["webhook"], "webhook trigger");
            let fields = cx.map(value, "`webhook`")?;
            cx.unknown_keys(fields, &["secret", "signature"], "`webhook`");
            let Some(secret_node) = get(fields, "secret") else {
                cx.err(value.pos, "missing required key `secret` in `webhook`");
                return None;
            };
            let secret = cx.string(secret_node, "`secret`")?;
            let signature = get(fields, "signature")
                .and_then(|n| {
                    cx.choice(
                        n,
                        "`signature`",
                        &[
                            ("github", WebhookSignature::Github),
                            ("bearer", WebhookSignature::Bearer),
                        ],
                    )
                })
                .unwrap_or(WebhookSignature::Github);
            Some(Trigger::Webhook { secret, signature })
        }
    }
}

fn is_rfc3339(text: &str) -> bool {
    // jiff also accepts RFC 9557 suffixes and lower-case separators; require the plain
    // RFC 3339 shape first: a date, `T`, a time and a `Z` or numeric offset.
    let b = text.as_bytes();
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        && (text.ends_with(['Z', 'z']) || b[b.len() - 6] == b'+' || b[b.len() - 6] == b'-')
        && !text.contains('[');
    shape && text.parse::<jiff::Timestamp>().is_ok()
}

fn is_known_zone(name: &str) -> bool {
    let db = jiff::tz::db();
    // Without a time zone database on this machine, nothing can be checked here; the
    // scheduler reports it when it loads the zone.
    db.is_definitively_empty() || db.get(name).is_ok()
}

fn policy(cx: &mut Cx, node: &Node) -> Policy {
    let mut policy = Policy::default();
    let Some(entries) = cx.map(node, "`policy`") else {
        return policy;
    };
    cx.unknown_keys(
        entries,
        &[
            "overlap",
            "catchup",
            "timeout",
            "max_active_runs",
            "concurrency",
        ],
        "`policy`",
    );
    if let Some(v) = get(entries, "overlap").and_then(|n| {
        cx.choice(
            n,
            "`overlap`",
            &[
                ("skip", Overlap::Skip),
                ("buffer_one", Overlap::BufferOne),
                ("buffer_all", Overlap::BufferAll),
                ("cancel_running", Overlap::CancelRunning),
                ("allow", Overlap::Allow),
            ],
        )
    }) {
        policy.overlap = v;
    }
    if let Some(n) = get(entries, "catchup") {
        policy.catchup = catchup(cx, n);
    }
    policy.timeout = get(entries, "timeout").and_then(|n| cx.duration(n, "`timeout`"));
    // `overlap: allow` asks for runs side by side; a cap of one would quietly turn it
    // into `buffer_all`, so it gets its own default cap unless one is given.
    if policy.overlap == Overlap::Allow {
        policy.max_active_runs = crate::model::ALLOW_DEFAULT_MAX_ACTIVE_RUNS;
    }
    // `concurrency` under `policy` is the spec's spelling of `max_active_runs`.
    for name in ["max_active_runs", "concurrency"] {
        if let Some(v) =
            get(entries, name).and_then(|n| cx.int_at_least(n, 1, &format!("`{name}`")))
        {
            policy.max_active_runs = v;
        }
    }
    policy
}

fn catchup(cx: &mut Cx, node: &Node) -> Catchup {
    let mut catchup = Catchup::default();
    let Some(entries) = cx.map(node, "`catchup`") else {
        return catchup;
    };
    cx.unknown_keys(entries, &["window", "mode"], "`catchup`");
    if let Some(w) = get(entries, "window").and_then(|n| cx.duration(n, "`window`")) {
        catchup.window = w;
    }
    if let Some(m) = get(entries, "mode").and_then(|n| {
        cx.choice(
            n,
            "`mode`",
            &[
                ("all", CatchupMode::All),
                ("last", CatchupMode::Last),
                ("none", CatchupMode::None),
            ],
        )
    }) {
        catchup.mode = m;
    }
    catchup
}

/// Converts one step; returns it with the position of its id and of each `needs` entry.
fn step(
    cx: &mut Cx,
    node: &Node,
    index: usize,
    templates: &mut Vec<TemplateSite>,
) -> Option<(Step, StepPositions)> {
    let entries = cx.map(node, "a step")?;
    cx.unknown_keys(entries, &step_keys(), "step");

    let (id, id_pos) = match get(entries, "id") {
        Some(n) => {
            let id = cx.string(n, "`id` of a step").unwrap_or_default();
            if !id.is_empty() && !is_valid_step_id(&id) {
                cx.err(
                    n.pos,
                    format!(
                        "invalid step id `{id}`: expected 1–64 characters of a-z, 0-9, _ and -"
                    ),
                );
            }
            (id, n.pos)
        }
        None => {
            cx.err(node.pos, "missing required key `id` in step");
            (String::new(), node.pos)
        }
    };
    let label = if id.is_empty() {
        format!("step #{}", index + 1)
    } else {
        format!("step `{id}`")
    };
    let mut site = |text: &str, pos: Pos, is_expr: bool| {
        templates.push(TemplateSite {
            text: text.to_owned(),
            pos,
            step: Some(index),
            is_expr,
            notify: false,
        });
    };

    // Each key naming a step kind; the kinds and what they accept are their modules' own.
    let kinds: Vec<(&Key, &Node, &'static dyn StepKindDef)> = entries
        .iter()
        .filter_map(|(k, v)| crate::kinds::find(&k.name).map(|def| (k, v, def)))
        .collect();
    if kinds.is_empty() {
        let names: Vec<&str> = crate::kinds::names().collect();
        cx.err(
            id_pos,
            format!(
                "{label} has no kind (expected exactly one of: {})",
                names.join(", ")
            ),
        );
    }
    if let (Some((first, _, _)), Some((second, _, _))) = (kinds.first(), kinds.get(1)) {
        cx.err(
            second.pos,
            format!(
                "{label} has more than one kind: `{}` and `{}`",
                first.name, second.name
            ),
        );
    }
    let site_of_step = StepSite {
        label: &label,
        entries,
    };
    let chosen = kinds.first().map(|(_, _, def)| *def);
    let kind = kinds.first().and_then(|(key, value, def)| {
        let config = def.parse(KindSite {
            cx,
            value,
            step: &site_of_step,
            sites: &mut site,
        })?;
        Some(StepKind::new(key.name.clone(), config))
    });
    if let Some(chosen) = chosen {
        // A step-level key another kind owns (a notebook's `params`) means nothing here.
        for owner in crate::kinds::all() {
            for name in owner.step_keys() {
                if !chosen.step_keys().contains(name)
                    && let Some(n) = get(entries, name)
                {
                    cx.err(
                        n.pos,
                        format!("`{name}` in {label} is only for {} steps", owner.name()),
                    );
                }
            }
        }
    }

    let mut needs = Vec::new();
    let mut rollback_pos = None;
    let mut needs_pos = Vec::new();
    if let Some(n) = get(entries, "needs") {
        if let Kind::Seq(items) = &n.kind
            && items.len() > MAX_NEEDS
        {
            let at = entries
                .iter()
                .find(|(k, _)| k.name == "needs")
                .map_or(n.pos, |(k, _)| k.pos);
            cx.err(
                at,
                format!(
                    "too many `needs` in {label}: {} (a step needs at most {MAX_NEEDS})",
                    items.len()
                ),
            );
        } else {
            for (need, pos) in cx.strings(n, &format!("`needs` in {label}"), true) {
                needs.push(need);
                needs_pos.push(pos);
            }
        }
    }
    let when = get(entries, "when")
        .and_then(|n| {
            cx.choice(
                n,
                &format!("`when` in {label}"),
                &[
                    ("success", When::Success),
                    ("failure", When::Failure),
                    ("always", When::Always),
                ],
            )
        })
        .unwrap_or_default();
    let if_expr = get(entries, "if").and_then(|n| {
        let expr = match &n.kind {
            Kind::Bool(b) => Some(b.to_string()),
            _ => cx.string(n, &format!("`if` in {label}")),
        }?;
        site(&expr, n.pos, true);
        Some(expr)
    });
    let env = match get(entries, "env") {
        Some(n) => env_map(cx, n, &format!("`env` of {label}"), Some(index), templates),
        None => BTreeMap::new(),
    };
    let workdir = get(entries, "workdir").and_then(|n| {
        let dir = cx.string(n, &format!("`workdir` in {label}"))?;
        templates.push(TemplateSite {
            text: dir.clone(),
            pos: n.pos,
            step: Some(index),
            is_expr: false,
            notify: false,
        });
        Some(dir)
    });
    let timeout =
        get(entries, "timeout").and_then(|n| cx.duration(n, &format!("`timeout` in {label}")));
    let runs_on = match get(entries, "runs_on") {
        Some(n) => labels(cx, n, &format!("`runs_on` of {label}")),
        None => BTreeMap::new(),
    };
    let resources = get(entries, "resources")
        .and_then(|n| crate::resources::convert(cx, n, &format!("`resources` of {label}")))
        .unwrap_or_default();
    let retry = get(entries, "retry")
        .and_then(|n| retry(cx, n, &label))
        .unwrap_or_default();
    let dry_run = get(entries, "dry_run")
        .and_then(|n| {
            let d = dry_run(cx, n, &label)?;
            if let DryRun::Command(command) = &d {
                let pos = match &n.kind {
                    Kind::Map(fields) => get(fields, "command").map_or(n.pos, |c| c.pos),
                    _ => n.pos,
                };
                templates.push(TemplateSite {
                    text: command.clone(),
                    pos,
                    step: Some(index),
                    is_expr: false,
                    notify: false,
                });
            }
            Some(d)
        })
        .unwrap_or_default();

    let confirm = get(entries, "confirm").and_then(|n| {
        let text = cx.string(n, &format!("`confirm` in {label}"))?;
        templates.push(TemplateSite {
            text: text.clone(),
            pos: n.pos,
            step: Some(index),
            is_expr: false,
            notify: false,
        });
        Some(text)
    });
    let rollback = get(entries, "rollback").and_then(|n| {
        let target = cx.string(n, &format!("`rollback` in {label}"))?;
        rollback_pos.replace(n.pos);
        Some(target)
    });
    let finally = match get(entries, "finally") {
        Some(Node {
            kind: Kind::Bool(b),
            ..
        }) => *b,
        Some(n) => {
            cx.expected(n, "true or false", &format!("`finally` in {label}"));
            false
        }
        None => false,
    };
    let on_failure = get(entries, "on_failure")
        .and_then(|n| {
            cx.choice(
                n,
                &format!("`on_failure` in {label}"),
                &[("fail", OnFailure::Fail), ("ask", OnFailure::Ask)],
            )
        })
        .unwrap_or_default();
    if finally {
        for name in ["needs", "when"] {
            if let Some((key, _)) = entries.iter().find(|(k, _)| k.name == name) {
                cx.err(
                    key.pos,
                    format!(
                        "`{name}` in {label}: a `finally` step runs after every other step, \
                         whatever happened"
                    ),
                );
            }
        }
    }

    if let Some((def, no_process)) = chosen.and_then(|def| def.no_process().map(|n| (def, n))) {
        let kind_name = def.name();
        let templated = no_process.templated;
        // No process runs: a shell command, environment or working directory would be
        // silently ignored, so each is refused where it is written.
        if let DryRun::Command(_) = &dry_run
            && let Some(n) = get(entries, "dry_run")
        {
            cx.err(
                n.pos,
                format!(
                    "`dry_run` in {label}: {} {kind_name} step runs no shell command \
                     (expected one of: echo-only, run, skip)",
                    no_process.article
                ),
            );
        }
        if let Some((key, _)) = entries.iter().find(|(k, _)| k.name == "resources") {
            cx.err(
                key.pos,
                format!(
                    "`resources` in {label} does not apply to {kind_name} steps (no process runs)"
                ),
            );
        }
        for name in ["env", "workdir"] {
            if let Some((key, _)) = entries.iter().find(|(k, _)| k.name == name) {
                cx.err(
                    key.pos,
                    format!(
                        "`{name}` in {label} does not apply to {kind_name} steps (no process \
                         runs; use templates in {templated})"
                    ),
                );
            }
        }
    }
    if let (Some(def), Some(kind)) = (chosen, &kind) {
        def.check_step(cx, kind.config(), &site_of_step, timeout);
    }

    let kind = kind?;
    Some((
        Step {
            id,
            kind,
            needs,
            when,
            if_expr,
            env,
            workdir,
            timeout,
            retry,
            dry_run,
            runs_on,
            resources,
            confirm,
            rollback,
            finally,
            on_failure,
        },
        StepPositions {
            id: id_pos,
            needs: needs_pos,
            rollback: rollback_pos,
        },
    ))
}

fn retry(cx: &mut Cx, node: &Node, label: &str) -> Option<Retry> {
    let what = format!("`retry` in {label}");
    let mut retry = Retry::default();
    match &node.kind {
        Kind::Int(_) => {
            retry.attempts = cx.int_at_least(node, 1, &what)?;
        }
        _ => {
            let entries = cx.map(node, &what)?;
            cx.unknown_keys(entries, &["attempts", "backoff", "initial", "max"], &what);
            if let Some(n) = get(entries, "attempts") {
                retry.attempts = cx.int_at_least(n, 1, &format!("`attempts` in {what}"))?;
            }
            if let Some(b) = get(entries, "backoff").and_then(|n| {
                cx.choice(
                    n,
                    &format!("`backoff` in {what}"),
                    &[
                        ("constant", Backoff::Constant),
                        ("exponential", Backoff::Exponential),
                    ],
                )
            }) {
                retry.backoff = b;
            }
            if let Some(d) = get(entries, "initial")
                .and_then(|n| cx.duration(n, &format!("`initial` in {what}")))
            {
                retry.initial = d;
            }
            retry.max =
                get(entries, "max").and_then(|n| cx.duration(n, &format!("`max` in {what}")));
        }
    }
    Some(retry)
}

fn dry_run(cx: &mut Cx, node: &Node, label: &str) -> Option<DryRun> {
    let what = format!("`dry_run` in {label}");
    match &node.kind {
        Kind::Map(entries) => {
            cx.unknown_keys(entries, &["command"], &what);
            let Some(n) = get(entries, "command") else {
                cx.err(
                    node.pos,
                    format!("missing required key `command` in {what}"),
                );
                return None;
            };
            cx.string(n, &format!("`command` in {what}"))
                .map(DryRun::Command)
        }
        _ => {
            #[derive(Clone, Copy)]
            enum Simple {
                EchoOnly,
                Run,
                Skip,
            }
            let simple = cx.choice(
                node,
                &what,
                &[
                    ("echo-only", Simple::EchoOnly),
                    ("run", Simple::Run),
                    ("skip", Simple::Skip),
                ],
            )?;
            Some(match simple {
                Simple::EchoOnly => DryRun::EchoOnly,
                Simple::Run => DryRun::Run,
                Simple::Skip => DryRun::Skip,
            })
        }
    }
}

/// Roles an `approval:` approver may name as `role:<role>`.
const APPROVER_ROLES: &[&str] = &["viewer", "operator", "editor", "admin"];

/// The keys of approval rules, at job level and in an `approval:` step.
pub(crate) const APPROVAL_KEYS: &[&str] = &["approvers", "quorum", "allow_self", "expires"];

/// Converts the job-level `approval:` mapping.
fn approval(cx: &mut Cx, node: &Node) -> Option<Approval> {
    let entries = cx.map(node, "`approval`")?;
    cx.unknown_keys(entries, APPROVAL_KEYS, "`approval`");
    approval_rules(cx, node, entries, "`approval`")
}

/// Converts approval rules (the [`APPROVAL_KEYS`] of `entries`, the mapping `node` that
/// `what` names), once the caller has refused keys it does not know.
pub(crate) fn approval_rules(
    cx: &mut Cx,
    node: &Node,
    entries: &[(Key, Node)],
    what: &str,
) -> Option<Approval> {
    let mut ok = true;
    let approvers: Vec<String> = match get(entries, "approvers") {
        Some(n) => {
            let list = cx.strings(n, "`approvers`", false);
            if list.is_empty() && matches!(n.kind, Kind::Seq(_)) {
                cx.err(n.pos, "`approvers` must name at least one approver");
                ok = false;
            }
            list.into_iter()
                .filter_map(|(name, pos)| {
                    let valid = match name.split_once(':') {
                        Some(("role", role)) => APPROVER_ROLES.contains(&role),
                        Some(_) => false,
                        None => !name.trim().is_empty() && name.len() <= 64,
                    };
                    if valid {
                        Some(name)
                    } else {
                        cx.err(
                            pos,
                            format!(
                                "invalid approver `{name}`: expected a token name or \
                                 `role:<role>` with a role of: {}",
                                APPROVER_ROLES.join(", ")
                            ),
                        );
                        ok = false;
                        None
                    }
                })
                .collect()
        }
        None => {
            cx.err(
                node.pos,
                format!("missing required key `approvers` in {what}"),
            );
            ok = false;
            Vec::new()
        }
    };
    let quorum = match get(entries, "quorum") {
        Some(n) => cx.int_at_least(n, 1, "`quorum`").unwrap_or(1),
        None => 1,
    };
    let allow_self = get(entries, "allow_self")
        .and_then(|n| boolean(cx, n, "`allow_self`"))
        .unwrap_or(false);
    let expires = match get(entries, "expires") {
        Some(n) => match cx.duration(n, "`expires`") {
            Some(d) if d.is_zero() => {
                cx.err(n.pos, "`expires` must be longer than zero");
                None
            }
            d => d,
        },
        None => None,
    };
    ok.then_some(Approval {
        approvers,
        quorum,
        allow_self,
        expires,
    })
}

/// Converts the list under `notify:`.
fn notify(cx: &mut Cx, node: &Node, templates: &mut Vec<TemplateSite>) -> Vec<Notification> {
    let Some(items) = cx.seq(node, "`notify`") else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| notify_rule(cx, item, i, templates))
        .collect()
}

/// Converts one `notify:` rule.
fn notify_rule(
    cx: &mut Cx,
    node: &Node,
    index: usize,
    templates: &mut Vec<TemplateSite>,
) -> Option<Notification> {
    let label = format!("notify rule #{}", index + 1);
    let entries = cx.map(node, &label)?;
    cx.unknown_keys(entries, NOTIFY_KEYS, &label);
    let mut site = |text: &str, pos: Pos| {
        templates.push(TemplateSite {
            text: text.to_owned(),
            pos,
            step: None,
            is_expr: false,
            notify: true,
        });
    };

    let names: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
    let mut on: Vec<NotifyEvent> = Vec::new();
    let mut on_ok = true;
    match get(entries, "on") {
        Some(n) => {
            let listed = cx.strings(n, &format!("`on` in {label}"), true);
            if listed.is_empty() && matches!(n.kind, Kind::Seq(_)) {
                cx.err(
                    n.pos,
                    format!(
                        "`on` in {label} must name at least one event (one of: {})",
                        names.join(", ")
                    ),
                );
            }
            if listed.is_empty() {
                on_ok = false;
            }
            for (text, pos) in listed {
                match NotifyEvent::parse(&text) {
                    Some(event) if on.contains(&event) => {
                        cx.err(pos, format!("event `{text}` is listed twice in {label}"));
                    }
                    Some(event) => on.push(event),
                    None => {
                        on_ok = false;
                        cx.err(
                            pos,
                            format!(
                                "unknown event `{text}` in {label} (expected one of: {})",
                                names.join(", ")
                            ),
                        );
                    }
                }
            }
        }
        None => {
            on_ok = false;
            cx.err(
                node.pos,
                format!(
                    "missing required key `on` in {label} (a list of: {})",
                    names.join(", ")
                ),
            );
        }
    }

    let after = get(entries, "after").and_then(|n| {
        let after = cx.duration(n, &format!("`after` in {label}"))?;
        if !on.contains(&NotifyEvent::DurationExceeded) && on_ok {
            cx.err(
                n.pos,
                format!("`after` in {label} only applies to the `duration_exceeded` event"),
            );
        }
        if after.is_zero() {
            cx.err(
                n.pos,
                format!("`after` in {label} must be longer than zero"),
            );
        }
        Some(after)
    });
    if on.contains(&NotifyEvent::DurationExceeded) && get(entries, "after").is_none() {
        cx.err(
            node.pos,
            format!("{label} reacts to `duration_exceeded` and needs `after: <duration>`"),
        );
    }

    let channels: Vec<&(Key, Node)> = entries
        .iter()
        .filter(|(k, _)| NOTIFY_CHANNELS.contains(&k.name.as_str()))
        .collect();
    let channel = match channels.as_slice() {
        [] => {
            cx.err(
                node.pos,
                format!(
                    "{label} needs a channel: one of {}",
                    NOTIFY_CHANNELS.join(", ")
                ),
            );
            None
        }
        [(key, value)] => notify_channel(cx, &key.name, value, &label, &mut site),
        [_, (second, _), ..] => {
            cx.err(
                second.pos,
                format!("{label} has more than one channel; give exactly one"),
            );
            None
        }
    };
    Some(Notification {
        on,
        after,
        channel: channel?,
    })
}

/// Converts the mapping under a rule's `webhook:` or `slack:`.
fn notify_channel(
    cx: &mut Cx,
    kind: &str,
    node: &Node,
    label: &str,
    site: &mut impl FnMut(&str, Pos),
) -> Option<NotifyChannel> {
    let what = format!("`{kind}` in {label}");
    let fields = cx.map(node, &what)?;
    let (url_key, allowed): (&str, &[&str]) = match kind {
        "slack" => ("webhook", &["webhook"]),
        _ => ("url", &["url", "headers"]),
    };
    cx.unknown_keys(fields, allowed, &what);
    let url = match get(fields, url_key) {
        Some(n) => {
            let url = cx.string(n, &format!("`{url_key}` in {what}"));
            if let Some(url) = &url {
                site(url, n.pos);
                if let Err(problem) = check_url(url) {
                    // The text may hold a secret's name but never its value; it is the
                    // file's own text.
                    cx.err(n.pos, format!("invalid URL {url:?} in {what}: {problem}"));
                }
            }
            url
        }
        None => {
            cx.err(
                node.pos,
                format!("missing required key `{url_key}` in {what}"),
            );
            None
        }
    };
    let headers = get(fields, "headers")
        .map(|n| crate::kinds::http::header_map(cx, n, &what, &mut |text, pos, _| site(text, pos)))
        .unwrap_or_default();
    let url = url?;
    Some(match kind {
        "slack" => NotifyChannel::Slack { webhook: url },
        _ => NotifyChannel::Webhook { url, headers },
    })
}

pub(crate) fn boolean(cx: &mut Cx, node: &Node, what: &str) -> Option<bool> {
    match node.kind {
        Kind::Bool(b) => Some(b),
        _ => {
            cx.expected(node, "true or false", what);
            None
        }
    }
}

/// Whether `name` is an HTTP header name (an RFC 9110 token).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks the literal parts of a URL template: an `http`/`https` scheme and a host.
///
/// Templates stand in for any text, so a URL that starts with one (its scheme is only known
/// once rendered) passes, and one inside the host counts as a host. The engine checks the
/// rendered URL again before sending.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let text = url.trim();
    if text.starts_with("{{") || text.starts_with("{%") {
        return Ok(());
    }
    let literal = replace_templates(text);
    if literal.chars().any(char::is_whitespace) {
        return Err("a URL cannot contain whitespace (percent-encode it as %20)".to_owned());
    }
    let Some((scheme, rest)) = literal.split_once("://") else {
        return Err("expected an absolute http:// or https:// URL".to_owned());
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "unsupported scheme `{scheme}` (expected http or https)"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("the URL has no host".to_owned());
    }
    Ok(())
}

/// `text` with each `{{ … }}` / `{% … %}` replaced by a placeholder word.
fn replace_templates(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(['{']) {
        let (open, close) = match rest.get(start..start + 2) {
            Some("{{") => ("{{", "}}"),
            Some("{%") => ("{%", "%}"),
            _ => {
                out.push_str(&rest[..=start]);
                rest = &rest[start + 1..];
                continue;
            }
        };
        out.push_str(&rest[..start]);
        match rest[start + open.len()..].find(close) {
            Some(end) => {
                out.push('x');
                rest = &rest[start + open.len() + end + close.len()..];
            }
            None => {
                // An unclosed tag is reported by the template check; keep the text.
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_templates_stand_in_for_text() {
        assert_eq!(check_url("https://api.example/health"), Ok(()));
        assert_eq!(check_url("{{ params.base }}/health"), Ok(()));
        assert_eq!(
            check_url("http://{{ params.host }}:8080/x?y={{ params.y }}"),
            Ok(())
        );
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("example.com/health").is_err());
        assert!(check_url("https:///path").is_err());
        assert!(check_url("https://a b").is_err());
        assert_eq!(replace_templates("a{{ b }}c{% d %}e{x"), "axcxe{x");
    }
}
