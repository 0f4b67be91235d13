//! quotad's REST control plane (axum): tenants, tiers and quotas under
//! `/api/v1`, health and readiness probes.
//!
//! # Layout
//! - [`envelope`]: the JSON envelope and the error type every handler returns.
//! - [`extract`]: JSON body and path extractors whose rejections use the envelope.
//! - [`dto`]: request and response bodies (camelCase).
//! - [`auth`]: JWT verification, the caller ([`auth::Principal`]) and
//!   per-tenant authorization.
//! - [`leader_hint`]: the `X-Quotad-Leader` answer header in a cluster.
//! - `placement`: a tenant's group, and dedicated groups.
//! - `tenants`, `quotas`, `members`, [`audit`], [`usage`], `health`: the handlers.
#![forbid(unsafe_code)]

mod api_keys;
mod api_settings;
pub mod audit;
pub mod auth;
mod billing;
pub mod branding;
pub mod console;
mod cors;
mod domains;
pub mod dto;
pub mod envelope;
pub mod extract;
pub mod features;
pub mod flags;
mod health;
pub mod leader_hint;
mod marketplace;
mod members;
pub mod metrics;
mod ofrep;
pub mod openapi;
mod placement;
mod platform_webhooks;
mod quota_levels;
mod quota_rules_dto;
mod quotas;
mod sharing;
mod sharing_dto;
mod sso;
mod statements;
mod tenants;
mod timestamps;
pub mod usage;
mod webhooks;

use axum::Router;
use axum::routing::{get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use quotad_engine::Engine;
use std::sync::Arc;
use std::time::Duration;

/// The largest request body accepted; a larger one is answered 413 before
/// it is read further. The largest valid body holds a tenant's `settings`
/// object, itself limited to 64 KiB: four times that leaves room for the
/// other fields and JSON escapes, and bounds what one request can make
/// the node buffer.
pub const MAX_BODY_BYTES: usize = 256 << 10;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub auth: Arc<auth::JwtKeys>,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// Who may read `/metrics` on the REST port.
    pub metrics_auth: metrics::MetricsAuth,
    /// How the console signs its sessions.
    pub console: console::ConsoleConfig,
    /// Data-plane credentials (service tokens, tenant tokens, API keys),
    /// as the gRPC port checks them: for OFREP flag evaluation.
    pub data_plane: Arc<quotad_engine::auth::Authenticator>,
}

/// `/metrics` alone, without a credential, for `--metrics-addr`: an
/// address only the platform's Prometheus reaches.
pub fn metrics_router(engine: Arc<Engine>, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(metrics::scrape_open))
        .fallback(envelope::not_found)
        .with_state((engine, metrics))
}

