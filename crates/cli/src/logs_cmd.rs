//! `rota logs RUN [STEP] [-f]`.

use std::time::Duration;

use rota_store::LogStream;

use crate::EXIT_USAGE;
use crate::args::LogsArgs;
use crate::home::Home;
use crate::output::write_stdout;
use crate::runs_cmd::find;

const PAGE: u32 = 5000;

pub async fn logs(home: &Home, args: LogsArgs) -> anyhow::Result<u8> {
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
            let mut text = String::new();
            for line in &lines {
                if args.timestamps {
                    text.push_str(&format!("{} ", line.ts));
                }
                let mark = match line.stream {
                    LogStream::Stdout => "|",
                    LogStream::Stderr => "!",
                    LogStream::System => "#",
                };
                text.push_str(&format!("{} {mark} {}\n", line.step_id, line.text));
            }
            write_stdout(&text);
            if lines.len() < PAGE as usize {
                break;
            }
        }
        if !args.follow || finished {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
