//! quotad's REST control plane (axum): tenants, tiers and quotas under
//! `/api/v1`, health and readiness probes.
//!
//! # Layout
//! - [`envelope`]: the JSON envelope and the error type every handler returns.
//! - [`extract`]: JSON body and path extractors whose rejections use the envelope.
//! - [`dto`]: request and response bodies (camelCase).
//! - [`auth`]: JWT verification, the caller ([`auth::Principal`]) and
//!   per-tenant authorization.
//! - `tenants`, `quotas`, `members`, [`audit`], [`usage`], `health`: the handlers.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod dto;
pub mod envelope;
pub mod extract;
mod health;
mod members;
mod quotas;
mod tenants;
pub mod usage;

use axum::Router;
use axum::routing::{get, post, put};
use quotad_engine::Engine;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub auth: Arc<auth::AuthConfig>,
    /// Requests refused because they named another tenant than the path.
    pub cross_tenant_denials: Arc<AtomicU64>,
}

pub fn router(engine: Arc<Engine>, auth: auth::AuthConfig) -> Router {
    let state = AppState {
        engine,
        auth: Arc::new(auth),
        cross_tenant_denials: Arc::default(),
    };
    Router::new()
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
            "/api/v1/tenants/{id}/members",
            get(members::list).post(members::add),
        )
        .route(
            "/api/v1/tenants/{id}/members/{user}",
            put(members::change_role).delete(members::remove),
        )
        .route("/api/v1/tenants/{id}/audit", get(audit::list))
        .route("/api/v1/tenants/{id}/usage", get(usage::history))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(envelope::not_found)
        .layer(axum::middleware::from_fn(auth::request_id))
        .method_not_allowed_fallback(envelope::method_not_allowed)
        .with_state(state)
}
