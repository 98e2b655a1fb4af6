//! Step kinds, one module each: the kind's keys, their conversion into its configuration
//! (with a diagnostic at each wrong key's line:col), the template sites it holds, and how
//! it describes itself. A step's [`StepKind`](crate::model::StepKind) is a kind's name and
//! its configuration as JSON, which the kind's module decodes into its own typed struct;
//! it is stored as `{"<name>": <config>}`, the shape job revisions and plan hashes hold.
//!
//! A kind whose attempt is one process says here what it runs (`StepKindDef::command`:
//! a [`Command`] rendered from its configuration), and the engine starts, supervises and
//! logs it like every process; such a kind is this one module and its line in `ALL`.
//! A kind that does work of its own (a request, a query, a kernel) has an executor in
//! `rota_engine`'s `kinds` module, registered by the same name; a test there checks that
//! every kind has exactly one of the two.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::convert::Cx;
use crate::model::Value;
use crate::template::{Context, render_text};
use crate::tree::{Key, Node, Pos};

/// Declares each kind's module and lists its definition in `ALL`, so a kind is registered
/// by one entry (`module::Definition`); their order is the order diagnostics list them in.
macro_rules! step_kinds {
    ($($module:ident :: $def:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every step kind, in registration order.
        static ALL: &[&dyn StepKindDef] = &[$(&$module::$def),*];
    };
}

step_kinds![
    sh::Sh,
    exec::Exec,
    script::Script,
    notebook::Notebook,
    http::Http,
    check::Check,
    sql::Sql,
    container::Container,
    approval::ApprovalGate,
    job::JobCall,
];

/// The step whose kind is being converted.
pub(crate) struct StepSite<'a> {
    /// `step `id`` (or `step #n` when it has no id), as messages name it.
    pub label: &'a str,
    /// The step's mapping: the kind's own step-level keys live there (notebook `params`).
    pub entries: &'a [(Key, Node)],
}

impl StepSite<'_> {
    /// "`<key>` in <label>", the usual way a message names a key of this step.
    pub fn what(&self, key: &str) -> String {
        format!("`{key}` in {}", self.label)
    }

    /// The value of one of the step's keys.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }
}

/// What a kind converts: the value under its key, in its step, with where to report
/// problems (`cx`) and templates (`sites`).
pub(crate) struct KindSite<'a, 's> {
    /// Where problems go.
    pub cx: &'a mut Cx,
    /// The value under the kind's key.
    pub value: &'a Node,
    /// The step it is in.
    pub step: &'a StepSite<'a>,
    /// Where each template found goes.
    pub sites: &'a mut Sites<'s>,
}

/// Records a template found in the step: its text, where it is, and whether it is an
/// `if:` expression rather than a `{{ }}` template.
pub(crate) type Sites<'s> = dyn FnMut(&str, Pos, bool) + 's;

/// What a kind that starts no process says in the diagnostics refusing process-only keys.
pub(crate) struct NoProcess {
    /// `a` or `an`, before the kind's name.
    pub article: &'static str,
    /// The keys that take templates instead of `env`/`workdir`.
    pub templated: &'static str,
}

/// What a process kind's attempt runs: a program and its arguments, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The command as users read it, when it is not the program and its arguments
    /// (a `sh:` command shows its values, not the variables that pass them).
    pub shown: Option<String>,
    /// Values a `sh:` command reads from its environment (`ROTA_TPL_<n>`).
    pub shell_values: Vec<(String, String)>,
}

impl Command {
    /// `program` with `args`.
    pub fn new(program: String, args: Vec<String>) -> Command {
        Command {
            program,
            args,
            shown: None,
            shell_values: Vec::new(),
        }
    }

    /// `argv[0]` with the rest as its arguments; `what` names the kind for the error when
    /// `argv` is empty.
    pub fn from_argv(mut argv: Vec<String>, what: &str) -> Result<Command, String> {
        if argv.is_empty() {
            return Err(format!("`{what}` needs at least a program"));
        }
        let program = argv.remove(0);
        Ok(Command::new(program, argv))
    }

    /// `sh -c <text>`, its template values passed as `ROTA_TPL_<n>` variables instead of
    /// being spliced into the shell's text.
    pub fn shell(text: &str, ctx: &Context) -> Result<Command, String> {
        let rendered = if text.contains('{') {
            crate::template::shell::render_shell(text, ctx)
                .map_err(|e| crate::template::failure_reason(text, &e))?
        } else {
            crate::template::shell::ShellCommand {
                command: text.to_owned(),
                display: text.to_owned(),
                env: Vec::new(),
            }
        };
        Ok(Command {
            program: "sh".to_owned(),
            args: vec!["-c".to_owned(), rendered.command],
            shown: Some(rendered.display),
            shell_values: rendered.env,
        })
    }
}

/// What a process kind renders its command with.
pub struct CommandCx<'a> {
    /// The attempt's template context.
    pub ctx: &'a Context,
    /// The run's base directory (the job file's directory), for paths relative to it.
    pub base_dir: &'a Path,
}

