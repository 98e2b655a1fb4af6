//! `rota audit verify|list`: check and read the hash-chained audit log of the local store.
//!
//! `verify` recomputes the whole chain and names the first entry that was modified, deleted
//! or reordered (exit 1); `list` shows entries oldest first.

use clap::{Args, Subcommand};
use rota_api::VerifyAuditError;
use rota_store::{AuditBreak, AuditBreakKind, AuditRecord, Store};
use serde_json::{Value, json};

use crate::client::Remote;
use crate::home::Home;
use crate::output::{self, Printer};
use crate::view::{AuditView, via_wire};

/// The store returns at most this many entries per query.
const PAGE: u32 = 1000;

/// `rota audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit 1 naming the first entry that was tampered with.
    Verify,
    /// List audit entries, oldest first.
    List(ListArgs),
}

/// `rota audit list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the newest N entries.
    #[arg(long)]
    pub limit: Option<usize>,
}

pub async fn audit(home: &Home, command: AuditCommand, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    match command {
        AuditCommand::Verify => verify(&store, out).await,
        AuditCommand::List(args) => list(&store, args, out).await,
    }
}

async fn verify(store: &Store, out: &Printer) -> anyhow::Result<u8> {
    let broken = match rota_api::verify_audit(store).await {
        Ok(()) => None,
        Err(VerifyAuditError::Broken(broken)) => Some(broken),
        Err(error) => return Err(error.into()),
    };
    let entries = all_entries(store).await?.len();
    if out.is_json() {
        out.json(&json!({
            "intact": broken.is_none(),
            "entries": entries,
            "break": broken.as_ref().map(|b| json!({
                "entry_id": b.entry_id,
                "what": what(b),
            })),
        }));
    }
    match broken {
        None => {
            if !out.is_json() {
                out.text(&format!("audit log intact: {entries} entries\n"));
            }
            Ok(0)
        }
        Some(broken) => {
            eprintln!(
                "audit log broken at entry {}: {}",
                broken.entry_id,
                what(&broken)
            );
            Ok(1)
        }
    }
}

/// The short spelling of what is wrong at a break.
fn what(broken: &AuditBreak) -> &'static str {
    match broken.what {
        AuditBreakKind::Modified => "modified",
        AuditBreakKind::Deleted => "deleted",
        AuditBreakKind::OutOfOrder => "out of order",
        _ => "broken",
    }
}

/// Every entry, oldest first, page by page.
async fn all_entries(store: &Store) -> anyhow::Result<Vec<AuditRecord>> {
    let mut entries: Vec<AuditRecord> = Vec::new();
    loop {
        let after = entries.last().map_or(0, |e| e.id);
        let page = store.list_audit(after, PAGE).await?;
        let done = page.len() < PAGE as usize;
        entries.extend(page);
        if done {
            return Ok(entries);
        }
    }
}

async fn list(store: &Store, args: ListArgs, out: &Printer) -> anyhow::Result<u8> {
    let entries = all_entries(store)
        .await?
        .into_iter()
        .map(|e| via_wire(rota_api::wire::AuditEntry::from(e)))
        .collect::<anyhow::Result<Vec<AuditView>>>()?;
    print_entries(out, entries, args.limit);
    Ok(0)
}

/// `rota audit list` against a server (admin role): every page of `GET /api/v1/audit`.
/// `verify` has no API route and is refused before this is called.
pub async fn audit_remote(
    remote: &Remote,
    command: AuditCommand,
    out: &Printer,
) -> anyhow::Result<u8> {
    let AuditCommand::List(args) = command else {
        return Ok(crate::EXIT_USAGE);
    };
    #[derive(serde::Deserialize)]
    struct Page {
        items: Vec<AuditView>,
        next_after: i64,
    }
    let mut entries: Vec<AuditView> = Vec::new();
    let mut after = 0;
    loop {
        let page: Page = remote
            .get(
                "/api/v1/audit",
                &[("after", after.to_string()), ("limit", "500".to_owned())],
            )
            .await?;
        let done = page.items.len() < 500 || page.next_after <= after;
        after = page.next_after;
        entries.extend(page.items);
        if done {
            break;
        }
    }
    print_entries(out, entries, args.limit);
    Ok(0)
}

fn print_entries(out: &Printer, mut entries: Vec<AuditView>, limit: Option<usize>) {
    if let Some(limit) = limit {
        entries.drain(..entries.len().saturating_sub(limit));
    }
    if out.is_json() {
        out.json(&Value::Array(entries.iter().map(AuditView::json).collect()));
        return;
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                output::when(Some(e.at)),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone(),
                e.source.clone().unwrap_or_else(|| "-".to_owned()),
                e.result.clone(),
            ]
        })
        .collect();
    out.table(
        &[
            "ID", "TIME", "ACTOR", "ACTION", "TARGET", "SOURCE", "RESULT",
        ],
        &rows,
    );
}
