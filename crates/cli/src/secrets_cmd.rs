//! `rota secrets set|list|rm`: manage the encrypted secrets of a namespace.
//!
//! A value is read from stdin (all of it, one trailing newline dropped) or, on a terminal,
//! from a prompt that does not echo; never from the command line, where `ps` and shell
//! history would see it. Listing shows names and versions, never values.

use std::io::{IsTerminal as _, Read as _, Write as _};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use rota_secrets::{SecretKey, SecretValue};
use serde_json::json;

use reqwest::{Method, StatusCode};

use crate::EXIT_USAGE;
use crate::client::{Remote, seg};
use crate::home::Home;
use crate::output::{self, Printer};
use crate::view::{SecretView, StoredSecretView, via_wire};

/// `rota secrets`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store a new version of a secret; the value is read from stdin, or prompted for
    /// without echo on a terminal (never from the command line).
    Set(SetArgs),
    /// List a namespace's secrets: names, versions and dates, never values.
    List(ListArgs),
    /// Delete a secret (every version); runs no longer receive it.
    Rm(RmArgs),
}

/// `rota secrets set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The secret's name, as jobs list it under `secrets:` (letters, digits, `_`).
    pub name: String,
    /// The namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
}

/// `rota secrets list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
}

/// `rota secrets rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The secret's name.
    pub name: String,
    /// The namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
}

pub async fn secrets(home: &Home, command: SecretsCommand, out: &Printer) -> anyhow::Result<u8> {
    match command {
        SecretsCommand::Set(args) => set(home, args, out).await,
        SecretsCommand::List(args) => list(home, args, out).await,
        SecretsCommand::Rm(args) => rm(home, args, out).await,
    }
}

async fn set(home: &Home, args: SetArgs, out: &Printer) -> anyhow::Result<u8> {
    let value = match read_value(&args.name) {
        Ok(value) => value,
        Err(message) => {
            eprintln!("rota: {message}");
            return Ok(EXIT_USAGE);
        }
    };
    let store = home.open_store().await?;
    let key = SecretKey::load_or_create(&home.dir)?;
    let version = rota_secrets::put(
        &store,
        &key,
        &args.namespace,
        &args.name,
        &value,
        &rota_ops::Actor::local().name,
    )
    .await
    .with_context(|| format!("cannot store secret {}", args.name))?;
    print_stored(
        out,
        &StoredSecretView {
            namespace: args.namespace,
            name: args.name,
            version,
        },
    );
    Ok(0)
}

fn print_stored(out: &Printer, stored: &StoredSecretView) {
    if out.is_json() {
        out.json(
            &json!({ "namespace": stored.namespace, "name": stored.name, "version": stored.version }),
        );
    } else {
        out.text(&format!(
            "secret {}/{} version {} stored\n",
            stored.namespace, stored.name, stored.version
        ));
    }
}

/// `rota secrets` against a server; the value still comes from stdin or the prompt and
/// travels only in the body of `PUT …/secrets/{name}`.
pub async fn secrets_remote(
    remote: &Remote,
    command: SecretsCommand,
    out: &Printer,
) -> anyhow::Result<u8> {
    match command {
        SecretsCommand::Set(args) => {
            let value = match read_value(&args.name) {
                Ok(value) => value,
                Err(message) => {
                    eprintln!("rota: {message}");
                    return Ok(EXIT_USAGE);
                }
            };
            let body = json!({ "value": value.expose() });
            let stored: StoredSecretView = remote
                .send(
                    Method::PUT,
                    &secret_path(&args.namespace, &args.name),
                    &body,
                )
                .await?;
            print_stored(out, &stored);
            Ok(0)
        }
        SecretsCommand::List(args) => {
            let list = remote_list(remote, &args.namespace).await?;
            print_list(out, &args.namespace, &list);
            Ok(0)
        }
        SecretsCommand::Rm(args) => {
            // The API answers 204 without a count: the listing just before says how many
            // versions go.
            let versions = remote_list(remote, &args.namespace)
                .await?
                .into_iter()
                .find(|s| s.name == args.name)
                .map_or(0, |s| s.versions);
            match remote
                .delete(&secret_path(&args.namespace, &args.name))
                .await
            {
                Ok(()) => {}
                Err(failure) if failure.is(StatusCode::NOT_FOUND) => {
                    eprintln!(
                        "rota: no secret {} in namespace {:?}",
                        args.name, args.namespace
                    );
                    return Ok(1);
                }
                Err(failure) => return Err(failure.into()),
            }
            print_removed(out, &args.namespace, &args.name, versions);
            Ok(0)
        }
    }
}

