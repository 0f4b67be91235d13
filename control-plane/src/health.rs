use crate::AppState;
use crate::envelope::{ApiError, ApiResult, ok};
use axum::extract::State;
use quotad_engine::error_code::ErrorCode;

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, description = "The process serves HTTP", body = crate::openapi::Envelope<Object>)))]
pub async fn healthz() -> ApiResult<serde_json::Value> {
    Ok(ok(serde_json::json!({ "status": "ok" })))
}

/// Readiness: every Raft group this node serves has a leader here.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()), responses((status = 200, description = "Every Raft group has a leader here", body = crate::openapi::Envelope<Object>), (status = 503, description = "Not ready", body = crate::openapi::ErrorEnvelope)))]
pub async fn readyz(State(s): State<AppState>) -> ApiResult<serde_json::Value> {
    match s.engine.ready().await {
        Ok(()) => Ok(ok(serde_json::json!({ "status": "ready" }))),
        Err(why) => Err(ApiError::new(ErrorCode::Unavailable, why)),
    }
}
