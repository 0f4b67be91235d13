//! CORS for a tenant's API: a browser page on one of the tenant's allowed
//! origins (its API settings, in force for its tier) may call the
//! tenant's `/api/v1/tenants/{id}/…` routes. Other origins get no CORS
//! headers (the browser then withholds the answer) and their preflights a
//! 403. Requests without an `Origin` (servers, the CLI) are not affected.
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

const METHODS: &str = "GET, POST, PUT, DELETE";
const HEADERS: &str = "authorization, content-type, x-tenant-id, x-request-id";

/// The tenant a path is about, if it is a tenant route.
fn tenant_of(path: &str) -> Option<quotad_engine::model::TenantId> {
    path.strip_prefix("/api/v1/tenants/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Whether `origin` may call `tenant`'s API.
async fn allowed(s: &AppState, tenant: quotad_engine::model::TenantId, origin: &str) -> bool {
    match s.engine.tenant(tenant).await {
        Ok(t) => crate::api_settings::in_force(s, &t)
            .is_some_and(|a| a.cors_origins.iter().any(|o| o == origin)),
        Err(_) => false,
    }
}

pub async fn layer(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let (Some(origin), Some(tenant)) = (origin, tenant_of(req.uri().path())) else {
        return next.run(req).await;
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let ok = allowed(&s, tenant, &origin).await;
    if preflight {
        if !ok {
            return crate::envelope::ApiError::new(
                quotad_engine::error_code::ErrorCode::PermissionDenied,
                format!(
                    "origin {:?} may not call this tenant's API (its API settings list the allowed origins)",
                    quotad_engine::excerpt::short(&origin)
                ),
            )
            .with_status(StatusCode::FORBIDDEN)
            .into_response();
        }
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        allow(h, &origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return r;
    }
    let mut r = next.run(req).await;
    if ok {
        allow(r.headers_mut(), &origin);
    }
    r
}

fn allow(h: &mut axum::http::HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id, x-quotad-leader"),
        );
    }
}
