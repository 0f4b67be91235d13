//! `{"success":true,"data":…}` / `{"success":false,"error":{"code","message"}}`.
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quotad_engine::EngineError;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::quota::QuotaError;
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// An HTTP status more precise than the code's (413 for a body over
    /// the limit: still INVALID_ARGUMENT, naming `body`).
    pub status: Option<StatusCode>,
    /// Sent as `Retry-After` (whole seconds, rounded up): load shedding.
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
            status: None,
            retry_after: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(ErrorCode::InvalidArgument, message)
        }
    }

    /// The same error answered with `status`.
    pub fn with_status(self, status: StatusCode) -> Self {
        ApiError {
            status: Some(status),
            ..self
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        if e.code() == ErrorCode::Internal {
            tracing::error!(error = %e, "internal error");
        }
        ApiError {
            field: e.field().map(str::to_string),
            retry_after: e.retry_after(),
            ..ApiError::new(e.code(), e.to_string())
        }
    }
}

impl From<QuotaError> for ApiError {
    fn from(e: QuotaError) -> Self {
        EngineError::from(e).into()
    }
}

/// `{"success": true, "data": …}`
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
}

/// `{"success": false, "error": {…}}`
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
    /// UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNAVAILABLE,
    /// INTERNAL.
    pub code: String,
    pub message: String,
    /// The request field the error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The errors every `/api/v1` endpoint may answer with.
#[derive(IntoResponses)]
pub enum ApiErrors {
    /// A malformed id, body or parameter (`error.field` names it).
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorEnvelope),
    /// No token, or an invalid or expired one.
    #[response(status = 401)]
    Unauthenticated(ErrorEnvelope),
    /// Not allowed for this caller, or a cross-tenant request.
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// No such tenant, quota, member or route.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
    /// Conflicts with the current state (a taken slug, the last owner, a
    /// full `users` quota).
    #[response(status = 409)]
    Conflict(ErrorEnvelope),
    /// The request body is larger than 256 KiB (`error.field` is `body`).
    #[response(status = 413)]
    TooLarge(ErrorEnvelope),
    /// RESOURCE_EXHAUSTED: the node is shedding load (a queue in front of
    /// the tenant's decisions is full) and changed nothing; retry after
    /// `Retry-After` seconds.
    #[response(status = 429)]
    Overloaded(ErrorEnvelope),
    #[response(status = 500)]
    Internal(ErrorEnvelope),
    /// The node is not ready (e.g. no Raft leader), or the request was not
    /// answered within the node's request timeout.
    #[response(status = 503)]
    Unavailable(ErrorEnvelope),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        });
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: self.code.as_str().to_string(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_millis().div_ceil(1000).max(1);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs as u64),
            );
        }
        response
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
            Json(Envelope {
                success: true,
                data: self.1,
            }),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<Ok<T>, ApiError>;

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiError::new(
        ErrorCode::InvalidArgument,
        format!("{method} is not supported on {}", uri.path()),
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
    .into_response()
}

/// Middleware: a request not answered within the node's request timeout is
/// answered 503 and its handler dropped, so a stalled request holds
/// nothing for long. A change may still have been applied: the answer says
/// so (OUTCOME_UNKNOWN) for anything but a read.
pub async fn deadline(
    axum::extract::State(timeout): axum::extract::State<std::time::Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let read = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    match tokio::time::timeout(timeout, next.run(req)).await {
        std::result::Result::Ok(response) => response,
        Err(_) => {
            let secs = timeout.as_secs_f64();
            if read {
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!("not answered within the request timeout ({secs} s); retry"),
                )
            } else {
                ApiError::new(
                    ErrorCode::OutcomeUnknown,
                    format!(
                        "not answered within the request timeout ({secs} s); the change may or may not have been applied: read the resource before retrying"
                    ),
                )
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quotad_engine::shed::Shed;

    fn retry_after(r: &Response) -> Option<&str> {
        r.headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap())
    }

    #[test]
    fn load_shedding_is_429_with_retry_after_and_only_it_is() {
        let shed = EngineError::Overloaded {
            why: Shed::NodeInFlight { limit: 8 },
        };
        let r = ApiError::from(shed).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after(&r), Some("1"));
        // Shed by the leader a request was forwarded to.
        let remote = EngineError::Remote {
            code: ErrorCode::ResourceExhausted,
            message: "overloaded".into(),
            field: None,
        };
        assert_eq!(
            retry_after(&ApiError::from(remote).into_response()),
            Some("1")
        );
        // Too many idempotency keys is 429 too, but waiting 1 s does not help.
        let keys = QuotaError::TooManyIdempotencyKeys {
            tenant: uuid::Uuid::nil(),
            limit: 1,
        };
        let r = ApiError::from(keys).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after(&r), None);
        assert_eq!(
            retry_after(&ApiError::new(ErrorCode::Unavailable, "x").into_response()),
            None
        );
    }

    /// A request past the timeout is answered 503 in the envelope: a read
    /// UNAVAILABLE, a change OUTCOME_UNKNOWN (it may have been applied).
    #[tokio::test]
    async fn a_request_past_the_timeout_gets_503_saying_what_is_known() {
        let never = || async { std::future::pending::<&'static str>().await };
        let app = axum::Router::new()
            .route("/slow", axum::routing::get(never).post(never))
            .route("/quick", axum::routing::get(|| async { "done" }))
            .layer(axum::middleware::from_fn_with_state(
                std::time::Duration::from_millis(50),
                deadline,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let call = |method: reqwest::Method, path: &str| {
            client
                .request(method, format!("http://{addr}{path}"))
                .send()
        };
        let r = call(reqwest::Method::GET, "/slow").await.unwrap();
        assert_eq!(r.status(), 503);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "UNAVAILABLE", "{v}");
        let r = call(reqwest::Method::POST, "/slow").await.unwrap();
        assert_eq!(r.status(), 503);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "OUTCOME_UNKNOWN", "{v}");
        let r = call(reqwest::Method::GET, "/quick").await.unwrap();
        assert_eq!(r.status(), 200);
    }
}
