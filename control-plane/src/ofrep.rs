//! The OpenFeature Remote Evaluation Protocol (OFREP): any OpenFeature SDK
//! with an OFREP provider reads a tenant's flags with no quotad library.
//!
//! `POST /ofrep/v1/evaluate/flags/{key}` and `POST /ofrep/v1/evaluate/flags`
//! take `{"context": {"targetingKey": "<tenant id>"}}`. The credential is
//! a data-plane one, as on the gRPC port (a service token, a tenant's
//! token, a tenant API key with the `check` scope): a tenant's credential
//! evaluates only its own tenant. Answers and errors are OFREP's shapes,
//! not the `/api/v1` envelope. Bulk answers carry an `ETag` over the
//! evaluated flags; `If-None-Match` with it answers 304 while nothing
//! changed.
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quotad_engine::custom::Evaluation;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::{Scope, TenantId};
use quotad_engine::quota::TenantState;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn error(
    status: StatusCode,
    key: Option<&str>,
    code: &str,
    details: impl Into<String>,
) -> Response {
    let mut body = json!({ "errorCode": code, "errorDetails": details.into() });
    if let Some(k) = key {
        body["key"] = json!(k);
    }
    (status, axum::Json(body)).into_response()
}

fn success(key: &str, e: &Evaluation) -> Value {
    json!({
        "key": key,
        "value": e.value.json(),
        "reason": e.reason.as_str(),
        "variant": e.variant,
        "metadata": {},
    })
}

/// The tenant the request evaluates for, read as its credential allows.
async fn tenant(
    s: &AppState,
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: &[u8],
    key: Option<&str>,
) -> Result<TenantState, Response> {
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            key,
            "PARSE_ERROR",
            format!("the body is not JSON: {e}"),
        )
    })?;
    // No context at all is no targeting key; a context that is not an
    // object is an invalid one.
    let empty = json!({});
    let context = match request.get("context") {
        None | Some(Value::Null) => &empty,
        Some(c) => c,
    };
    if !context.is_object() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            key,
            "INVALID_CONTEXT",
            "the body must hold a \"context\" object",
        ));
    }
    let Some(raw) = context.get("targetingKey").and_then(Value::as_str) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            key,
            "TARGETING_KEY_MISSING",
            "context.targetingKey must be the tenant id",
        ));
    };
    let id: TenantId = raw.parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            key,
            "INVALID_CONTEXT",
            "context.targetingKey must be a tenant id (a UUID)",
        )
    })?;
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let refused = |e: quotad_engine::EngineError| {
        let (status, code) = match e.code() {
            ErrorCode::Unauthenticated => (StatusCode::UNAUTHORIZED, "GENERAL"),
            ErrorCode::PermissionDenied => (StatusCode::FORBIDDEN, "GENERAL"),
            // The targeting key names no tenant (a 404 would read as an
            // unknown flag).
            ErrorCode::NotFound => (StatusCode::BAD_REQUEST, "INVALID_CONTEXT"),
            ErrorCode::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "GENERAL"),
            ErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "GENERAL"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "GENERAL"),
        };
        let mut r = error(status, key, code, e.to_string());
        if let Some(after) = e.retry_after() {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                after.as_secs().max(1).to_string().parse().expect("digits"),
            );
        }
        r
    };
    let data_plane = &s.data_plane;
    let by = data_plane
        .caller(authorization, peer)
        .await
        .map_err(refused)?;
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("ofrep");
    data_plane
        .authorize(&by.caller, &id, Scope::Check, request_id)
        .map_err(refused)?;
    s.engine.tenant_as(&by, id).await.map_err(refused)
}

/// `POST /ofrep/v1/evaluate/flags/{key}`: one flag.
pub async fn evaluate_one(
    State(s): State<AppState>,
    Path(key): Path<String>,
    crate::extract::Peer(peer): crate::extract::Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let state = match tenant(&s, peer, &headers, &body, Some(&key)).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match s.engine.evaluate_flag(&state, &key) {
        Some(e) => {
            metrics::counter!(quotad_engine::telemetry::FLAG_EVALUATIONS, "reason" => e.reason.as_str())
                .increment(1);
            (StatusCode::OK, axum::Json(success(&key, &e))).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            Some(&key),
            "FLAG_NOT_FOUND",
            format!("no flag {:?}", quotad_engine::excerpt::short(&key)),
        ),
    }
}

/// `POST /ofrep/v1/evaluate/flags`: every flag of the tenant.
pub async fn evaluate_all(
    State(s): State<AppState>,
    crate::extract::Peer(peer): crate::extract::Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let state = match tenant(&s, peer, &headers, &body, None).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let flags: Vec<Value> = s
        .engine
        .evaluate_flags(&state)
        .iter()
        .map(|(k, e)| success(k, e))
        .collect();
    let body = json!({ "flags": flags, "metadata": {} });
    let text = body.to_string();
    let etag = format!("\"{}\"", hex(&Sha256::digest(text.as_bytes())[..16]));
    metrics::counter!(quotad_engine::telemetry::FLAG_EVALUATIONS, "reason" => "BULK").increment(1);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, "application/json".to_string()),
        ],
        text,
    )
        .into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