impl CommandCx<'_> {
    /// Renders one template of the step (see [`render_text`]).
    pub fn render(&self, text: &str) -> Result<String, String> {
        render_text(text, self.ctx)
    }
}

/// A step kind's syntax and description.
pub(crate) trait StepKindDef: Sync {
    /// The kind's key in a step (`sh`, `http`…), also its name in stored definitions.
    fn name(&self) -> &'static str;

    /// Step-level keys only this kind takes besides its own (a notebook's `params`).
    fn step_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// Converts the value under the kind's key into its configuration, reporting every
    /// problem to `cx` and every template to `sites`; `None` when it cannot be converted.
    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value>;

    /// Checks the configuration against the rest of the step once that is converted.
    fn check_step(
        &self,
        _cx: &mut Cx,
        _config: &Value,
        _step: &StepSite<'_>,
        _timeout: Option<Duration>,
    ) {
    }

    /// `Some` for a kind that starts no process: `env`, `workdir` and a `dry_run` command
    /// would be ignored, so they are refused.
    fn no_process(&self) -> Option<NoProcess> {
        None
    }

    /// For a kind whose attempt is one process: the command it runs, rendered from its
    /// configuration. The engine adds the step's environment, working directory, sandbox
    /// and supervision, and shows the step's `dry_run` command instead in a dry run. `None`
    /// for a kind that does work of its own (it has an executor in the engine).
    fn command(&self, _config: &Value, _cx: &CommandCx<'_>) -> Option<Result<Command, String>> {
        None
    }

    /// A stored configuration as this release holds it: decoded into the kind's struct and
    /// encoded again, or why it does not decode.
    fn normalize(&self, config: Value) -> Result<Value, String>;

    /// What the step does, in one line, from its configuration (templates rendered or
    /// not): `rota plan show`, the API's plan steps and the web UI show it.
    fn describe(&self, config: &Value) -> String;

    /// The line `rota run --server` shows when the step starts, as local runs show the
    /// step's rendered work; the description unless the kind says more.
    fn start_line(&self, config: &Value) -> String {
        self.describe(config)
    }
}

/// The kind called `name`.
pub(crate) fn find(name: &str) -> Option<&'static dyn StepKindDef> {
    ALL.iter().copied().find(|k| k.name() == name)
}

/// The registered kinds.
pub(crate) fn all() -> &'static [&'static dyn StepKindDef] {
    ALL
}

/// The names of every step kind, in registration order.
pub fn names() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|k| k.name())
}

/// One line saying what a step of kind `kind` with `config` does (see
/// `StepKindDef::describe`); the configuration as JSON for a kind this release lacks.
pub fn describe(kind: &str, config: &Value) -> String {
    match find(kind) {
        Some(def) => def.describe(config),
        None => config.to_string(),
    }
}

/// The command an attempt of a process kind runs (see `StepKindDef::command`); `None`
/// for an unknown kind or one that does work of its own.
pub fn command(kind: &str, config: &Value, cx: &CommandCx<'_>) -> Option<Result<Command, String>> {
    find(kind)?.command(config, cx)
}

/// Whether `kind` is a process kind: one that answers with a [`Command`] (an engine
/// executor runs the others).
pub fn is_command_kind(kind: &str) -> bool {
    let cx = CommandCx {
        ctx: &Context::default(),
        base_dir: Path::new("."),
    };
    command(kind, &Value::Null, &cx).is_some()
}

/// The line shown when a step of kind `kind` starts (see `StepKindDef::start_line`).
pub fn start_line(kind: &str, config: &Value) -> String {
    match find(kind) {
        Some(def) => def.start_line(config),
        None => config.to_string(),
    }
}

/// A kind's typed configuration as the JSON a [`StepKind`](crate::model::StepKind) holds.
pub(crate) fn encode<T: Serialize>(config: &T) -> Option<Value> {
    serde_json::to_value(config).ok()
}

/// A configuration as the kind's typed struct.
pub(crate) fn decode<T: DeserializeOwned>(config: &Value) -> Result<T, String> {
    T::deserialize(config).map_err(|e| format!("invalid step configuration: {e}"))
}

/// Decodes a stored configuration into `T` and encodes it again, so that it compares and
/// serializes as one converted from a job file does.
pub(crate) fn normalize<T: Serialize + DeserializeOwned>(config: Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(config).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// A string field of a configuration, for descriptions.
pub(crate) fn text<'v>(config: &'v Value, field: &str) -> Option<&'v str> {
    config.get(field).and_then(Value::as_str)
}

/// Every string inside a value is a template (notebook parameters and JSON bodies nest).
pub(crate) fn collect_strings(node: &Node, sites: &mut Sites<'_>) {
    match &node.kind {
        crate::tree::Kind::Str(s) => sites(s, node.pos, false),
        crate::tree::Kind::Seq(items) => items.iter().for_each(|n| collect_strings(n, sites)),
        crate::tree::Kind::Map(entries) => {
            entries.iter().for_each(|(_, n)| collect_strings(n, sites));
        }
        _ => {}
    }
}
