//! Bodies of the quota model beyond one limit: further windows, scope
//! rules, rollover, preserved overage and shadow mode on `PUT …/quotas/
//! {type}`; the levels, grants and scope values a quota reads as.
use crate::envelope::ApiError;
use crate::extract::time_param;
use crate::timestamps::rfc3339;
use quotad_engine::model::quota_rules::limit_policy;
use quotad_engine::model::{Action, Period, QuotaKind, ScopeRules, SharedPolicy};
use quotad_engine::quota::{CreditGrant, LevelUsage, NewCreditGrant, QuotaState, ScopeUsage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A further window or a scope rule: `limit` per `period`. A second or
/// minute period makes it a rate (GCRA, burst = limit), an hourly, daily
/// or monthly one a counter in the tenant's timezone.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitSpec {
    pub limit: u64,
    /// second | minute (rates), hourly | daily | monthly (counters).
    #[schema(value_type = String, example = "second")]
    pub period: Period,
    /// block | throttle | alert | allow_overage; default throttle for a
    /// rate, block for a counter.
    #[schema(value_type = Option<String>)]
    pub action: Option<Action>,
}

impl LimitSpec {
    pub(crate) fn policy(&self) -> SharedPolicy {
        let action = self.action.unwrap_or(match self.period {
            Period::Second | Period::Minute => Action::Throttle,
            _ => Action::Block,
        });
        SharedPolicy::new(limit_policy(self.period, self.limit, action))
    }

    fn of(p: &SharedPolicy) -> Self {
        LimitSpec {
            limit: p.limit.unwrap_or_default(),
            period: p.period,
            action: Some(p.action),
        }
    }
}

/// Limits inside the quota for each value of the scope a request names
/// (an end user, an API key, a project, a model).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopesSpec {
    /// Every value without an override; absent: such values are limited
    /// by the tenant's quota alone.
    pub default: Option<LimitSpec>,
    /// Named values and patterns with one `*` (e.g. `premium_*`): a value's
    /// exact override wins, else the matching pattern with the most
    /// literal characters, else the default.
    #[serde(default)]
    pub overrides: BTreeMap<String, LimitSpec>,
}

impl ScopesSpec {
    pub(crate) fn rules(&self) -> ScopeRules {
        ScopeRules {
            default: self.default.as_ref().map(LimitSpec::policy),
            // A BTreeMap iterates in byte order: the order the rules keep.
            overrides: self
                .overrides
                .iter()
                .map(|(k, v)| (k.clone(), v.policy()))
                .collect(),
        }
    }

    pub fn of(r: &ScopeRules) -> Self {
        ScopesSpec {
            default: r.default.as_ref().map(LimitSpec::of),
            overrides: r
                .overrides
                .iter()
                .map(|(k, v)| (k.clone(), LimitSpec::of(v)))
                .collect(),
        }
    }
}

/// A level of a quota (a further window, or a scope value's rule) now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LevelDto {
    #[schema(value_type = String, example = "rate")]
    pub kind: QuotaKind,
    #[schema(value_type = String, example = "second")]
    pub period: Period,
    #[schema(value_type = String, example = "throttle")]
    pub action: Action,
    pub limit: Option<u64>,
    pub usage: u64,
    pub reserved: u64,
    pub remaining: Option<u64>,
    pub reset_at: Option<String>,
}

impl From<LevelUsage> for LevelDto {
    fn from(u: LevelUsage) -> Self {
        LevelDto {
            kind: u.kind,
            period: u.period,
            action: u.action,
            limit: u.limit,
            usage: u.usage,
            reserved: u.reserved,
            remaining: u.remaining,
            reset_at: u.reset_at_ms.map(rfc3339),
        }
    }
}

/// A credit grant on a quota.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantDto {
    /// Numbered per quota from 1.
    pub id: u32,
    pub amount: u64,
    pub used: u64,
    pub remaining: u64,
    /// active | pending | expired | voided | used.
    pub status: String,
    pub effective_at: String,
    pub expires_at: Option<String>,
    /// Lower is drawn first.
    pub priority: u8,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub created_at: String,
    pub voided_at: Option<String>,
}

impl GrantDto {
    pub fn new(g: &CreditGrant, now_ms: i64) -> Self {
        GrantDto {
            id: g.seq,
            amount: g.amount,
            used: g.used,
            remaining: g.remaining(),
            status: g.status(now_ms).to_string(),
            effective_at: rfc3339(g.effective_at_ms),
            expires_at: g.expires_at_ms.map(rfc3339),
            priority: g.priority,
            reason: g.reason.clone(),
            idempotency_key: g.idempotency_key.clone(),
            created_at: rfc3339(g.created_at_ms),
            voided_at: g.voided_at_ms.map(rfc3339),
        }
    }

    /// Every grant of `q`, in the order added.
    pub fn all(q: &QuotaState, now_ms: i64) -> Vec<GrantDto> {
        q.layers().map_or_else(Vec::new, |l| {
            l.grants.iter().map(|g| GrantDto::new(g, now_ms)).collect()
        })
    }
}

/// `POST …/quotas/{type}/grants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddGrant {
    /// Units added beyond the period allowance.
    pub amount: u64,
    /// RFC 3339; default now.
    pub effective_at: Option<String>,
    /// RFC 3339; default never.
    pub expires_at: Option<String>,
    /// 0-255, lower drawn first; default 10.
    pub priority: Option<u8>,
    #[serde(default)]
    pub reason: String,
    /// The same key with the same fields answers the grant it added.
    pub idempotency_key: Option<String>,
}

impl AddGrant {
    pub fn grant(&self) -> Result<NewCreditGrant, ApiError> {
        let time = |field: &str, v: &Option<String>| v.as_deref().map(|t| time_param(field, t));
        Ok(NewCreditGrant {
            amount: self.amount,
            effective_at_ms: time("effectiveAt", &self.effective_at).transpose()?,
            expires_at_ms: time("expiresAt", &self.expires_at).transpose()?,
            priority: self.priority.unwrap_or(10),
            reason: self.reason.clone(),
            idempotency_key: self.idempotency_key.clone(),
        })
    }
}

/// A scope value of a quota and its level now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeDto {
    pub value: String,
    /// "default", the override's pattern, or `null`: no rule, the
    /// tenant's quota alone limits it.
    pub rule: Option<String>,
    pub level: Option<LevelDto>,
}

impl From<ScopeUsage> for ScopeDto {
    fn from(s: ScopeUsage) -> Self {
        ScopeDto {
            value: s.value,
            rule: s.rule,
            level: s.usage.map(Into::into),
        }
    }
}

/// `GET …/quotas/{type}/scopes`: live scope values, highest usage first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopesPageDto {
    /// Live values in all.
    pub total: u64,
    pub offset: u64,
    pub items: Vec<ScopeDto>,
}

/// `PUT /tenants/{id}/shadow`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetShadow {
    /// Every quota of the tenant decides and reports, but admits.
    pub enabled: bool,
}