/// The REST API; a request not answered within `request_timeout` gets 503
/// (see [`envelope::deadline`]).
pub fn router(
    engine: Arc<Engine>,
    auth: auth::JwtKeys,
    metrics: Option<PrometheusHandle>,
    metrics_auth: metrics::MetricsAuth,
    request_timeout: Duration,
    console: console::ConsoleConfig,
    data_plane: Arc<quotad_engine::auth::Authenticator>,
) -> Router {
    let state = AppState {
        engine,
        auth: Arc::new(auth),
        metrics,
        metrics_auth,
        console,
        data_plane,
    };
    let api = Router::new()
        .route("/api/v1/tenants", post(tenants::create))
        .route(
            "/api/v1/tenants/{id}",
            get(tenants::get)
                .put(tenants::update)
                .delete(tenants::delete),
        )
        .route("/api/v1/tenants/{id}/restore", post(tenants::restore))
        .route("/api/v1/tenants/{id}/upgrade", post(tenants::upgrade))
        .route("/api/v1/tenants/{id}/quotas", get(quotas::list))
        .route(
            "/api/v1/tenants/{id}/quotas/{quota}",
            put(quotas::set).get(quotas::get),
        )
        .route(
            "/api/v1/tenants/{id}/quotas/{quota}/grants",
            get(quota_levels::grants).post(quota_levels::add_grant),
        )
        .route(
            "/api/v1/tenants/{id}/quotas/{quota}/grants/{grant}/void",
            post(quota_levels::void_grant),
        )
        .route(
            "/api/v1/tenants/{id}/quotas/{quota}/scopes",
            get(quota_levels::scopes),
        )
        .route("/api/v1/tenants/{id}/shadow", put(quota_levels::set_shadow))
        .route(
            "/api/v1/tenants/{id}/members",
            get(members::list).post(members::add),
        )
        .route(
            "/api/v1/tenants/{id}/members/{user}",
            put(members::change_role).delete(members::remove),
        )
        .route(
            "/api/v1/tenants/{id}/api-keys",
            get(api_keys::list).post(api_keys::create),
        )
        .route(
            "/api/v1/tenants/{id}/api-keys/{key}",
            axum::routing::delete(api_keys::revoke),
        )
        .route(
            "/api/v1/tenants/{id}/api-keys/{key}/rotate",
            post(api_keys::rotate),
        )
        .route("/api/v1/tenants/{id}/audit", get(audit::list))
        .route(
            "/api/v1/tenants/{id}/domains",
            get(domains::list).post(domains::add),
        )
        .route(
            "/api/v1/tenants/{id}/domains/{domain}",
            axum::routing::delete(domains::remove),
        )
        .route(
            "/api/v1/tenants/{id}/domains/{domain}/verify",
            post(domains::verify),
        )
        .route("/api/v1/tenants/{id}/usage", get(usage::history))
        .route("/api/v1/tenants/{id}/features", get(features::list))
        .route(
            "/api/v1/tenants/{id}/sso",
            get(sso::get).put(sso::put).delete(sso::delete),
        )
        .route(
            "/api/v1/tenants/{id}/api-settings",
            get(api_settings::get).put(api_settings::put),
        )
        .route(
            "/api/v1/tenants/{id}/branding",
            get(branding::get)
                .put(branding::put)
                .delete(branding::delete),
        )
        .route("/api/v1/tenants/{id}/flags", get(flags::list))
        .route(
            "/api/v1/tenants/{id}/flags/{key}",
            get(flags::get).put(flags::put).delete(flags::delete),
        )
        .route("/api/v1/platform/flags", get(flags::platform_list))
        .route(
            "/api/v1/platform/flags/{key}",
            get(flags::platform_get)
                .put(flags::platform_put)
                .delete(flags::platform_delete),
        )
        .route(
            "/api/v1/platform/flag-changes",
            get(flags::platform_changes),
        )
        .route(
            "/api/v1/tenants/{id}/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/api/v1/tenants/{id}/webhooks/{webhook}",
            get(webhooks::get)
                .put(webhooks::update)
                .delete(webhooks::remove),
        )
        .route(
            "/api/v1/tenants/{id}/webhooks/{webhook}/rotate",
            post(webhooks::rotate),
        )
        .route(
            "/api/v1/tenants/{id}/deliveries",
            get(webhooks::delivery_log),
        )
        .route(
            "/api/v1/tenants/{id}/deliveries/{delivery}/retry",
            post(webhooks::retry),
        )
        .route("/api/v1/tenants/{id}/alerts", get(webhooks::alerts))
        .route(
            "/api/v1/platform/webhooks",
            get(platform_webhooks::list).post(platform_webhooks::create),
        )
        .route(
            "/api/v1/platform/webhooks/{webhook}",
            get(platform_webhooks::get)
                .put(platform_webhooks::update)
                .delete(platform_webhooks::remove),
        )
        .route(
            "/api/v1/platform/webhooks/{webhook}/rotate",
            post(platform_webhooks::rotate),
        )
        .route(
            "/api/v1/platform/deliveries",
            get(platform_webhooks::delivery_log),
        )
        .route(
            "/api/v1/platform/deliveries/{delivery}/retry",
            post(platform_webhooks::retry),
        )
        .route("/api/v1/platform/alerts", get(platform_webhooks::alerts))
        .route(
            "/api/v1/platform/webhook-changes",
            get(platform_webhooks::changes),
        )
        .route("/api/v1/tenants/{id}/billing-events", post(billing::event))
        .route("/api/v1/tenants/{id}/placement", get(placement::get))
        .route("/api/v1/tenants/{id}/dedicated", post(placement::dedicate))
        .route(
            "/api/v1/sharing/policies",
            post(sharing::create).get(sharing::list),
        )
        .route(
            "/api/v1/sharing/policies/{id}",
            get(sharing::get)
                .put(sharing::replace)
                .delete(sharing::delete),
        )
        .route(
            "/api/v1/sharing/policies/{id}/request-access",
            post(sharing::request_access),
        )
        .route(
            "/api/v1/sharing/policies/{id}/requests",
            get(sharing::policy_requests),
        )
        .route("/api/v1/sharing/requests", get(sharing::requests))
        .route(
            "/api/v1/sharing/requests/{rid}/approve",
            post(sharing::approve),
        )
        .route("/api/v1/sharing/requests/{rid}/deny", post(sharing::deny))
        .route("/api/v1/sharing/grants", get(sharing::grants))
        .route(
            "/api/v1/sharing/grants/{gid}",
            axum::routing::delete(sharing::revoke),
        )
        .route("/api/v1/marketplace", get(marketplace::list))
        .route("/api/v1/sharing/statements", get(statements::tenant))
        .route("/api/v1/platform/statements", get(statements::platform))
        .route("/api/v1/platform/periods", get(statements::closed))
        .route(
            "/api/v1/platform/sharing/settings",
            get(statements::settings).put(statements::set_settings),
        )
        .route(
            "/api/v1/platform/periods/{period}/close",
            post(statements::close),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            leader_hint::annotate,
        ))
        .merge(console::router())
        .route("/ofrep/v1/evaluate/flags", post(ofrep::evaluate_all))
        .route("/ofrep/v1/evaluate/flags/{key}", post(ofrep::evaluate_one))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::scrape_authorized))
        .route("/readyz", get(health::readyz))
        .fallback(envelope::not_found)
        .route_layer(axum::middleware::from_fn(metrics::time_requests))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::layer,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            envelope::deadline,
        ))
        .layer(axum::middleware::from_fn(auth::request_id))
        .method_not_allowed_fallback(envelope::method_not_allowed)
        .with_state(state.clone());
    // Around everything, so that a browser's preflight (OPTIONS, which no
    // route answers) reaches it before routing refuses the method.
    Router::new()
        .fallback_service(api)
        .layer(axum::middleware::from_fn_with_state(state, cors::layer))
}
