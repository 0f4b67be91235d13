//! The quota model beyond one limit over REST: credit grants (operators,
//! or the platform's billing system with an operator credential), a
//! quota's live scope values, and shadow mode for a whole tenant.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::TenantDto;
use crate::envelope::{ApiError, ApiResult, created, ok};
use crate::extract::{ApiPath, JsonBody, RawQuery};
use crate::quota_rules_dto::{AddGrant, GrantDto, ScopeDto, ScopesPageDto, SetShadow};
use axum::extract::State;
use quotad_engine::model::Role;
use quotad_engine::quota::{MAX_SCOPES_PAGE, ScopesQuery, validate};
use serde::Deserialize;

/// `GET /api/v1/tenants/{id}/quotas/{quota}/grants`: every grant of the
/// quota with its remaining balance and status.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/quotas/{quota}/grants", tag = "quotas", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("quota" = String, Path, description = "Quota name", pattern = "^[a-z][a-z0-9_]{0,63}$")), responses((status = 200, description = "The quota's credit grants, in the order added", body = crate::envelope::Envelope<Vec<GrantDto>>), crate::envelope::ApiErrors))]
pub async fn grants(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, quota)): ApiPath<(String, String)>,
) -> ApiResult<Vec<GrantDto>> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    let q = state.quota(&quota)?;
    Ok(ok(GrantDto::all(q, s.engine.now_ms())))
}

/// `POST /api/v1/tenants/{id}/quotas/{quota}/grants`: add units beyond
/// the period allowance, drawn once it is spent (lower priority first,
/// then the soonest to expire). Operators only.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/quotas/{quota}/grants", tag = "quotas", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("quota" = String, Path, description = "Quota name (a counter)", pattern = "^[a-z][a-z0-9_]{0,63}$")), request_body = AddGrant, responses((status = 201, description = "The grant (the same one again for a repeated idempotency key)", body = crate::envelope::Envelope<GrantDto>), crate::envelope::ApiErrors))]
pub async fn add_grant(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, quota)): ApiPath<(String, String)>,
    body: JsonBody,
) -> ApiResult<GrantDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Operator).await?;
    validate::quota_name(&quota)?;
    let grant = body.parse::<AddGrant>()?.grant()?;
    let g = s.engine.add_grant(id, &quota, grant, &p.audit()).await?;
    Ok(created(GrantDto::new(&g, s.engine.now_ms())))
}

/// `POST /api/v1/tenants/{id}/quotas/{quota}/grants/{grant}/void`: nothing
/// more is drawn from the grant; what was drawn stays drawn. Operators
/// only.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/quotas/{quota}/grants/{grant}/void", tag = "quotas", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("quota" = String, Path, description = "Quota name", pattern = "^[a-z][a-z0-9_]{0,63}$"), ("grant" = u32, Path, description = "Grant id")), responses((status = 200, description = "The voided grant", body = crate::envelope::Envelope<GrantDto>), crate::envelope::ApiErrors))]
pub async fn void_grant(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, quota, grant)): ApiPath<(String, String, String)>,
) -> ApiResult<GrantDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Operator).await?;
    validate::quota_name(&quota)?;
    let seq: u32 = grant
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid("grant", "a grant id: a number from 1"))?;
    let g = s.engine.void_grant(id, &quota, seq, &p.audit()).await?;
    Ok(ok(GrantDto::new(&g, s.engine.now_ms())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopesParams {
    /// Values to skip (default 0).
    pub offset: Option<u64>,
    /// Values per page, 1-1000 (default 50).
    pub limit: Option<u32>,
}

/// `GET /api/v1/tenants/{id}/quotas/{quota}/scopes`: the live scope values
/// of the quota, highest usage first (then by value), a page at a time.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/quotas/{quota}/scopes", tag = "quotas", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("quota" = String, Path, description = "Quota name", pattern = "^[a-z][a-z0-9_]{0,63}$"), ScopesParams), responses((status = 200, description = "A page of live scope values with their rule and usage", body = crate::envelope::Envelope<ScopesPageDto>), crate::envelope::ApiErrors))]
pub async fn scopes(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, quota)): ApiPath<(String, String)>,
    query: RawQuery,
) -> ApiResult<ScopesPageDto> {
    let (id, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    let q: ScopesParams = query.parse()?;
    state.quota(&quota)?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_SCOPES_PAGE {
        return Err(ApiError::invalid(
            "limit",
            format!("from 1 to {MAX_SCOPES_PAGE}"),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    let page = s
        .engine
        .scopes(
            id,
            ScopesQuery {
                quota,
                value: None,
                offset,
                limit,
            },
        )
        .await?;
    Ok(ok(ScopesPageDto {
        total: page.total,
        offset,
        items: page.items.into_iter().map(ScopeDto::from).collect(),
    }))
}

/// `PUT /api/v1/tenants/{id}/shadow`: put every quota of the tenant in
/// shadow mode (decide and report, admit anyway) or take it out.
/// Operators only: it lets usage past every limit.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/shadow", tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = SetShadow, responses((status = 200, description = "The tenant", body = crate::envelope::Envelope<TenantDto>), crate::envelope::ApiErrors))]
pub async fn set_shadow(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<TenantDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Operator).await?;
    let b: SetShadow = body.parse()?;
    let state = s.engine.set_shadow(id, b.enabled, &p.audit()).await?;
    Ok(ok(TenantDto::from(&state)))
}
