//! The runs operations of [`rota_ops::Rota`] over `/api/v1`.
//!
//! A run's log is followed over the server-sent events of
//! `GET /api/v1/runs/{id}/logs/stream`, resuming with `Last-Event-ID` after a dropped
//! connection; a server without that route is polled instead.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use rota_ops::OpsError;
use rota_ops::records::{
    CancelAccepted, CreateRun, DecideGate, Event, EventPage, LogLine, LogPage, LogQuery, RetryRun,
    Run, RunPage, RunQuery,
};
use rota_ops::service::Runs;
use rota_ops::service::plans::Verdict;
use rota_ops::service::runs::Followed;
use tokio::sync::mpsc;

use super::{PAGE, Remote, seg};

/// How long a run id is: a shorter one is a prefix to resolve.
const RUN_ID_LEN: usize = 26;
/// Most runs an ambiguous abbreviated id lists (as the local store does).
const AMBIGUOUS_SHOWN: u32 = 10;
/// Between two polls of a log, and before reconnecting a dropped stream.
const POLL: Duration = Duration::from_millis(300);

impl Runs for Remote {
    async fn list_runs(&self, query: RunQuery) -> Result<RunPage, OpsError> {
        Ok(self.get("/api/v1/runs", &query_pairs(&query)?).await?)
    }

    async fn get_run(&self, id: &str) -> Result<Run, OpsError> {
        Ok(self.get(&format!("/api/v1/runs/{}", seg(id)), &[]).await?)
    }

    /// A whole id is read as is; a prefix is looked up among the runs the token may list
    /// across namespaces. A prefix nothing matches, or that the token may not list, is
    /// read as given, so the server says what it thinks of it.
    async fn find_run(&self, id_or_prefix: &str) -> Result<Run, OpsError> {
        if id_or_prefix.len() >= RUN_ID_LEN {
            return self.get_run(id_or_prefix).await;
        }
        let Ok(prefix) = rota_ops::ids::RunId::try_from(id_or_prefix.to_owned()) else {
            return self.get_run(id_or_prefix).await;
        };
        let query = RunQuery {
            id_prefix: Some(prefix),
            limit: Some(AMBIGUOUS_SHOWN),
            ..RunQuery::default()
        };
        let Ok(page) = self.list_runs(query).await else {
            return self.get_run(id_or_prefix).await;
        };
        let mut runs = page.items;
        match runs.len() {
            0 => self.get_run(id_or_prefix).await,
            1 => Ok(runs.remove(0)),
            _ => {
                let mut candidates: Vec<String> = runs.into_iter().map(|run| run.id).collect();
                candidates.sort();
                Err(OpsError::Ambiguous {
                    prefix: id_or_prefix.to_owned(),
                    candidates,
                })
            }
        }
    }

    async fn run_logs(&self, id: &str, query: LogQuery) -> Result<LogPage, OpsError> {
        let path = format!("/api/v1/runs/{}/logs", seg(id));
        Ok(self.get(&path, &query_pairs(&query)?).await?)
    }

    async fn follow_logs(
        &self,
        id: &str,
        step: Option<String>,
        after: i64,
        to: mpsc::Sender<Followed>,
    ) -> Result<(), OpsError> {
        match stream_logs(self, id, step.as_deref(), after, &to).await? {
            Streamed::Done => Ok(()),
            Streamed::NoRoute => poll_logs(self, id, step, after, &to).await,
        }
    }

    async fn cancel_run(&self, id: &str) -> Result<CancelAccepted, OpsError> {
        let path = format!("/api/v1/runs/{}/cancel", seg(id));
        Ok(self
            .send(Method::POST, &path, &serde_json::json!({}))
            .await?)
    }

    async fn decide_gate(
        &self,
        id: &str,
        verdict: Verdict,
        decision: DecideGate,
    ) -> Result<Run, OpsError> {
        let path = format!("/api/v1/runs/{}/{}", seg(id), verdict.as_str());
        Ok(self.send(Method::POST, &path, &decision).await?)
    }

    async fn retry_run(&self, id: &str, how: RetryRun) -> Result<Run, OpsError> {
        let path = format!("/api/v1/runs/{}/retry", seg(id));
        Ok(self.send(Method::POST, &path, &how).await?)
    }

    async fn start_run(&self, namespace: &str, job: &str, run: CreateRun) -> Result<Run, OpsError> {
        let path = format!(
            "/api/v1/namespaces/{}/jobs/{}/runs",
            seg(namespace),
            seg(job)
        );
        Ok(self.send(Method::POST, &path, &run).await?)
    }

    async fn list_events(
        &self,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<EventPage, OpsError> {
        let mut query = Vec::new();
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        Ok(self.get("/api/v1/events", &query).await?)
    }

    /// Pages through `GET /api/v1/events` as the log grows (the first page is read before
    /// this returns, so a refusal is reported here).
    async fn follow_events(&self, after: i64) -> Result<mpsc::Receiver<Event>, OpsError> {
        let first = self.list_events(Some(after), Some(PAGE)).await?;
        let (to, from) = mpsc::channel(rota_ops::service::runs::FOLLOW_BUFFER);
        let remote = self.clone();
        tokio::spawn(async move {
            let mut page = first;
            loop {
                let after = page.next_after;
                let caught_up = page.items.len() < PAGE as usize;
                for event in page.items {
                    if to.send(event).await.is_err() {
                        return;
                    }
                }
                if caught_up {
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        () = to.closed() => return,
                    }
                }
                match remote.list_events(Some(after), Some(PAGE)).await {
                    Ok(next) => page = next,
                    Err(_) => return,
                }
            }
        });
        Ok(from)
    }
}

