use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::rfc3339;
use crate::envelope::{ApiResult, created, ok};
use crate::extract::{ApiPath, JsonBody};
use axum::extract::State;
use quotad_engine::model::Role;
use quotad_engine::quota::{TenantOp, TenantState};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainDto {
    pub domain: String,
    pub verified: bool,
    /// The DNS TXT record that proves control of the domain.
    pub verification_record: String,
    pub added_at: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddDomain {
    /// A lowercase DNS name, e.g. quota.example.com.
    pub domain: String,
}

/// The DNS label a tenant publishes its token under: the platform's, or
/// under white label (in force for its tier) a neutral one, so the
/// instructions its admins read do not name the platform. Operators verify
/// the record this shows at the time.
fn verification_label(app: &AppState, t: &TenantState) -> &'static str {
    if crate::branding::in_force(app, t).is_some_and(|b| b.white_label) {
        "_domain-verify"
    } else {
        "_quotad-verify"
    }
}

fn domains(app: &AppState, s: &TenantState) -> Vec<DomainDto> {
    let label = verification_label(app, s);
    s.domains
        .values()
        .map(|d| DomainDto {
            domain: d.name.clone(),
            verified: d.verified,
            verification_record: format!("{label}.{} TXT {}", d.name, d.token),
            added_at: rfc3339(d.added_at_ms),
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/domains", tag = "domains", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Custom domains", body = crate::envelope::Envelope<Vec<DomainDto>>), crate::envelope::ApiErrors))]
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Vec<DomainDto>> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(domains(&s, &state)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/domains", tag = "domains", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = AddDomain, responses((status = 201, description = "Registered, unverified; domains after the change", body = crate::envelope::Envelope<Vec<DomainDto>>), crate::envelope::ApiErrors))]
pub async fn add(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<Vec<DomainDto>> {
    let (id, state, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let body: AddDomain = body.parse()?;
    crate::features::requires(&s, &state, quotad_engine::custom::features::CUSTOM_DOMAINS)?;
    let state = s.engine.add_domain(id, &body.domain, &p.audit()).await?;
    Ok(created(domains(&s, &state)))
}

/// Verification is the platform's: an operator confirms the TXT record
/// (this node does not resolve DNS itself).
#[utoipa::path(post, path = "/api/v1/tenants/{id}/domains/{domain}/verify", tag = "domains", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("domain" = String, Path, description = "The domain")), responses((status = 200, description = "Verified; requests with this Host now belong to the tenant", body = crate::envelope::Envelope<Vec<DomainDto>>), crate::envelope::ApiErrors))]
pub async fn verify(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, domain)): ApiPath<(String, String)>,
) -> ApiResult<Vec<DomainDto>> {
    let (id, _, _) = access(&s, &p, &id, Need::Operator).await?;
    let op = TenantOp::VerifyDomain { domain };
    let state = s.engine.admin(id, op, &p.audit()).await?;
    Ok(ok(domains(&s, &state)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}/domains/{domain}", tag = "domains", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("domain" = String, Path, description = "The domain")), responses((status = 200, description = "Removed; domains after the change", body = crate::envelope::Envelope<Vec<DomainDto>>), crate::envelope::ApiErrors))]
pub async fn remove(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, domain)): ApiPath<(String, String)>,
) -> ApiResult<Vec<DomainDto>> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let state = s.engine.remove_domain(id, &domain, &p.audit()).await?;
    Ok(ok(domains(&s, &state)))
}
