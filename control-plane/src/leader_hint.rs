//! `X-Quotad-Leader`: on answers about a tenant, the HTTP address of the
//! node leading the tenant's group when that is another node (this node
//! forwarded the work there), so clients can go there directly.
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: &str = "x-quotad-leader";

pub async fn annotate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let tenant = req
        .uri()
        .path()
        .strip_prefix("/api/v1/tenants/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| id.parse::<uuid::Uuid>().ok());
    let mut resp = next.run(req).await;
    if let Some(node) = tenant.and_then(|t| state.engine.leader_node(&t))
        && !node.http_addr.is_empty()
        && let Ok(v) = HeaderValue::from_str(&node.http_addr)
    {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
}
