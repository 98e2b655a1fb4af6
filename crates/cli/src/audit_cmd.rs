//! `rota audit verify|list`: check and read the hash-chained audit log of the local store.
//!
//! `verify` recomputes the whole chain and names the first entry that was modified, deleted
//! or reordered (exit 1); `list` shows entries oldest first.

use clap::{Args, Subcommand};
use rota_api::VerifyAuditError;
use rota_store::{AuditBreakKind, AuditRecord, Store};
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
        Err(VerifyAuditError::Broken(broken)) => Some((broken.entry_id, what(broken.what))),
        Err(error) => return Err(error.into()),
    };
    let entries = all_entries(store).await?.len();
    Ok(print_verification(out, entries, broken))
}

/// Prints the outcome of a check of `entries` entries; exit 1 when the chain is broken.
fn print_verification(out: &Printer, entries: usize, broken: Option<(i64, String)>) -> u8 {
    if out.is_json() {
        out.json(&json!({
            "intact": broken.is_none(),
            "entries": entries,
            "break": broken.as_ref().map(|(entry_id, what)| json!({
                "entry_id": entry_id,
                "what": what,
            })),
        }));
    }
    match broken {
        None => {
            if !out.is_json() {
                out.text(&format!("audit log intact: {entries} entries\n"));
            }
            0
        }
        Some((entry_id, what)) => {
            eprintln!("audit log broken at entry {entry_id}: {what}");
            1
        }
    }
}

/// The short spelling of what is wrong at a break.
fn what(kind: AuditBreakKind) -> String {
    match kind {
        AuditBreakKind::Modified => "modified",
        AuditBreakKind::Deleted => "deleted",
        AuditBreakKind::OutOfOrder => "out of order",
        _ => "broken",
    }
    .to_owned()
}

/// The short spelling of a break the API describes in words (`AuditBreakKind`'s display).
fn what_of_text(text: &str) -> String {
    [
        AuditBreakKind::Modified,
        AuditBreakKind::Deleted,
        AuditBreakKind::OutOfOrder,
    ]
    .into_iter()
    .find(|kind| kind.to_string() == text)
    .map_or_else(|| text.to_owned(), what)
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
        .map(|e| via_wire(rota_ops::records::AuditEntry::from(e)))
        .collect::<anyhow::Result<Vec<AuditView>>>()?;
    print_entries(out, entries, args.limit);
    Ok(0)
}

/// `rota audit list|verify` against a server (admin role).
pub async fn audit_remote(
    remote: &Remote,
    command: AuditCommand,
    out: &Printer,
) -> anyhow::Result<u8> {
    let args = match command {
        AuditCommand::List(args) => args,
        AuditCommand::Verify => return verify_remote(remote, out).await,
    };
    let entries = remote_entries(remote).await?;
    print_entries(out, entries, args.limit);
    Ok(0)
}

/// `rota audit verify` against a server: `GET /api/v1/audit/verify` checks the chain on
/// the server's store.
async fn verify_remote(remote: &Remote, out: &Printer) -> anyhow::Result<u8> {
    #[derive(serde::Deserialize)]
    struct Verification {
        intact: bool,
        broken_entry: Option<i64>,
        problem: Option<String>,
    }
    let checked: Verification = remote.get("/api/v1/audit/verify", &[]).await?;
    let entries = remote_entries(remote).await?.len();
    let broken = match (checked.intact, checked.broken_entry) {
        (true, _) => None,
        (false, entry) => Some((
            entry.unwrap_or_default(),
            checked
                .problem
                .as_deref()
                .map_or_else(|| "broken".to_owned(), what_of_text),
        )),
    };
    Ok(print_verification(out, entries, broken))
}

/// Every entry of the server's audit log, oldest first.
async fn remote_entries(remote: &Remote) -> anyhow::Result<Vec<AuditView>> {
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
            return Ok(entries);
        }
    }
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
