//! Where a tenant's state lives: its hash shard or, for ENTERPRISE tenants
//! given "dedicated instance" isolation, a Raft group of its own.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::envelope::{ApiError, ApiResult, ok};
use crate::extract::ApiPath;
use axum::extract::State;
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::{Role, Tier};
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementDto {
    /// The Raft group holding the tenant.
    pub group: u64,
    /// Whether that group is the tenant's alone.
    pub dedicated: bool,
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/placement", tag = "placement", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "The tenant's group", body = crate::envelope::Envelope<PlacementDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<PlacementDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    let (group, dedicated) = s.engine.placement_of(&id);
    Ok(ok(PlacementDto { group, dedicated }))
}

/// Move an ENTERPRISE tenant to a Raft group of its own (operators only).
/// Requests wait out the move and are not refused; repeating it is a no-op.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/dedicated", tag = "placement", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "The tenant's own group", body = crate::envelope::Envelope<PlacementDto>), crate::envelope::ApiErrors))]
pub async fn dedicate(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<PlacementDto> {
    let (id, state, _) = access(&s, &p, &id, Need::Operator).await?;
    if state.tenant.tier != Tier::Enterprise {
        let mut e = ApiError::new(
            ErrorCode::FailedPrecondition,
            format!(
                "a dedicated group needs the ENTERPRISE tier; the tenant is {}",
                state.tenant.tier
            ),
        );
        e.field = Some("tier".into());
        return Err(e);
    }
    let group = s.engine.dedicate_tenant(id, &p.audit()).await?;
    Ok(ok(PlacementDto {
        group,
        dedicated: true,
    }))
}
