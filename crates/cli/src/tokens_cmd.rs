//! `rota tokens create|list|revoke`: API bearer tokens of the local store.
//!
//! A token's text is printed once, at creation, and is never stored (only its SHA-256);
//! listings show ids, names and grants. Creating and revoking append to the audit log
//! (locally as `local:<user>`).

use clap::{Args, Subcommand, ValueEnum};
use rota_ops::auth::Role;
use rota_ops::records::{CreateToken, Token, TokenGrant, TokenPageQuery};
use rota_ops::service::Tokens;
use serde_json::{Value, json};

use crate::EXIT_USAGE;
use crate::client::PAGE;
use crate::output::{self, Printer};

/// The namespace a token's role applies in when none is named.
const DEFAULT_NAMESPACE: &str = "default";

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
    /// Only run step attempts as a `rota worker` (in every namespace).
    Worker,
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
            RoleArg::Worker => Role::Worker,
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

pub async fn tokens<R: Tokens>(
    rota: &R,
    command: TokensCommand,
    out: &Printer,
) -> anyhow::Result<u8> {
    match command {
        TokensCommand::Create(args) => create(rota, args, out).await,
        TokensCommand::List => {
            let tokens = all_tokens(rota).await?;
            print_list(out, &tokens);
            Ok(0)
        }
        TokensCommand::Revoke(args) => revoke(rota, args, out).await,
    }
}

/// The grants asked for, checked; `None` after saying what is wrong.
fn requested_grants(args: &CreateArgs) -> Option<Vec<TokenGrant>> {
    if args.name.trim().is_empty() {
        eprintln!("rota: a token needs a non-empty name");
        return None;
    }
    let role = Role::from(args.role);
    // A worker runs whatever step attempts it is handed, from every namespace.
    let namespaces: Vec<Option<String>> = if args.all_namespaces || role == Role::Worker {
        vec![None]
    } else if args.namespace.is_empty() {
        vec![Some(DEFAULT_NAMESPACE.to_owned())]
    } else {
        args.namespace.iter().cloned().map(Some).collect()
    };
    let grants: Vec<TokenGrant> = namespaces
        .into_iter()
        .map(|namespace| TokenGrant {
            namespace,
            role: role.as_str().to_owned(),
        })
        .collect();
    for grant in &grants {
        if let Err(message) = grant.to_grant() {
            eprintln!("rota: {message}");
            return None;
        }
    }
    Some(grants)
}

async fn create<R: Tokens>(rota: &R, args: CreateArgs, out: &Printer) -> anyhow::Result<u8> {
    let Some(grants) = requested_grants(&args) else {
        return Ok(EXIT_USAGE);
    };
    let created = rota
        .create_token(CreateToken {
            name: args.name,
            grants,
        })
        .await?;
    if out.is_json() {
        out.json(&json!({
            "id": created.token.id,
            "name": created.token.name,
            "token": created.secret,
            "grants": created.token.grants,
        }));
    } else {
        out.text(&format!("{}\n", created.secret));
        eprintln!(
            "rota: token {} created; it is shown only this once",
            created.token.id
        );
    }
    Ok(0)
}

/// Every token, page by page.
async fn all_tokens<R: Tokens>(rota: &R) -> anyhow::Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut cursor = None;
    loop {
        let query = TokenPageQuery {
            limit: Some(PAGE),
            cursor: cursor.take(),
        };
        let page = rota.list_tokens(query).await?;
        tokens.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(tokens),
        }
    }
}

fn print_list(out: &Printer, tokens: &[Token]) {
    if out.is_json() {
        out.json(&Value::Array(tokens.iter().map(token_json).collect()));
        return;
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
}

async fn revoke<R: Tokens>(rota: &R, args: RevokeArgs, out: &Printer) -> anyhow::Result<u8> {
    match rota.revoke_token(&args.id).await {
        Ok(()) => {}
        Err(error) if error.is_not_found() => {
            eprintln!("rota: no live token {:?}", args.id);
            return Ok(1);
        }
        Err(error) => return Err(error.into()),
    }
    print_revoked(out, &args.id);
    Ok(0)
}

fn print_revoked(out: &Printer, id: &str) {
    if out.is_json() {
        out.json(&json!({ "id": id, "revoked": true }));
    } else {
        out.text(&format!("token {id} revoked\n"));
    }
}

/// The JSON of `rota tokens list --output json`: the record, keys in the order the CLI
/// always printed them.
fn token_json(t: &Token) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "grants": t.grants,
        "created_at": t.created_at.to_string(),
        "last_used_at": t.last_used_at.map(|at| at.to_string()),
        "revoked_at": t.revoked_at.map(|at| at.to_string()),
    })
}

/// `admin@*`, `viewer@team-a,viewer@team-b`.
fn grants_text(grants: &[TokenGrant]) -> String {
    grants
        .iter()
        .map(|g| format!("{}@{}", g.role, g.namespace.as_deref().unwrap_or("*")))
        .collect::<Vec<_>>()
        .join(",")
}
