//! Feature flags over REST: a tenant's flags (evaluated, and its own
//! values), and the platform's flag definitions (operators).
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::rfc3339;
use crate::envelope::{ApiError, ApiResult, ok};
use crate::extract::{ApiPath, JsonBody};
use axum::extract::State;
use quotad_engine::custom::{Evaluation, FlagDef, FlagType, FlagValue};
use quotad_engine::engine::FlagSource;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::{Role, Tier};
use quotad_engine::quota::{QuotaError, TenantState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A flag as a tenant sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantFlagDto {
    pub key: String,
    /// boolean, string, number or object.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value the tenant's evaluations get.
    pub value: serde_json::Value,
    pub variant: String,
    /// STATIC, DEFAULT, TARGETING_MATCH or DISABLED (OpenFeature's reasons).
    pub reason: String,
    /// catalog, platform, or tenant (a flag of the tenant's own).
    pub source: String,
    /// The value the tenant set, if any (kept while its tier does not
    /// allow the flag, unused).
    pub tenant_value: Option<serde_json::Value>,
    /// The flag's default (none for a flag of the tenant's own).
    pub default: Option<serde_json::Value>,
    /// The lowest tier that may use the flag, if limited.
    pub min_tier: Option<String>,
    pub description: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetFlagBody {
    /// A boolean, string, number, object or array (of the flag's type,
    /// for a defined flag).
    pub value: serde_json::Value,
}

pub fn tenant_flag(
    s: &AppState,
    t: &TenantState,
    key: &str,
    e: &Evaluation,
    def: Option<&(FlagDef, FlagSource)>,
) -> TenantFlagDto {
    let _ = s;
    TenantFlagDto {
        key: key.to_string(),
        kind: def
            .map(|(d, _)| d.kind)
            .unwrap_or_else(|| e.value.kind())
            .as_str()
            .to_string(),
        value: e.value.json(),
        variant: e.variant.clone(),
        reason: e.reason.as_str().to_string(),
        source: def.map_or("tenant", |(_, src)| src.as_str()).to_string(),
        tenant_value: t.custom.flags.get(key).map(FlagValue::json),
        default: def.map(|(d, _)| d.default.json()),
        min_tier: def.and_then(|(d, _)| d.min_tier).map(|t| t.to_string()),
        description: def.map(|(d, _)| d.description.clone()).unwrap_or_default(),
    }
}

/// Every flag of the tenant, evaluated, by key.
pub fn tenant_flags(s: &AppState, t: &TenantState) -> Vec<TenantFlagDto> {
    let defs = s.engine.flag_defs();
    s.engine
        .evaluate_flags(t)
        .iter()
        .map(|(k, e)| tenant_flag(s, t, k, e, defs.get(k)))
        .collect()
}

fn one(s: &AppState, t: &TenantState, key: &str) -> Result<TenantFlagDto, ApiError> {
    let e = s.engine.evaluate_flag(t, key).ok_or_else(|| {
        ApiError::from(quotad_engine::EngineError::FlagNotFound {
            key: key.to_string(),
        })
    })?;
    Ok(tenant_flag(s, t, key, &e, s.engine.flag_def(key).as_ref()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/flags", tag = "flags", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Every flag, evaluated for the tenant", body = crate::envelope::Envelope<Vec<TenantFlagDto>>), crate::envelope::ApiErrors))]
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Vec<TenantFlagDto>> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(tenant_flags(&s, &state)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/flags/{key}", tag = "flags", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("key" = String, Path, description = "Flag key")), responses((status = 200, description = "The flag, evaluated for the tenant", body = crate::envelope::Envelope<TenantFlagDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, key)): ApiPath<(String, String)>,
) -> ApiResult<TenantFlagDto> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(one(&s, &state, &key)?))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/flags/{key}", tag = "flags", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("key" = String, Path, description = "Flag key")), request_body = SetFlagBody, responses((status = 200, description = "The flag after the change", body = crate::envelope::Envelope<TenantFlagDto>), crate::envelope::ApiErrors))]
pub async fn put(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, key)): ApiPath<(String, String)>,
    body: JsonBody,
) -> ApiResult<TenantFlagDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let body: SetFlagBody = body.parse()?;
    let value = FlagValue::of("value", &body.value)?;
    let state = s
        .engine
        .set_tenant_flag(id, &key, Some(value), &p.audit())
        .await?;
    Ok(ok(one(&s, &state, &key)?))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}/flags/{key}", tag = "flags", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("key" = String, Path, description = "Flag key")), responses((status = 200, description = "The tenant's value removed; the flags after the change", body = crate::envelope::Envelope<Vec<TenantFlagDto>>), crate::envelope::ApiErrors))]
pub async fn delete(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, key)): ApiPath<(String, String)>,
) -> ApiResult<Vec<TenantFlagDto>> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let state = s.engine.set_tenant_flag(id, &key, None, &p.audit()).await?;
    Ok(ok(tenant_flags(&s, &state)))
}

/// A flag definition (the platform's, or the catalog's).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagDefDto {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub default: serde_json::Value,
    /// The value for tenants of a tier, where it differs from the default.
    pub tiers: BTreeMap<String, serde_json::Value>,
    pub min_tier: Option<String>,
    pub enabled: bool,
    pub description: String,
    /// catalog or platform.
    pub source: String,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

/// `PUT /api/v1/platform/flags/{key}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagDefBody {
    /// boolean, string, number or object.
    #[serde(rename = "type")]
    pub kind: String,
    pub default: serde_json::Value,
    #[serde(default)]
    pub tiers: BTreeMap<String, serde_json::Value>,
    pub min_tier: Option<String>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// `stamped`: show who set a platform flag and when (not for the
