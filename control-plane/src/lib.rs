//! quotad's REST control plane (axum): tenants, tiers and quotas under
//! `/api/v1`, health and readiness probes.
//!
//! # Layout
//! - [`envelope`]: the JSON envelope and the error type every handler returns.
//! - [`extract`]: JSON body and path extractors whose rejections use the envelope.
//! - [`dto`]: request and response bodies (camelCase).
//! - `tenants`, `quotas`, `health`: the handlers.
#![forbid(unsafe_code)]

pub mod dto;
pub mod envelope;
pub mod extract;
mod health;
mod quotas;
mod tenants;

use axum::Router;
use axum::routing::{get, post, put};
use quotad_engine::Engine;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
}

pub fn router(engine: Arc<Engine>) -> Router {
    let state = AppState { engine };
    Router::new()
        .route("/api/v1/tenants", post(tenants::create))
        .route(
            "/api/v1/tenants/{id}",
            get(tenants::get).put(tenants::update),
        )
        .route("/api/v1/tenants/{id}/upgrade", post(tenants::upgrade))
        .route("/api/v1/tenants/{id}/quotas", get(quotas::list))
        .route(
            "/api/v1/tenants/{id}/quotas/{quota}",
            put(quotas::set).get(quotas::get),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(envelope::not_found)
        .method_not_allowed_fallback(envelope::method_not_allowed)
        .with_state(state)
}
