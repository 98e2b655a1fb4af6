//! The `check:` step kind: a PromQL instant query evaluated every `every` against a
//! Prometheus-compatible HTTP API, whose value must stay within thresholds over `for`.
//!
//! Like an http step it starts no process: each evaluation is a `GET <base>/api/v1/query`
//! sent with the http steps' shared client, and the whole loop (requests and the waits
//! between them) is raced against the step's stop and its `timeout` ([`crate::step::race`]).
//! Each evaluation logs one line through the step's redactor, e.g.
//! `check rate(http_5xx[5m]) = 0.003 (below 0.01: ok, held 45s of 2m)`. In a vector result
//! every series must satisfy the thresholds; the line and the failure reason name the worst
//! one with its labels. Request headers are never logged.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use rota_core::kinds::check::{CheckStep, NoData};
use rota_core::model::{Step, StepStatus};
use rota_core::template::Context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::http::{client, describe_error, read_capped, render_headers};
use super::{Executor, ResolveCx};
use crate::process::Stream;
use crate::run::{Shared, humantime};
use crate::step::{
    Attempt, AttemptCx, Interrupted, Resolved, Work, log_redacted, race, render_text,
    stopped_reason, stopped_status,
};

pub(crate) struct Check;

impl Executor for Check {
    fn name(&self) -> &'static str {
        "check"
    }

    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String> {
        // Like an http step: a request, no process, no shell command for dry runs.
        let check: CheckStep = r.step.kind.decode()?;
        let work = resolve(&check, r.step.timeout, r.ctx)?;
        let display = r.shared.redactor.redact(&work.display()).into_owned();
        Ok(Resolved::work_or_echo(
            Box::new(work),
            display,
            r.dry_run,
            "would check",
        ))
    }
}

impl Work for CheckWork {
    fn run<'a>(
        self: Box<Self>,
        at: AttemptCx<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Attempt> + Send + 'a>> {
        Box::pin(async move {
            let result = run(at.shared, at.step, at.attempt_no, *self, at.stop).await;
            Attempt {
                status: result.status,
                exit_code: None,
                outputs: result.outputs,
                reason: result.reason,
            }
        })
    }
}

/// The largest API response read; a query whose answer is longer fails (narrow it).
const RESPONSE_CAP: usize = 4 * 1024 * 1024;

/// A check with its templates rendered, ready to evaluate.
pub(crate) struct CheckWork {
    /// The base URL as rendered, for display.
    base: String,
    /// `<base>/api/v1/query?query=…`.
    url: reqwest::Url,
    query: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The thresholds and timing, as the job file says them.
    spec: CheckStep,
    timeout: Option<Duration>,
}

impl CheckWork {
    /// `<query> against <base>`, before redaction.
    pub(crate) fn display(&self) -> String {
        format!("{} against {}", self.query, self.base)
    }
}

/// How the attempt ended.
pub(crate) struct CheckResult {
    pub status: StepStatus,
    pub outputs: BTreeMap<String, String>,
    pub reason: Option<String>,
}

/// Renders the templates of `check` and builds its query URL.
pub(crate) fn resolve(
    check: &CheckStep,
    timeout: Option<Duration>,
    ctx: &Context,
) -> Result<CheckWork, String> {
    let base = render_text(&check.prometheus, ctx)?.trim().to_owned();
    let query = render_text(&check.query, ctx)?;
    if query.trim().is_empty() {
        return Err("the check's query renders to nothing".to_owned());
    }
    let url = query_url(&base, &query)?;
    Ok(CheckWork {
        base,
        url,
        query,
        headers: render_headers(&check.headers, ctx)?,
        spec: check.clone(),
        timeout,
    })
}

/// `<base>/api/v1/query?query=<query>`; a base with a path (a Prometheus behind a prefix)
/// keeps it.
fn query_url(base: &str, query: &str) -> Result<reqwest::Url, String> {
    let mut url =
        reqwest::Url::parse(base).map_err(|e| format!("invalid `prometheus` URL {base:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid `prometheus` URL {base:?}: expected an http:// or https:// URL"
        ));
    }
    let path = format!("{}/api/v1/query", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_fragment(None);
    url.query_pairs_mut().append_pair("query", query);
    Ok(url)
}

