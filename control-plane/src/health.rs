use crate::AppState;
use crate::envelope::{ApiError, ApiResult, ok};
use axum::extract::State;
use quotad_engine::error_code::ErrorCode;

/// Liveness: the process serves HTTP and none of its Raft groups stopped
/// on an error. A group stops for good when a write or fsync of the data
/// dir fails (a full disk): only a restart reopens the store, so a
/// supervisor probing this restarts the node, which then recovers once the
/// disk has room.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, description = "The process serves HTTP and no Raft group has stopped on an error", body = crate::envelope::Envelope<Object>), (status = 503, description = "A Raft group stopped on an error (a failed write of the data dir); restart the node", body = crate::envelope::ErrorEnvelope)))]
pub async fn healthz(State(s): State<AppState>) -> ApiResult<serde_json::Value> {
    match s.engine.failure() {
        None => Ok(ok(serde_json::json!({ "status": "ok" }))),
        Some(why) => Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("{why}; restart the node once its data dir is writable"),
        )),
    }
}

/// Readiness: every Raft group this node serves has a leader here.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()), responses((status = 200, description = "Every Raft group has a leader here", body = crate::envelope::Envelope<Object>), (status = 503, description = "Not ready", body = crate::envelope::ErrorEnvelope)))]
pub async fn readyz(State(s): State<AppState>) -> ApiResult<serde_json::Value> {
    match s.engine.ready().await {
        Ok(()) => Ok(ok(serde_json::json!({ "status": "ready" }))),
        Err(why) => Err(ApiError::new(ErrorCode::Unavailable, why)),
    }
}
