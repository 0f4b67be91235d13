use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::{AddMember, ChangeRole, MemberDto};
use crate::envelope::{ApiError, ApiResult, created, ok};
use crate::extract::{ApiPath, JsonBody};
use axum::extract::State;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::Role;
use quotad_engine::quota::{TenantOp, TenantState};

fn role(raw: &str) -> Result<Role, ApiError> {
    raw.parse()
        .map_err(|e: quotad_engine::model::UnknownRole| ApiError::invalid("role", e.to_string()))
}

fn members(state: &TenantState) -> Vec<MemberDto> {
    state.members.values().map(MemberDto::from).collect()
}

/// Only owners (and operators) make, unmake or remove owners.
fn owner_business(caller: Option<Role>, touches_owner: bool) -> Result<(), ApiError> {
    if touches_owner && caller.is_some_and(|r| r < Role::Owner) {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "only an owner may grant, change or remove the owner role",
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/members", tag = "members", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "Members", body = crate::envelope::Envelope<Vec<crate::dto::MemberDto>>), crate::envelope::ApiErrors))]
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Vec<MemberDto>> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(members(&state)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/members", tag = "members", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body = crate::dto::AddMember, responses((status = 201, description = "Added; members after the change", body = crate::envelope::Envelope<Vec<crate::dto::MemberDto>>), crate::envelope::ApiErrors))]
pub async fn add(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<Vec<MemberDto>> {
    let (id, _, caller) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let body: AddMember = body.parse()?;
    let role = role(&body.role)?;
    owner_business(caller, role == Role::Owner)?;
    let op = TenantOp::AddMember {
        user_id: body.user_id,
        role,
    };
    let state = s.engine.admin(id, op, &p.audit()).await?;
    Ok(created(members(&state)))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/members/{user}", tag = "members", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("user" = String, Path, description = "Member user id")), request_body = crate::dto::ChangeRole, responses((status = 200, description = "Members after the change", body = crate::envelope::Envelope<Vec<crate::dto::MemberDto>>), crate::envelope::ApiErrors))]
pub async fn change_role(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, user)): ApiPath<(String, String)>,
    body: JsonBody,
) -> ApiResult<Vec<MemberDto>> {
    let (id, state, caller) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let body: ChangeRole = body.parse()?;
    let role = role(&body.role)?;
    owner_business(
        caller,
        role == Role::Owner || state.role_of(&user) == Some(Role::Owner),
    )?;
    let op = TenantOp::ChangeRole {
        user_id: user,
        role,
    };
    let state = s.engine.admin(id, op, &p.audit()).await?;
    Ok(ok(members(&state)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}/members/{user}", tag = "members", params(("id" = uuid::Uuid, Path, description = "Tenant id"), ("user" = String, Path, description = "Member user id")), responses((status = 200, description = "Members after the change", body = crate::envelope::Envelope<Vec<crate::dto::MemberDto>>), crate::envelope::ApiErrors))]
pub async fn remove(
    State(s): State<AppState>,
    p: Principal,
    ApiPath((id, user)): ApiPath<(String, String)>,
) -> ApiResult<Vec<MemberDto>> {
    let (id, state, caller) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    owner_business(caller, state.role_of(&user) == Some(Role::Owner))?;
    let op = TenantOp::RemoveMember { user_id: user };
    let state = s.engine.admin(id, op, &p.audit()).await?;
    Ok(ok(members(&state)))
}
