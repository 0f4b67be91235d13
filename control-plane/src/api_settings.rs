//! A tenant's API settings: the networks its API keys may be used from,
//! and the browser origins allowed to call its API (CORS). The
//! `api_settings` tier feature; kept, switched off, below it.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::envelope::{ApiResult, ok};
use crate::extract::{ApiPath, JsonBody};
use axum::extract::State;
use quotad_engine::custom::api_settings::ApiSettings;
use quotad_engine::custom::features;
use quotad_engine::model::Role;
use quotad_engine::quota::TenantState;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiSettingsDto {
    /// Networks (CIDR) the tenant's API keys may be used from; empty: anywhere.
    pub ip_allowlist: Vec<String>,
    /// Origins allowed to call the tenant's API from a browser.
    pub cors_origins: Vec<String>,
    /// Whether they are in force: the tier has API settings.
    pub active: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiSettingsBody {
    /// CIDRs or addresses (10.0.0.0/8, 2001:db8::/32, 192.0.2.7), at most 100.
    #[serde(default)]
    pub ip_allowlist: Vec<String>,
    /// Origins (https://app.example.com), at most 100.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

/// The tenant's API settings if its tier has them.
pub fn in_force<'a>(s: &AppState, t: &'a TenantState) -> Option<&'a ApiSettings> {
    s.engine
        .catalog()
        .requires(t.tenant.tier, features::API_SETTINGS)
        .ok()
        .map(|()| &*t.custom.api)
}

fn dto(s: &AppState, t: &TenantState) -> ApiSettingsDto {
    ApiSettingsDto {
        ip_allowlist: t
            .custom
            .api
            .ip_allowlist
            .iter()
            .map(|c| c.to_string())
            .collect(),
        cors_origins: t.custom.api.cors_origins.clone(),
        active: in_force(s, t).is_some(),
    }
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/api-settings", tag = "customization", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "The tenant's API settings", body = crate::envelope::Envelope<ApiSettingsDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<ApiSettingsDto> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(dto(&s, &state)))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/api-settings", tag = "customization", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = ApiSettingsBody, responses((status = 200, description = "The settings after the change", body = crate::envelope::Envelope<ApiSettingsDto>), crate::envelope::ApiErrors))]
pub async fn put(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<ApiSettingsDto> {
    let (id, state, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    crate::features::requires(&s, &state, features::API_SETTINGS)?;
    let body: ApiSettingsBody = body.parse()?;
    let settings = ApiSettings::check(&body.ip_allowlist, &body.cors_origins)?;
    let state = s.engine.set_api_settings(id, settings, &p.audit()).await?;
    Ok(ok(dto(&s, &state)))
}
