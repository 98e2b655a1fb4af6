//! Following a run on a server until it ends: its log lines, and for `rota run` the
//! starts and ends of its steps, printed as local mode prints them.
//!
//! `rota run` polls the run's state and its lines (`GET /api/v1/runs/{id}` and
//! `GET /api/v1/runs/{id}/logs?after=`); the state is read before the lines, so the lines a
//! step wrote before it ended are printed before its end and before the loop stops.
//! `rota logs -f` reads the server-sent events of `GET /api/v1/runs/{id}/logs/stream`,
//! resuming with `Last-Event-ID` after a dropped connection.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::Method;
use rota_core::model::Job;
use serde_json::{Value, json};

use crate::client::{Remote, seg};
use crate::output;
use crate::view::{LogLineView, LogPageView, RunView};

/// Between two polls of a running run.
const POLL: Duration = Duration::from_millis(300);
/// Log lines per request (the API's largest page).
const PAGE: u32 = 500;

/// How lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Like `rota run`: `step | line`, `step ! line`, step starts and ends; on stderr when
    /// stdout carries JSON.
    Run {
        /// Live lines go to stderr (stdout carries JSON).
        to_stderr: bool,
    },
    /// Like `rota logs`: `step | line`, `step ! line`, `step # line`, optionally timestamped;
    /// with `--output json`, one JSON object per line.
    Logs {
        /// Prefix each line with its timestamp.
        timestamps: bool,
        /// One JSON object per line (JSON Lines) instead of text.
        json: bool,
    },
}

