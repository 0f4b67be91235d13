//! `/api/v1/sharing`: providers publish policies on their resources,
//! consumers ask for access, providers decide, either ends a grant. The
//! tenant acting is the one `X-Tenant-ID` names (or the token's tenant);
//! the caller must be an admin or owner of it to change anything, a member
//! to read. A policy the acting tenant may not see answers 404, before its
//! body is read: nothing is told about other tenants' private policies.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::envelope::{ApiError, ApiResult, created, ok};
use crate::extract::{ApiPath, JsonBody, RawQuery};
use crate::sharing_dto::{
    AccessRequestDto, DecisionBody, GrantDto, PolicyBody, PolicyDto, RequestAccessBody,
};
use axum::extract::State;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::{Role, TenantId};
use quotad_engine::sharing::catalog::visible_to;
use quotad_engine::sharing::{Permission, Policy, SharingCatalog};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The tenant the caller acts for: `X-Tenant-ID`, else the token's tenant.
pub(crate) fn acting_raw(p: &Principal) -> Option<&str> {
    p.header_tenant.as_deref().or(p.token_tenant.as_deref())
}

/// The acting tenant, authorized for `need`.
async fn acting(s: &AppState, p: &Principal, need: Need) -> Result<TenantId, ApiError> {
    let raw = acting_raw(p).ok_or_else(|| {
        ApiError::invalid(
            "X-Tenant-ID",
            "name the tenant that acts (X-Tenant-ID), or use a token scoped to one tenant",
        )
    })?;
    let (id, _, _) = access(s, p, raw, need).await?;
    Ok(id)
}

fn policy_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid("policyId", "not a UUID"))
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("sharing policy {id} not found"),
    )
}

fn dto(c: &SharingCatalog, p: &Policy, own: bool, now_ms: i64) -> PolicyDto {
    PolicyDto::new(p, c.active_grants(p.id, now_ms), own)
}

/// The policy `id` as `tenant` may know it: the provider sees its own in
/// full, others only what its visibility shows them.
fn visible(s: &AppState, tenant: TenantId, id: Uuid) -> Result<PolicyDto, ApiError> {
    let now = s.engine.now_ms();
    s.engine
        .with_catalog(|c| {
            c.policies
                .get(&id)
                .filter(|p| visible_to(p, tenant))
                .map(|p| dto(c, p, p.provider == tenant, now))
        })
        .ok_or_else(|| not_found(id))
}

/// The policy `id` if `tenant` provides it, else 404 (before any body).
fn owned(s: &AppState, tenant: TenantId, id: Uuid) -> Result<(), ApiError> {
    let mine = s
        .engine
        .with_catalog(|c| c.policies.get(&id).is_some_and(|p| p.provider == tenant));
    if mine { Ok(()) } else { Err(not_found(id)) }
}

#[utoipa::path(post, path = "/api/v1/sharing/policies", tag = "sharing", params(("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The provider tenant (else the token's)")), request_body = crate::sharing_dto::PolicyBody, responses((status = 201, description = "Published", body = crate::envelope::Envelope<PolicyDto>), crate::envelope::ApiErrors))]
pub async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: JsonBody,
) -> ApiResult<PolicyDto> {
    let provider = acting(&s, &p, Need::Role(Role::Admin)).await?;
    let body: PolicyBody = body.parse()?;
    let spec = body.spec(
        s.engine.catalog(),
        s.engine.platform_fee_bp(),
        p.is_operator(),
    )?;
    let policy = s.engine.publish_policy(provider, spec, &p.audit()).await?;
    let now = s.engine.now_ms();
    Ok(created(
        s.engine.with_catalog(|c| dto(c, &policy, true, now)),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListParams {
    /// true: the acting tenant's own policies; else those it may see.
    pub mine: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/sharing/policies", tag = "sharing", params(ListParams, ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The acting tenant (else the token's)")), responses((status = 200, description = "Policies", body = crate::envelope::Envelope<Vec<PolicyDto>>), crate::envelope::ApiErrors))]
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    query: RawQuery,
) -> ApiResult<Vec<PolicyDto>> {
    let tenant = acting(&s, &p, Need::Role(Role::Viewer)).await?;
    let q: ListParams = query.parse()?;
    let mine = q.mine.unwrap_or(false);
    let now = s.engine.now_ms();
    Ok(ok(s.engine.with_catalog(|c| {
        c.policies
            .values()
            .filter(|p| {
                if mine {
                    p.provider == tenant
                } else {
                    visible_to(p, tenant)
                }
            })
            .map(|p| dto(c, p, p.provider == tenant, now))
            .collect()
    })))
}

