//! `rota logs RUN [STEP] [-f]`, written once over [`Runs`]: the lines so far, page by
//! page, or with `-f` followed live until the run ends (the store polled locally, the
//! server's event stream remotely).

use rota_ops::records::LogQuery;
use rota_ops::service::Runs;
use rota_ops::service::runs::{Followed, MAX_PAGE};

use crate::EXIT_USAGE;
use crate::args::LogsArgs;
use crate::follow::log_line;
use crate::output::{Printer, write_stdout};
use crate::runs_cmd::find;

pub async fn logs<R: Runs>(rota: &R, args: LogsArgs, out: &Printer) -> anyhow::Result<u8> {
    let json = out.is_json();
    let Some(run) = find(rota, &args.run).await? else {
        return Ok(EXIT_USAGE);
    };
    if let Some(step) = &args.step
        && !run.steps.iter().any(|s| &s.id == step)
    {
        eprintln!("rota: run {} has no step {step:?}", run.id);
        return Ok(EXIT_USAGE);
    }
    if args.follow {
        let (to, mut from) = tokio::sync::mpsc::channel(rota_ops::service::runs::FOLLOW_BUFFER);
        let follow = rota.follow_logs(&run.id, args.step.clone(), 0, to);
        let print = async {
            while let Some(followed) = from.recv().await {
                if let Followed::Line(line) = followed {
                    write_stdout(&log_line(&line, args.timestamps, json));
                }
            }
        };
        let (followed, ()) = tokio::join!(follow, print);
        followed?;
        return Ok(0);
    }
    let mut after = 0;
    loop {
        let query = LogQuery {
            after: Some(after),
            limit: Some(MAX_PAGE),
            step: args.step.clone(),
        };
        let page = rota.run_logs(&run.id, query).await?;
        let full = page.items.len() >= MAX_PAGE as usize;
        after = page.next_after;
        let text: String = page
            .items
            .iter()
            .map(|l| log_line(l, args.timestamps, json))
            .collect();
        write_stdout(&text);
        if !full {
            return Ok(0);
        }
    }
}
