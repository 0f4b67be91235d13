//! Extractors whose rejections answer in the envelope, naming what was wrong.
use crate::envelope::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use quotad_engine::model::TenantId;
use serde::de::DeserializeOwned;

/// `Json<T>`, with malformed bodies refused as `INVALID_ARGUMENT`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(r: JsonRejection) -> ApiError {
    let message = match &r {
        JsonRejection::JsonDataError(e) => format!("invalid request body: {}", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => {
            format!("request body is not valid JSON: {}", e.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => {
            "request body must be JSON (Content-Type: application/json)".to_string()
        }
        other => other.body_text(),
    };
    // serde_path_to_error puts the field path before the first ': '.
    let field = match &r {
        JsonRejection::JsonDataError(e) => e
            .body_text()
            .split_once(": ")
            .and_then(|(_, rest)| rest.split_once(": "))
            .map(|(path, _)| path.to_string())
            .filter(|p| !p.contains(' ')),
        _ => None,
    };
    let mut err = ApiError::invalid("body", message);
    err.field = field.or(Some("body".into()));
    err
}

/// `Path<T>`, with rejections in the envelope.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| ApiError::invalid("path", e.body_text()))
    }
}

/// A tenant id from the path.
pub fn tenant_id(id: &str) -> Result<TenantId, ApiError> {
    TenantId::parse_str(id)
        .map_err(|_| ApiError::invalid("id", format!("tenant id {id:?} is not a UUID")))
}

/// `Query<T>`, with rejections in the envelope.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::invalid("query", e.body_text()))
    }
}

/// An RFC 3339 time from a query parameter, in Unix milliseconds.
pub fn time_param(field: &str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::invalid(
                field,
                format!("{value:?} is not an RFC 3339 time (e.g. 2026-11-27T00:00:00Z)"),
            )
        })
}