/// One series of a result: its labels (empty for a scalar) and its value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    labels: BTreeMap<String, String>,
    /// The value as Prometheus wrote it (`0.003`, `NaN`, `+Inf`).
    raw: String,
    value: f64,
}

impl Sample {
    /// ` {instance="a:1", job="api"}`, or nothing for a series without labels; the metric
    /// name is left out (the query names it).
    fn labels_text(&self) -> String {
        let pairs: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        if pairs.is_empty() {
            return String::new();
        }
        format!(" {{{}}}", pairs.join(", "))
    }
}

/// What one evaluation found.
#[derive(Debug)]
struct Verdict {
    ok: bool,
    /// The series furthest from passing (the first when all pass equally); `None` when the
    /// result was empty.
    worst: Option<Sample>,
    series: usize,
}

/// How far `value` is from satisfying the thresholds: positive when it breaks them, and
/// larger the worse; NaN is the worst of all.
fn badness(spec: &CheckStep, value: f64) -> f64 {
    if value.is_nan() {
        return f64::INFINITY;
    }
    let over = spec.below.map_or(f64::NEG_INFINITY, |b| value - b);
    let under = spec.above.map_or(f64::NEG_INFINITY, |a| a - value);
    over.max(under)
}

fn judge(spec: &CheckStep, samples: Vec<Sample>) -> Verdict {
    let series = samples.len();
    let ok = if series == 0 {
        spec.no_data == NoData::Pass
    } else {
        samples.iter().all(|s| spec.accepts(s.value))
    };
    let worst = samples.into_iter().reduce(|worst, s| {
        if badness(spec, s.value) > badness(spec, worst.value) {
            s
        } else {
            worst
        }
    });
    Verdict { ok, worst, series }
}

/// Why `sample` breaks the thresholds: `not below 0.01`, `not above 2`.
fn broken_side(spec: &CheckStep, sample: &Sample) -> String {
    // NaN compares as neither: it breaks both sides.
    let fails_below = spec
        .below
        .filter(|b| sample.value.partial_cmp(b) != Some(Ordering::Less));
    let fails_above = spec
        .above
        .filter(|a| sample.value.partial_cmp(a) != Some(Ordering::Greater));
    match (fails_below, fails_above) {
        (Some(b), _) => format!("not below {b}"),
        (None, Some(a)) => format!("not above {a}"),
        (None, None) => format!("not {}", spec.condition()),
    }
}

/// Parses a Prometheus API answer into samples, or the reason it is not one.
fn parse_answer(
    status: reqwest::StatusCode,
    body: &[u8],
    query: &str,
) -> Result<Vec<Sample>, String> {
    let document: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        format!(
            "the API answered {status} to {query} with a body that is not a Prometheus API response"
        )
    })?;
    match document.get("status").and_then(|s| s.as_str()) {
        Some("success") => {}
        Some("error") => {
            let message = document
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("(no message)");
            let kind = document
                .get("errorType")
                .and_then(|e| e.as_str())
                .unwrap_or("error");
            return Err(format!("prometheus error for {query}: {message} ({kind})"));
        }
        _ => {
            return Err(format!(
                "the API answered {status} to {query} without a `status` of success or error"
            ));
        }
    }
    let data = document.get("data");
    let result = data.and_then(|d| d.get("result"));
    match data
        .and_then(|d| d.get("resultType"))
        .and_then(|t| t.as_str())
    {
        Some("vector") => result
            .and_then(|r| r.as_array())
            .ok_or_else(|| format!("the vector result for {query} is not a list"))?
            .iter()
            .map(|item| {
                let labels = item
                    .get("metric")
                    .and_then(|m| m.as_object())
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                sample_value(item.get("value"), query).map(|(raw, value)| Sample {
                    labels,
                    raw,
                    value,
                })
            })
            .collect(),
        Some("scalar") => sample_value(result, query).map(|(raw, value)| {
            vec![Sample {
                labels: BTreeMap::new(),
                raw,
                value,
            }]
        }),
        Some(other) => Err(format!(
            "{query} returned a {other} result; a check needs an instant vector or a scalar"
        )),
        None => Err(format!("the answer for {query} has no `data.resultType`")),
    }
}

