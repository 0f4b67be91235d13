//! Webhook endpoints, their deliveries (the log, the dead-letter list,
//! replay) and the tenant's alerts.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::rfc3339;
use crate::envelope::{ApiError, ApiResult, created, ok};
use crate::extract::{ApiPath, JsonBody, RawQuery};
use axum::extract::State;
use quotad_engine::alerts::{Alert, Delivery, DeliveryState, Endpoint, EndpointSpec, TenantAlerts};
use quotad_engine::model::Role;
use quotad_engine::quota::{QuotaError, TenantState, WebhookChange};
use serde::{Deserialize, Serialize};

/// The longest overlap of a rotated secret.
const MAX_OVERLAP_SECS: u64 = 7 * 86_400;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDto {
    pub id: String,
    pub url: String,
    /// The event types it receives; empty: all.
    pub events: Vec<String>,
    pub description: String,
    pub enabled: bool,
    /// The signing secret's last four characters (the secret is shown once).
    pub secret_last4: String,
    /// While a rotated secret still signs too, until when.
    pub previous_secret_until: Option<String>,
    pub created_at: String,
    /// Why quotad disabled it, if it did.
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhookDto {
    pub webhook: WebhookDto,
    /// The signing secret (`whsec_…`): shown this once, stored sealed.
    pub secret: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookBody {
    /// Where deliveries are posted: https:// (or http://) on a public address.
    pub url: String,
    /// Event types to receive (quota.threshold_reached, quota.exceeded, ...); left out or empty: all.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// [default: true]
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old secret keeps signing beside the new one (0 to 604800) [default: 86400].
    pub overlap_seconds: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptDto {
    pub at: String,
    pub status: Option<u16>,
    pub latency_ms: u32,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    pub id: u64,
    /// The message id sent as `webhook-id` (the same on every retry).
    pub webhook_id: String,
    pub alert_id: u64,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub endpoint_id: String,
    /// pending, delivered or dead.
    pub state: String,
    pub tries: u32,
    pub next_attempt_at: Option<String>,
    pub attempts: Vec<AttemptDto>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertDto {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: String,
    pub data: serde_json::Value,
}

pub fn dto(e: &Endpoint) -> WebhookDto {
    WebhookDto {
        id: e.id.clone(),
        url: e.url.clone(),
        events: e.events.iter().map(|t| t.as_str().to_string()).collect(),
        description: e.description.clone(),
        enabled: e.enabled,
        secret_last4: e.secret.last4.clone(),
        previous_secret_until: e.previous.as_ref().map(|(_, until)| rfc3339(*until)),
        created_at: rfc3339(e.created_at_ms),
        disabled_reason: e.disabled_reason.clone(),
    }
}

fn one(t: &TenantState, id: &str) -> Result<WebhookDto, ApiError> {
    t.alerts.endpoints.get(id).map(dto).ok_or_else(|| {
        QuotaError::WebhookNotFound {
            tenant: t.tenant.id,
            id: id.to_string(),
        }
        .into()
    })
}

pub fn spec(body: WebhookBody) -> Result<EndpointSpec, ApiError> {
    Ok(EndpointSpec::check(
        &body.url,
        &body.events.unwrap_or_default(),
        body.description.as_deref().unwrap_or(""),
        body.enabled.unwrap_or(true),
    )?)
}

/// A tenant's delivery log, newest first.
pub fn deliveries(t: &TenantState, filter: impl Fn(&Delivery) -> bool) -> Vec<DeliveryDto> {
    log_of(&t.alerts, |a| a.message_id(&t.tenant.id), filter)
}

/// A delivery log (a tenant's or the operators'), newest first.
pub fn log_of(
    feed: &TenantAlerts,
    message_id: impl Fn(&Alert) -> String,
    filter: impl Fn(&Delivery) -> bool,
) -> Vec<DeliveryDto> {
    feed.deliveries
        .values()
        .rev()
        .filter(|d| filter(d))
        .map(|d| {
            let alert = feed.alert(d.alert);
            DeliveryDto {
                id: d.id,
                webhook_id: alert.map(&message_id).unwrap_or_default(),
                alert_id: d.alert,
                kind: alert.map(|a| a.kind.as_str().to_string()),
                endpoint_id: d.endpoint.clone(),
                state: d.state.as_str().to_string(),
                tries: d.tries,
                next_attempt_at: (d.state == DeliveryState::Pending).then(|| rfc3339(d.next_at_ms)),
                attempts: d
                    .attempts
                    .iter()
                    .map(|a| AttemptDto {
                        at: rfc3339(a.at_ms),
                        status: a.status,
                        latency_ms: a.latency_ms,
                        error: a.error.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Endpoints, as shown.
pub fn endpoints(feed: &TenantAlerts) -> Vec<WebhookDto> {
    feed.endpoints.values().map(dto).collect()
}

/// The check of a delivery log's query: which state, which endpoint.
pub fn delivery_filter(q: DeliveryParams) -> Result<impl Fn(&Delivery) -> bool, ApiError> {
    let wanted = match q.state.as_deref() {
        None => None,
        Some("pending") => Some(DeliveryState::Pending),
        Some("delivered") => Some(DeliveryState::Delivered),
        Some("dead") => Some(DeliveryState::Dead),
        Some(_) => {
            return Err(ApiError::invalid(
                "state",
                "must be pending, delivered or dead",
            ));
        }
    };
    Ok(move |d: &Delivery| {
        wanted.is_none_or(|w| d.state == w) && q.webhook.as_ref().is_none_or(|w| &d.endpoint == w)
    })
}

/// A delivery id from the path.
pub fn delivery_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid("delivery", "must be a delivery id (a number)"))
}

/// The latest alerts of a feed, newest first, as a query asks.
pub fn alerts_of(feed: &TenantAlerts, q: AlertParams) -> Result<Vec<AlertDto>, ApiError> {
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => Some(
            quotad_engine::alerts::AlertType::parse(k).map_err(|e| ApiError::invalid("type", e))?,
        ),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 1 to 1000"));
    }
    Ok(feed
        .recent
        .iter()
        .rev()
        .filter(|a| kind.is_none_or(|k| a.kind == k))
        .take(limit)
        .map(|a| AlertDto {
            id: a.seq,
            kind: a.kind.as_str().to_string(),
            at: rfc3339(a.at_ms),
            data: serde_json::from_str(&a.data).unwrap_or_default(),
        })
        .collect())
}

/// A rotation's overlap, checked.
pub fn overlap_of(body: JsonBody) -> Result<std::time::Duration, ApiError> {
    let body: RotateBody = if body.is_empty() {
        RotateBody::default()
    } else {
        body.parse()?
    };
    let overlap = body.overlap_seconds.unwrap_or(86_400);
    if overlap > MAX_OVERLAP_SECS {
        return Err(ApiError::invalid(
            "overlapSeconds",
            format!("must be from 0 to {MAX_OVERLAP_SECS}"),
        ));
    }
    Ok(std::time::Duration::from_secs(overlap))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/webhooks", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Webhook endpoints (never their secrets)", body = crate::envelope::Envelope<Vec<WebhookDto>>), crate::envelope::ApiErrors))]
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Vec<WebhookDto>> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(endpoints(&state.alerts)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/webhooks", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = WebhookBody, responses((status = 201, description = "Registered; its signing secret, shown this once", body = crate::envelope::Envelope<CreatedWebhookDto>), crate::envelope::ApiErrors))]
pub async fn create(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<CreatedWebhookDto> {
    let (id, state, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    crate::features::requires(&s, &state, quotad_engine::custom::features::WEBHOOKS)?;
    let spec = spec(body.parse()?)?;
    let (state, wid, secret) = s.engine.add_webhook(id, spec, &p.audit()).await?;
    Ok(created(CreatedWebhookDto {
        webhook: one(&state, &wid)?,
        secret,
    }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/webhooks/{webhook}", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("webhook" = String, Path, description = "Endpoint id")), responses((status = 200, description = "The endpoint", body = crate::envelope::Envelope<WebhookDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, wid)): ApiPath<(String, String)>,
) -> ApiResult<WebhookDto> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(one(&state, &wid)?))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/webhooks/{webhook}", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("webhook" = String, Path, description = "Endpoint id")), request_body = WebhookBody, responses((status = 200, description = "The endpoint after the change (enabling it again clears why it was disabled)", body = crate::envelope::Envelope<WebhookDto>), crate::envelope::ApiErrors))]
pub async fn update(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, wid)): ApiPath<(String, String)>,
    body: JsonBody,
) -> ApiResult<WebhookDto> {
    let (id, state, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    crate::features::requires(&s, &state, quotad_engine::custom::features::WEBHOOKS)?;
    one(&state, &wid)?;
    let spec = spec(body.parse()?)?;
    let state = s.engine.update_webhook(id, &wid, spec, &p.audit()).await?;
    Ok(ok(one(&state, &wid)?))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}/webhooks/{webhook}", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("webhook" = String, Path, description = "Endpoint id")), responses((status = 200, description = "Removed, with its queued deliveries; the endpoints left", body = crate::envelope::Envelope<Vec<WebhookDto>>), crate::envelope::ApiErrors))]
pub async fn remove(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, wid)): ApiPath<(String, String)>,
) -> ApiResult<Vec<WebhookDto>> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let state = s
        .engine
        .webhook_change(id, WebhookChange::Remove { id: wid }, &p.audit())
        .await?;
    Ok(ok(endpoints(&state.alerts)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/webhooks/{webhook}/rotate", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("webhook" = String, Path, description = "Endpoint id")), request_body(content = Option<RotateBody>, description = "Optional: the overlap"), responses((status = 200, description = "The new signing secret, shown this once; the old one signs beside it until the overlap ends", body = crate::envelope::Envelope<CreatedWebhookDto>), crate::envelope::ApiErrors))]
pub async fn rotate(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, wid)): ApiPath<(String, String)>,
    body: JsonBody,
) -> ApiResult<CreatedWebhookDto> {
    let (id, state, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    one(&state, &wid)?;
    let overlap = overlap_of(body)?;
    let (state, secret) = s
        .engine
        .rotate_webhook_secret(id, &wid, overlap, &p.audit())
        .await?;
    Ok(ok(CreatedWebhookDto {
        webhook: one(&state, &wid)?,
        secret,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryParams {
    /// pending, delivered or dead (the dead-letter list).
    pub state: Option<String>,
    /// Only this endpoint's.
    pub webhook: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/deliveries", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Tenant id"), DeliveryParams), responses((status = 200, description = "The delivery log, newest first, with each attempt (status, latency)", body = crate::envelope::Envelope<Vec<DeliveryDto>>), crate::envelope::ApiErrors))]
pub async fn delivery_log(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    query: RawQuery,
) -> ApiResult<Vec<DeliveryDto>> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    let filter = delivery_filter(query.parse()?)?;
    Ok(ok(deliveries(&state, filter)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/deliveries/{delivery}/retry", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("delivery" = u64, Path, description = "Delivery id")), responses((status = 200, description = "Queued again, due now, with the same webhook-id", body = crate::envelope::Envelope<Vec<DeliveryDto>>), crate::envelope::ApiErrors))]
pub async fn retry(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, did)): ApiPath<(String, String)>,
) -> ApiResult<Vec<DeliveryDto>> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let did = delivery_id(&did)?;
    let state = s
        .engine
        .webhook_change(id, WebhookChange::Replay { id: did }, &p.audit())
        .await?;
    Ok(ok(deliveries(&state, |d| d.id == did)))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertParams {
    /// Only this type (quota.threshold_reached, ...).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// At most this many, newest first (1 to 1000) [default: 100].
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/alerts", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Tenant id"), AlertParams), responses((status = 200, description = "The tenant's alerts, newest first (the latest 1000 are kept)", body = crate::envelope::Envelope<Vec<AlertDto>>), crate::envelope::ApiErrors))]
pub async fn alerts(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    query: RawQuery,
) -> ApiResult<Vec<AlertDto>> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(alerts_of(&state.alerts, query.parse()?)?))
}
