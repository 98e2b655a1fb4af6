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

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rota_ops::metrics::RunCount;

use crate::auth::Asking;
use crate::{ApiError, ApiState};

/// The content type of the text exposition format (version 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

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

/// A gauge of whole counts (run counts are `u64` in the store).
type CountGauge = Gauge<u64, AtomicU64>;

/// The labels of `rota_runs`, in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RunLabels {
    namespace: String,
    status: String,
}

/// The labels of `rota_api_request_duration_seconds`, in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: &'static str,
}

fn api_histogram() -> Histogram {
    Histogram::new(API_BUCKETS.iter().copied())
}

/// Where the scheduler reports how late it started occurrences; cheap to clone, all
/// clones share one histogram. Until the server feeds it, it exports an empty histogram.
#[derive(Debug, Clone)]
pub struct SchedulerMetrics {
    lateness: Histogram,
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        SchedulerMetrics {
            lateness: Histogram::new(LATENESS_BUCKETS.iter().copied()),
        }
    }
}

impl SchedulerMetrics {
    /// Records that an occurrence started `late` after its scheduled instant.
    pub fn observe_lateness(&self, late: Duration) {
        self.lateness.observe(late.as_secs_f64());
    }
}

/// API latency histograms by route template and status class; clones share them.
#[derive(Debug, Clone)]
pub(crate) struct ApiMetrics {
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics {
            requests: Family::new_with_constructor(api_histogram),
        }
    }
}

impl ApiMetrics {
    fn observe(&self, route: String, status: &'static str, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .observe(took.as_secs_f64());
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
    metrics.observe(route, class, started.elapsed());
    response
}

/// `GET /metrics` with its OpenAPI operation.
pub(crate) fn router() -> utoipa_axum::router::OpenApiRouter<ApiState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(serve))
}

/// Returns Rota's metrics in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4"),
              (status = "4XX", body = rota_ops::records::Problem,
               content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn serve(
    State(state): State<ApiState>,
    Asking(session): Asking,
) -> Result<Response, ApiError> {
    let figures = session.metrics(STEP_WINDOW).await?;
    let text = render(
        &figures.runs,
        &figures.step_durations,
        &state.api_metrics,
        &state.scheduler_metrics,
    )
    .map_err(|e| ApiError::Internal(format!("encoding the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// The text of one scrape. The store's figures are read anew on each scrape, so they go
/// into fresh metrics of a registry made for it; the process's own histograms are shared.
fn render(
    counts: &[RunCount],
    steps: &[Duration],
    api: &ApiMetrics,
    scheduler: &SchedulerMetrics,
) -> Result<String, std::fmt::Error> {
    let runs = Family::<RunLabels, CountGauge>::default();
    for c in counts {
        runs.get_or_create(&RunLabels {
            namespace: c.namespace.clone(),
            status: c.status.clone(),
        })
        .set(c.count);
    }
    let queued = CountGauge::default();
    queued.set(
        counts
            .iter()
            .filter(|c| c.status == "queued")
            .map(|c| c.count)
            .sum(),
    );
    let step_durations = Histogram::new(STEP_BUCKETS.iter().copied());
    for took in steps {
        step_durations.observe(took.as_secs_f64());
    }

    // The registry ends each help text with a period.
    let mut registry = Registry::default();
    registry.register("rota_runs", "Runs by namespace and status", runs);
    registry.register(
        "rota_queue_depth",
        "Runs waiting to start (status queued)",
        queued,
    );
    registry.register(
        "rota_step_duration_seconds",
        "Durations of step attempts finished in the last hour (a sliding window, not \
         cumulative)",
        step_durations,
    );
    registry.register(
        "rota_api_request_duration_seconds",
        "API request durations by route and status class",
        api.requests.clone(),
    );
    registry.register(
        "rota_scheduler_lateness_seconds",
        "How late scheduled occurrences started",
        scheduler.lateness.clone(),
    );
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_scrape_has_every_family_with_escaped_labels_and_cumulative_buckets() {
        let counts = [RunCount {
            namespace: "a\\b\"c\nd".to_owned(),
            status: "queued".to_owned(),
            count: 3,
        }];
        let steps = [
            Duration::from_millis(500),
            Duration::from_secs(3),
            Duration::from_secs(20_000),
        ];
        let api = ApiMetrics::default();
        api.observe(
            "/api/v1/runs/{id}".to_owned(),
            "2xx",
            Duration::from_millis(7),
        );
        let text = render(&counts, &steps, &api, &SchedulerMetrics::default()).expect("text");
        for line in [
            "# HELP rota_runs Runs by namespace and status.",
            "# TYPE rota_runs gauge",
            r#"rota_runs{namespace="a\\b\"c\nd",status="queued"} 3"#,
            "# TYPE rota_queue_depth gauge",
            "rota_queue_depth 3",
            "# TYPE rota_step_duration_seconds histogram",
            r#"rota_step_duration_seconds_bucket{le="1"} 1"#,
            r#"rota_step_duration_seconds_bucket{le="5"} 2"#,
            r#"rota_step_duration_seconds_bucket{le="10800"} 2"#,
            r#"rota_step_duration_seconds_bucket{le="+Inf"} 3"#,
            "rota_step_duration_seconds_sum 20003.5",
            "rota_step_duration_seconds_count 3",
            r#"rota_api_request_duration_seconds_bucket{route="/api/v1/runs/{id}",status="2xx",le="0.005"} 0"#,
            r#"rota_api_request_duration_seconds_bucket{route="/api/v1/runs/{id}",status="2xx",le="0.01"} 1"#,
            r#"rota_api_request_duration_seconds_count{route="/api/v1/runs/{id}",status="2xx"} 1"#,
            "# TYPE rota_scheduler_lateness_seconds histogram",
            "rota_scheduler_lateness_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
