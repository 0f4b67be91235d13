//! `/metrics` in the Prometheus text format, and request timing for REST.
use crate::AppState;
use axum::extract::{MatchedPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quotad_engine::telemetry;

pub const HTTP_DURATION: &str = "http_request_duration_seconds";

/// Histogram buckets (seconds) for request latencies.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Gauges come from the engine's state at scrape time; counters and
/// histograms were recorded as things happened.
pub async fn scrape(State(s): State<AppState>) -> Response {
    let Some(handle) = &s.metrics else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not enabled on this node\n",
        )
            .into_response();
    };
    let snap = s.engine.metrics_snapshot();
    for (tier, n) in snap.tenants_by_tier {
        metrics::gauge!("tenant_count", "tier" => tier.as_str()).set(n as f64);
    }
    for (tenant, quota, usage) in snap.usage {
        metrics::gauge!("tenant_quota_usage", "tenant_id" => tenant, "quota_type" => quota)
            .set(usage as f64);
    }
    // Sharing policies come later; the series exists from the start.
    metrics::counter!(telemetry::CROSS_TENANT_SHARES).increment(0);
    metrics::counter!(telemetry::CROSS_TENANT_VIOLATIONS).increment(0);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    )
        .into_response()
}

/// Middleware: time every request by its route template (not its path, so
/// tenant ids do not become labels).
pub async fn time_requests(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    metrics::histogram!(
        HTTP_DURATION,
        "method" => method,
        "route" => route,
        "status" => resp.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    resp
}