/// `[<timestamp>, "<value>"]` → the value as written and as a number.
fn sample_value(pair: Option<&serde_json::Value>, query: &str) -> Result<(String, f64), String> {
    let raw = pair
        .and_then(|p| p.get(1))
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("a sample for {query} has no [time, value] pair"))?;
    // Rust reads `NaN`, `+Inf` and `-Inf` as Prometheus writes them.
    let value = raw
        .parse::<f64>()
        .map_err(|_| format!("a sample for {query} has the value {raw:?}, not a number"))?;
    Ok((raw.to_owned(), value))
}

/// Why an evaluation got no samples.
struct Unanswered {
    reason: String,
    /// The API could not be reached or was not ready (a transport error, a 5xx, a 429):
    /// another evaluation may succeed. Anything else (a rejected query, a refused token, a
    /// result of the wrong type) will not change by waiting.
    transient: bool,
}

/// Sends one query and returns its samples.
async fn fetch(client: &reqwest::Client, work: &CheckWork) -> Result<Vec<Sample>, Unanswered> {
    let unreachable = |e: reqwest::Error| Unanswered {
        reason: describe_error(&e, &work.url),
        transient: true,
    };
    let mut request = client.get(work.url.clone());
    for (name, value) in &work.headers {
        request = request.header(name.clone(), value.clone());
    }
    let mut response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let (body, cut) = read_capped(&mut response, RESPONSE_CAP)
        .await
        .map_err(unreachable)?;
    let transient = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
    if cut {
        return Err(Unanswered {
            reason: format!(
                "the answer for {} is longer than {} MiB; narrow the query",
                work.query,
                RESPONSE_CAP / (1024 * 1024)
            ),
            transient: false,
        });
    }
    parse_answer(status, &body, &work.query).map_err(|reason| Unanswered { reason, transient })
}

/// What the evaluations so far have seen; kept outside the evaluation loop so a stop or a
/// timeout can still report it.
#[derive(Default)]
struct Progress {
    evaluations: u32,
    /// The worst series' value at the last evaluation.
    value: Option<String>,
    /// The last evaluation's line, without the `check ` prefix, for a timeout's reason.
    last: Option<String>,
}