fn secret_path(namespace: &str, name: &str) -> String {
    format!(
        "/api/v1/namespaces/{}/secrets/{}",
        seg(namespace),
        seg(name)
    )
}

async fn remote_list(remote: &Remote, namespace: &str) -> anyhow::Result<Vec<SecretView>> {
    let path = format!("/api/v1/namespaces/{}/secrets", seg(namespace));
    Ok(remote.get_all(&path, &[]).await?)
}

async fn list(home: &Home, args: ListArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    let secrets = store
        .list_secrets(&args.namespace)
        .await?
        .into_iter()
        .map(|s| via_wire(rota_ops::records::Secret::from(s)))
        .collect::<anyhow::Result<Vec<SecretView>>>()?;
    print_list(out, &args.namespace, &secrets);
    Ok(0)
}

fn print_list(out: &Printer, namespace: &str, secrets: &[SecretView]) {
    if out.is_json() {
        let items: Vec<_> = secrets
            .iter()
            .map(|s| {
                json!({
                    "namespace": namespace,
                    "name": s.name,
                    "version": s.latest_version,
                    "versions": s.versions,
                    "created_at": s.created_at.to_string(),
                    "updated_at": s.updated_at.to_string(),
                    "updated_by": s.updated_by,
                })
            })
            .collect();
        out.json(&serde_json::Value::Array(items));
        return;
    }
    let rows: Vec<Vec<String>> = secrets
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.latest_version.to_string(),
                s.versions.to_string(),
                output::when(Some(s.created_at)),
                output::when(Some(s.updated_at)),
                s.updated_by.clone(),
            ]
        })
        .collect();
    out.table(
        &["NAME", "VERSION", "VERSIONS", "CREATED", "UPDATED", "BY"],
        &rows,
    );
}

async fn rm(home: &Home, args: RmArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    let removed = rota_secrets::remove(
        &store,
        &args.namespace,
        &args.name,
        &rota_ops::Actor::local().name,
    )
    .await?;
    if removed == 0 {
        eprintln!(
            "rota: no secret {} in namespace {:?}",
            args.name, args.namespace
        );
        return Ok(1);
    }
    print_removed(out, &args.namespace, &args.name, removed as i64);
    Ok(0)
}

fn print_removed(out: &Printer, namespace: &str, name: &str, removed: i64) {
    if out.is_json() {
        out.json(&json!({
            "namespace": namespace,
            "name": name,
            "removed_versions": removed,
        }));
    } else {
        out.text(&format!(
            "secret {namespace}/{name} removed ({removed} version{})\n",
            if removed == 1 { "" } else { "s" }
        ));
    }
}

/// The value of secret `name` (checked first, before anything is read): a no-echo prompt
/// on a terminal, else all of stdin minus one trailing newline.
fn read_value(name: &str) -> Result<SecretValue, String> {
    rota_secrets::validate_name(name).map_err(|e| e.to_string())?;
    let stdin = std::io::stdin();
    let mut text = if stdin.is_terminal() {
        prompt(&format!("value of {name}: "))
            .map_err(|e| format!("cannot read the value from the terminal: {e}"))?
    } else {
        let mut bytes = Vec::new();
        stdin
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read the value from stdin: {e}"))?;
        String::from_utf8(bytes).map_err(|_| "the value on stdin is not UTF-8".to_owned())?
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("refusing to store an empty value for {name}"));
    }
    Ok(SecretValue::new(text))
}

/// Reads one line from the terminal with echo off, restoring the terminal afterwards.
fn prompt(message: &str) -> std::io::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    stderr.write_all(message.as_bytes())?;
    stderr.flush()?;
    let saved = tcgetattr(&stdin).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&stdin, SetArg::TCSAFLUSH, &quiet).map_err(std::io::Error::from)?;
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    let restored = tcsetattr(&stdin, SetArg::TCSAFLUSH, &saved).map_err(std::io::Error::from);
    read?;
    restored?;
    Ok(line)
}
