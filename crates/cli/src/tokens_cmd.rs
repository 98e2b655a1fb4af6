//! `rota tokens create|list|revoke`: API bearer tokens of the local store.
//!
//! A token's text is printed once, at creation, and is never stored (only its SHA-256);
//! listings show ids, names and grants. Creating and revoking append to the audit log, as
//! the API does, with the actor `local`.

use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use rota_api::wire::TokenGrant;
use rota_store::{DEFAULT_NAMESPACE, Grant, NewAuditEntry, Role, Store, TokenRecord};
use serde_json::{Value, json};

use crate::EXIT_USAGE;
use crate::home::Home;
use crate::output::{self, Printer};

/// Who creates and revokes tokens from the CLI, in the audit log.
const ACTOR: &str = "local";

/// `rota tokens`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it, this once (only the token, so `$(…)` captures it).
    Create(CreateArgs),
    /// List tokens: ids, names, grants and dates, never their text.
    List,
    /// Revoke a token; it authenticates nobody from then on.
    Revoke(RevokeArgs),
}

/// A role, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Read jobs, runs, logs and events.
    Viewer,
    /// Also start, cancel and retry runs.
    Operator,
    /// Also change jobs, schedules and secrets.
    Editor,
    /// Also manage tokens and read the audit log.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Operator => Role::Operator,
            RoleArg::Editor => Role::Editor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// `rota tokens create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A human name: who or what uses the token.
    pub name: String,
    /// The role the token holds.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Namespace the role applies in (repeatable; default: `default`).
    #[arg(long, short = 'n', conflicts_with = "all_namespaces")]
    pub namespace: Vec<String>,
    /// The role applies in every namespace.
    #[arg(long)]
    pub all_namespaces: bool,
}

/// `rota tokens revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token's id (see `rota tokens list`).
    pub id: String,
}

pub async fn tokens(home: &Home, command: TokensCommand, out: &Printer) -> anyhow::Result<u8> {
    match command {
        TokensCommand::Create(args) => create(home, args, out).await,
        TokensCommand::List => list(&home.open_store().await?, out).await,
        TokensCommand::Revoke(args) => revoke(&home.open_store().await?, args, out).await,
    }
}

async fn create(home: &Home, args: CreateArgs, out: &Printer) -> anyhow::Result<u8> {
    if args.name.trim().is_empty() {
        eprintln!("rota: a token needs a non-empty name");
        return Ok(EXIT_USAGE);
    }
    let role = Role::from(args.role);
    let namespaces: Vec<Option<String>> = if args.all_namespaces {
        vec![None]
    } else if args.namespace.is_empty() {
        vec![Some(DEFAULT_NAMESPACE.to_owned())]
    } else {
        args.namespace.into_iter().map(Some).collect()
    };
    let mut grants = Vec::with_capacity(namespaces.len());
    for namespace in namespaces {
        let typed = TokenGrant {
            namespace,
            role: role.as_str().to_owned(),
        };
        match typed.to_grant() {
            Ok(grant) => grants.push(grant),
            Err(message) => {
                eprintln!("rota: {message}");
                return Ok(EXIT_USAGE);
            }
        }
    }
    let store = home.open_store().await?;
    let (record, token) = rota_api::issue_token(&store, &args.name, grants).await?;
    record_audit(&store, "token.create", &record.id).await?;
    if out.is_json() {
        out.json(&json!({
            "id": record.id,
            "name": record.name,
            "token": token,
            "grants": grants_json(&record.grants),
        }));
    } else {
        out.text(&format!("{token}\n"));
        eprintln!(
            "rota: token {} created; it is shown only this once",
            record.id
        );
    }
    Ok(0)
}

async fn list(store: &Store, out: &Printer) -> anyhow::Result<u8> {
    let tokens = store.list_tokens().await?;
    if out.is_json() {
        out.json(&Value::Array(tokens.iter().map(token_json).collect()));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                grants_text(&t.grants),
                output::when(Some(t.created_at)),
                output::when(t.last_used_at),
                output::when(t.revoked_at),
            ]
        })
        .collect();
    out.table(
        &["ID", "NAME", "GRANTS", "CREATED", "LAST USED", "REVOKED"],
        &rows,
    );
    Ok(0)
}

async fn revoke(store: &Store, args: RevokeArgs, out: &Printer) -> anyhow::Result<u8> {
    if !store.revoke_token(&args.id, Timestamp::now()).await? {
        eprintln!("rota: no live token {:?}", args.id);
        return Ok(1);
    }
    record_audit(store, "token.revoke", &args.id).await?;
    if out.is_json() {
        out.json(&json!({ "id": args.id, "revoked": true }));
    } else {
        out.text(&format!("token {} revoked\n", args.id));
    }
    Ok(0)
}

async fn record_audit(store: &Store, action: &str, id: &str) -> anyhow::Result<()> {
    store
        .append_audit(&NewAuditEntry {
            at: Timestamp::now(),
            actor: ACTOR.to_owned(),
            action: action.to_owned(),
            target: format!("token/{id}"),
            source: None,
            result: "ok".to_owned(),
        })
        .await?;
    Ok(())
}

fn token_json(t: &TokenRecord) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "grants": grants_json(&t.grants),
        "created_at": t.created_at.to_string(),
        "last_used_at": t.last_used_at.map(|at| at.to_string()),
        "revoked_at": t.revoked_at.map(|at| at.to_string()),
    })
}

fn grants_json(grants: &[Grant]) -> Value {
    grants
        .iter()
        .map(|g| json!({ "namespace": g.namespace, "role": g.role.as_str() }))
        .collect()
}

/// `admin@*`, `viewer@team-a,viewer@team-b`.
fn grants_text(grants: &[Grant]) -> String {
    grants
        .iter()
        .map(|g| {
            format!(
                "{}@{}",
                g.role.as_str(),
                g.namespace.as_deref().unwrap_or("*")
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}
