use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::rfc3339;
use crate::envelope::{ApiError, ApiResult, ok};
use crate::extract::{ApiPath, RawQuery, time_param};
use axum::extract::State;
use quotad_engine::audit::{AuditEvent, AuditQuery};
use quotad_engine::model::Role;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditParams {
    pub action: Option<String>,
    pub actor: Option<String>,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    /// Continue after this sequence number (`nextAfter` of the last page).
    pub after: Option<u64>,
    /// 1..=1000, default 100.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventDto {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub request_id: String,
    pub action: String,
    pub target: String,
    /// JSON of the affected part before (any JSON value).
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

fn json_or_none(s: &str) -> Option<serde_json::Value> {
    (!s.is_empty()).then(|| {
        serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string()))
    })
}

impl From<AuditEvent> for AuditEventDto {
    fn from(e: AuditEvent) -> Self {
        AuditEventDto {
            seq: e.seq,
            at: rfc3339(e.at_ms),
            actor: e.actor,
            request_id: e.request_id,
            action: e.action,
            target: e.target,
            before: json_or_none(&e.before),
            after: json_or_none(&e.after),
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainDto {
    pub valid: bool,
    pub broken_at: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPageDto {
    pub events: Vec<AuditEventDto>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next_after: Option<u64>,
    pub total: usize,
    /// Verification of the tenant's whole chain.
    pub chain: ChainDto,
}

/// `GET /api/v1/tenants/{id}/audit`: admins and owners read their tenant's
/// audit chain, filtered and paged, with its verification.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/audit", tag = "audit", params(("id" = uuid::Uuid, Path, description = "Tenant id"), AuditParams), responses((status = 200, description = "A page of the audit chain, and the verification of the whole chain", body = crate::envelope::Envelope<AuditPageDto>), crate::envelope::ApiErrors))]
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    query: RawQuery,
) -> ApiResult<AuditPageDto> {
    let (id, _, _) = access(&s, &p, &id, Need::Role(Role::Admin)).await?;
    let q: AuditParams = query.parse()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let query = AuditQuery {
        action: q.action,
        actor: q.actor,
        from_ms: q
            .from
            .as_deref()
            .map(|f| time_param("from", f))
            .transpose()?,
        to_ms: q.to.as_deref().map(|t| time_param("to", t)).transpose()?,
        after_seq: q.after.unwrap_or(0),
        limit,
    };
    let page = s.engine.audit(id, &query).await?;
    let next_after = if page.more {
        page.events.last().map(|e| e.seq)
    } else {
        None
    };
    let chain = match page.chain {
        Ok(()) => ChainDto {
            valid: true,
            broken_at: None,
            reason: None,
        },
        Err(b) => ChainDto {
            valid: false,
            broken_at: Some(b.seq),
            reason: Some(b.reason.to_string()),
        },
    };
    Ok(ok(AuditPageDto {
        events: page.events.into_iter().map(AuditEventDto::from).collect(),
        next_after,
        total: page.total,
        chain,
    }))
}
