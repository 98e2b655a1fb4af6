//! `rota prune` and `rota namespaces set NS --retention D`: delete finished runs older than a
//! duration now, or have `rota serve` do it for a namespace at start and hourly. Written
//! once over [`Retention`], for this machine's store or a server alike.

use clap::{Args, Subcommand};
use rota_ops::records::{PruneReport, PruneRequest, SetRetention};
use rota_ops::service::Retention;
use serde_json::json;

use crate::output::Printer;

/// `rota prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete runs that finished longer ago than this (`30d`, `2w`, `12h`), with their
    /// steps, attempts, logs, events and notifications. Queued and running runs stay.
    #[arg(long, value_name = "DURATION")]
    pub older_than: String,
    /// Only runs of this namespace (default: every namespace).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Say what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete audit entries older than the cut-off (every namespace only). The audit
    /// chain is checkpointed, so `rota audit verify` still checks the entries kept.
    #[arg(long, conflicts_with = "namespace")]
    pub audit: bool,
}

/// `rota namespaces …`.
#[derive(Debug, Args)]
pub struct NamespacesArgs {
    #[command(subcommand)]
    pub command: Option<NamespacesCommand>,
}

/// `rota namespaces set`.
#[derive(Debug, Subcommand)]
pub enum NamespacesCommand {
    /// Set how long a namespace keeps its finished runs; `rota serve` prunes older ones at
    /// start and hourly.
    Set {
        /// The namespace.
        namespace: String,
        /// A duration (`30d`, `2w`, `12h`), or `none` to keep runs forever.
        #[arg(long, value_name = "DURATION|none")]
        retention: String,
    },
}

pub async fn prune<R: Retention>(rota: &R, args: PruneArgs, out: &Printer) -> anyhow::Result<u8> {
    let request = PruneRequest {
        older_than: args.older_than,
        namespace: args.namespace,
        dry_run: args.dry_run,
        audit: args.audit,
    };
    let report = rota.prune(request).await?;
    print_report(out, &report);
    Ok(0)
}

fn print_report(out: &Printer, report: &PruneReport) {
    if out.is_json() {
        out.json(&json!({
            "cutoff": report.cutoff.to_string(),
            "namespace": report.namespace,
            "dry_run": report.dry_run,
            "runs": report.runs,
            "step_runs": report.step_runs,
            "attempts": report.attempts,
            "log_lines": report.log_lines,
            "log_bytes": report.log_bytes,
            "events": report.events,
            "notifications": report.notifications,
            "artifacts": report.artifacts,
            "audit_entries": report.audit_entries,
        }));
        return;
    }
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let scope = report.namespace.as_deref().map_or_else(
        || "every namespace".to_owned(),
        |ns| format!("namespace {ns}"),
    );
    out.text(&format!(
        "{verb} {} runs of {scope} finished before {}: {} step runs, {} attempts, \
         {} log lines ({}), {} events, {} notifications, {} artifacts",
        report.runs,
        report.cutoff,
        report.step_runs,
        report.attempts,
        report.log_lines,
        bytes(report.log_bytes),
        report.events,
        report.notifications,
        report.artifacts,
    ));
    if report.audit_entries > 0 {
        out.text(&format!(", {} audit entries", report.audit_entries));
    }
    out.text("\n");
}

/// `1234 B`, `12.1 KiB`, `3.4 MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

pub async fn set_retention<R: Retention>(
    rota: &R,
    namespace: String,
    retention: String,
    out: &Printer,
) -> anyhow::Result<u8> {
    let keep = match retention.trim() {
        "none" | "forever" => None,
        text => Some(text.to_owned()),
    };
    let set = rota
        .set_retention(&namespace, SetRetention { retention: keep })
        .await?;
    if out.is_json() {
        out.json(&json!({ "namespace": set.namespace, "retention": set.retention }));
    } else {
        match &set.retention {
            Some(keep) => out.text(&format!(
                "namespace {}: finished runs are kept {keep}; rota serve prunes older ones\n",
                set.namespace
            )),
            None => out.text(&format!(
                "namespace {}: finished runs are kept forever\n",
                set.namespace
            )),
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(super::bytes(0), "0 B");
        assert_eq!(super::bytes(1023), "1023 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
