//! `rota logs RUN [STEP] [-f]`, on the local store or a server.

use std::time::Duration;

use crate::EXIT_USAGE;
use crate::args::LogsArgs;
use crate::client::{Remote, seg};
use crate::follow::{self, Style, log_line};
use crate::home::Home;
use crate::output::{Printer, write_stdout};
use crate::runs_cmd::find;
use crate::view::{LogLineView, RunView, via_wire};

const PAGE: u32 = 5000;

pub async fn logs(home: &Home, args: LogsArgs, out: &Printer) -> anyhow::Result<u8> {
    let json = out.is_json();
    let store = home.open_store().await?;
    let Some(run) = find(&store, &args.run).await? else {
        return Ok(EXIT_USAGE);
    };
    if let Some(step) = &args.step
        && !run.steps.iter().any(|s| &s.step_id == step)
    {
        eprintln!("rota: run {} has no step {step:?}", run.id);
        return Ok(EXIT_USAGE);
    }
    let mut after = 0;
    loop {
        // Read the status before the lines, so lines written just before the run ended
        // are still printed by the final pass.
        let finished = match store.get_run(&run.id).await? {
            Some(current) => current.status.is_terminal(),
            None => true,
        };
        loop {
            let lines = store
                .logs(&run.id, args.step.as_deref(), after, PAGE)
                .await?;
            let Some(last) = lines.last() else { break };
            after = last.seq;
            let full = lines.len() >= PAGE as usize;
            let mut text = String::new();
            for line in lines {
                let line: LogLineView = via_wire(rota_ops::records::LogLine::from(line))?;
                text.push_str(&log_line(&line, args.timestamps, json));
            }
            write_stdout(&text);
            if !full {
                break;
            }
        }
        if !args.follow || finished {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `rota logs` against a server: the lines so far, then with `-f` new ones until the run
/// ends.
pub async fn logs_remote(remote: &Remote, args: LogsArgs, out: &Printer) -> anyhow::Result<u8> {
    let json = out.is_json();
    let run_id = crate::runs_cmd::resolve_remote_run(remote, &args.run).await?;
    let run: RunView = remote
        .get(&format!("/api/v1/runs/{}", seg(&run_id)), &[])
        .await?;
    if let Some(step) = &args.step
        && !run.steps.iter().any(|s| &s.id == step)
    {
        eprintln!("rota: run {} has no step {step:?}", run.id);
        return Ok(EXIT_USAGE);
    }
    let style = Style::Logs {
        timestamps: args.timestamps,
        json,
    };
    if args.follow {
        if !follow::stream_logs(remote, &run.id, args.step.as_deref(), args.timestamps, json)
            .await?
        {
            follow::follow(remote, &run.id, args.step.as_deref(), style, None, None).await?;
        }
        return Ok(0);
    }
    let mut after = 0;
    let lines = follow::fetch_lines(remote, &run.id, args.step.as_deref(), &mut after).await?;
    write_stdout(
        &lines
            .iter()
            .map(|l| log_line(l, args.timestamps, json))
            .collect::<String>(),
    );
    Ok(0)
}
