use crate::AppState;
use crate::auth::{Need, Principal, access, authorize, check_context, role_for};
use crate::dto::{CreateTenant, TenantDto, TierChangeDto, UpdateTenant, Upgrade};
use crate::envelope::{ApiError, ApiResult, created, ok};
use crate::extract::{ApiJson, ApiPath, JsonBody, tenant_id};
use axum::extract::State;
use chrono_tz::Tz;
use quotad_engine::NewTenant;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::{NewOwner, Role, TenantStatus, Tier};
use quotad_engine::quota::{TenantOp, TenantUpdate, validate};

/// Settings objects larger than this are refused.
const MAX_SETTINGS_BYTES: usize = 64 * 1024;

fn tier(raw: &str) -> Result<Tier, ApiError> {
    raw.parse()
        .map_err(|e: quotad_engine::model::tier_error::UnknownTier| {
            ApiError::invalid("tier", e.to_string())
        })
}

/// A request's settings, split into what the engine interprets and the
/// free-form rest. `settings.timezone` sets the tenant's timezone (its
/// calendar periods), exactly like the top-level `timezone`; giving both
/// with different values is refused. The returned JSON is the rest: the
/// timezone lives in the tenant's typed field only and is shown back in
/// `settings` from there.
struct Settings {
    timezone: Option<Tz>,
    json: String,
}

fn settings(
    settings: &serde_json::Map<String, serde_json::Value>,
    top_level_timezone: Option<&str>,
) -> Result<Settings, ApiError> {
    let mut rest = settings.clone();
    let timezone = match rest.remove("timezone") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(tz)) => {
            if let Some(top) = top_level_timezone
                && top != tz
            {
                return Err(ApiError::invalid(
                    "settings.timezone",
                    format!(
                        "{:?} contradicts timezone {:?}; give one of them",
                        quotad_engine::excerpt::short(&tz),
                        quotad_engine::excerpt::short(top)
                    ),
                ));
            }
            Some(
                validate::timezone(&tz)
                    .map_err(|e| ApiError::invalid("settings.timezone", e.reason().to_string()))?,
            )
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "settings.timezone",
                format!(
                    "must be a string naming an IANA timezone (e.g. \"America/New_York\"), not {other}"
                ),
            ));
        }
    };
    let json = serde_json::Value::Object(rest).to_string();
    if json.len() > MAX_SETTINGS_BYTES {
        return Err(ApiError::invalid(
            "settings",
            format!(
                "settings are {} bytes; at most {MAX_SETTINGS_BYTES}",
                json.len()
            ),
        ));
    }
    Ok(Settings { timezone, json })
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = crate::dto::CreateTenant, responses((status = 201, description = "Created; the caller (or ownerId, for operators) owns it", body = crate::envelope::Envelope<crate::dto::TenantDto>), crate::envelope::ApiErrors))]
pub async fn create(
    State(s): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<TenantDto> {
    let owner_id = if p.is_operator() {
        body.owner_user_id.clone()
    } else {
        match &body.owner_user_id {
            Some(o) if *o != p.user => {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    "only a platform operator may create a tenant for someone else (ownerUserId)",
                ));
            }
            _ => Some(p.user.clone()),
        }
    };
    let owner = match (owner_id, body.owner_email) {
        (Some(user_id), email) => {
            validate::user_id(&user_id)
                .map_err(|e| ApiError::invalid("ownerUserId", e.reason().to_string()))?;
            if let Some(e) = &email {
                validate::email("ownerEmail", e)?;
            }
            Some(NewOwner { user_id, email })
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "ownerEmail",
                "an owner's email needs an owner (ownerUserId)",
            ));
        }
        (None, None) => None,
    };
    let tier = match &body.tier {
        Some(t) => tier(t)?,
        None => Tier::Free,
    };
    if let Some(days) = body.trial_days
        && !(1..=365).contains(&days)
    {
        return Err(ApiError::invalid("trialDays", "must be between 1 and 365"));
    }
    let top_level_timezone = body
        .timezone
        .as_deref()
        .map(validate::timezone)
        .transpose()?;
    let (settings_timezone, settings_json) = match &body.settings {
        Some(m) => {
            let s = settings(m, body.timezone.as_deref())?;
            (s.timezone, s.json)
        }
        None => (None, "{}".to_string()),
    };
    let timezone = settings_timezone
        .or(top_level_timezone)
        .unwrap_or(chrono_tz::UTC);
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

#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "The tenant", body = crate::envelope::Envelope<crate::dto::TenantDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<TenantDto> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(TenantDto::from(&state)))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = crate::dto::UpdateTenant, responses((status = 200, description = "Updated", body = crate::envelope::Envelope<crate::dto::TenantDto>), crate::envelope::ApiErrors))]
pub async fn update(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<TenantDto> {
    let (id, current, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let body: UpdateTenant = body.parse()?;
    if body.status.is_some() {
        // Suspension and reactivation are the platform's decisions.
        authorize(&p, &current, s.engine.now_ms(), Need::Operator)?;
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
                    format!(
                        "unknown status {:?}: expected ACTIVE, TRIAL or SUSPENDED",
                        quotad_engine::excerpt::short(raw)
                    ),
                ));
            }
        }),
    };
    let top_level_timezone = body
        .timezone
        .as_deref()
        .map(validate::timezone)
        .transpose()?;
    let settings = body
        .settings
        .as_ref()
        .map(|m| settings(m, body.timezone.as_deref()))
        .transpose()?;
    let update = TenantUpdate {
        name: body.name,
        timezone: settings
            .as_ref()
            .and_then(|s| s.timezone)
            .or(top_level_timezone),
        status,
        trial_ends_at_ms: None,
        settings_json: settings.map(|s| s.json),
    };
    let state = s
        .engine
        .admin(id, TenantOp::Update(update), &p.audit())
        .await?;
    Ok(ok(TenantDto::from(&state)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/upgrade", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = crate::dto::Upgrade, responses((status = 200, description = "Moved to the tier; overLimit lists quotas already above the new limits", body = crate::envelope::Envelope<crate::dto::TierChangeDto>), crate::envelope::ApiErrors))]
pub async fn upgrade(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<TierChangeDto> {
    let (id, _current, _) = access(&s, &p, &id, Need::Role(Role::Owner)).await?;
    let body: Upgrade = body.parse()?;
    let tier = tier(&body.tier)?;
    let (state, over_limit) = s.engine.change_tier(id, tier, &p.audit()).await?;
    Ok(ok(TierChangeDto {
        tenant: TenantDto::from(&state),
        over_limit,
    }))
}

/// `DELETE /api/v1/tenants/{id}`: soft delete (owners, operators). Every
/// check is refused until it is restored; after the retention it is purged.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Soft-deleted; restorable until purgeAfter", body = crate::envelope::Envelope<crate::dto::TenantDto>), crate::envelope::ApiErrors))]
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
#[utoipa::path(post, path = "/api/v1/tenants/{id}/restore", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Restored", body = crate::envelope::Envelope<crate::dto::TenantDto>), crate::envelope::ApiErrors))]
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
    let state = s.engine.admin(id, TenantOp::Restore, &p.audit()).await?;
    Ok(ok(TenantDto::from(&state)))
}
