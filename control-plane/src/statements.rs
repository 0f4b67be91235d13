//! Revenue statements of cross-tenant usage, per calendar month (UTC):
//! one line per policy and counterpart, with units, gross (units times the
//! price in force when each unit was used), the platform's fee and the
//! provider's net, which add up to the gross exactly. A provider's lines
//! come from the usage its consumers' groups transferred to it; a
//! consumer's from its own records. JSON, or CSV with `Accept: text/csv`.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::envelope::{ApiError, ok};
use crate::extract::RawQuery;
use crate::sharing::acting_raw;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::{Role, TenantId};
use quotad_engine::sharing::ledger::{PeriodKey, parse_period, period_of, period_text};
use quotad_engine::sharing::{Amount, UsageKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatementParams {
    /// provider or consumer [default: provider].
    #[serde(rename = "as")]
    pub side: Option<String>,
    /// yyyy-mm (UTC) [default: the current month].
    pub period: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlatformStatementParams {
    /// yyyy-mm (UTC) [default: the current month].
    pub period: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatementLine {
    #[schema(value_type = String, format = Uuid)]
    pub policy_id: uuid::Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub provider_tenant_id: TenantId,
    #[schema(value_type = String, format = Uuid)]
    pub consumer_tenant_id: TenantId,
    pub units: u64,
    /// Decimal strings, exact.
    pub gross: String,
    pub platform_fee: String,
    pub provider_net: String,
    /// ISO 4217; empty for free use.
    pub currency: String,
    /// usage (units used) or subscription (units: months charged).
    pub kind: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatementDto {
    pub period: String,
    /// provider, consumer or platform.
    #[serde(rename = "as")]
    pub side: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub tenant_id: Option<TenantId>,
    /// Closed periods' lines are final; usage that arrived after the close
    /// is in `adjustments`.
    pub closed: bool,
    pub closed_at: Option<String>,
    pub lines: Vec<StatementLine>,
    pub adjustments: Vec<StatementLine>,
}

fn period(raw: &Option<String>, now_ms: i64) -> Result<PeriodKey, ApiError> {
    match raw {
        None => Ok(period_of(now_ms)),
        Some(p) => parse_period(p)
            .ok_or_else(|| ApiError::invalid("period", "a month as yyyy-mm, e.g. 2026-11")),
    }
}

fn overflow() -> ApiError {
    ApiError::new(ErrorCode::Internal, "a statement amount overflowed")
}

/// Lines per policy, provider, consumer and currency from usage lines
/// (one per price): gross, fee and net summed line by line.
fn lines<'a>(
    usage: impl Iterator<Item = (&'a UsageKey, &'a u64)>,
    period: PeriodKey,
) -> Result<Vec<StatementLine>, ApiError> {
    type Sums = (u64, Amount, Amount, Amount);
    type Line = (uuid::Uuid, TenantId, TenantId, String, &'static str);
    let mut by: BTreeMap<Line, Sums> = BTreeMap::new();
    for (k, units) in usage.filter(|(k, _)| k.period == period) {
        let gross = k.price.times(*units).ok_or_else(overflow)?;
        let fee = gross.share(k.fee_bp).ok_or_else(overflow)?;
        let net = gross.checked_sub(fee).ok_or_else(overflow)?;
        let currency = k.currency.map(|c| c.to_string()).unwrap_or_default();
        let s = by
            .entry((k.policy, k.provider, k.consumer, currency, k.kind.as_str()))
            .or_insert((0, Amount::ZERO, Amount::ZERO, Amount::ZERO));
        s.0 = s.0.saturating_add(*units);
        s.1 = s.1.checked_add(gross).ok_or_else(overflow)?;
        s.2 = s.2.checked_add(fee).ok_or_else(overflow)?;
        s.3 = s.3.checked_add(net).ok_or_else(overflow)?;
    }
    Ok(by
        .into_iter()
        .map(
            |((policy, provider, consumer, currency, kind), (units, gross, fee, net))| {
                StatementLine {
                    policy_id: policy,
                    provider_tenant_id: provider,
                    consumer_tenant_id: consumer,
                    units,
                    gross: gross.to_string(),
                    platform_fee: fee.to_string(),
                    provider_net: net.to_string(),
                    currency,
                    kind,
                }
            },
        )
        .collect())
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|m| m.trim().starts_with("text/csv")))
}

fn csv(s: &StatementDto) -> Response {
    let mut out = String::from(
        "period,policy_id,provider_tenant_id,consumer_tenant_id,kind,units,gross,platform_fee,provider_net,currency\n",
    );
    for l in &s.lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            s.period,
            l.policy_id,
            l.provider_tenant_id,
            l.consumer_tenant_id,
            l.kind,
            l.units,
            l.gross,
            l.platform_fee,
            l.provider_net,
            l.currency
        ));
    }
    (
        [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        out,
    )
        .into_response()
}

