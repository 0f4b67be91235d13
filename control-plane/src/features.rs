//! A tenant's tier features and SLA, as the catalog gives them.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::envelope::{ApiError, ApiResult, ok};
use crate::extract::ApiPath;
use axum::extract::State;
use quotad_engine::model::{Role, Tier};
use quotad_engine::quota::{QuotaError, TenantState};
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeaturesDto {
    pub tier: String,
    /// "none" or an availability such as "99.9%".
    pub sla: String,
    pub features: Vec<FeatureDto>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureDto {
    pub name: String,
    /// Whether the tenant's tier has it.
    pub enabled: bool,
    /// The lowest tier that has it.
    pub min_tier: String,
}

fn dto(s: &AppState, tier: Tier) -> FeaturesDto {
    let features = s.engine.catalog().features();
    FeaturesDto {
        tier: tier.to_string(),
        sla: features.sla(tier).as_str().to_string(),
        features: features
            .all()
            .map(|(name, min)| FeatureDto {
                name: name.to_string(),
                enabled: tier >= min,
                min_tier: min.to_string(),
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/features", tag = "customization", params(("id" = uuid::Uuid, Path, description = "Tenant id")), responses((status = 200, description = "The tier's features and SLA", body = crate::envelope::Envelope<FeaturesDto>), crate::envelope::ApiErrors))]
pub async fn list(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<FeaturesDto> {
    let (_, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    Ok(ok(dto(&s, state.tenant.tier)))
}

/// The one feature check of the REST API: 403 naming the tier needed when
/// the tenant's tier lacks `feature`. It holds for operators too: a
/// feature the tier lacks is off, whoever asks.
pub fn requires(s: &AppState, t: &TenantState, feature: &str) -> Result<(), ApiError> {
    s.engine
        .catalog()
        .requires(t.tenant.tier, feature)
        .map_err(|e| QuotaError::NotInTier(e).into())
}
