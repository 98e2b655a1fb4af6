//! `container: {image, command, entrypoint, env, workdir, mounts, network, cpus, memory,
//! pids, user, pull, auth}`: one command run in a fresh container of an image, through the
//! Docker Engine API (or Podman's compatible one); the engine's executor runs it.
//!
//! The step's own `workdir`, `resources`, `runs_on` and a `dry_run` command are refused:
//! the container's working directory and limits are keys of `container:`, a container is
//! never handed to a worker, and no shell command can stand in for it in a dry run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{KindSite, Sites, StepKindDef, StepSite, encode, normalize, text};
use crate::convert::{Cx, get, is_identifier};
use crate::model::Value;
use crate::resources::{self, Resources};
use crate::tree::{Kind, Node, Pos};

pub(crate) struct Container;

/// A `container` step's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStep {
    /// The image to run (template), e.g. `alpine:3.20`.
    pub image: String,
    /// What the container runs; the image's own command when `None`.
    pub command: Option<ContainerCommand>,
    /// Replaces the image's entrypoint (templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables set in the container; values are templates.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory inside the container (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Host directories or files bound into the container.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// The network the container joins.
    #[serde(default)]
    pub network: Network,
    /// CPU, memory and process limits of the container.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// `user[:group]` the command runs as, by name or number; the image's when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// When the image is pulled from its registry.
    #[serde(default)]
    pub pull: Pull,
    /// Registry credentials for the pull (templates, usually `{{ secrets.X }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RegistryAuth>,
}

/// What a container runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerCommand {
    /// A list: the program and its arguments, each a template, passed as they render.
    Argv(Vec<String>),
    /// A string: run by the image's `sh -c`; its template values are passed as
    /// `ROTA_TPL_<n>` variables as for `sh:` steps, never spliced into the shell's text.
    Shell(String),
}

/// One bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The host path (template), relative to the job file's directory unless absolute.
    pub source: String,
    /// The absolute path inside the container.
    pub target: String,
    /// Read-only (the default) or writable.
    pub readonly: bool,
}

/// The network a container joins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// No network at all (only loopback).
    None,
    /// The engine's default bridge (the default, as `docker run`).
    #[default]
    Bridge,
    /// The host's network stack.
    Host,
}

impl Network {
    /// The network mode as the engine names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Bridge => "bridge",
            Network::Host => "host",
        }
    }
}

/// When an image is pulled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pull {
    /// Before every attempt.
    Always,
    /// Only when the engine does not have the image (the default).
    #[default]
    IfMissing,
    /// Never: the image must be there.
    Never,
}

impl Pull {
    /// The policy as written in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            Pull::Always => "always",
            Pull::IfMissing => "if_missing",
            Pull::Never => "never",
        }
    }
}

/// Registry credentials; both are templates and never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAuth {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

/// Keys a `container:` mapping may hold.
const CONTAINER_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "env",
    "workdir",
    "mounts",
    "network",
    "cpus",
    "memory",
    "pids",
    "user",
    "pull",
    "auth",
];

