use crate::AppState;
use crate::envelope::{ApiError, ApiResult, ok};
use axum::extract::State;
use quotad_engine::error_code::ErrorCode;

/// Liveness: the process serves HTTP.
pub async fn healthz() -> ApiResult<serde_json::Value> {
    Ok(ok(serde_json::json!({ "status": "ok" })))
}

/// Readiness: every Raft group this node serves has a leader here.
pub async fn readyz(State(s): State<AppState>) -> ApiResult<serde_json::Value> {
    match s.engine.ready().await {
        Ok(()) => Ok(ok(serde_json::json!({ "status": "ready" }))),
        Err(why) => Err(ApiError::new(ErrorCode::Unavailable, why)),
    }
}
