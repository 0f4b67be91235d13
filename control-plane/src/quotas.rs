use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::{QuotaDto, SetQuota};
use crate::envelope::{ApiError, ApiResult, ok};
use crate::extract::{ApiPath, JsonBody, RawQuery};
use crate::quota_rules_dto::{LimitSpec, ScopesSpec};
use axum::extract::State;
use quotad_engine::format::Since;
use quotad_engine::model::{Role, Tier};
use quotad_engine::quota::{PolicyPatch, QuotaPatch, RulesPatch, ScopesQuery, TenantOp, validate};
use serde::Deserialize;

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

#[utoipa::path(get, path = "/api/v1/tenants/{id}/quotas/{quota}", tag = "quotas", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("quota" = String, Path, description = "Quota name, e.g. api_requests", pattern = "^[a-z][a-z0-9_]{0,63}$"), QuotaParams), responses((status = 200, description = "The quota with its usage", body = crate::envelope::Envelope<crate::dto::QuotaDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, quota)): ApiPath<(String, String)>,
    query: RawQuery,
) -> ApiResult<QuotaDto> {
    let (id, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    let params: QuotaParams = query.parse()?;
    let q = state.quota(&quota)?;
    let mut dto = QuotaDto::new(&quota, q, state.tenant.timezone, s.engine.now_ms());
    if let Some(value) = params.scope {
        validate::scope(&value)?;
        let page = s
            .engine
            .scopes(
                id,
                ScopesQuery {
                    quota: quota.clone(),
                    value: Some(value),
                    offset: 0,
                    limit: 1,
                },
            )
            .await?;
        dto.scope = page.items.into_iter().next().map(Into::into);
    }
    Ok(ok(dto))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaParams {
    /// A scope value: the answer adds its rule and usage as `scope`.
    pub scope: Option<String>,
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
    let (id, _, caller) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    validate::quota_name(&quota)?;
    let body: SetQuota = body.parse()?;
    let Some(limit) = body.limit else {
        return Err(ApiError::invalid(
            "limit",
            "limit is required: a number, or null for unlimited",
        ));
    };
    // Resolved against the tenant's tier where it is applied (see
    // `PolicyPatch`): only a platform operator may go beyond the tier, and
    // only their setting survives a tier change.
    let rules = rules_patch(&body).map(Box::new);
    let patch = PolicyPatch {
        limit,
        soft_limit: body.soft_limit,
        period: body.period,
        action: body.action,
        kind: body.kind,
        alert_thresholds: body.alert_thresholds,
        by_operator: caller.is_none(),
        tier_policies: Tier::ALL
            .iter()
            .filter_map(|t| {
                let policy = s.engine.catalog().defaults(*t).get(&quota)?;
                Some((*t, policy.clone()))
            })
            .collect(),
        rules: quotad_engine::format::Added(rules),
    };
    let op = TenantOp::PatchQuota(Since(Box::new(QuotaPatch {
        quota: quota.clone(),
        patch,
    })));
    let state = s.engine.admin(id, op, &p.audit()).await?;
    let q = state.quota(&quota)?;
    Ok(ok(QuotaDto::new(
        &quota,
        q,
        state.tenant.timezone,
        s.engine.now_ms(),
    )))
}

/// The rules patch the body's rules fields ask for (`None`: none named).
fn rules_patch(body: &SetQuota) -> Option<RulesPatch> {
    let patch = RulesPatch {
        windows: body
            .windows
            .as_ref()
            .map(|w| w.iter().map(LimitSpec::policy).collect()),
        rollover: body.rollover,
        rollover_max: body.rollover_max,
        preserve_overage: body.preserve_overage,
        shadow: body.shadow,
        scopes: body
            .scopes
            .as_ref()
            .map(|s| s.as_ref().map(ScopesSpec::rules)),
    };
    (patch != RulesPatch::default()).then_some(patch)
}
