//! A tenant's single sign-on settings (the `sso` tier feature): its OIDC
//! issuer, client, allowed email domains and claim-to-role mapping. The
//! client secret is write-only: reads show its last four characters.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::envelope::{ApiResult, ok};
use crate::extract::{ApiPath, JsonBody};
use axum::extract::State;
use quotad_engine::custom::features;
use quotad_engine::custom::sso::SsoInput;
use quotad_engine::model::Role;
use quotad_engine::quota::TenantState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SsoDto {
    pub issuer: String,
    pub client_id: String,
    pub client_secret_last4: Option<String>,
    pub allowed_email_domains: Vec<String>,
    pub role_claim: String,
    pub role_mapping: BTreeMap<String, String>,
    pub default_role: Option<String>,
    /// Whether SAML metadata is stored (validated, not used for sign-in).
    pub saml_metadata: bool,
    /// Whether it is in force: the tier has SSO.
    pub active: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SsoBody {
    /// The issuer's URL (its discovery document is fetched to check it).
    pub issuer: String,
    pub client_id: String,
    /// Write-only; left out, the one set before stays.
    pub client_secret: Option<String>,
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// The claim mapped to roles [default: groups].
    pub role_claim: Option<String>,
    /// Claim value -> role (owner, admin, member, viewer).
    #[serde(default)]
    pub role_mapping: BTreeMap<String, String>,
    /// The role when no mapping matches; left out: refused.
    pub default_role: Option<String>,
    /// SAML metadata (an EntityDescriptor), stored only.
    pub saml_metadata: Option<String>,
}

fn dto(s: &AppState, t: &TenantState) -> Option<SsoDto> {
    let o = t.custom.sso.as_ref()?;
    Some(SsoDto {
        issuer: o.issuer.clone(),
        client_id: o.client_id.clone(),
        client_secret_last4: o.client_secret.as_ref().map(|c| c.last4.clone()),
        allowed_email_domains: o.allowed_email_domains.clone(),
        role_claim: o.role_claim.clone(),
        role_mapping: o
            .role_mapping
            .iter()
            .map(|(k, r)| (k.clone(), r.as_str().to_string()))
            .collect(),
        default_role: o.default_role.map(|r| r.as_str().to_string()),
        saml_metadata: o.saml_metadata.is_some(),
        active: s
            .engine
            .catalog()
            .requires(t.tenant.tier, features::SSO)
            .is_ok(),
    })
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/sso", tag = "customization", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "The tenant's single sign-on (null when none)", body = crate::envelope::Envelope<Option<SsoDto>>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Option<SsoDto>> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    Ok(ok(dto(&s, &state)))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/sso", tag = "customization", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = SsoBody, responses((status = 200, description = "The settings after the change", body = crate::envelope::Envelope<Option<SsoDto>>), crate::envelope::ApiErrors))]
pub async fn put(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<Option<SsoDto>> {
    let (id, state, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    crate::features::requires(&s, &state, features::SSO)?;
    let b: SsoBody = body.parse()?;
    let input = SsoInput {
        issuer: b.issuer,
        client_id: b.client_id,
        client_secret: b.client_secret,
        allowed_email_domains: b.allowed_email_domains,
        role_claim: b.role_claim,
        role_mapping: b.role_mapping,
        default_role: b.default_role,
        saml_metadata: b.saml_metadata,
    };
    input.check()?;
    let state = s.engine.set_sso(id, Some(input), &p.audit()).await?;
    Ok(ok(dto(&s, &state)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}/sso", tag = "customization", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Removed: the issuer's tokens are refused from now on", body = crate::envelope::Envelope<Option<SsoDto>>), crate::envelope::ApiErrors))]
pub async fn delete(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Option<SsoDto>> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let state = s.engine.set_sso(id, None, &p.audit()).await?;
    Ok(ok(dto(&s, &state)))
}
