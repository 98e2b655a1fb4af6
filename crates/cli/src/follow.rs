//! Following a run until it ends: for `rota run` (of a run a server executes), the
//! starts and ends of its steps and their lines, printed as a run executed here prints
//! them; and the one format of a `rota logs` line.
//!
//! `rota run` polls the run's state and its lines ([`Runs::get_run`], [`Runs::run_logs`]);
//! the state is read before the lines, so the lines a step wrote before it ended are
//! printed before its end and before the loop stops.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::Job;
use rota_ops::records::{LogLine, LogQuery, Run};
use rota_ops::service::Runs;
use rota_ops::service::runs::MAX_PAGE;
use serde_json::{Value, json};

use crate::output;
use crate::view::run_ended;

/// Between two polls of a running run.
const POLL: Duration = Duration::from_millis(300);

/// One `rota logs` line: `[ts ]step mark text`, or with `json` the line's wire form as one
/// JSON object on one line (JSON Lines, so `-f` can stream it).
pub fn log_line(line: &LogLine, timestamps: bool, json: bool) -> String {
    if json {
        let value = json!({
            "seq": line.seq,
            "step_id": line.step_id,
            "attempt": line.attempt,
            "ts": line.ts.to_string(),
            "stream": line.stream,
            "text": line.text,
        });
        return format!("{value}\n");
    }
    let mark = match line.stream.as_str() {
        "stdout" => "|",
        "stderr" => "!",
        _ => "#",
    };
    let ts = if timestamps {
        format!("{} ", line.ts)
    } else {
        String::new()
    };
    format!("{ts}{} {mark} {}\n", line.step_id, line.text)
}

/// What each step runs, for the `▶` line of `rota run`: its command rendered with the
/// run's parameters as a plan renders it (secrets stay `{{ secrets.NAME }}`, never values;
/// what depends on other steps' outputs stays a template), as local mode shows it.
fn step_commands(definition: &Value, run: &Run) -> BTreeMap<String, String> {
    let definition = rota_ops::records::durations_from_text(definition.clone());
    let Ok(job) = serde_json::from_value::<Job>(definition) else {
        return BTreeMap::new();
    };
    let params: BTreeMap<String, Value> = match &run.params {
        Value::Object(map) => map.clone().into_iter().collect(),
        _ => BTreeMap::new(),
    };
    let plan = rota_core::plan::PlanContent::resolve(
        &run.namespace,
        &job,
        run.job_revision,
        &params,
        |_| None,
    );
    plan.steps
        .into_iter()
        .map(|step| {
            let text = rota_core::kinds::start_line(&step.kind, &step.resolved["kind"][&step.kind]);
            (step.id, text)
        })
        .collect()
}

/// Follows the run `run_id` until it ends and returns its final state, printing its
/// steps' starts, lines and ends (on stderr with `to_stderr`: stdout carries JSON).
/// `definition` (the job's) names what each step runs. `created` is the run as it was
/// created: steps already ended there (those a retry took over from the original) are
/// not shown as starting or ending. The first Ctrl-C asks to cancel the run, which is then
/// followed to its end.
pub async fn follow<R: Runs>(
    rota: &R,
    run_id: &str,
    to_stderr: bool,
    definition: Option<&Value>,
    created: Option<&Run>,
) -> anyhow::Result<Run> {
    // Rendered with the run's parameters, once the run is read.
    let mut commands: Option<BTreeMap<String, String>> = None;
    let mut after = 0;
    let mut started: BTreeMap<String, u32> = BTreeMap::new();
    let mut ended: BTreeMap<String, u32> = BTreeMap::new();
    for step in created.map_or(&[][..], |run| &run.steps) {
        if !matches!(step.status.as_str(), "pending" | "running") {
            started.insert(step.id.clone(), step.attempt.max(1));
            ended.insert(step.id.clone(), step.attempt.max(1));
        }
    }
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut cancel_sent = false;
    loop {
        let run = rota.get_run(run_id).await?;
        let lines = lines_after(rota, run_id, &mut after).await?;
        let commands = commands.get_or_insert_with(|| {
            definition
                .map(|d| step_commands(d, &run))
                .unwrap_or_default()
        });
        let text = run_text(&run, &lines, commands, &mut started, &mut ended);
        if to_stderr {
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            output::write_stdout(&text);
        }
        // A run waiting at its gates stops being followed: it runs again only after a
        // decision.
        if run_ended(&run) || run.status == "awaiting_approval" {
            return Ok(run);
        }
        let interrupted = match interrupt.as_mut() {
            Some(signal) => tokio::select! {
                _ = tokio::time::sleep(POLL) => false,
                _ = signal.recv() => true,
            },
            None => {
                tokio::time::sleep(POLL).await;
                false
            }
        };
        if interrupted && !cancel_sent {
            cancel_sent = true;
            eprintln!("rota: SIGINT received, asking the server to cancel run {run_id}");
            if let Err(error) = rota.cancel_run(run_id).await {
                eprintln!("rota: {error}");
            }
        }
    }
}

