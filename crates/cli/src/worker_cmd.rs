//! `rota worker` (run step attempts a server hands out) and `rota status` (the cluster).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rota_ops::records::ClusterStatus;
use rota_ops::service::Workers;
use rota_ops::worker::{WorkerConfig, new_worker_id, run_worker};
use serde_json::json;

use crate::client::Remote;
use crate::output::Printer;

/// `rota worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// A label this worker carries (repeatable); steps choose workers with
    /// `runs_on: {KEY: VALUE}`.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// How many step attempts run at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub slots: u32,
    /// The worker's name in `rota status` (default: the host's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Where each attempt gets a fresh working directory (default: `$ROTA_HOME/worker`).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// On SIGTERM or SIGINT, seconds running attempts may take before they are handed back
    /// to the server (which retries them per their step's retry policy).
    #[arg(long, default_value_t = 30)]
    pub grace: u64,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    if !rota_core::model::is_label(key) {
        return Err(format!(
            "invalid label name {key:?}: expected 1–63 letters, digits, `_`, `-` and `.`"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Runs the worker against `server` until SIGTERM or SIGINT.
pub async fn worker(server: Remote, home: PathBuf, args: WorkerArgs) -> anyhow::Result<u8> {
    let id = new_worker_id();
    let name = args.name.unwrap_or_else(rota_ops::host::host_name);
    let labels: BTreeMap<String, String> = args.labels.into_iter().collect();
    let work_dir = args.work_dir.unwrap_or_else(|| home.join("worker"));
    rota_ops::host::protect_home(&home)
        .with_context(|| format!("cannot create {}", home.display()))?;
    let config = WorkerConfig {
        id: id.clone(),
        name: name.clone(),
        labels,
        slots: args.slots,
        work_dir,
        grace: Duration::from_secs(args.grace),
        guardian: rota_ops::host::spawn_guardian(),
    };
    eprintln!(
        "rota worker: {name} ({id}) with {} slot(s), labels {:?}",
        config.slots, config.labels
    );
    run_worker(server, config, crate::serve_cmd::shutdown_signal()).await?;
    eprintln!("rota worker: stopped");
    Ok(0)
}

/// `rota status`: the servers, which one schedules, the workers.
pub async fn status<R: Workers>(rota: &R, out: &Printer) -> anyhow::Result<u8> {
    let status = rota.cluster_status().await?;
    if out.is_json() {
        out.json(&json!(status));
        return Ok(0);
    }
    print_status(out, &status);
    Ok(0)
}

fn print_status(out: &Printer, status: &ClusterStatus) {
    println!(
        "scheduler: {}",
        status
            .scheduler
            .as_deref()
            .unwrap_or("(none holds the lease)")
    );
    let rows: Vec<Vec<String>> = status
        .servers
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.host.clone(),
                s.listen.clone(),
                if s.scheduler { "yes" } else { "" }.to_owned(),
                s.last_heartbeat.to_string(),
            ]
        })
        .collect();
    println!();
    out.table(
        &["SERVER", "HOST", "LISTEN", "SCHEDULES", "LAST HEARTBEAT"],
        &rows,
    );
    let rows: Vec<Vec<String>> = status
        .workers
        .iter()
        .map(|w| {
            let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                w.name.clone(),
                labels.join(","),
                format!("{}/{}", w.busy, w.slots),
                w.leases.to_string(),
                w.last_heartbeat.to_string(),
            ]
        })
        .collect();
    println!();
    out.table(
        &["WORKER", "LABELS", "BUSY", "LEASES", "LAST HEARTBEAT"],
        &rows,
    );
}
