//! `rota secrets set|list|rm`: manage the encrypted secrets of a namespace.
//!
//! A value is read from stdin (all of it, one trailing newline dropped) or, on a terminal,
//! from a prompt that does not echo; never from the command line, where `ps` and shell
//! history would see it. Listing shows names and versions, never values.

use std::io::{IsTerminal as _, Read as _, Write as _};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use rota_ops::records::{PutSecret, Secret, SecretPageQuery};
use rota_ops::service::Secrets;
use rota_secrets::SecretValue;
use serde_json::json;

use crate::EXIT_USAGE;
use crate::client::PAGE;
use crate::output::{self, Printer};

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

pub async fn secrets<R: Secrets>(
    rota: &R,
    command: SecretsCommand,
    out: &Printer,
) -> anyhow::Result<u8> {
    match command {
        SecretsCommand::Set(args) => set(rota, args, out).await,
        SecretsCommand::List(args) => {
            let secrets = all_secrets(rota, &args.namespace).await?;
            print_list(out, &args.namespace, &secrets);
            Ok(0)
        }
        SecretsCommand::Rm(args) => rm(rota, args, out).await,
    }
}

/// Stores a new version; the value comes from stdin or the prompt and goes only into the
/// operation (and over the network, only in a request body).
async fn set<R: Secrets>(rota: &R, args: SetArgs, out: &Printer) -> anyhow::Result<u8> {
    let value = match read_value(&args.name) {
        Ok(value) => value,
        Err(message) => {
            eprintln!("rota: {message}");
            return Ok(EXIT_USAGE);
        }
    };
    let value = PutSecret {
        value: value.expose().to_owned(),
    };
    let stored = rota
        .set_secret(&args.namespace, &args.name, value)
        .await
        .with_context(|| format!("cannot store secret {}", args.name))?;
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
    Ok(0)
}

/// Every secret of a namespace, page by page.
async fn all_secrets<R: Secrets>(rota: &R, namespace: &str) -> anyhow::Result<Vec<Secret>> {
    let mut secrets = Vec::new();
    let mut cursor = None;
    loop {
        let query = SecretPageQuery {
            limit: Some(PAGE),
            cursor: cursor.take(),
        };
        let page = rota.list_secrets(namespace, query).await?;
        secrets.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(secrets),
        }
    }
}

fn print_list(out: &Printer, namespace: &str, secrets: &[Secret]) {
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

/// Removes every version. The operation answers without a count: the listing just before
/// says how many versions go.
async fn rm<R: Secrets>(rota: &R, args: RmArgs, out: &Printer) -> anyhow::Result<u8> {
    let versions = all_secrets(rota, &args.namespace)
        .await?
        .into_iter()
        .find(|s| s.name == args.name)
        .map_or(0, |s| s.versions);
    match rota.remove_secret(&args.namespace, &args.name).await {
        Ok(()) => {}
        Err(error) if error.is_not_found() => {
            eprintln!(
                "rota: no secret {} in namespace {:?}",
                args.name, args.namespace
            );
            return Ok(1);
        }
        Err(error) => return Err(error.into()),
    }
    if out.is_json() {
        out.json(&json!({
            "namespace": args.namespace,
            "name": args.name,
            "removed_versions": versions,
        }));
    } else {
        out.text(&format!(
            "secret {}/{} removed ({versions} version{})\n",
            args.namespace,
            args.name,
            if versions == 1 { "" } else { "s" }
        ));
    }
    Ok(0)
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
