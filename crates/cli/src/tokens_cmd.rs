//! `rota tokens create|list|revoke`: API bearer tokens of the local store.
//!
//! A token's text is printed once, at creation, and is never stored (only its SHA-256);
//! listings show ids, names and grants. Creating and revoking append to the audit log, as
//! the API does, with the actor `local`.

use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use rota_ops::records::TokenGrant;
use rota_store::{DEFAULT_NAMESPACE, Role, Store};
use serde_json::{Value, json};

use crate::EXIT_USAGE;
use crate::client::{Remote, seg};
use crate::home::Home;
use crate::output::{self, Printer};
use crate::view::{CreatedTokenView, TokenView, grants_json, grants_text, via_wire};

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

/// The grants asked for, checked; `None` after saying what is wrong.
fn requested_grants(args: &CreateArgs) -> Option<Vec<TokenGrant>> {
    if args.name.trim().is_empty() {
        eprintln!("rota: a token needs a non-empty name");
        return None;
    }
    let role = Role::from(args.role);
    let namespaces: Vec<Option<String>> = if args.all_namespaces {
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

async fn create(home: &Home, args: CreateArgs, out: &Printer) -> anyhow::Result<u8> {
    let Some(typed) = requested_grants(&args) else {
        return Ok(EXIT_USAGE);
    };
    let grants = typed
        .iter()
        .map(TokenGrant::to_grant)
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let store = home.open_store().await?;
    let (record, token) = rota_api::issue_token(&store, &args.name, grants).await?;
    record_audit(&store, "token.create", &record.id).await?;
    let created = CreatedTokenView {
        token: via_wire(rota_ops::records::Token::from(record))?,
        secret: token,
    };
    print_created(out, &created);
    Ok(0)
}

fn print_created(out: &Printer, created: &CreatedTokenView) {
    if out.is_json() {
        out.json(&json!({
            "id": created.token.id,
            "name": created.token.name,
            "token": created.secret,
            "grants": grants_json(&created.token.grants),
        }));
    } else {
        out.text(&format!("{}\n", created.secret));
        eprintln!(
            "rota: token {} created; it is shown only this once",
            created.token.id
        );
    }
}

/// `rota tokens` against a server (the token used needs the admin role everywhere).
pub async fn tokens_remote(
    remote: &Remote,
    command: TokensCommand,
    out: &Printer,
) -> anyhow::Result<u8> {
    match command {
        TokensCommand::Create(args) => {
            let Some(grants) = requested_grants(&args) else {
                return Ok(EXIT_USAGE);
            };
            let body = json!({ "name": args.name, "grants": grants });
            let created: CreatedTokenView =
                remote.send(Method::POST, "/api/v1/tokens", &body).await?;
            print_created(out, &created);
            Ok(0)
        }
        TokensCommand::List => {
            let list: Vec<TokenView> = remote.get_all("/api/v1/tokens", &[]).await?;
            print_list(out, &list);
            Ok(0)
        }
        TokensCommand::Revoke(args) => {
            match remote
                .delete(&format!("/api/v1/tokens/{}", seg(&args.id)))
                .await
            {
                Ok(()) => {}
                Err(failure) if failure.is(StatusCode::NOT_FOUND) => {
                    eprintln!("rota: no live token {:?}", args.id);
                    return Ok(1);
                }
                Err(failure) => return Err(failure.into()),
            }
            print_revoked(out, &args.id);
            Ok(0)
        }
    }
}

async fn list(store: &Store, out: &Printer) -> anyhow::Result<u8> {
    let tokens = store
        .list_tokens()
        .await?
        .into_iter()
        .map(|t| via_wire(rota_ops::records::Token::from(t)))
        .collect::<anyhow::Result<Vec<TokenView>>>()?;
    print_list(out, &tokens);
    Ok(0)
}

fn print_list(out: &Printer, tokens: &[TokenView]) {
    if out.is_json() {
        out.json(&Value::Array(tokens.iter().map(TokenView::json).collect()));
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

async fn revoke(store: &Store, args: RevokeArgs, out: &Printer) -> anyhow::Result<u8> {
    if !store.revoke_token(&args.id, Timestamp::now()).await? {
        eprintln!("rota: no live token {:?}", args.id);
        return Ok(1);
    }
    record_audit(store, "token.revoke", &args.id).await?;
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

async fn record_audit(store: &Store, action: &str, id: &str) -> anyhow::Result<()> {
    rota_ops::Ops::new(store.clone())
        .audit(
            &rota_ops::Actor::local(),
            action,
            &format!("token/{id}"),
            "ok",
        )
        .await?;
    Ok(())
}
