//! The operators' webhooks and alerts: endpoints that hear every tenant's
//! alerts (each naming its tenant) and the platform's own, their delivery
//! log and dead-letter list, and who changed which endpoint. Operators
//! only.
use crate::AppState;
use crate::auth::Principal;
use crate::dto::rfc3339;
use crate::envelope::{ApiError, ApiResult, created, ok};
use crate::extract::{ApiPath, JsonBody, RawQuery};
use crate::webhooks::{
    AlertDto, CreatedWebhookDto, DeliveryDto, WebhookBody, WebhookDto, alerts_of, delivery_filter,
    delivery_id, dto, endpoints, log_of, overlap_of, spec,
};
use axum::extract::State;
use quotad_engine::alerts::PlatformAlerts;
use quotad_engine::error::EngineError;
use quotad_engine::error_code::ErrorCode;
use serde::Serialize;

pub fn operators_only(p: &Principal) -> Result<(), ApiError> {
    if p.is_operator() {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "the platform's webhooks and alerts are for operators",
        ))
    }
}

fn one(s: &AppState, id: &str) -> Result<WebhookDto, ApiError> {
    s.engine
        .platform_alerts(|p| p.feed.endpoints.get(id).map(dto))
        .ok_or_else(|| EngineError::PlatformWebhookNotFound { id: id.to_string() }.into())
}

/// The operators' delivery log, as a query asks.
pub fn log(
    s: &AppState,
    filter: impl Fn(&quotad_engine::alerts::Delivery) -> bool,
) -> Vec<DeliveryDto> {
    s.engine
        .platform_alerts(|p| log_of(&p.feed, |a| PlatformAlerts::message_id(a.seq), filter))
}

#[utoipa::path(get, path = "/api/v1/platform/webhooks", tag = "webhooks", responses((status = 200, description = "The operators' webhook endpoints (never their secrets)", body = crate::envelope::Envelope<Vec<WebhookDto>>), crate::envelope::ApiErrors))]
pub async fn list(State(s): State<AppState>, p: Principal) -> ApiResult<Vec<WebhookDto>> {
    operators_only(&p)?;
    Ok(ok(s.engine.platform_alerts(|p| endpoints(&p.feed))))
}

#[utoipa::path(post, path = "/api/v1/platform/webhooks", tag = "webhooks", request_body = WebhookBody, responses((status = 201, description = "Registered: it receives every tenant's alerts (each naming its tenant as tenantId) and the platform's own; its signing secret, shown this once", body = crate::envelope::Envelope<CreatedWebhookDto>), crate::envelope::ApiErrors))]
pub async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: JsonBody,
) -> ApiResult<CreatedWebhookDto> {
    operators_only(&p)?;
    let spec = spec(body.parse()?)?;
    let (id, secret) = s.engine.add_platform_webhook(spec, &p.audit()).await?;
    Ok(created(CreatedWebhookDto {
        webhook: one(&s, &id)?,
        secret,
    }))
}

#[utoipa::path(get, path = "/api/v1/platform/webhooks/{webhook}", tag = "webhooks", params(("webhook" = String, Path, description = "Endpoint id")), responses((status = 200, description = "The endpoint", body = crate::envelope::Envelope<WebhookDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(wid): ApiPath<String>,
) -> ApiResult<WebhookDto> {
    operators_only(&p)?;
    Ok(ok(one(&s, &wid)?))
}

