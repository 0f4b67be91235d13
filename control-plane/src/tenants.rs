use crate::AppState;
use crate::auth::{Need, Principal, access, authorize, check_context, role_for};
use crate::dto::{CreateTenant, TenantDto, TierChangeDto, UpdateTenant, Upgrade};
use crate::envelope::{ApiError, ApiResult, created, ok};
use crate::extract::{ApiJson, ApiPath, tenant_id};
use axum::extract::State;
use quotad_engine::NewTenant;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::{Role, TenantStatus, Tier};
use quotad_engine::quota::{TenantUpdate, validate};

/// Settings objects larger than this are refused.
const MAX_SETTINGS_BYTES: usize = 64 * 1024;

fn tier(raw: &str) -> Result<Tier, ApiError> {
    raw.parse()
        .map_err(|e: quotad_engine::model::tier_error::UnknownTier| {
            ApiError::invalid("tier", e.to_string())
        })
}

fn settings_json(s: &serde_json::Map<String, serde_json::Value>) -> Result<String, ApiError> {
    let text = serde_json::Value::Object(s.clone()).to_string();
    if text.len() > MAX_SETTINGS_BYTES {
        return Err(ApiError::invalid(
            "settings",
            format!(
                "settings are {} bytes; at most {MAX_SETTINGS_BYTES}",
                text.len()
            ),
        ));
    }
    Ok(text)
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = crate::dto::CreateTenant, responses((status = 201, description = "Created; the caller (or ownerId, for operators) owns it", body = crate::openapi::Envelope<crate::dto::TenantDto>), crate::openapi::ApiErrors))]
pub async fn create(
    State(s): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<TenantDto> {
    let owner = if p.is_operator() {
        body.owner_id.clone()
    } else {
        match &body.owner_id {
            Some(o) if *o != p.user => {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    "only a platform operator may create a tenant for someone else (ownerId)",
                ));
            }
            _ => Some(p.user.clone()),
        }
    };
    let tier = match &body.tier {
        Some(t) => tier(t)?,
        None => Tier::Free,
    };
    let timezone = validate::timezone(body.timezone.as_deref().unwrap_or("UTC"))?;
    if let Some(days) = body.trial_days
        && !(1..=365).contains(&days)
    {
        return Err(ApiError::invalid("trialDays", "must be between 1 and 365"));
    }
    let settings_json = match &body.settings {
        Some(m) => settings_json(m)?,
        None => "{}".to_string(),
    };
    let state = s
        .engine
        .create_tenant(
            NewTenant {
                slug: body.slug,
                name: body.name,
                tier,
                timezone,
                trial_days: body.trial_days,
                settings_json,
                owner,
            },
            &p.audit(),
        )
        .await?;
    Ok(created(TenantDto::from(&state)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "The tenant", body = crate::openapi::Envelope<crate::dto::TenantDto>), crate::openapi::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<TenantDto> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(TenantDto::from(&state)))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = crate::dto::UpdateTenant, responses((status = 200, description = "Updated", body = crate::openapi::Envelope<crate::dto::TenantDto>), crate::openapi::ApiErrors))]
pub async fn update(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> ApiResult<TenantDto> {
    let (id, current, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    if body.status.is_some() {
        // Suspension and reactivation are the platform's decisions.
        authorize(&s, &p, &current, Need::Operator).await?;
    }
    if let Some(slug) = &body.slug
        && *slug != current.tenant.slug
    {
        return Err(ApiError::invalid("slug", "a tenant's slug cannot change"));
    }
    if let Some(t) = &body.tier
        && tier(t)? != current.tenant.tier
    {
        return Err(ApiError::invalid(
            "tier",
            "change the tier with POST /api/v1/tenants/{id}/upgrade",
        ));
    }
    let status = match body.status.as_deref() {
        None => None,
        Some(raw) => Some(match raw.to_ascii_uppercase().as_str() {
            "ACTIVE" => TenantStatus::Active,
            "TRIAL" if current.tenant.status == TenantStatus::Trial => TenantStatus::Trial,
            "TRIAL" => {
                return Err(ApiError::invalid(
                    "status",
                    "a tenant is a trial only from creation (trialDays); set ACTIVE or SUSPENDED",
                ));
            }
            "SUSPENDED" => TenantStatus::Suspended,
            _ => {
                return Err(ApiError::invalid(
                    "status",
                    format!("unknown status {raw:?}: expected ACTIVE, TRIAL or SUSPENDED"),
                ));
            }
        }),
    };
    let update = TenantUpdate {
        name: body.name,
        timezone: body
            .timezone
            .as_deref()
            .map(validate::timezone)
            .transpose()?,
        status,
        trial_ends_at_ms: None,
        settings_json: body.settings.as_ref().map(settings_json).transpose()?,
    };
    let state = s.engine.update_tenant(id, update, &p.audit()).await?;
    Ok(ok(TenantDto::from(&state)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/upgrade", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = crate::dto::Upgrade, responses((status = 200, description = "Moved to the tier; overLimit lists quotas already above the new limits", body = crate::openapi::Envelope<crate::dto::TierChangeDto>), crate::openapi::ApiErrors))]
pub async fn upgrade(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Upgrade>,
) -> ApiResult<TierChangeDto> {
    let (id, _current, _) = access(&s, &p, &id, Need::Role(Role::Owner)).await?;
    let tier = tier(&body.tier)?;
    let (state, over_limit) = s.engine.change_tier(id, tier, &p.audit()).await?;
    Ok(ok(TierChangeDto {
        tenant: TenantDto::from(&state),
        over_limit,
    }))
}

/// `DELETE /api/v1/tenants/{id}`: soft delete (owners, operators). Every
/// check is refused until it is restored; after the retention it is purged.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Soft-deleted; restorable until purgeAfter", body = crate::openapi::Envelope<crate::dto::TenantDto>), crate::openapi::ApiErrors))]
pub async fn delete(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<TenantDto> {
    let (id, _current, _) = access(&s, &p, &id, Need::Role(Role::Owner)).await?;
    let state = s.engine.delete_tenant(id, &p.audit()).await?;
    Ok(ok(TenantDto::from(&state)))
}

/// `POST /api/v1/tenants/{id}/restore`: undo a soft delete within the retention.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/restore", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Restored", body = crate::openapi::Envelope<crate::dto::TenantDto>), crate::openapi::ApiErrors))]
pub async fn restore(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<TenantDto> {
    let id = tenant_id(&id)?;
    check_context(&s, &p, id).await?;
    let current = s.engine.tenant(id).await?;
    // A deleted tenant cannot be charged or written to: restoring needs the role only.
    role_for(&p, &current, Need::Role(Role::Owner))?;
    let state = s.engine.restore_tenant(id, &p.audit()).await?;
    Ok(ok(TenantDto::from(&state)))
}