/// A query record as `(name, value)` pairs, absent fields left out.
fn query_pairs<Q: serde::Serialize>(query: &Q) -> Result<Vec<(&'static str, String)>, OpsError> {
    let value = serde_json::to_value(query).map_err(|e| OpsError::Remote {
        status: None,
        message: format!("cannot encode a query: {e}"),
    })?;
    let serde_json::Value::Object(fields) = value else {
        return Ok(Vec::new());
    };
    Ok(fields
        .into_iter()
        .filter_map(|(name, value)| {
            let text = match value {
                serde_json::Value::Null => return None,
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            Some((static_name(&name)?, text))
        })
        .collect())
}

/// The query parameter names the runs routes take.
fn static_name(name: &str) -> Option<&'static str> {
    [
        "namespace",
        "job",
        "status",
        "since",
        "until",
        "id_prefix",
        "limit",
        "cursor",
        "after",
        "step",
    ]
    .into_iter()
    .find(|known| *known == name)
}

/// How a log stream ended.
enum Streamed {
    /// At the run's end, or because nobody listens any more.
    Done,
    /// The server has no such route (an older server): poll instead.
    NoRoute,
}

/// Reads `GET /api/v1/runs/{id}/logs/stream` until its `end` event, reconnecting with
/// `Last-Event-ID` if the connection drops.
async fn stream_logs(
    remote: &Remote,
    run_id: &str,
    step: Option<&str>,
    after: i64,
    to: &mpsc::Sender<Followed>,
) -> Result<Streamed, OpsError> {
    use futures_util::StreamExt as _;
    let path = format!("/api/v1/runs/{}/logs/stream", seg(run_id));
    let mut query: Vec<(&str, String)> = step.map(|s| ("step", s.to_owned())).into_iter().collect();
    if after > 0 {
        query.push(("after", after.to_string()));
    }
    let mut last_id: Option<String> = None;
    loop {
        let response = match remote.stream(&path, &query, last_id.as_deref()).await {
            Ok(response) => response,
            // The run exists (the caller read it), so a 404 means the route does not.
            Err(failure) if failure.is(StatusCode::NOT_FOUND) && last_id.is_none() => {
                return Ok(Streamed::NoRoute);
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
                Err(error) => return Err(not_understood("log stream", error)),
            };
            match event.event.as_deref() {
                Some("end") => {
                    let _ = to.send(end_of(event.data.as_deref())).await;
                    return Ok(Streamed::Done);
                }
                None | Some("message") => {
                    // A block of only an `id` or `retry` carries no line.
                    let Some(data) = event.data else { continue };
                    let line: LogLine =
                        serde_json::from_str(&data).map_err(|e| not_understood("log event", e))?;
                    if to.send(Followed::Line(line)).await.is_err() {
                        return Ok(Streamed::Done);
                    }
                    if event.id.is_some() {
                        last_id = event.id;
                    }
                }
                Some(_) => {}
            }
        }
        // The connection closed before `end`: resume after the last line received.
        tokio::time::sleep(POLL).await;
    }
}

/// The `end` event's `{"status", "reason"}`.
fn end_of(data: Option<&str>) -> Followed {
    #[derive(serde::Deserialize, Default)]
    struct End {
        #[serde(default)]
        status: String,
        #[serde(default)]
        reason: Option<String>,
    }
    let end: End = data
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    Followed::End {
        status: end.status,
        reason: end.reason,
    }
}

/// Follows a log by polling the run and its lines, for a server without the stream route.
async fn poll_logs(
    remote: &Remote,
    id: &str,
    step: Option<String>,
    mut after: i64,
    to: &mpsc::Sender<Followed>,
) -> Result<(), OpsError> {
    loop {
        // The state before the lines: a run seen ended has committed every line.
        let run = remote.get_run(id).await?;
        loop {
            let query = LogQuery {
                after: Some(after),
                limit: Some(PAGE),
                step: step.clone(),
            };
            let page = remote.run_logs(id, query).await?;
            let full = page.items.len() >= PAGE as usize;
            after = page.next_after;
            for line in page.items {
                if to.send(Followed::Line(line)).await.is_err() {
                    return Ok(());
                }
            }
            if !full {
                break;
            }
        }
        if rota_core::model::RunStatus::parse(&run.status).is_none_or(|s| s.is_terminal()) {
            let _ = to
                .send(Followed::End {
                    status: run.status,
                    reason: run.reason,
                })
                .await;
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// An answer this client cannot read.
fn not_understood(what: &str, error: impl std::fmt::Display) -> OpsError {
    OpsError::Remote {
        status: None,
        message: format!("a {what} this rota does not understand: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "event: end\ndata: {\"status\":\"succeeded\",\"reason\":null}\n\n".to_owned(),
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
        let remote = Remote::new(&format!("http://{addr}"), None, None).expect("remote");
        let (to, mut from) = mpsc::channel(rota_ops::service::runs::FOLLOW_BUFFER);
        let streamed = stream_logs(&remote, "r1", None, 0, &to).await;
        assert!(matches!(streamed, Ok(Streamed::Done)), "the stream is read");
        let last_ids = server.join().expect("server thread");
        assert_eq!(last_ids, [None, Some("7".to_owned())]);
        assert!(matches!(from.recv().await, Some(Followed::Line(l)) if l.seq == 7));
        assert!(
            matches!(from.recv().await, Some(Followed::End { status, .. }) if status == "succeeded")
        );
    }

    #[test]
    fn queries_leave_absent_fields_out() {
        let query = LogQuery {
            after: Some(3),
            limit: None,
            step: Some("a b".into()),
        };
        let pairs = query_pairs(&query).expect("encodes");
        assert_eq!(
            pairs,
            [("after", "3".to_owned()), ("step", "a b".to_owned())]
        );
    }
}