impl StepKindDef for Container {
    fn name(&self) -> &'static str {
        "container"
    }

    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value> {
        let (cx, value, step, sites) = (site.cx, site.value, site.step, site.sites);
        container_step(cx, value, step.label, sites).and_then(|c| encode(&c))
    }

    fn check_step(
        &self,
        cx: &mut Cx,
        _config: &Value,
        step: &StepSite<'_>,
        _timeout: Option<Duration>,
    ) {
        refuse_step_keys(cx, step);
    }

    fn normalize(&self, config: Value) -> Result<Value, String> {
        normalize::<ContainerStep>(config)
    }

    fn describe(&self, config: &Value) -> String {
        let image = text(config, "image").unwrap_or_default();
        let command = match config.get("command") {
            Some(Value::Object(map)) => match (map.get("argv"), map.get("shell")) {
                (Some(Value::Array(argv)), _) => argv
                    .iter()
                    .map(|a| a.as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" "),
                (_, Some(Value::String(shell))) => shell.trim_end().to_owned(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        if command.is_empty() {
            format!("container {image}")
        } else {
            format!("container {image}: {command}")
        }
    }
}

/// Step-level keys that a container step takes under `container:` instead, or not at all.
fn refuse_step_keys(cx: &mut Cx, step: &StepSite<'_>) {
    let label = step.label;
    for (key, instead) in [
        ("workdir", "`workdir` under `container:` (a path inside the container)"),
        ("resources", "`cpus`, `memory` and `pids` under `container:`"),
    ] {
        if let Some((k, _)) = step.entries.iter().find(|(k, _)| k.name == key) {
            cx.err(
                k.pos,
                format!("`{key}` in {label} does not apply to container steps (use {instead})"),
            );
        }
    }
    if let Some((k, _)) = step.entries.iter().find(|(k, _)| k.name == "runs_on") {
        cx.err(
            k.pos,
            format!(
                "`runs_on` in {label}: container steps are not handed to workers yet; they run \
                 on the server's own container engine (remove `runs_on`)"
            ),
        );
    }
    if let Some(n) = step.get("dry_run")
        && matches!(n.kind, Kind::Map(_))
    {
        cx.err(
            n.pos,
            format!(
                "`dry_run` in {label}: a container step runs no shell command of its own \
                 (expected one of: echo-only, run, skip)"
            ),
        );
    }
}

/// Converts the mapping under `container:`.
fn container_step(
    cx: &mut Cx,
    node: &Node,
    label: &str,
    sites: &mut Sites<'_>,
) -> Option<ContainerStep> {
    let what = format!("`container` in {label}");
    let fields = cx.map(node, &what)?;
    cx.unknown_keys(fields, CONTAINER_KEYS, &what);
    let before = cx.errors.len();
    let of = |key: &str| format!("`{key}` in {what}");

    let image = match get(fields, "image") {
        Some(n) => cx.string(n, &of("image")).inspect(|image| {
            sites(image, n.pos, false);
            if image.trim().is_empty() {
                cx.err(n.pos, format!("{} must name an image", of("image")));
            }
        }),
        None => {
            cx.err(node.pos, format!("missing required key `image` in {what}"));
            None
        }
    };
    let command = get(fields, "command").and_then(|n| match &n.kind {
        Kind::Str(text) => {
            sites(text, n.pos, false);
            Some(ContainerCommand::Shell(text.clone()))
        }
        Kind::Seq(_) => {
            let argv = template_list(cx, n, &of("command"), sites);
            if argv.is_empty() {
                cx.err(n.pos, format!("{} needs at least a program", of("command")));
            }
            Some(ContainerCommand::Argv(argv))
        }
        _ => {
            cx.expected(n, "a list of arguments or a shell command", &of("command"));
            None
        }
    });
    let entrypoint = get(fields, "entrypoint").map(|n| match &n.kind {
        Kind::Str(program) => {
            sites(program, n.pos, false);
            vec![program.clone()]
        }
        _ => template_list(cx, n, &of("entrypoint"), sites),
    });
    let env = get(fields, "env")
        .map(|n| env_map(cx, n, &of("env"), sites))
        .unwrap_or_default();
    let workdir = get(fields, "workdir").and_then(|n| {
        let dir = cx.string(n, &of("workdir"))?;
        if !dir.starts_with('/') {
            cx.err(
                n.pos,
                format!(
                    "{} must be an absolute path inside the container, found {dir:?}",
                    of("workdir")
                ),
            );
        }
        Some(dir)
    });
    let mounts = get(fields, "mounts")
        .map(|n| mounts(cx, n, &of("mounts"), sites))
        .unwrap_or_default();
    let network = get(fields, "network")
        .and_then(|n| {
            cx.choice(
                n,
                &of("network"),
                &[
                    ("none", Network::None),
                    ("bridge", Network::Bridge),
                    ("host", Network::Host),
                ],
            )
        })
        .unwrap_or_default();
    let resources = Resources {
        cpus: get(fields, "cpus").and_then(|n| resources::cpus(cx, n, &of("cpus"))),
        memory: get(fields, "memory").and_then(|n| resources::memory(cx, n, &of("memory"))),
        pids: get(fields, "pids")
            .and_then(|n| cx.int_at_least(n, 1, &of("pids")).map(u64::from)),
    };
    let user = get(fields, "user").and_then(|n| cx.scalar_string(n, &of("user")));
    let pull = get(fields, "pull")
        .and_then(|n| {
            cx.choice(
                n,
                &of("pull"),
                &[
                    ("always", Pull::Always),
                    ("if_missing", Pull::IfMissing),
                    ("never", Pull::Never),
                ],
            )
        })
        .unwrap_or_default();
    let auth = get(fields, "auth").and_then(|n| registry_auth(cx, n, &of("auth"), sites));
    if cx.errors.len() != before {
        return None;
    }
    Some(ContainerStep {
        image: image?,
        command,
        entrypoint,
        env,
        workdir,
        mounts,
        network,
        resources,
        user,
        pull,
        auth,
    })
}

/// A list of templates (arguments), each registered as a template site.
fn template_list(cx: &mut Cx, node: &Node, what: &str, sites: &mut Sites<'_>) -> Vec<String> {
    let Some(items) = cx.seq(node, what) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let text = cx.scalar_string(item, what)?;
            sites(&text, item.pos, false);
            Some(text)
        })
        .collect()
}

/// The container's `env:`: variable names, values as templates.
fn env_map(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    sites: &mut Sites<'_>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (key, value) in cx.map(node, what).unwrap_or_default() {
        if !is_identifier(&key.name) {
            cx.err(
                key.pos,
                format!(
                    "invalid environment variable name `{}` in {what}: expected letters, \
                     digits and _, not starting with a digit",
                    key.name
                ),
            );
        }
        if let Some(text) = cx.scalar_string(value, &format!("`{}` in {what}", key.name)) {
            sites(&text, value.pos, false);
            env.insert(key.name.clone(), text);
        }
    }
    env
}

