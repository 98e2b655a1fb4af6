//! `GET /metrics`: Rota's state in the Prometheus text exposition format (version 0.0.4).
//!
//! Exported:
//! - `rota_runs{namespace,status}` (gauge): runs per namespace and status, from the store;
//! - `rota_queue_depth` (gauge): runs in status `queued`, over every namespace;
//! - `rota_step_duration_seconds` (histogram): step attempts that finished in the last
//!   hour, read from the store on each scrape. It is a sliding window, not a cumulative
//!   counter: use `histogram_quantile` on it directly, not on `rate()` of it;
//! - `rota_api_request_duration_seconds{route,status}` (histogram): API calls handled by
//!   this process, by route template and status class (`2xx`, `4xx`, …);
//! - `rota_scheduler_lateness_seconds` (histogram): how late the scheduler started
//!   occurrences, as fed to [`SchedulerMetrics::observe_lateness`].
//!
//! The route needs a token with the `viewer` role in every namespace, since the figures
//! span them all (unless authentication is off); configure the scraper with
//! `authorization: { type: Bearer, credentials: <token> }`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use rota_store::Role;

use crate::auth::{Principal, Scope};
use crate::{ApiError, ApiState};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the API latency buckets.
const API_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds (seconds) of the step duration buckets.
const STEP_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0,
];

/// Upper bounds (seconds) of the scheduler lateness buckets.
const LATENESS_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0];

/// How far back `rota_step_duration_seconds` looks.
const STEP_WINDOW: SignedDuration = SignedDuration::from_hours(1);

/// A histogram with fixed bucket bounds.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is above every bound.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        let slot = self
            .bounds
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(self.bounds.len());
        self.counts[slot] += 1;
        self.sum += seconds;
    }

    /// Appends the `_bucket`, `_sum` and `_count` samples of `name`, with `labels` (already
    /// rendered as `k="v",…`, or empty) on each.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.counts.last().copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// Where the scheduler reports how late it started occurrences; cheap to clone, all
/// clones share one histogram. Until the server feeds it, it exports an empty histogram.
#[derive(Debug, Clone)]
pub struct SchedulerMetrics {
    lateness: Arc<Mutex<Histogram>>,
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        SchedulerMetrics {
            lateness: Arc::new(Mutex::new(Histogram::new(LATENESS_BUCKETS))),
        }
    }
}

impl SchedulerMetrics {
    /// Records that an occurrence started `late` after its scheduled instant.
    pub fn observe_lateness(&self, late: Duration) {
        self.lateness
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(late);
    }

    fn snapshot(&self) -> Histogram {
        self.lateness
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// API latency histograms by route template and status class.
#[derive(Debug, Clone, Default)]
pub(crate) struct ApiMetrics {
    requests: Arc<Mutex<BTreeMap<(String, &'static str), Histogram>>>,
}

impl ApiMetrics {
    fn observe(&self, route: &str, status_class: &'static str, took: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests
            .entry((route.to_owned(), status_class))
            .or_insert_with(|| Histogram::new(API_BUCKETS))
            .observe(took);
    }

    fn snapshot(&self) -> BTreeMap<(String, &'static str), Histogram> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Middleware timing every request, labelled by its route template (`unmatched` for
/// requests no route matched, so unknown paths cannot grow the label set).
pub(crate) async fn record_latency(
    State(metrics): State<ApiMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics.observe(&route, class, started.elapsed());
    response
}

/// `GET /metrics` with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<ApiState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(serve))
}

/// Returns Rota's metrics in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4"),
              (status = "4XX", body = crate::wire::Problem,
               content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn serve(
    State(state): State<ApiState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    principal.require(Scope::Global, Role::Viewer)?;
    let counts = state.store.run_counts_by_status().await?;
    let since = Timestamp::now()
        .checked_sub(STEP_WINDOW)
        .unwrap_or(Timestamp::MIN);
    let steps = state.store.recent_step_durations(since).await?;

    let mut out = String::new();
    out.push_str("# HELP rota_runs Runs by namespace and status.\n# TYPE rota_runs gauge\n");
    for c in &counts {
        let _ = writeln!(
            out,
            "rota_runs{{namespace=\"{}\",status=\"{}\"}} {}",
            escape_label(&c.namespace),
            escape_label(&c.status),
            c.count
        );
    }
    let queued: u64 = counts
        .iter()
        .filter(|c| c.status == "queued")
        .map(|c| c.count)
        .sum();
    let _ = writeln!(
        out,
        "# HELP rota_queue_depth Runs waiting to start (status queued).\n\
         # TYPE rota_queue_depth gauge\nrota_queue_depth {queued}"
    );

    let mut step_hist = Histogram::new(STEP_BUCKETS);
    for took in steps {
        step_hist.observe(took);
    }
    out.push_str(
        "# HELP rota_step_duration_seconds Durations of step attempts finished in the last \
         hour (a sliding window, not cumulative).\n\
         # TYPE rota_step_duration_seconds histogram\n",
    );
    step_hist.render(&mut out, "rota_step_duration_seconds", "");

    out.push_str(
        "# HELP rota_api_request_duration_seconds API request durations by route and \
         status class.\n# TYPE rota_api_request_duration_seconds histogram\n",
    );
    for ((route, class), hist) in state.api_metrics.snapshot() {
        let labels = format!("route=\"{}\",status=\"{class}\"", escape_label(&route));
        hist.render(&mut out, "rota_api_request_duration_seconds", &labels);
    }

    out.push_str(
        "# HELP rota_scheduler_lateness_seconds How late scheduled occurrences started.\n\
         # TYPE rota_scheduler_lateness_seconds histogram\n",
    );
    state
        .scheduler_metrics
        .snapshot()
        .render(&mut out, "rota_scheduler_lateness_seconds", "");

    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response())
}

/// Escapes a label value for the text format: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("one\ntwo"), "one\\ntwo");
        assert_eq!(escape_label("plain-ns_1"), "plain-ns_1");
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let mut h = Histogram::new(&[1.0, 5.0]);
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(3));
        h.observe(Duration::from_secs(9));
        let mut out = String::new();
        h.render(&mut out, "x", "k=\"v\"");
        assert_eq!(
            out,
            "x_bucket{k=\"v\",le=\"1\"} 1\nx_bucket{k=\"v\",le=\"5\"} 2\n\
             x_bucket{k=\"v\",le=\"+Inf\"} 3\nx_sum{k=\"v\"} 12.5\nx_count{k=\"v\"} 3\n"
        );
    }
}
