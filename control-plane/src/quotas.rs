use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::{QuotaDto, SetQuota};
use crate::envelope::{ApiError, ApiResult, ok};
use crate::extract::{ApiPath, JsonBody};
use axum::extract::State;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::{Action, Period, QuotaKind, QuotaPolicy, Role, well_known};
use quotad_engine::quota::{TenantOp, validate};

#[utoipa::path(get, path = "/api/v1/tenants/{id}/quotas", tag = "quotas", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Every quota with its usage", body = crate::envelope::Envelope<Vec<crate::dto::QuotaDto>>), crate::envelope::ApiErrors))]
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Vec<QuotaDto>> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    let now = s.engine.now_ms();
    let tz = state.tenant.timezone;
    Ok(ok(state
        .quotas
        .iter()
        .map(|(name, q)| QuotaDto::new(name, q, tz, now))
        .collect()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/quotas/{quota}", tag = "quotas", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("quota" = String, Path, description = "Quota name, e.g. api_requests", pattern = "^[a-z][a-z0-9_]{0,63}$")), responses((status = 200, description = "The quota with its usage", body = crate::envelope::Envelope<crate::dto::QuotaDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, quota)): ApiPath<(String, String)>,
) -> ApiResult<QuotaDto> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    let q = state.quota(&quota)?;
    Ok(ok(QuotaDto::new(
        &quota,
        q,
        state.tenant.timezone,
        s.engine.now_ms(),
    )))
}

/// Replace a quota's policy (creating a custom quota if the name is new).
/// Usage is kept.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/quotas/{quota}", tag = "quotas", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("quota" = String, Path, description = "Quota name, e.g. api_requests", pattern = "^[a-z][a-z0-9_]{0,63}$")), request_body = crate::dto::SetQuota, responses((status = 200, description = "The new policy of the quota; usage is kept", body = crate::envelope::Envelope<crate::dto::QuotaDto>), crate::envelope::ApiErrors))]
pub async fn set(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, quota)): ApiPath<(String, String)>,
    body: JsonBody,
) -> ApiResult<QuotaDto> {
    let (id, current, caller) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    validate::quota_name(&quota)?;
    let body: SetQuota = body.parse()?;
    let Some(limit) = body.limit else {
        return Err(ApiError::invalid(
            "limit",
            "limit is required: a number, or null for unlimited",
        ));
    };
    let existing = current.quotas.get(&quota).map(|q| &q.policy);
    let kind = body.kind.unwrap_or_else(|| match (body.period, existing) {
        (Some(Period::Second | Period::Minute), _) => QuotaKind::Rate,
        (_, Some(p)) => p.kind,
        (Some(_), None) => QuotaKind::Counter,
        (None, None)
            if [well_known::STORAGE, well_known::USERS, well_known::SERVICES]
                .contains(&quota.as_str()) =>
        {
            QuotaKind::Gauge
        }
        (None, None) => QuotaKind::Counter,
    });
    let same_kind = existing.filter(|p| p.kind == kind);
    let period = match (body.period, same_kind, kind) {
        (Some(p), _, _) => p,
        (None, Some(p), _) => p.period,
        (None, None, QuotaKind::Counter) => Period::Monthly,
        (None, None, QuotaKind::Gauge) => Period::Never,
        (None, None, QuotaKind::Rate) => {
            return Err(ApiError::invalid(
                "period",
                "a rate needs period second or minute",
            ));
        }
    };
    let action = body
        .action
        .or(same_kind.map(|p| p.action))
        .unwrap_or(match kind {
            QuotaKind::Rate => Action::Throttle,
            _ => Action::Block,
        });
    let alert_thresholds = body
        .alert_thresholds
        .or(existing.map(|p| p.alert_thresholds.to_vec()))
        .unwrap_or_else(|| QuotaPolicy::DEFAULT_THRESHOLDS.to_vec());
    let mut thresholds = alert_thresholds;
    thresholds.sort_unstable();
    thresholds.dedup();
    let policy = QuotaPolicy {
        kind,
        period,
        limit,
        soft_limit: match body.soft_limit {
            Some(explicit) => explicit,
            None => same_kind.and_then(|p| p.soft_limit),
        },
        action,
        alert_thresholds: thresholds.into(),
        // Only a platform operator's setting survives a tier change; what
        // tenant admins set follows the tier.
        overridden: caller.is_none(),
    };
    // Tenant admins may shape their quotas but not buy more than their tier
    // grants: a tier quota keeps the tier's kind, period and action, and a
    // limit at or below the tier's.
    if caller.is_some()
        && let Some(tier) = s.engine.catalog().defaults(current.tenant.tier).get(&quota)
    {
        let beyond_limit = tier
            .limit
            .is_some_and(|t| policy.limit.is_none_or(|l| l > t));
        if beyond_limit
            || policy.kind != tier.kind
            || policy.period != tier.period
            || policy.action != tier.action
        {
            let name = |v: String| v.to_lowercase();
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "on the {} tier, {quota} stays a {} {} quota with action {} and a limit of at most {}; only a platform operator may set more",
                    current.tenant.tier,
                    name(format!("{:?}", tier.period)),
                    name(format!("{:?}", tier.kind)),
                    name(format!("{:?}", tier.action)),
                    tier.limit
                        .map_or("unlimited".to_string(), |l| l.to_string()),
                ),
            ));
        }
    }
    let op = TenantOp::SetQuota {
        quota: quota.clone(),
        policy,
    };
    let state = s.engine.admin(id, op, &p.audit()).await?;
    let q = state.quota(&quota)?;
    Ok(ok(QuotaDto::new(
        &quota,
        q,
        state.tenant.timezone,
        s.engine.now_ms(),
    )))
}
