//! Billing events from the platform's billing system: a failed payment
//! raises `billing.payment_failed` and starts a grace period (then, if
//! the node is set to, suspension); a successful one ends it.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::rfc3339;
use crate::envelope::{ApiError, ApiResult, ok};
use crate::extract::{ApiPath, JsonBody};
use axum::extract::State;
use quotad_engine::quota::TenantState;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillingEventBody {
    /// payment_failed or payment_succeeded.
    #[serde(rename = "type")]
    pub kind: String,
    /// The billing system's invoice id, passed on in the alert.
    pub invoice_id: Option<String>,
    /// In the smallest currency unit, passed on in the alert.
    pub amount: Option<u64>,
    pub currency: Option<String>,
    /// Why the payment failed, passed on in the alert.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingStandingDto {
    /// The tenant's status after the event.
    pub status: String,
    /// Set while a payment is outstanding.
    pub failing: Option<FailingDto>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailingDto {
    pub since: String,
    pub failures: u32,
    pub grace_ends_at: String,
    pub suspend_at_grace_end: bool,
    pub suspended: bool,
}

fn standing(t: &TenantState) -> BillingStandingDto {
    BillingStandingDto {
        status: t.tenant.status.as_str().to_string(),
        failing: t.alerts.billing.as_ref().map(|b| FailingDto {
            since: rfc3339(b.since_ms),
            failures: b.failures,
            grace_ends_at: rfc3339(b.grace_until_ms),
            suspend_at_grace_end: b.suspend,
            suspended: b.suspended,
        }),
    }
}

fn short(field: &str, v: &Option<String>) -> Result<(), ApiError> {
    match v {
        Some(s) if s.chars().count() > 200 => {
            Err(ApiError::invalid(field, "must be at most 200 characters"))
        }
        _ => Ok(()),
    }
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/billing-events", tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = BillingEventBody, responses((status = 200, description = "Recorded; the tenant's billing standing", body = crate::envelope::Envelope<BillingStandingDto>), crate::envelope::ApiErrors))]
pub async fn event(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<BillingStandingDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Operator).await?;
    let body: BillingEventBody = body.parse()?;
    let succeeded = match body.kind.as_str() {
        "payment_failed" => false,
        "payment_succeeded" => true,
        other => {
            return Err(ApiError::invalid(
                "type",
                format!(
                    "unknown value {:?}: expected payment_failed or payment_succeeded",
                    quotad_engine::excerpt::short(other)
                ),
            ));
        }
    };
    short("invoiceId", &body.invoice_id)?;
    short("currency", &body.currency)?;
    short("reason", &body.reason)?;
    let data = serde_json::json!({
        "invoiceId": body.invoice_id,
        "amount": body.amount,
        "currency": body.currency,
        "reason": body.reason,
    });
    let state = s
        .engine
        .billing_event(id, succeeded, data, &p.audit())
        .await?;
    Ok(ok(standing(&state)))
}