/// definitions in the change history, which carry their own).
fn def_dto(s: &AppState, key: &str, def: &FlagDef, src: FlagSource, stamped: bool) -> FlagDefDto {
    let platform = (stamped && src == FlagSource::Platform)
        .then(|| s.engine.platform_flag(key))
        .flatten();
    FlagDefDto {
        key: key.to_string(),
        kind: def.kind.as_str().to_string(),
        default: def.default.json(),
        tiers: def
            .tiers
            .iter()
            .map(|(t, v)| (t.to_string(), v.json()))
            .collect(),
        min_tier: def.min_tier.map(|t| t.to_string()),
        enabled: def.enabled,
        description: def.description.clone(),
        source: src.as_str().to_string(),
        updated_at: platform.as_ref().map(|f| rfc3339(f.updated_at_ms)),
        updated_by: platform.map(|f| f.updated_by),
    }
}

fn operators_only(p: &Principal) -> Result<(), ApiError> {
    if p.is_operator() {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "platform flags are for operators",
        ))
    }
}

pub fn def_of(body: FlagDefBody) -> Result<FlagDef, ApiError> {
    let kind = FlagType::parse(&body.kind).map_err(|e| ApiError::invalid("type", e))?;
    let mut tiers = BTreeMap::new();
    for (tier, v) in &body.tiers {
        let tier: Tier =
            tier.parse()
                .map_err(|e: quotad_engine::model::tier_error::UnknownTier| {
                    ApiError::invalid("tiers", e.to_string())
                })?;
        tiers.insert(tier, FlagValue::of("tiers", v)?);
    }
    let min_tier = match &body.min_tier {
        None => None,
        Some(t) => Some(
            t.parse::<Tier>()
                .map_err(|e| ApiError::invalid("minTier", e.to_string()))?,
        ),
    };
    let def = FlagDef {
        kind,
        default: FlagValue::of("default", &body.default)?,
        tiers,
        min_tier,
        enabled: body.enabled.unwrap_or(true),
        description: body.description.unwrap_or_default(),
    };
    def.check().map_err(|e: QuotaError| ApiError::from(e))?;
    Ok(def)
}

#[utoipa::path(get, path = "/api/v1/platform/flags", tag = "flags", responses((status = 200, description = "Every flag definition in force (operators)", body = crate::envelope::Envelope<Vec<FlagDefDto>>), crate::envelope::ApiErrors))]
pub async fn platform_list(State(s): State<AppState>, p: Principal) -> ApiResult<Vec<FlagDefDto>> {
    operators_only(&p)?;
    Ok(ok(s
        .engine
        .flag_defs()
        .iter()
        .map(|(k, (d, src))| def_dto(&s, k, d, *src, true))
        .collect()))
}

#[utoipa::path(get, path = "/api/v1/platform/flags/{key}", tag = "flags", params(("key" = String, Path, description = "Flag key")), responses((status = 200, description = "The flag definition in force (operators)", body = crate::envelope::Envelope<FlagDefDto>), crate::envelope::ApiErrors))]
pub async fn platform_get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<FlagDefDto> {
    operators_only(&p)?;
    let (d, src) = s.engine.flag_def(&key).ok_or_else(|| {
        ApiError::from(quotad_engine::EngineError::FlagNotFound { key: key.clone() })
    })?;
    Ok(ok(def_dto(&s, &key, &d, src, true)))
}

#[utoipa::path(put, path = "/api/v1/platform/flags/{key}", tag = "flags", params(("key" = String, Path, description = "Flag key")), request_body = FlagDefBody, responses((status = 200, description = "Defined for the whole platform (replaces the catalog's flag of this key)", body = crate::envelope::Envelope<FlagDefDto>), crate::envelope::ApiErrors))]
pub async fn platform_put(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(key): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<FlagDefDto> {
    operators_only(&p)?;
    let def = def_of(body.parse()?)?;
    s.engine
        .set_platform_flag(&key, Some(def.clone()), &p.audit())
        .await?;
    Ok(ok(def_dto(&s, &key, &def, FlagSource::Platform, true)))
}

#[utoipa::path(delete, path = "/api/v1/platform/flags/{key}", tag = "flags", params(("key" = String, Path, description = "Flag key")), responses((status = 200, description = "The platform's definition removed; the catalog's, if any, is in force again", body = crate::envelope::Envelope<Vec<FlagDefDto>>), crate::envelope::ApiErrors))]
pub async fn platform_delete(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Vec<FlagDefDto>> {
    operators_only(&p)?;
    s.engine.set_platform_flag(&key, None, &p.audit()).await?;
    platform_list(State(s), p).await
}

/// One change to a platform flag.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagChangeDto {
    pub key: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub actor: String,
    pub request_id: String,
    pub at: String,
}

#[utoipa::path(get, path = "/api/v1/platform/flag-changes", tag = "flags", responses((status = 200, description = "The latest platform flag changes, newest first (operators)", body = crate::envelope::Envelope<Vec<FlagChangeDto>>), crate::envelope::ApiErrors))]
pub async fn platform_changes(
    State(s): State<AppState>,
    p: Principal,
) -> ApiResult<Vec<FlagChangeDto>> {
    operators_only(&p)?;
    let view = |key: &str, d: &Option<FlagDef>| {
        d.as_ref().map(|d| {
            serde_json::to_value(def_dto(&s, key, d, FlagSource::Platform, false))
                .unwrap_or_default()
        })
    };
    Ok(ok(s
        .engine
        .platform_flag_history()
        .iter()
        .map(|r| FlagChangeDto {
            key: r.key.clone(),
            before: view(&r.key, &r.before),
            after: view(&r.key, &r.after),
            actor: r.by.clone(),
            request_id: r.request_id.clone(),
            at: rfc3339(r.at_ms),
        })
        .collect()))
}