/// One `rota logs` line: `[ts ]step mark text`, or with `json` the line's wire form as one
/// JSON object on one line (JSON Lines, so `-f` can stream it).
pub fn log_line(line: &LogLineView, timestamps: bool, json: bool) -> String {
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
fn step_commands(definition: &Value, run: &RunView) -> BTreeMap<String, String> {
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

/// Follows the run `run_id` until it ends and returns its final state. With `step`, only
/// that step's lines. `definition` (the job's) names what each step runs. `created` is
/// the run as it was created: steps already ended there (those a retry took over from
/// the original) are not shown as starting or ending. In `Run` style, the first Ctrl-C
/// asks the server to cancel the run, which is then followed to its end.
pub async fn follow(
    remote: &Remote,
    run_id: &str,
    step: Option<&str>,
    style: Style,
    definition: Option<&Value>,
    created: Option<&RunView>,
) -> anyhow::Result<RunView> {
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
    let mut interrupt = match style {
        Style::Run { .. } => {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok()
        }
        Style::Logs { .. } => None,
    };
    let mut cancel_sent = false;
    let path = format!("/api/v1/runs/{}", seg(run_id));
    loop {
        let run: RunView = remote.get(&path, &[]).await?;
        let lines = fetch_lines(remote, run_id, step, &mut after).await?;
        let commands = commands.get_or_insert_with(|| {
            definition
                .map(|d| step_commands(d, &run))
                .unwrap_or_default()
        });
        let text = match style {
            Style::Run { .. } => run_text(&run, &lines, commands, &mut started, &mut ended),
            Style::Logs { timestamps, json } => lines
                .iter()
                .map(|l| log_line(l, timestamps, json))
                .collect(),
        };
        match style {
            Style::Run { to_stderr: true } => {
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
            _ => output::write_stdout(&text),
        }
        if run.is_terminal() {
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
            let cancel = format!("{path}/cancel");
            if let Err(error) = remote
                .send::<_, Value>(Method::POST, &cancel, &json!({}))
                .await
            {
                eprintln!("rota: {error}");
            }
        }
    }
}

/// The text of one poll in `rota run` style: step starts, lines and step ends, in the
/// order they happened (a step's start precedes its lines, which precede its end).
fn run_text(
    run: &RunView,
    lines: &[LogLineView],
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

/// `rota logs -f` over `GET /api/v1/runs/{id}/logs/stream`: prints each line as it comes
/// until the `end` event, reconnecting with `Last-Event-ID` if the connection drops.
/// `Ok(false)` when the server has no such route (an older server): poll instead.
pub async fn stream_logs(
    remote: &Remote,
    run_id: &str,
    step: Option<&str>,
    timestamps: bool,
    json: bool,
) -> anyhow::Result<bool> {
    use futures_util::StreamExt as _;
    let path = format!("/api/v1/runs/{}/logs/stream", seg(run_id));
    let query: Vec<(&str, String)> = step.map(|s| ("step", s.to_owned())).into_iter().collect();
    let mut last_id: Option<String> = None;
    loop {
        let response = match remote.stream(&path, &query, last_id.as_deref()).await {
            Ok(response) => response,
            // The run exists (the caller read it), so a 404 means the route does not.
            Err(failure) if failure.is(reqwest::StatusCode::NOT_FOUND) && last_id.is_none() => {
                return Ok(false);
            }
            Err(failure) => return Err(failure.into()),
        };
        // sse-stream splits the body into events (any line ending, comments and
        // keep-alives skipped); each block comes with the fields it has.
        let mut events = sse_stream::SseByteStream::new(response.bytes_stream());
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                // The connection dropped: reconnect below.
                Err(sse_stream::Error::Body(_)) => break,
                Err(error) => {
                    return Err(anyhow::anyhow!(
                        "a log stream this rota does not understand: {error}"
                    ));
                }
            };
            match event.event.as_deref() {
                Some("end") => return Ok(true),
                None | Some("message") => {
                    // A block of only an `id` or `retry` carries no line.
                    let Some(data) = event.data else { continue };
                    let line: LogLineView = serde_json::from_str(&data).map_err(|e| {
                        anyhow::anyhow!("a log event this rota does not understand: {e}")
                    })?;
                    output::write_stdout(&log_line(&line, timestamps, json));
                    if event.id.is_some() {
                        last_id = event.id;
                    }
                }
                Some(_) => {}
            }
        }
        // The connection closed before `end`: resume after the last line printed.
        tokio::time::sleep(POLL).await;
    }
}

/// Every line after `after` (which is advanced), page by page.
pub async fn fetch_lines(
    remote: &Remote,
    run_id: &str,
    step: Option<&str>,
    after: &mut i64,
) -> anyhow::Result<Vec<LogLineView>> {
    let path = format!("/api/v1/runs/{}/logs", seg(run_id));
    let mut all = Vec::new();
    loop {
        let mut query = vec![("after", after.to_string()), ("limit", PAGE.to_string())];
        if let Some(step) = step {
            query.push(("step", step.to_owned()));
        }
        let page: LogPageView = remote.get(&path, &query).await?;
        let full = page.items.len() >= PAGE as usize;
        if let Some(last) = page.items.last() {
            *after = last.seq;
        }
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

    /// A stream that drops is resumed with `Last-Event-ID` set to the last line's id; the
    /// `end` event stops it.
    #[tokio::test]
    async fn a_dropped_stream_resumes_after_the_last_line() {
        use std::io::{BufRead as _, BufReader, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let line = r#"{"seq":7,"step_id":"a","attempt":1,"ts":"2026-01-01T00:00:00Z","stream":"stdout","text":"hi"}"#;
        let bodies = [
            format!(": keep-alive\r\n\r\nid: 7\r\ndata: {line}\r\n\r\n"),
            "event: end\ndata: {}\n\n".to_owned(),
        ];
        let server = std::thread::spawn(move || {
            let mut last_ids = Vec::new();
            for body in bodies {
                let (mut stream, _) = listener.accept().expect("accept");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut last_id = None;
                let mut request_line = String::new();
                reader
                    .read_line(&mut request_line)
                    .expect("read the request");
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).expect("read a header");
                    let Some((name, value)) = header.trim_end().split_once(": ") else {
                        break;
                    };
                    if name.eq_ignore_ascii_case("last-event-id") {
                        last_id = Some(value.to_owned());
                    }
                }
                last_ids.push(last_id);
                // No length: the body ends when the connection closes, as a dropped one does.
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                     connection: close\r\n\r\n{body}"
                )
                .expect("answer");
            }
            last_ids
        });
        let remote = crate::client::Remote::new(&format!("http://{addr}"), None).expect("remote");
        let streamed = super::stream_logs(&remote, "r1", None, false, false).await;
        assert!(streamed.expect("the stream is read"), "the route exists");
        let last_ids = server.join().expect("server thread");
        assert_eq!(last_ids, [None, Some("7".to_owned())]);
    }

    fn bytes_of(chunk: &[u8]) -> std::io::Cursor<Vec<u8>> {
        std::io::Cursor::new(chunk.to_vec())
    }
}
