//! Fills a store with many finished runs, for benchmarks (`bench/api_latency/`).
//!
//! ```sh
//! cargo run --release -p rota-store --example seed_runs -- \
//!     --home /tmp/rota-bench --runs 1000000 --steps 10
//! cargo run --release -p rota-store --example seed_runs -- \
//!     --store postgres://rota@127.0.0.1:5432/bench --runs 1000 --lines 3
//! ```
//!
//! Every run goes through the store's real write path, [`Store::record`]: created, started,
//! each step started and finished, run finished, exactly the events the engine records,
//! `--batch` runs per transaction. Runs are spread over `--jobs` jobs of the `default`
//! namespace, one second apart, ending now; every tenth run fails at its last step; each step
//! prints `--lines` log lines (none by default). `--store URL` seeds a database by URL (e.g.
//! PostgreSQL) instead of the SQLite file in `--home`. Ids are
//! time-ordered like the engine's (26 characters of lower-case Crockford base32), with
//! deterministic low bits so that two seedings give the same ids.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use rota_core::model::{RunStatus, StepStatus};
use rota_store::{LogStream, NewJobRevision, NewRun, Owner, RunEvent, Store};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

struct Args {
    home: PathBuf,
    store: Option<String>,
    lines: u64,
    runs: u64,
    steps: usize,
    batch: u64,
    jobs: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        home: PathBuf::new(),
        store: None,
        lines: 0,
        runs: 1_000_000,
        steps: 10,
        batch: 2_000,
        jobs: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: {value:?} is not a positive number"))
        };
        match flag.as_str() {
            "--home" => args.home = PathBuf::from(&value),
            "--store" => args.store = Some(value),
            "--lines" => {
                args.lines = value
                    .parse()
                    .map_err(|_| format!("--lines: {value:?} is not a number"))?
            }
            "--runs" => args.runs = number()?,
            "--steps" => args.steps = usize::try_from(number()?).map_err(|e| e.to_string())?,
            "--batch" => args.batch = number()?,
            "--jobs" => args.jobs = number()?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.home.as_os_str().is_empty() && args.store.is_none() {
        return Err("--home DIR or --store URL is required".to_owned());
    }
    Ok(args)
}

/// A time-ordered id: 48 bits of milliseconds, then 80 bits mixed from the run's number.
fn run_id(created: Timestamp, n: u64) -> String {
    let millis = created.as_millisecond().max(0) as u128;
    let mut x = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let low = (u128::from(x) << 16 | u128::from(n & 0xffff)) & ((1u128 << 80) - 1);
    let mut value = (millis << 80) | low;
    let mut id = [0u8; 26];
    for slot in id.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8_lossy(&id).into_owned()
}

/// The events of one whole run, from creation to its end.
fn run_events(
    n: u64,
    created: Timestamp,
    job: &str,
    steps: &[String],
    owner: &Owner,
    lines: u64,
) -> Vec<RunEvent> {
    let id = run_id(created, n);
    let fails = n % 10 == 9;
    let mut at = created + SignedDuration::from_millis(5);
    let mut events = Vec::with_capacity(3 + 2 * steps.len());
    events.push(RunEvent::RunCreated {
        run: NewRun {
            id: id.clone(),
            namespace: "default".to_owned(),
            job_id: job.to_owned(),
            job_revision: 1,
            params: serde_json::json!({ "day": "2026-11-23" }),
            dry_run: false,
            trigger: "cron".to_owned(),
            started_by: None,
            scheduled_at: Some(created),
            created_at: created,
            owner: owner.clone(),
            steps: steps.to_vec(),
            parent: None,
        },
    });
    events.push(RunEvent::RunStarted {
        run_id: id.clone(),
        at,
    });
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        events.push(RunEvent::StepStarted {
            run_id: id.clone(),
            step_id: step.clone(),
            attempt: 1,
            at,
            pgid: Some(40_000 + i as i32),
        });
        for line in 0..lines {
            events.push(RunEvent::Log {
                run_id: id.clone(),
                step_id: step.clone(),
                attempt: 1,
                ts: at,
                stream: LogStream::Stdout,
                text: format!("{step}: line {line} of the step's output, as a step prints it"),
            });
        }
        at += SignedDuration::from_millis(20);
        let failed = fails && last;
        events.push(RunEvent::StepFinished {
            run_id: id.clone(),
            step_id: step.clone(),
            attempt: 1,
            status: if failed {
                StepStatus::Failed
            } else {
                StepStatus::Succeeded
            },
            exit_code: Some(i32::from(failed)),
            reason: failed.then(|| "exited with code 1".to_owned()),
            outputs: BTreeMap::new(),
            at,
        });
    }
    events.push(RunEvent::RunFinished {
        run_id: id,
        status: if fails {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        },
        reason: fails.then(|| format!("step {} failed", steps.len())),
        at,
    });
    events
}

async fn seed(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let store = match &args.store {
        Some(url) => Store::open_url(url).await?,
        None => Store::open(&args.home).await?,
    };
    let steps: Vec<String> = (1..=args.steps).map(|i| format!("step{i:02}")).collect();
    let jobs: Vec<String> = (1..=args.jobs).map(|j| format!("job{j:03}")).collect();
    let first = Timestamp::now() - SignedDuration::from_secs(i64::try_from(args.runs)?);
    for job in &jobs {
        let source = format!(
            "id: {job}\nsteps:\n{}",
            steps
                .iter()
                .map(|s| format!("  - id: {s}\n    sh: \"true\"\n"))
                .collect::<String>()
        );
        let definition = serde_json::json!({
            "id": job,
            "steps": steps.iter().map(|s| serde_json::json!({"id": s, "sh": "true"}))
                .collect::<Vec<_>>(),
        });
        store
            .save_job_revision(&NewJobRevision::new(
                "default", job, source, definition, first,
            ))
            .await?;
    }
    let owner = Owner {
        host: "bench".to_owned(),
        pid: std::process::id(),
        start_token: "seed".to_owned(),
    };
    let started = Instant::now();
    let mut n = 0;
    while n < args.runs {
        let end = (n + args.batch).min(args.runs);
        let mut batch = Vec::new();
        for i in n..end {
            let created = first + SignedDuration::from_secs(i64::try_from(i)?);
            let job = &jobs[usize::try_from(i % args.jobs)?];
            batch.extend(run_events(i, created, job, &steps, &owner, args.lines));
        }
        store.record(&batch).await?;
        n = end;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{n} runs in {secs:.1} s ({:.0} runs/s)",
            n as f64 / secs.max(1e-9)
        );
    }
    store.close().await;
    println!(
        "seeded {} runs of {} steps in {:.1} s",
        args.runs,
        args.steps,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("seed_runs: {e}");
            eprintln!(
                "usage: seed_runs (--home DIR | --store URL) [--runs N] [--steps N] [--batch N] \
                 [--jobs N] [--lines N]"
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("seed_runs: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(seed(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seed_runs: {e}");
            ExitCode::FAILURE
        }
    }
}
