//! `{"success":true,"data":…}` / `{"success":false,"error":{"code","message"}}`.
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quotad_engine::EngineError;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::quota::QuotaError;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            code: ErrorCode::InvalidArgument,
            message: message.into(),
            field: Some(field.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        if e.code() == ErrorCode::Internal {
            tracing::error!(error = %e, "internal error");
        }
        ApiError {
            code: e.code(),
            message: e.to_string(),
            field: e.field().map(str::to_string),
        }
    }
}

impl From<QuotaError> for ApiError {
    fn from(e: QuotaError) -> Self {
        EngineError::from(e).into()
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({
            "success": false,
            "error": ErrorBody {
                code: self.code.as_str(),
                message: &self.message,
                field: self.field.as_deref(),
            },
        });
        (status, Json(body)).into_response()
    }
}

/// A successful answer in the envelope.
pub struct Ok<T>(pub StatusCode, pub T);

pub fn ok<T>(data: T) -> Ok<T> {
    Ok(StatusCode::OK, data)
}

pub fn created<T>(data: T) -> Ok<T> {
    Ok(StatusCode::CREATED, data)
}

impl<T: Serialize> IntoResponse for Ok<T> {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(serde_json::json!({ "success": true, "data": self.1 })),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<Ok<T>, ApiError>;

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let mut r = ApiError::new(
        ErrorCode::InvalidArgument,
        format!("{method} is not supported on {}", uri.path()),
    )
    .into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}
