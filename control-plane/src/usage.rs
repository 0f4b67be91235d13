use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::dto::rfc3339;
use crate::envelope::{ApiError, ApiResult, ok};
use crate::extract::{ApiPath, RawQuery, time_param};
use axum::extract::State;
use quotad_engine::model::{Period, Role};
use quotad_engine::quota::period::window;
use quotad_engine::quota::validate;
use quotad_engine::usage_history::{Granularity, MAX_POINTS};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageParams {
    pub quota: String,
    /// RFC 3339; default: 24 hours (hour) or 30 days (day) before `to`.
    pub from: Option<String>,
    /// RFC 3339, exclusive; default: the end of the current bucket.
    pub to: Option<String>,
    /// `hour` (default) or `day` (days in the tenant's timezone).
    pub granularity: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointDto {
    pub start: String,
    pub amount: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatisticsDto {
    pub total: u64,
    pub peak: u64,
    pub peak_at: Option<String>,
    /// Per bucket.
    pub average: f64,
    /// Change of the average bucket from the first half of the range to the
    /// second, in percent.
    pub trend_percent: Option<f64>,
    /// When the current period's limit is reached at its pace so far, if
    /// before the period ends.
    pub projected_exhaustion: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageDto {
    pub quota: String,
    pub granularity: String,
    pub points: Vec<PointDto>,
    pub statistics: StatisticsDto,
}

/// `GET /api/v1/tenants/{id}/usage`: a quota's usage series and statistics.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/usage", tag = "usage", params(("id" = uuid::Uuid, Path, description = "Tenant id"), UsageParams), responses((status = 200, description = "The usage series and its statistics", body = crate::envelope::Envelope<UsageDto>), crate::envelope::ApiErrors))]
pub async fn history(
    State(s): State<AppState>,
    p: Principal,
    ApiPath(id): ApiPath<String>,
    query: RawQuery,
) -> ApiResult<UsageDto> {
    let (id, state, _) = access(&s, &p, &id, Need::Role(Role::Viewer)).await?;
    let q: UsageParams = query.parse()?;
    validate::quota_name(&q.quota)?;
    let (granularity, span_ms, bucket_ms) = match q.granularity.as_deref().unwrap_or("hour") {
        "hour" => (Granularity::Hour, 86_400_000, 3_600_000),
        "day" => (Granularity::Day, 30 * 86_400_000, 86_400_000),
        other => {
            return Err(ApiError::invalid(
                "granularity",
                format!(
                    "{:?} is neither \"hour\" nor \"day\"",
                    quotad_engine::excerpt::short(other)
                ),
            ));
        }
    };
    // By default the range ends with the current bucket, included.
    let to = match &q.to {
        Some(t) => time_param("to", t)?,
        None => {
            let period = match granularity {
                Granularity::Hour => Period::Hourly,
                Granularity::Day => Period::Daily,
            };
            let now = s.engine.now_ms();
            window(period, state.tenant.timezone, now)
                .end_ms
                .unwrap_or(now)
        }
    };
    let from = match &q.from {
        Some(f) => time_param("from", f)?,
        None => to - span_ms,
    };
    if to <= from {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    if (to - from) / bucket_ms > MAX_POINTS as i64 {
        return Err(ApiError::invalid(
            "from",
            format!(
                "the range holds more than {MAX_POINTS} buckets; narrow it or use a coarser granularity"
            ),
        ));
    }
    let (points, st) = s
        .engine
        .usage_history(id, &q.quota, granularity, from, to)
        .await?;
    Ok(ok(UsageDto {
        quota: q.quota,
        granularity: match granularity {
            Granularity::Hour => "hour".into(),
            Granularity::Day => "day".into(),
        },
        points: points
            .iter()
            .map(|pt| PointDto {
                start: rfc3339(pt.start_ms),
                amount: pt.amount,
            })
            .collect(),
        statistics: StatisticsDto {
            total: st.total,
            peak: st.peak,
            peak_at: st.peak_at_ms.map(rfc3339),
            average: st.average,
            trend_percent: st.trend_percent,
            projected_exhaustion: st.projected_exhaustion_ms.map(rfc3339),
        },
    }))
}
