//! Where a tenant's state lives: its hash shard or, for ENTERPRISE tenants
//! given "dedicated instance" isolation, a Raft group of its own.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::envelope::{ApiError, ApiResult, ok};
use crate::extract::{ApiPath, JsonBody};
use axum::extract::State;
use quotad_engine::model::Role;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementDto {
    /// The Raft group holding the tenant.
    pub group: u64,
    /// Whether that group is the tenant's alone.
    pub dedicated: bool,
    /// `shared` (a hash shard's group), `dedicated_group` (a group of its
    /// own on shared nodes) or `dedicated_instance` (a group of its own on
    /// a node pool's reserved nodes).
    #[schema(example = "dedicated_group")]
    pub level: String,
    /// The node pool the group is pinned to.
    pub pool: Option<String>,
    /// Where each copy of the group is.
    pub replicas: Vec<ReplicaDto>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaDto {
    pub node: u64,
    /// `voter`, `learner` (a caught-up copy that does not vote) or
    /// `joining` (placed, not caught up yet).
    pub role: String,
    /// Whether this replica leads the group.
    pub leader: bool,
    pub peer_addr: String,
    /// The node's labels (`pool`, `zone`, ...).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The node is reserved for its pool.
    pub reserved: bool,
}

fn snake<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn dto(v: quotad_engine::cluster::PlacementView) -> PlacementDto {
    PlacementDto {
        group: v.group,
        dedicated: v.dedicated,
        level: snake(v.level),
        pool: v.pool,
        replicas: v
            .replicas
            .into_iter()
            .map(|r| ReplicaDto {
                node: r.node,
                role: snake(r.role),
                leader: r.leader,
                peer_addr: r.peer_addr,
                labels: r.labels,
                reserved: r.reserved,
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/placement", tag = "placement", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "The tenant's group, its isolation level and where each replica is", body = crate::envelope::Envelope<PlacementDto>), crate::envelope::ApiErrors))]
pub async fn get(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<PlacementDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(dto(s.engine.placement_view(&id))))
}

/// `POST …/dedicated` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DedicateBody {
    /// Pin the group to this node pool (nodes started with
    /// `--node-label pool=NAME`); `null` takes it out of its pool; absent
    /// leaves it where it is.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "acme")]
    pub pool: Option<Option<String>>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Move an ENTERPRISE tenant to a Raft group of its own (operators only),
/// optionally pinned to a node pool. Requests wait out the move and are not
/// refused; repeating it is a no-op.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/dedicated", tag = "placement", params(("id" = uuid::Uuid, Path, description = "Tenant id")), request_body(content = Option<DedicateBody>, description = "Optional: the node pool"), responses((status = 200, description = "The tenant's own group", body = crate::envelope::Envelope<PlacementDto>), crate::envelope::ApiErrors))]
pub async fn dedicate(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    body: JsonBody,
) -> ApiResult<PlacementDto> {
    let (id, state, _) = access(&s, &p, &id, Need::Operator).await?;
    let body: DedicateBody = if body.is_empty() {
        DedicateBody::default()
    } else {
        body.parse()?
    };
    if let Some(Some(pool)) = &body.pool {
        quotad_engine::model::membership::check_label("pool", pool)
            .map_err(|m| ApiError::invalid("pool", m.replacen("label value", "pool", 1)))?;
    }
    crate::features::requires(
        &s,
        &state,
        quotad_engine::custom::features::DEDICATED_SCHEMA,
    )?;
    s.engine.dedicate_tenant(id, body.pool, &p.audit()).await?;
    Ok(ok(dto(s.engine.placement_view(&id))))
}
