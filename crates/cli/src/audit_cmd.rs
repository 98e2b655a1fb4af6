//! `rota audit verify|list`: check and read the hash-chained audit log, of this machine's
//! store or a server's.
//!
//! `verify` recomputes the whole chain and names the first entry that was modified, deleted
//! or reordered, or the first run whose logs or kept report changed (exit 1); `list` shows
//! entries oldest first.

use clap::{Args, Subcommand};
use rota_ops::records::{AfterQuery, AuditEntry};
use rota_ops::service::Audit;
use serde_json::{Value, json};

use crate::client::PAGE;
use crate::output::{self, Printer};

/// `rota audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain, then ended runs' logs and kept reports against it; exit 1
    /// naming the first entry that was tampered with.
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

pub async fn audit<R: Audit>(rota: &R, command: AuditCommand, out: &Printer) -> anyhow::Result<u8> {
    match command {
        AuditCommand::Verify => verify(rota, out).await,
        AuditCommand::List(args) => {
            let entries = all_entries(rota).await?;
            print_entries(out, entries, args.limit);
            Ok(0)
        }
    }
}

async fn verify<R: Audit>(rota: &R, out: &Printer) -> anyhow::Result<u8> {
    let checked = rota.verify_audit().await?;
    let entries = all_entries(rota).await?.len();
    let broken = (!checked.intact).then(|| {
        (
            checked.broken_entry.unwrap_or_default(),
            checked
                .problem
                .as_deref()
                .map_or_else(|| "broken".to_owned(), rota_ops::audit::short_problem),
        )
    });
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

/// Every entry, oldest first, page by page.
async fn all_entries<R: Audit>(rota: &R) -> anyhow::Result<Vec<AuditEntry>> {
    let mut entries: Vec<AuditEntry> = Vec::new();
    let mut after = 0;
    loop {
        let page = rota
            .list_audit(AfterQuery {
                after: Some(after),
                limit: Some(PAGE),
            })
            .await?;
        let done = page.items.len() < PAGE as usize || page.next_after <= after;
        after = page.next_after;
        entries.extend(page.items);
        if done {
            return Ok(entries);
        }
    }
}

fn print_entries(out: &Printer, mut entries: Vec<AuditEntry>, limit: Option<usize>) {
    if let Some(limit) = limit {
        entries.drain(..entries.len().saturating_sub(limit));
    }
    if out.is_json() {
        out.json(&Value::Array(entries.iter().map(entry_json).collect()));
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

/// The JSON of `rota audit list --output json`: the record, its instant as text.
fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "id": e.id,
        "at": e.at.to_string(),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "source": e.source,
        "result": e.result,
        "hash": e.hash,
    })
}