fn answer(s: StatementDto, headers: &HeaderMap) -> Response {
    if wants_csv(headers) {
        csv(&s)
    } else {
        ok(s).into_response()
    }
}

#[utoipa::path(get, path = "/api/v1/sharing/statements", tag = "sharing", params(StatementParams, ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The tenant (else the token's)")), responses((status = 200, description = "The month's statement (JSON, or CSV with Accept: text/csv)", body = crate::envelope::Envelope<StatementDto>), crate::envelope::ApiErrors))]
pub async fn tenant(
    State(s): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, ApiError> {
    let raw = acting_raw(&p).ok_or_else(|| {
        ApiError::invalid(
            "X-Tenant-ID",
            "name the tenant (X-Tenant-ID), or use a token scoped to one tenant",
        )
    })?;
    let (id, state, _) = access(&s, &p, raw, Need::Role(Role::Admin)).await?;
    let q: StatementParams = query.parse()?;
    let period = period(&q.period, s.engine.now_ms())?;
    let adjusted = |mine: fn(&UsageKey, TenantId) -> bool| {
        lines(
            state.shared.adjustments.iter().filter(|(k, _)| mine(k, id)),
            period,
        )
    };
    let (side, lines, adjustments) = match q.side.as_deref() {
        None | Some("provider") => (
            "provider",
            lines(state.shared.received.iter(), period)?,
            adjusted(|k, id| k.provider == id)?,
        ),
        Some("consumer") => (
            "consumer",
            lines(state.shared.used.iter(), period)?,
            adjusted(|k, id| k.consumer == id)?,
        ),
        Some(other) => {
            return Err(ApiError::invalid(
                "as",
                format!(
                    "unknown value {:?}: expected provider, consumer",
                    quotad_engine::excerpt::short(other)
                ),
            ));
        }
    };
    let closed_at = state.shared.closed.get(&period).copied();
    Ok(answer(
        StatementDto {
            period: period_text(period),
            side,
            tenant_id: Some(id),
            closed: closed_at.is_some(),
            closed_at: closed_at.map(crate::dto::rfc3339),
            lines,
            adjustments,
        },
        &headers,
    ))
}

#[utoipa::path(get, path = "/api/v1/platform/statements", tag = "sharing", params(PlatformStatementParams), responses((status = 200, description = "Every provider's lines of the month (operators)", body = crate::envelope::Envelope<StatementDto>), crate::envelope::ApiErrors))]
pub async fn platform(
    State(s): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, ApiError> {
    if !p.is_operator() {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "platform statements are for operators",
        ));
    }
    let q: PlatformStatementParams = query.parse()?;
    let period = period(&q.period, s.engine.now_ms())?;
    // Every tenant that ever provided: its policies' and grants' providers.
    let providers: BTreeSet<TenantId> = s.engine.with_catalog(|c| {
        c.policies
            .values()
            .map(|p| p.provider)
            .chain(c.grants.values().map(|g| g.provider))
            .collect()
    });
    let (mut all, mut adjustments) = (Vec::new(), Vec::new());
    for provider in providers {
        match s.engine.tenant(provider).await {
            Ok(state) => {
                all.extend(lines(state.shared.received.iter(), period)?);
                adjustments.extend(lines(
                    state
                        .shared
                        .adjustments
                        .iter()
                        .filter(|(k, _)| k.provider == provider),
                    period,
                )?);
            }
            Err(e) if e.code() == ErrorCode::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let closed_at = s.engine.with_catalog(|c| c.closed.get(&period).copied());
    Ok(answer(
        StatementDto {
            period: period_text(period),
            side: "platform",
            tenant_id: None,
            closed: closed_at.is_some(),
            closed_at: closed_at.map(crate::dto::rfc3339),
            lines: all,
            adjustments,
        },
        &headers,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClosedPeriodDto {
    pub period: String,
    pub closed_at: String,
}

#[utoipa::path(post, path = "/api/v1/platform/periods/{period}/close", tag = "sharing", params(("period" = String, Path, description = "A past month, yyyy-mm (UTC)")), responses((status = 200, description = "Closed: its statements are final; later usage for it is listed as adjustments", body = crate::envelope::Envelope<ClosedPeriodDto>), crate::envelope::ApiErrors))]
pub async fn close(
    State(s): State<AppState>,
    p: Principal,
    crate::extract::ApiPath(raw): crate::extract::ApiPath<String>,
) -> crate::envelope::ApiResult<ClosedPeriodDto> {
    if !p.is_operator() {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "closing a period is for operators",
        ));
    }
    let period = period(&Some(raw), s.engine.now_ms())?;
    let at = s.engine.close_period(period, &p.audit()).await?;
    Ok(ok(ClosedPeriodDto {
        period: period_text(period),
        closed_at: crate::dto::rfc3339(at),
    }))
}

#[utoipa::path(get, path = "/api/v1/platform/periods", tag = "sharing", responses((status = 200, description = "The closed periods", body = crate::envelope::Envelope<Vec<ClosedPeriodDto>>), crate::envelope::ApiErrors))]
pub async fn closed(
    State(s): State<AppState>,
    p: Principal,
) -> crate::envelope::ApiResult<Vec<ClosedPeriodDto>> {
    if !p.is_operator() {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "the periods are for operators",
        ));
    }
    Ok(ok(s.engine.with_catalog(|c| {
        c.closed
            .iter()
            .map(|(p, at)| ClosedPeriodDto {
                period: period_text(*p),
                closed_at: crate::dto::rfc3339(*at),
            })
            .collect()
    })))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SharingSettingsDto {
    /// IANA zone statement months are counted in for grants made from now
    /// on (each grant keeps the zone it was made in) [default: UTC].
    pub statement_timezone: String,
}

fn operator_only(p: &Principal) -> Result<(), ApiError> {
    if p.is_operator() {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "the platform's sharing settings are for operators",
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/platform/sharing/settings", tag = "sharing", responses((status = 200, description = "The platform's sharing settings", body = crate::envelope::Envelope<SharingSettingsDto>), crate::envelope::ApiErrors))]
pub async fn settings(
    State(s): State<AppState>,
    p: Principal,
) -> crate::envelope::ApiResult<SharingSettingsDto> {
    operator_only(&p)?;
    let zone = s
        .engine
        .with_catalog(|c| c.statement_zone.unwrap_or(chrono_tz::UTC));
    Ok(ok(SharingSettingsDto {
        statement_timezone: zone.name().to_string(),
    }))
}

#[utoipa::path(put, path = "/api/v1/platform/sharing/settings", tag = "sharing", request_body = SharingSettingsDto, responses((status = 200, description = "Changed: grants made from now on count statement months in this zone", body = crate::envelope::Envelope<SharingSettingsDto>), crate::envelope::ApiErrors))]
pub async fn set_settings(
    State(s): State<AppState>,
    p: Principal,
    body: crate::extract::JsonBody,
) -> crate::envelope::ApiResult<SharingSettingsDto> {
    operator_only(&p)?;
    let body: SharingSettingsDto = body.parse()?;
    let zone: chrono_tz::Tz = body.statement_timezone.parse().map_err(|_| {
        ApiError::invalid(
            "statementTimezone",
            format!(
                "{:?} is not an IANA time zone (e.g. Europe/Berlin)",
                quotad_engine::excerpt::short(&body.statement_timezone)
            ),
        )
    })?;
    s.engine.set_statement_zone(zone).await?;
    Ok(ok(SharingSettingsDto {
        statement_timezone: zone.name().to_string(),
    }))
}