/// Evaluates until the condition has held for `for` (`Ok`), or breaks in verify mode or
/// cannot be evaluated (`Err` with the reason).
async fn evaluate(
    work: &CheckWork,
    client: &reqwest::Client,
    log: &(dyn Fn(Stream, &str) + Sync),
    progress: &mut Progress,
) -> Result<(), String> {
    let spec = &work.spec;
    let mut slot = Instant::now();
    // Passing evaluations in a row.
    let mut streak: u32 = 0;
    loop {
        tokio::time::sleep_until(slot).await;
        let samples = fetch(client, work).await;
        progress.evaluations += 1;
        let samples = match samples {
            Ok(samples) => samples,
            Err(unanswered) if spec.wait && unanswered.transient => {
                // A gate waits through an API that is down or not ready yet: Prometheus
                // answers 503 while it starts, which is when a gate is often used.
                streak = 0;
                log(Stream::Stderr, &format!("! {}; waiting", unanswered.reason));
                progress.last = Some(unanswered.reason);
                slot = next_slot(slot, spec.every);
                continue;
            }
            Err(unanswered) => {
                log(Stream::Stderr, &format!("! {}", unanswered.reason));
                return Err(unanswered.reason);
            }
        };
        let verdict = judge(spec, samples);
        progress.value = verdict.worst.as_ref().map(|s| s.raw.clone());
        // Held time counts intervals between passing evaluations in a row, so `for: 3s,
        // every: 1s` passes at the fourth one; a slow request stretches the wall-clock span,
        // never shortens it, and the number of evaluations does not depend on the machine.
        streak = if verdict.ok { streak + 1 } else { 0 };
        let held = spec.every * streak.saturating_sub(1);
        let done = verdict.ok && held >= spec.hold;
        let state = match (verdict.ok, spec.hold.is_zero(), spec.wait) {
            (true, true, _) => "ok".to_owned(),
            (true, false, _) => format!("ok, held {} of {}", held_text(held), humantime(spec.hold)),
            (false, _, true) => "not ok, waiting".to_owned(),
            (false, _, false) => "not ok".to_owned(),
        };
        let line = match &verdict.worst {
            Some(worst) => {
                let of = if verdict.series > 1 {
                    format!(", worst of {} series", verdict.series)
                } else {
                    String::new()
                };
                format!(
                    "{} = {}{}{of} ({}: {state})",
                    work.query,
                    worst.raw,
                    worst.labels_text(),
                    spec.condition()
                )
            }
            None => {
                let means = match spec.no_data {
                    NoData::Fail => "fail",
                    NoData::Pass => "pass",
                };
                format!("{}: no data (no_data: {means}; {state})", work.query)
            }
        };
        log(Stream::Stdout, &format!("check {line}"));
        progress.last = Some(line);
        if done {
            return Ok(());
        }
        if !verdict.ok && !spec.wait {
            return Err(match &verdict.worst {
                Some(worst) => format!(
                    "{} = {}{}: {}",
                    work.query,
                    worst.raw,
                    worst.labels_text(),
                    broken_side(spec, worst)
                ),
                None => format!("no data for {}", work.query),
            });
        }
        slot = next_slot(slot, spec.every);
    }
}

/// `held` as the log line says it: whole slots, so `0s` rather than `0ms`.
fn held_text(held: Duration) -> String {
    if held.is_zero() {
        "0s".to_owned()
    } else {
        humantime(held)
    }
}

/// The slot after `slot`; when a request took longer than `every`, now, rather than a burst
/// of evaluations to catch up.
fn next_slot(slot: Instant, every: Duration) -> Instant {
    (slot + every).max(Instant::now())
}