#[utoipa::path(put, path = "/api/v1/platform/webhooks/{webhook}", tag = "webhooks", params(("webhook" = String, Path, description = "Endpoint id")), request_body = WebhookBody, responses((status = 200, description = "The endpoint after the change (enabling it again clears why it was disabled)", body = crate::envelope::Envelope<WebhookDto>), crate::envelope::ApiErrors))]
pub async fn update(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(wid): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<WebhookDto> {
    operators_only(&p)?;
    one(&s, &wid)?;
    let spec = spec(body.parse()?)?;
    s.engine
        .update_platform_webhook(&wid, spec, &p.audit())
        .await?;
    Ok(ok(one(&s, &wid)?))
}

#[utoipa::path(delete, path = "/api/v1/platform/webhooks/{webhook}", tag = "webhooks", params(("webhook" = String, Path, description = "Endpoint id")), responses((status = 200, description = "Removed, with its queued deliveries; the endpoints left", body = crate::envelope::Envelope<Vec<WebhookDto>>), crate::envelope::ApiErrors))]
pub async fn remove(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(wid): ApiPath<String>,
) -> ApiResult<Vec<WebhookDto>> {
    operators_only(&p)?;
    s.engine.remove_platform_webhook(&wid, &p.audit()).await?;
    Ok(ok(s.engine.platform_alerts(|p| endpoints(&p.feed))))
}

#[utoipa::path(post, path = "/api/v1/platform/webhooks/{webhook}/rotate", tag = "webhooks", params(("webhook" = String, Path, description = "Endpoint id")), request_body(content = Option<crate::webhooks::RotateBody>, description = "Optional: the overlap"), responses((status = 200, description = "The new signing secret, shown this once; the old one signs beside it until the overlap ends", body = crate::envelope::Envelope<CreatedWebhookDto>), crate::envelope::ApiErrors))]
pub async fn rotate(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(wid): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<CreatedWebhookDto> {
    operators_only(&p)?;
    one(&s, &wid)?;
    let overlap = overlap_of(body)?;
    let secret = s
        .engine
        .rotate_platform_webhook_secret(&wid, overlap, &p.audit())
        .await?;
    Ok(ok(CreatedWebhookDto {
        webhook: one(&s, &wid)?,
        secret,
    }))
}

#[utoipa::path(get, path = "/api/v1/platform/deliveries", tag = "webhooks", params(crate::webhooks::DeliveryParams), responses((status = 200, description = "The operators' delivery log, newest first, with each attempt (status, latency)", body = crate::envelope::Envelope<Vec<DeliveryDto>>), crate::envelope::ApiErrors))]
pub async fn delivery_log(
    State(s): State<AppState>,
    p: Principal,
    query: RawQuery,
) -> ApiResult<Vec<DeliveryDto>> {
    operators_only(&p)?;
    let filter = delivery_filter(query.parse()?)?;
    Ok(ok(log(&s, filter)))
}

#[utoipa::path(post, path = "/api/v1/platform/deliveries/{delivery}/retry", tag = "webhooks", params(("delivery" = u64, Path, description = "Delivery id")), responses((status = 200, description = "Queued again, due now, with the same webhook-id", body = crate::envelope::Envelope<Vec<DeliveryDto>>), crate::envelope::ApiErrors))]
pub async fn retry(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(did): ApiPath<String>,
) -> ApiResult<Vec<DeliveryDto>> {
    operators_only(&p)?;
    let did = delivery_id(&did)?;
    s.engine.replay_platform_delivery(did, &p.audit()).await?;
    Ok(ok(log(&s, |d| d.id == did)))
}

#[utoipa::path(get, path = "/api/v1/platform/alerts", tag = "webhooks", params(crate::webhooks::AlertParams), responses((status = 200, description = "The operators' alerts, newest first (the latest 1000): every tenant's, naming it as tenantId (tenantAlertId: its id among the tenant's), and the platform's own", body = crate::envelope::Envelope<Vec<AlertDto>>), crate::envelope::ApiErrors))]
pub async fn alerts(
    State(s): State<AppState>,
    p: Principal,
    query: RawQuery,
) -> ApiResult<Vec<AlertDto>> {
    operators_only(&p)?;
    let q = query.parse()?;
    Ok(ok(s.engine.platform_alerts(|p| alerts_of(&p.feed, q))?))
}

/// One change to an operators' endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointChangeDto {
    /// webhook.created, webhook.updated, webhook.deleted,
    /// webhook.secret_rotated or webhook.delivery_replayed.
    pub action: String,
    pub webhook_id: String,
    pub actor: String,
    pub request_id: String,
    pub at: String,
}

#[utoipa::path(get, path = "/api/v1/platform/webhook-changes", tag = "webhooks", responses((status = 200, description = "Who changed the operators' endpoints, newest first (the latest 1000)", body = crate::envelope::Envelope<Vec<EndpointChangeDto>>), crate::envelope::ApiErrors))]
pub async fn changes(State(s): State<AppState>, p: Principal) -> ApiResult<Vec<EndpointChangeDto>> {
    operators_only(&p)?;
    Ok(ok(s.engine.platform_alerts(|p| {
        p.changes
            .iter()
            .rev()
            .map(|c| EndpointChangeDto {
                action: c.action.clone(),
                webhook_id: c.endpoint.clone(),
                actor: c.by.clone(),
                request_id: c.request_id.clone(),
                at: rfc3339(c.at_ms),
            })
            .collect()
    })))
}
