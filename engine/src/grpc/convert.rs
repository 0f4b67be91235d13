//! proto <-> engine conversions. Errors become `tonic::Status` through the
//! one `From<EngineError>` in `crate::error`.
use crate::error::EngineError;
use crate::model::Consistency;
use crate::model::QuotaKind;
use crate::quota::{Decision, QuotaError, QuotaState, Verdict, validate};
use quotad_proto::v1 as pb;
use uuid::Uuid;

pub fn item_error(e: EngineError) -> pb::ItemError {
    pb::ItemError {
        code: e.code().as_str().to_string(),
        message: e.to_string(),
        field: e.field().unwrap_or_default().to_string(),
    }
}

pub fn tenant_id(s: &str) -> Result<Uuid, EngineError> {
    if s.is_empty() {
        return Err(QuotaError::invalid("tenant_id", "is required").into());
    }
    Ok(validate::tenant_id(s)?)
}

pub fn reservation_id(s: &str) -> Result<Uuid, EngineError> {
    if s.is_empty() {
        return Err(QuotaError::invalid("reservation_id", "is required").into());
    }
    Ok(validate::reservation_id(s)?)
}

pub fn quota(s: &str) -> Result<&str, EngineError> {
    if s.is_empty() {
        return Err(QuotaError::invalid("quota", "is required").into());
    }
    Ok(s)
}

pub fn consistency(raw: i32) -> Result<Option<Consistency>, EngineError> {
    match pb::Consistency::try_from(raw) {
        Ok(pb::Consistency::Unspecified) => Ok(None),
        Ok(pb::Consistency::Strict) => Ok(Some(Consistency::Strict)),
        Ok(pb::Consistency::Fast) => Ok(Some(Consistency::Fast)),
        Err(_) => Err(QuotaError::invalid("consistency", format!("unknown value {raw}")).into()),
    }
}

/// The grant a call uses, when it names a sharing policy.
pub fn via(policy: &str, permission: &str) -> Result<Option<crate::Via>, EngineError> {
    if policy.is_empty() {
        if !permission.is_empty() {
            return Err(QuotaError::invalid(
                "permission",
                "only a call through a sharing grant (sharing_policy_id) names a permission",
            )
            .into());
        }
        return Ok(None);
    }
    let policy = Uuid::parse_str(policy)
        .map_err(|_| QuotaError::invalid("sharing_policy_id", "not a UUID"))?;
    let permission = if permission.is_empty() {
        crate::sharing::Permission::Execute
    } else {
        permission
            .parse()
            .map_err(|e: QuotaError| QuotaError::invalid("permission", e.reason()))?
    };
    Ok(Some(crate::Via { policy, permission }))
}

pub fn key(k: String) -> Option<String> {
    (!k.is_empty()).then_some(k)
}

pub fn verdict(v: Verdict) -> pb::Verdict {
    match v {
        Verdict::Allowed => pb::Verdict::Allowed,
        Verdict::Denied => pb::Verdict::Denied,
        Verdict::Throttled => pb::Verdict::Throttled,
        Verdict::AllowedOverSoftLimit => pb::Verdict::AllowedOverSoftLimit,
        Verdict::AllowedOverage => pb::Verdict::AllowedOverage,
        Verdict::ShadowDenied => pb::Verdict::ShadowDenied,
    }
}

/// Every refusal says why in `reason`, also when the numbers say it too:
/// the level that refused (a further window or the scope's rule, whose
/// numbers are in `limited_by`) or the quota's own limit.
fn refusal_reason(d: &Decision) -> String {
    let (mut reason, retry_after_ms, reset_at_ms) = match d.limited_by.0.as_deref() {
        Some(l) if l.level != "quota" => {
            let what = match (&l.scope, &l.rule) {
                (Some(scope), Some(rule)) => format!("scope {scope} (rule {rule})"),
                _ => format!(
                    "the {} {} window",
                    serde_name(&l.period),
                    serde_name(&l.kind)
                ),
            };
            let limit = l.limit.map_or("no".to_string(), |v| v.to_string());
            let left = l.remaining.map_or(String::new(), |r| format!(", {r} left"));
            (
                format!("the amount would go over the limit of {limit} of {what}{left}"),
                l.retry_after_ms,
                l.reset_at_ms,
            )
        }
        _ => (
            match d.limit {
                Some(limit) => format!(
                    "the amount would go over the limit of {limit} (usage {})",
                    d.usage
                ),
                None => "refused".to_string(),
            },
            d.retry_after_ms,
            d.reset_at_ms,
        ),
    };
    if let Some(ms) = retry_after_ms {
        reason.push_str(&format!("; retry after {ms} ms"));
    } else if let Some(at) = reset_at_ms.and_then(chrono::DateTime::from_timestamp_millis) {
        reason.push_str(&format!(
            "; the period resets at {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    reason
}

pub fn decision(mut d: Decision) -> pb::Decision {
    if !d.allowed && d.reason.is_none() {
        d.reason = Some(refusal_reason(&d));
    }
    pb::Decision {
        allowed: d.allowed,
        verdict: verdict(d.verdict) as i32,
        usage: d.usage,
        limit: d.limit,
        remaining: d.remaining,
        reset_at_unix_ms: d.reset_at_ms,
        retry_after_ms: d.retry_after_ms,
        thresholds_crossed: d.thresholds_crossed.into_iter().map(u32::from).collect(),
        soft_limit: d.soft_limit,
        replayed: d.replayed,
        reason: d.reason.unwrap_or_default(),
        limited_by: d.limited_by.0.map(|l| limiter(*l)),
    }
}

fn limiter(l: crate::quota::Limiter) -> pb::Limiter {
    pb::Limiter {
        level: l.level,
        scope: l.scope.unwrap_or_default(),
        rule: l.rule.unwrap_or_default(),
        kind: serde_name(&l.kind),
        period: serde_name(&l.period),
        limit: l.limit,
        remaining: l.remaining,
        reset_at_unix_ms: l.reset_at_ms,
        retry_after_ms: l.retry_after_ms,
        verdict: verdict(l.verdict) as i32,
    }
}

/// The scope a request names (`None` when empty); a use through a sharing
/// grant names none.
pub fn scope(scope: String, via: Option<&crate::Via>) -> Result<Option<String>, QuotaError> {
    if scope.is_empty() {
        return Ok(None);
    }
    if via.is_some() {
        return Err(QuotaError::invalid(
            "scope",
            "a use through a sharing grant counts against the tenant's quota only; it takes no scope",
        ));
    }
    crate::quota::validate::scope(&scope)?;
    Ok(Some(scope))
}

pub fn usage(name: &str, q: &QuotaState, tz: chrono_tz::Tz, now_ms: i64) -> pb::QuotaUsage {
    let kind = match q.policy.kind {
        QuotaKind::Counter => "counter",
        QuotaKind::Rate => "rate",
        QuotaKind::Gauge => "gauge",
    };
    pb::QuotaUsage {
        quota: name.to_string(),
        kind: kind.into(),
        period: serde_name(&q.policy.period),
        action: serde_name(&q.policy.action),
        used: match q.policy.kind {
            QuotaKind::Rate => q.usage(now_ms),
            _ => q.used,
        },
        reserved: q.reserved,
        limit: q.policy.limit,
        soft_limit: q.policy.soft_limit,
        remaining: q.remaining(now_ms),
        reset_at_unix_ms: q.reset_at_ms(tz, now_ms),
        overage: q.overage,
        period_start_unix_ms: q.window_start_ms,
    }
}

/// The snake_case name serde gives a unit variant.
pub fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