/// Evaluates the check until it passes, fails, is stopped or times out.
pub(crate) async fn run(
    shared: &Shared,
    step: &Step,
    attempt_no: u32,
    work: CheckWork,
    stop: &CancellationToken,
) -> CheckResult {
    let log = |stream: Stream, text: &str| log_redacted(shared, step, attempt_no, stream, text);
    // Redirects are followed (a Prometheus behind a proxy), certificates always verified.
    let client = match client(true, false) {
        Ok(client) => client,
        Err(reason) => {
            return CheckResult {
                status: StepStatus::Failed,
                outputs: BTreeMap::new(),
                reason: Some(reason),
            };
        }
    };
    let mut progress = Progress::default();
    let ended = race(
        evaluate(&work, &client, &log, &mut progress),
        stop,
        work.timeout,
    )
    .await;
    let (status, reason) = match ended {
        Ok(Ok(())) => (StepStatus::Succeeded, None),
        Ok(Err(reason)) => (StepStatus::Failed, Some(reason)),
        Err(Interrupted::Stopped) => {
            log(Stream::Stderr, "! check abandoned: the step was stopped");
            (stopped_status(shared), Some(stopped_reason(shared)))
        }
        Err(Interrupted::TimedOut) => {
            let timeout = humantime(work.timeout.unwrap_or_default());
            let mut reason = if work.spec.wait {
                let held = if work.spec.hold.is_zero() {
                    String::new()
                } else {
                    format!(" for {}", humantime(work.spec.hold))
                };
                format!("condition did not hold{held} before the step timeout of {timeout}")
            } else {
                format!("timed out after {timeout}")
            };
            if let Some(last) = &progress.last {
                reason.push_str(&format!("; last evaluation: {last}"));
            }
            log(Stream::Stderr, &format!("! {reason}"));
            (StepStatus::TimedOut, Some(reason))
        }
    };
    let mut outputs = BTreeMap::new();
    if let Some(value) = &progress.value {
        outputs.insert("value".to_owned(), value.clone());
    }
    outputs.insert("evaluations".to_owned(), progress.evaluations.to_string());
    // Outputs are stored and passed on like log lines: redacted the same way.
    let outputs = outputs
        .into_iter()
        .map(|(k, v)| (k, shared.redactor.redact(&v).into_owned()))
        .collect();
    CheckResult {
        status,
        outputs,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(below: Option<f64>, above: Option<f64>) -> CheckStep {
        CheckStep {
            prometheus: "http://prom:9090".into(),
            query: "q".into(),
            below,
            above,
            hold: Duration::ZERO,
            every: Duration::from_secs(1),
            wait: false,
            no_data: NoData::Fail,
            headers: BTreeMap::new(),
        }
    }

    fn sample(job: &str, raw: &str) -> Sample {
        Sample {
            labels: [("job".to_owned(), job.to_owned())].into(),
            raw: raw.to_owned(),
            value: raw.parse().unwrap_or(f64::NAN),
        }
    }

    #[test]
    fn every_series_must_pass_and_the_worst_is_named() {
        let below = spec(Some(1.0), None);
        let verdict = judge(
            &below,
            vec![sample("a", "0.5"), sample("b", "3"), sample("c", "2")],
        );
        assert!(!verdict.ok);
        assert_eq!(verdict.worst, Some(sample("b", "3")));
        assert_eq!(verdict.series, 3);
        let verdict = judge(&below, vec![sample("a", "0.5"), sample("b", "NaN")]);
        assert!(!verdict.ok);
        assert_eq!(verdict.worst.map(|s| s.raw), Some("NaN".to_owned()));
        assert!(judge(&below, vec![sample("a", "0.5"), sample("b", "0.9")]).ok);
        assert!(
            !judge(&below, vec![sample("a", "1")]).ok,
            "comparisons are strict"
        );
    }

    #[test]
    fn a_band_names_the_side_it_breaks() {
        let band = spec(Some(10.0), Some(2.0));
        assert!(band.accepts(5.0));
        assert!(!band.accepts(f64::INFINITY));
        assert_eq!(broken_side(&band, &sample("a", "11")), "not below 10");
        assert_eq!(broken_side(&band, &sample("a", "2")), "not above 2");
        assert_eq!(band.condition(), "above 2 and below 10");
    }

    #[test]
    fn empty_results_follow_no_data() {
        let mut check = spec(Some(1.0), None);
        assert!(!judge(&check, Vec::new()).ok);
        check.no_data = NoData::Pass;
        assert!(judge(&check, Vec::new()).ok);
    }

    #[test]
    fn answers_parse_as_vectors_scalars_or_errors() {
        let ok = reqwest::StatusCode::OK;
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"api"},"value":[1.5,"+Inf"]}]}}"#;
        let samples = parse_answer(ok, vector, "q").unwrap_or_default();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].labels_text(), r#" {job="api"}"#);
        assert_eq!(samples[0].value, f64::INFINITY);
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"2"]}}"#;
        assert_eq!(parse_answer(ok, scalar, "q").map(|s| s[0].value), Ok(2.0));
        let error = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(
            parse_answer(reqwest::StatusCode::BAD_REQUEST, error, "q"),
            Err("prometheus error for q: parse error (bad_data)".to_owned())
        );
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_answer(ok, matrix, "q").is_err());
        assert!(parse_answer(reqwest::StatusCode::BAD_GATEWAY, b"<html>", "q").is_err());
    }

    #[test]
    fn query_urls_keep_a_path_prefix() {
        let url = query_url("http://prom:9090/", "rate(x[5m]) > 0").map(|u| u.to_string());
        assert_eq!(
            url.as_deref(),
            Ok("http://prom:9090/api/v1/query?query=rate%28x%5B5m%5D%29+%3E+0")
        );
        let url = query_url("https://m.example/prometheus", "up").map(|u| u.to_string());
        assert_eq!(
            url.as_deref(),
            Ok("https://m.example/prometheus/api/v1/query?query=up")
        );
        assert!(query_url("ftp://x", "up").is_err());
    }
}