/// The text of one poll in `rota run` style: step starts, lines and step ends, in the
/// order they happened (a step's start precedes its lines, which precede its end).
fn run_text(
    run: &Run,
    lines: &[LogLine],
    commands: &BTreeMap<String, String>,
    started: &mut BTreeMap<String, u32>,
    ended: &mut BTreeMap<String, u32>,
) -> String {
    // (when, rank within one instant, text)
    let mut items: Vec<(Timestamp, u8, String)> = Vec::new();
    let mut start = |step_id: &str, attempt: u32, at: Timestamp, items: &mut Vec<_>| {
        if attempt == 0 || started.get(step_id).is_some_and(|&a| a >= attempt) {
            return;
        }
        started.insert(step_id.to_owned(), attempt);
        let command = commands.get(step_id).map(String::as_str).unwrap_or("");
        let text = if attempt > 1 {
            format!("{step_id} | ▶ attempt {attempt}: {command}\n")
        } else {
            format!("{step_id} | ▶ {command}\n")
        };
        items.push((at, 0, text));
    };
    for line in lines {
        start(&line.step_id, line.attempt, line.ts, &mut items);
        let text = match line.stream.as_str() {
            "stdout" => format!("{} | {}\n", line.step_id, line.text),
            "stderr" => format!("{} ! {}\n", line.step_id, line.text),
            _ => format!("{} ! [rota] {}\n", line.step_id, line.text),
        };
        items.push((line.ts, 1, text));
    }
    for step in &run.steps {
        if let Some(at) = step.started_at {
            start(&step.id, step.attempt, at, &mut items);
        }
        let terminal = !matches!(step.status.as_str(), "pending" | "running");
        let attempt = step.attempt.max(1);
        if terminal && ended.get(&step.id).is_none_or(|&a| a < attempt) {
            ended.insert(step.id.clone(), attempt);
            let at = step.finished_at.unwrap_or(run.created_at);
            let text = match &step.reason {
                Some(reason) => format!("{} | ■ {} ({reason})\n", step.id, step.status),
                None => format!("{} | ■ {}\n", step.id, step.status),
            };
            items.push((at, 2, text));
        }
    }
    items.sort_by_key(|(at, rank, _)| (*at, *rank));
    items.into_iter().map(|(_, _, text)| text).collect()
}

/// Every line after `after` (which is advanced), page by page.
async fn lines_after<R: Runs>(
    rota: &R,
    run_id: &str,
    after: &mut i64,
) -> anyhow::Result<Vec<LogLine>> {
    let mut all = Vec::new();
    loop {
        let query = LogQuery {
            after: Some(*after),
            limit: Some(MAX_PAGE),
            step: None,
        };
        let page = rota.run_logs(run_id, query).await?;
        let full = page.items.len() >= MAX_PAGE as usize;
        *after = page.next_after;
        all.extend(page.items);
        if !full {
            return Ok(all);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    /// What `stream_logs` relies on from the parser: events split at blank lines whatever
    /// the chunking and line endings, keep-alive comments yielding nothing.
    #[tokio::test]
    async fn events_come_whole_from_split_chunks() {
        let chunks = [
            &b"id: 1\r\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\nevent: end\ndata: x\n\nid: 2\nda"[..],
            b"ta: two\ndata: lines\n\n",
        ];
        let body = futures_util::stream::iter(chunks.map(|c| Ok::<_, std::io::Error>(bytes_of(c))));
        let events: Vec<_> = sse_stream::SseByteStream::new(body)
            .map(|e| e.expect("event"))
            .collect()
            .await;
        let fields: Vec<_> = events
            .iter()
            .map(|e| (e.id.as_deref(), e.event.as_deref(), e.data.as_deref()))
            .collect();
        assert_eq!(
            fields,
            [
                (Some("1"), None, Some("{\"a\":1}")),
                (None, Some("end"), Some("x")),
                (Some("2"), None, Some("two\nlines")),
            ]
        );
    }

    fn bytes_of(chunk: &[u8]) -> std::io::Cursor<Vec<u8>> {
        std::io::Cursor::new(chunk.to_vec())
    }
}