/// `mounts:`: each entry `"SOURCE:TARGET[:ro|:rw]"` or `{source, target, readonly}`.
fn mounts(cx: &mut Cx, node: &Node, what: &str, sites: &mut Sites<'_>) -> Vec<Mount> {
    let Some(items) = cx.seq(node, what) else {
        return Vec::new();
    };
    let mut mounts = Vec::new();
    for item in items {
        let mount = match &item.kind {
            Kind::Str(text) => short_mount(cx, text, item.pos, what),
            Kind::Map(fields) => long_mount(cx, item, fields, what),
            _ => {
                cx.expected(
                    item,
                    "\"SOURCE:TARGET[:rw]\" or a mapping with `source` and `target`",
                    what,
                );
                None
            }
        };
        let Some(mount) = mount else { continue };
        sites(&mount.source, item.pos, false);
        if !mount.target.starts_with('/') {
            cx.err(
                item.pos,
                format!(
                    "mount target {:?} in {what} must be an absolute path inside the container",
                    mount.target
                ),
            );
        }
        if mount.source.trim().is_empty() {
            cx.err(item.pos, format!("a mount in {what} has an empty source"));
        }
        mounts.push(mount);
    }
    mounts
}

fn short_mount(cx: &mut Cx, text: &str, pos: Pos, what: &str) -> Option<Mount> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, readonly) = match parts.as_slice() {
        [source, target] => (source, target, true),
        [source, target, "ro"] => (source, target, true),
        [source, target, "rw"] => (source, target, false),
        _ => {
            cx.err(
                pos,
                format!(
                    "invalid mount {text:?} in {what}: expected \"SOURCE:TARGET\", \
                     \"SOURCE:TARGET:ro\" or \"SOURCE:TARGET:rw\""
                ),
            );
            return None;
        }
    };
    Some(Mount {
        source: (*source).to_owned(),
        target: (*target).to_owned(),
        readonly,
    })
}

fn long_mount(cx: &mut Cx, node: &Node, fields: &[(crate::tree::Key, Node)], what: &str) -> Option<Mount> {
    cx.unknown_keys(fields, &["source", "target", "readonly"], what);
    let required = |cx: &mut Cx, key: &str| match get(fields, key) {
        Some(n) => cx.string(n, &format!("`{key}` of a mount in {what}")),
        None => {
            cx.err(
                node.pos,
                format!("missing required key `{key}` in a mount of {what}"),
            );
            None
        }
    };
    let source = required(cx, "source");
    let target = required(cx, "target");
    let readonly = match get(fields, "readonly") {
        Some(n) => crate::convert::boolean(cx, n, &format!("`readonly` of a mount in {what}"))?,
        None => true,
    };
    Some(Mount {
        source: source?,
        target: target?,
        readonly,
    })
}

fn registry_auth(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    sites: &mut Sites<'_>,
) -> Option<RegistryAuth> {
    let fields = cx.map(node, what)?;
    cx.unknown_keys(fields, &["username", "password"], what);
    let mut field = |cx: &mut Cx, key: &str| match get(fields, key) {
        Some(n) => cx
            .scalar_string(n, &format!("`{key}` in {what}"))
            .inspect(|text| sites(text, n.pos, false)),
        None => {
            cx.err(node.pos, format!("missing required key `{key}` in {what}"));
            None
        }
    };
    let username = field(cx, "username");
    let password = field(cx, "password");
    Some(RegistryAuth {
        username: username?,
        password: password?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Pos;

    fn cx() -> Cx {
        Cx {
            errors: Vec::new(),
            lines: Vec::new(),
        }
    }

    #[test]
    fn short_mounts_are_read_only_unless_rw() {
        let mut cx = cx();
        let at = Pos::default();
        let ro = short_mount(&mut cx, "data:/data", at, "m").unwrap();
        assert!(ro.readonly);
        assert_eq!((ro.source.as_str(), ro.target.as_str()), ("data", "/data"));
        assert!(short_mount(&mut cx, "data:/data:ro", at, "m").unwrap().readonly);
        assert!(!short_mount(&mut cx, "out:/out:rw", at, "m").unwrap().readonly);
        assert!(cx.errors.is_empty());
        assert!(short_mount(&mut cx, "a:/b:rx", at, "m").is_none());
        assert!(short_mount(&mut cx, "/only", at, "m").is_none());
        assert_eq!(cx.errors.len(), 2);
    }

    #[test]
    fn descriptions_name_the_image_and_command() {
        let config = serde_json::json!({
            "image": "busybox:1",
            "command": { "argv": ["echo", "hi"] },
        });
        assert_eq!(Container.describe(&config), "container busybox:1: echo hi");
        let config = serde_json::json!({ "image": "busybox:1", "command": null });
        assert_eq!(Container.describe(&config), "container busybox:1");
    }
}