#[utoipa::path(get, path = "/api/v1/sharing/policies/{id}", tag = "sharing", params(("id" = uuid::Uuid, Path, description = "Policy id"), ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The acting tenant (else the token's)")), responses((status = 200, description = "The policy", body = crate::envelope::Envelope<PolicyDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<PolicyDto> {
    let tenant = acting(&s, &p, Need::Role(Role::Viewer)).await?;
    let id = policy_id(&id)?;
    Ok(ok(visible(&s, tenant, id)?))
}

#[utoipa::path(put, path = "/api/v1/sharing/policies/{id}", tag = "sharing", params(("id" = uuid::Uuid, Path, description = "Policy id"), ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The provider tenant (else the token's)")), request_body = crate::sharing_dto::PolicyBody, responses((status = 200, description = "Replaced; grants its new conditions refuse have ended", body = crate::envelope::Envelope<PolicyDto>), crate::envelope::ApiErrors))]
pub async fn replace(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<PolicyDto> {
    let provider = acting(&s, &p, Need::Role(Role::Admin)).await?;
    let id = policy_id(&id)?;
    owned(&s, provider, id)?;
    let body: PolicyBody = body.parse()?;
    let spec = body.spec(
        s.engine.catalog(),
        s.engine.platform_fee_bp(),
        p.is_operator(),
    )?;
    let policy = s
        .engine
        .replace_policy(provider, id, spec, &p.audit())
        .await?;
    let now = s.engine.now_ms();
    Ok(ok(s.engine.with_catalog(|c| dto(c, &policy, true, now))))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedDto {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub deleted: bool,
}

#[utoipa::path(delete, path = "/api/v1/sharing/policies/{id}", tag = "sharing", params(("id" = uuid::Uuid, Path, description = "Policy id"), ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The provider tenant (else the token's)")), responses((status = 200, description = "Deleted; its grants ended", body = crate::envelope::Envelope<DeletedDto>), crate::envelope::ApiErrors))]
pub async fn delete(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<DeletedDto> {
    let provider = acting(&s, &p, Need::Role(Role::Admin)).await?;
    let id = policy_id(&id)?;
    owned(&s, provider, id)?;
    s.engine.withdraw_policy(provider, id, &p.audit()).await?;
    Ok(ok(DeletedDto { id, deleted: true }))
}

#[utoipa::path(post, path = "/api/v1/sharing/policies/{id}/request-access", tag = "sharing", params(("id" = uuid::Uuid, Path, description = "Policy id"), ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The consumer tenant (else the token's)")), request_body = crate::sharing_dto::RequestAccessBody, responses((status = 201, description = "The request: approved with its grant when the policy is automatic, else pending", body = crate::envelope::Envelope<AccessRequestDto>), crate::envelope::ApiErrors))]
pub async fn request_access(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<AccessRequestDto> {
    let consumer = acting(&s, &p, Need::Role(Role::Admin)).await?;
    let id = policy_id(&id)?;
    visible(&s, consumer, id)?;
    let body: RequestAccessBody = if body.is_empty() {
        RequestAccessBody::default()
    } else {
        body.parse()?
    };
    let permissions = body
        .permissions
        .map(|raw| {
            raw.iter()
                .map(|p| p.parse::<Permission>())
                .collect::<Result<BTreeSet<_>, _>>()
        })
        .transpose()
        .map_err(ApiError::from)?;
    if body.justification.len() > 2_000 {
        return Err(ApiError::invalid(
            "justification",
            "at most 2000 characters",
        ));
    }
    let (request, grant) = s
        .engine
        .request_access(consumer, id, body.justification, permissions, &p.audit())
        .await?;
    Ok(created(AccessRequestDto::new(
        &request,
        grant.as_ref(),
        s.engine.now_ms(),
    )))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AsParams {
    /// provider or consumer [default: provider for requests, consumer for grants].
    #[serde(rename = "as")]
    pub side: Option<String>,
    /// pending, approved or denied (requests only).
    pub status: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Provider,
    Consumer,
}

fn side(raw: Option<&str>, default: Side) -> Result<Side, ApiError> {
    match raw {
        None => Ok(default),
        Some("provider") => Ok(Side::Provider),
        Some("consumer") => Ok(Side::Consumer),
        Some(other) => Err(ApiError::invalid(
            "as",
            format!(
                "unknown value {:?}: expected provider, consumer",
                quotad_engine::excerpt::short(other)
            ),
        )),
    }
}

fn requests_of(
    s: &AppState,
    tenant: TenantId,
    side: Side,
    policy: Option<Uuid>,
    status: Option<&str>,
) -> Result<Vec<AccessRequestDto>, ApiError> {
    if let Some(st) = status
        && !["pending", "approved", "denied"].contains(&st)
    {
        return Err(ApiError::invalid(
            "status",
            "expected pending, approved, denied",
        ));
    }
    let now = s.engine.now_ms();
    Ok(s.engine.with_catalog(|c| {
        c.requests
            .values()
            .filter(|r| match side {
                Side::Provider => r.provider == tenant,
                Side::Consumer => r.consumer == tenant,
            })
            .filter(|r| policy.is_none_or(|p| r.policy == p))
            .filter(|r| status.is_none_or(|st| r.state.as_str() == st))
            .map(|r| {
                let g = r.grant.and_then(|g| c.grants.get(&g));
                AccessRequestDto::new(r, g, now)
            })
            .collect()
    }))
}

#[utoipa::path(get, path = "/api/v1/sharing/policies/{id}/requests", tag = "sharing", params(("id" = uuid::Uuid, Path, description = "Policy id"), AsParams, ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The provider tenant (else the token's)")), responses((status = 200, description = "The policy's access requests", body = crate::envelope::Envelope<Vec<AccessRequestDto>>), crate::envelope::ApiErrors))]
pub async fn policy_requests(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    query: RawQuery,
) -> ApiResult<Vec<AccessRequestDto>> {
    let provider = acting(&s, &p, Need::Role(Role::Admin)).await?;
    let id = policy_id(&id)?;
    owned(&s, provider, id)?;
    let q: AsParams = query.parse()?;
    Ok(ok(requests_of(
        &s,
        provider,
        Side::Provider,
        Some(id),
        q.status.as_deref(),
    )?))
}

#[utoipa::path(get, path = "/api/v1/sharing/requests", tag = "sharing", params(AsParams, ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The acting tenant (else the token's)")), responses((status = 200, description = "Access requests to the tenant's policies (as=provider) or by it (as=consumer)", body = crate::envelope::Envelope<Vec<AccessRequestDto>>), crate::envelope::ApiErrors))]
pub async fn requests(
    State(s): State<AppState>,
    p: Principal,
    query: RawQuery,
) -> ApiResult<Vec<AccessRequestDto>> {
    let tenant = acting(&s, &p, Need::Role(Role::Admin)).await?;
    let q: AsParams = query.parse()?;
    let side = side(q.side.as_deref(), Side::Provider)?;
    Ok(ok(requests_of(
        &s,
        tenant,
        side,
        None,
        q.status.as_deref(),
    )?))
}

async fn decide(
    s: AppState,
    p: Principal,
    rid: String,
    body: JsonBody,
    approve: bool,
) -> ApiResult<AccessRequestDto> {
    let provider = acting(&s, &p, Need::Role(Role::Admin)).await?;
    let rid = Uuid::parse_str(&rid).map_err(|_| ApiError::invalid("requestId", "not a UUID"))?;
    let known = s
        .engine
        .with_catalog(|c| c.requests.get(&rid).is_some_and(|r| r.provider == provider));
    if !known {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("access request {rid} not found"),
        ));
    }
    let body: DecisionBody = if body.is_empty() {
        DecisionBody::default()
    } else {
        body.parse()?
    };
    if body.reason.as_ref().is_some_and(|r| r.len() > 2_000) {
        return Err(ApiError::invalid("reason", "at most 2000 characters"));
    }
    let (request, grant) = s
        .engine
        .decide_request(provider, rid, approve, body.reason, &p.audit())
        .await?;
    Ok(ok(AccessRequestDto::new(
        &request,
        grant.as_ref(),
        s.engine.now_ms(),
    )))
}

#[utoipa::path(post, path = "/api/v1/sharing/requests/{rid}/approve", tag = "sharing", params(("rid" = uuid::Uuid, Path, description = "Request id"), ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The provider tenant (else the token's)")), request_body(content = Option<crate::sharing_dto::DecisionBody>, description = "Optional: a note"), responses((status = 200, description = "Approved, with its grant (conditions checked again)", body = crate::envelope::Envelope<AccessRequestDto>), crate::envelope::ApiErrors))]
pub async fn approve(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(rid): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<AccessRequestDto> {
    decide(s, p, rid, body, true).await
}

#[utoipa::path(post, path = "/api/v1/sharing/requests/{rid}/deny", tag = "sharing", params(("rid" = uuid::Uuid, Path, description = "Request id"), ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The provider tenant (else the token's)")), request_body(content = Option<crate::sharing_dto::DecisionBody>, description = "Optional: the reason"), responses((status = 200, description = "Denied", body = crate::envelope::Envelope<AccessRequestDto>), crate::envelope::ApiErrors))]
pub async fn deny(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(rid): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<AccessRequestDto> {
    decide(s, p, rid, body, false).await
}

#[utoipa::path(get, path = "/api/v1/sharing/grants", tag = "sharing", params(AsParams, ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The acting tenant (else the token's)")), responses((status = 200, description = "Grants the tenant holds (as=consumer) or gave (as=provider)", body = crate::envelope::Envelope<Vec<GrantDto>>), crate::envelope::ApiErrors))]
pub async fn grants(
    State(s): State<AppState>,
    p: Principal,
    query: RawQuery,
) -> ApiResult<Vec<GrantDto>> {
    let tenant = acting(&s, &p, Need::Role(Role::Viewer)).await?;
    let q: AsParams = query.parse()?;
    if q.status.is_some() {
        return Err(ApiError::invalid(
            "status",
            "grants are not filtered by status",
        ));
    }
    let side = side(q.side.as_deref(), Side::Consumer)?;
    let now = s.engine.now_ms();
    Ok(ok(s.engine.with_catalog(|c| {
        c.grants
            .values()
            .filter(|g| match side {
                Side::Provider => g.provider == tenant,
                Side::Consumer => g.consumer == tenant,
            })
            .map(|g| GrantDto::new(g, now))
            .collect()
    })))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeParams {
    /// Why (recorded with the grant and in both audit chains).
    pub reason: Option<String>,
}

#[utoipa::path(delete, path = "/api/v1/sharing/grants/{gid}", tag = "sharing", params(("gid" = uuid::Uuid, Path, description = "Grant id"), RevokeParams, ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The provider or the consumer (else the token's tenant)")), responses((status = 200, description = "Ended: the consumer's next use is refused", body = crate::envelope::Envelope<GrantDto>), crate::envelope::ApiErrors))]
pub async fn revoke(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(gid): ApiPath<String>,
    query: RawQuery,
) -> ApiResult<GrantDto> {
    let tenant = acting(&s, &p, Need::Role(Role::Admin)).await?;
    let gid = Uuid::parse_str(&gid).map_err(|_| ApiError::invalid("grantId", "not a UUID"))?;
    let q: RevokeParams = query.parse()?;
    if q.reason.as_ref().is_some_and(|r| r.len() > 2_000) {
        return Err(ApiError::invalid("reason", "at most 2000 characters"));
    }
    let g = s
        .engine
        .revoke_grant(tenant, gid, q.reason.unwrap_or_default(), &p.audit())
        .await?;
    Ok(ok(GrantDto::new(&g, s.engine.now_ms())))
}
