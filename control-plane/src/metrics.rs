//! `/metrics` in the Prometheus text format, and request timing for REST.
use crate::AppState;
use crate::envelope::ApiError;
use axum::extract::{MatchedPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::telemetry;

pub const HTTP_DURATION: &str = "http_request_duration_seconds";

/// Console requests refused before any handler ran, by `reason`: a session
/// cookie that is `malformed`, has a `bad_signature`, has `expired`, was
/// `signed_out` or whose API key is gone (`key_gone`); a form without its
/// `csrf` token; a `signin` with a wrong credential.
pub const CONSOLE_REFUSALS: &str = "quotad_console_refusals_total";

pub fn count_console_refusal(reason: &'static str) {
    metrics::counter!(CONSOLE_REFUSALS, "reason" => reason).increment(1);
}

/// Histogram buckets (seconds) for request latencies.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Who may read `/metrics` on the REST port. The page names every tenant
/// with its usage, so by default only the platform may: an operator or
/// service token. `--metrics-addr` serves it without a credential on an
/// address of its own (for a Prometheus on a private network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsAuth {
    #[default]
    Required,
    Off,
}

impl std::str::FromStr for MetricsAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "required" => Ok(MetricsAuth::Required),
            "off" => Ok(MetricsAuth::Off),
            other => Err(format!("{other:?} is neither \"required\" nor \"off\"")),
        }
    }
}

/// `/metrics` on the REST port: for an operator or service token unless
/// `--metrics-auth off`.
pub async fn scrape_authorized(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    if s.metrics_auth == MetricsAuth::Required
        && let Err(e) = platform_token(&s, &headers)
    {
        return e.into_response();
    }
    match &s.metrics {
        Some(handle) => render(&s.engine, handle),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not enabled on this node\n",
        )
            .into_response(),
    }
}

/// `/metrics` for whoever reaches `--metrics-addr`.
pub async fn scrape_open(
    State((engine, handle)): State<(std::sync::Arc<quotad_engine::Engine>, PrometheusHandle)>,
) -> Response {
    render(&engine, &handle)
}

fn platform_token(s: &AppState, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let unauthenticated = |m: &str| ApiError::new(ErrorCode::Unauthenticated, m);
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .ok_or_else(|| {
            unauthenticated(
                "/metrics needs Authorization: Bearer <operator or service token> (or scrape --metrics-addr)",
            )
        })?;
    let claims = s
        .auth
        .verify(token.trim())
        .map_err(|e| ApiError::new(ErrorCode::Unauthenticated, e))?;
    if claims
        .roles
        .iter()
        .any(|r| r == crate::auth::OPERATOR || r == quotad_engine::auth::jwt::SERVICE)
    {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "/metrics lists every tenant: it needs an operator or service token",
        ))
    }
}

/// The page. Gauges come from the engine's state at scrape time; counters
/// and histograms were recorded as things happened.
fn render(engine: &quotad_engine::Engine, handle: &PrometheusHandle) -> Response {
    let snap = engine.metrics_snapshot();
    for (tier, n) in snap.tenants_by_tier {
        metrics::gauge!("tenant_count", "tier" => tier.as_str()).set(n as f64);
    }
    for (tenant, quota, usage) in snap.usage {
        metrics::gauge!("tenant_quota_usage", "tenant_id" => tenant, "quota_type" => quota)
            .set(usage as f64);
    }
    let now = engine.now_ms();
    let (grants, requests) = engine.with_catalog(|c| {
        let mut grants = std::collections::BTreeMap::new();
        for g in c.grants.values().filter(|g| g.is_active(now)) {
            *grants.entry(g.resource_type.to_string()).or_insert(0usize) += 1;
        }
        let mut requests = std::collections::BTreeMap::new();
        for r in c.requests.values() {
            *requests.entry(r.state).or_insert(0usize) += 1;
        }
        (grants, requests)
    });
    let types = engine
        .catalog()
        .resource_types()
        .iter()
        .map(|t| t.to_string());
    // Configured types (0 when none is granted), and any type still held by
    // grants made before the catalog changed.
    let names: std::collections::BTreeSet<String> = types.chain(grants.keys().cloned()).collect();
    for t in names {
        let n = grants.get(&t).copied().unwrap_or(0);
        metrics::gauge!(telemetry::CROSS_TENANT_SHARES, "resource_type" => t).set(n as f64);
    }
    for st in quotad_engine::sharing::RequestState::ALL {
        let n = requests.get(&st).copied().unwrap_or(0);
        metrics::gauge!(telemetry::SHARING_ACCESS_REQUESTS, "state" => st.as_str()).set(n as f64);
    }
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
