//! A tenant's branding (custom branding tier feature; white label needs
//! its own). Reads always work and say whether the branding is in force,
//! so a tenant that lost the feature still sees what it had set.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::envelope::{ApiResult, ok};
use crate::extract::{ApiPath, JsonBody};
use crate::features::requires;
use axum::extract::State;
use quotad_engine::custom::{Branding, BrandingInput, features};
use quotad_engine::model::Role;
use quotad_engine::quota::TenantState;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrandingDto {
    pub logo_url: Option<String>,
    pub favicon_url: Option<String>,
    #[schema(example = "#1f4e8c")]
    pub primary_color: String,
    pub secondary_color: String,
    /// Text on the primary colour; meets WCAG AA contrast with it.
    pub text_color: String,
    /// light, dark or auto.
    pub theme: String,
    pub product_name: Option<String>,
    pub white_label: bool,
    /// Whether the tenant set a branding (otherwise these are the defaults).
    pub custom: bool,
    /// Whether it is in force: the tier has custom branding.
    pub active: bool,
    /// Whether white label is in force: asked for, and the tier has it.
    pub white_label_active: bool,
}

/// `PUT` body: every field optional; one left out takes its default.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrandingBody {
    /// An https:// URL.
    pub logo_url: Option<String>,
    /// An https:// URL.
    pub favicon_url: Option<String>,
    /// #rrggbb
    pub primary_color: Option<String>,
    /// #rrggbb
    pub secondary_color: Option<String>,
    /// #rrggbb, with at least 4.5:1 contrast on the primary colour.
    pub text_color: Option<String>,
    /// light, dark or auto.
    pub theme: Option<String>,
    pub product_name: Option<String>,
    /// Hide the platform's name and marks (ENTERPRISE: white label).
    pub white_label: Option<bool>,
}

/// The branding in force for `t`, if any: set, and its tier has the
/// feature (white label turned off where the tier lacks it).
pub fn in_force(s: &AppState, t: &TenantState) -> Option<Branding> {
    let catalog = s.engine.catalog();
    let mut b = t.custom.branding.clone()?;
    catalog
        .requires(t.tenant.tier, features::CUSTOM_BRANDING)
        .ok()?;
    b.white_label &= catalog
        .requires(t.tenant.tier, features::WHITE_LABEL)
        .is_ok();
    Some(b)
}

pub fn dto(s: &AppState, t: &TenantState) -> BrandingDto {
    let active = in_force(s, t);
    let b = t.custom.branding.clone().unwrap_or_default();
    BrandingDto {
        logo_url: b.logo_url.clone(),
        favicon_url: b.favicon_url.clone(),
        primary_color: b.primary_color.hex(),
        secondary_color: b.secondary_color.hex(),
        text_color: b.text_color.hex(),
        theme: b.theme.as_str().to_string(),
        product_name: b.product_name.clone(),
        white_label: b.white_label,
        custom: t.custom.branding.is_some(),
        active: active.is_some(),
        white_label_active: active.is_some_and(|a| a.white_label),
    }
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/branding", tag = "customization", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "The tenant's branding", body = crate::envelope::Envelope<BrandingDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<BrandingDto> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(dto(&s, &state)))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/branding", tag = "customization", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = BrandingBody, responses((status = 200, description = "The branding after the change", body = crate::envelope::Envelope<BrandingDto>), crate::envelope::ApiErrors))]
pub async fn put(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<BrandingDto> {
    let (id, state, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    requires(&s, &state, features::CUSTOM_BRANDING)?;
    let body: BrandingBody = body.parse()?;
    let branding = input(body).check()?;
    if branding.white_label {
        requires(&s, &state, features::WHITE_LABEL)?;
    }
    let state = s
        .engine
        .set_branding(id, Some(branding), &p.audit())
        .await?;
    Ok(ok(dto(&s, &state)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}/branding", tag = "customization", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Back to the platform's look", body = crate::envelope::Envelope<BrandingDto>), crate::envelope::ApiErrors))]
pub async fn delete(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<BrandingDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let state = s.engine.set_branding(id, None, &p.audit()).await?;
    Ok(ok(dto(&s, &state)))
}

pub fn input(b: BrandingBody) -> BrandingInput {
    BrandingInput {
        logo_url: b.logo_url,
        favicon_url: b.favicon_url,
        primary_color: b.primary_color,
        secondary_color: b.secondary_color,
        text_color: b.text_color,
        theme: b.theme,
        product_name: b.product_name,
        white_label: b.white_label,
    }
}
