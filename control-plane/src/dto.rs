//! Request and response bodies, camelCase as in the product README.

use quotad_engine::model::{Action, Period, QuotaKind};
use quotad_engine::quota::{QuotaState, TenantState};
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::timestamps::rfc3339;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDto {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// FREE, STARTER, PROFESSIONAL or ENTERPRISE.
    pub tier: String,
    /// ACTIVE, TRIAL, SUSPENDED or DELETED.
    pub status: String,
    pub timezone: String,
    pub trial_ends_at: Option<String>,
    /// Free-form settings; `timezone` is the tenant's timezone.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    /// Set while soft-deleted.
    pub deleted_at: Option<String>,
    /// When a soft-deleted tenant is purged for good.
    pub purge_after: Option<String>,
    /// Every quota decides and reports but admits (`PUT …/shadow`).
    pub shadow: bool,
}

/// The tenant's settings object, with the keys the engine keeps as typed
/// fields (`timezone`) filled in from those fields, so a settings key reads
/// back as what is in force.
fn settings(t: &quotad_engine::model::Tenant) -> serde_json::Value {
    let mut settings = match serde_json::from_str(&t.settings_json) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    settings.insert(
        "timezone".into(),
        serde_json::Value::String(t.timezone.name().to_string()),
    );
    serde_json::Value::Object(settings)
}

impl From<&TenantState> for TenantDto {
    fn from(s: &TenantState) -> Self {
        let t = &s.tenant;
        TenantDto {
            id: t.id.to_string(),
            slug: t.slug.clone(),
            name: t.name.clone(),
            tier: t.tier.as_str().to_string(),
            status: t.status.as_str().to_string(),
            timezone: t.timezone.name().to_string(),
            trial_ends_at: t.trial_ends_at_ms.map(rfc3339),
            settings: settings(t),
            created_at: rfc3339(t.created_at_ms),
            updated_at: rfc3339(t.updated_at_ms),
            deleted_at: t.deleted.map(|d| rfc3339(d.at_ms)),
            purge_after: t.deleted.map(|d| rfc3339(d.purge_after_ms)),
            shadow: *s.shadow,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaDto {
    #[serde(rename = "type")]
    pub quota_type: String,
    #[schema(value_type = String, example = "counter")]
    pub kind: QuotaKind,
    #[schema(value_type = String, example = "monthly")]
    pub period: Period,
    #[schema(value_type = String, example = "block")]
    pub action: Action,
    /// `null` is unlimited.
    pub limit: Option<u64>,
    pub soft_limit: Option<u64>,
    pub usage: u64,
    pub reserved: u64,
    pub overage: u64,
    /// Usage as a percentage of the limit (`null` when unlimited).
    pub percentage: Option<f64>,
    pub remaining: Option<u64>,
    pub reset_at: Option<String>,
    pub alert_thresholds: Vec<u8>,
    pub overridden: bool,
    /// Further windows every spend must also fit, each with its usage.
    pub windows: Vec<crate::quota_rules_dto::LevelDto>,
    pub rollover: bool,
    pub rollover_max: Option<u64>,
    /// Allowance rolled over into the current period.
    pub carried_over: u64,
    pub preserve_overage: bool,
    /// Decisions are reported but never refuse (`shadow_denied`).
    pub shadow: bool,
    /// Limits per scope value, if any.
    pub scopes: Option<crate::quota_rules_dto::ScopesSpec>,
    /// Units the quota may still draw from active credit grants.
    pub grant_balance: u64,
    /// Usage of the current period covered by grants.
    pub used_from_grants: u64,
    pub grants: Vec<crate::quota_rules_dto::GrantDto>,
    /// The scope value asked for with `?scope=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::quota_rules_dto::ScopeDto>,
}

impl QuotaDto {
    pub fn new(name: &str, q: &QuotaState, tz: chrono_tz::Tz, now_ms: i64) -> Self {
        let usage = q.usage(now_ms);
        let rules = q.policy.rules();
        QuotaDto {
            quota_type: name.to_string(),
            kind: q.policy.kind,
            period: q.policy.period,
            action: q.policy.action,
            limit: q.policy.limit,
            soft_limit: q.policy.soft_limit,
            usage,
            reserved: q.reserved,
            overage: q.overage,
            percentage: q.policy.limit.map(|l| {
                if l == 0 {
                    if usage == 0 { 0.0 } else { 100.0 }
                } else {
                    (usage as f64 * 10_000.0 / l as f64).round() / 100.0
                }
            }),
            remaining: q.remaining(now_ms),
            reset_at: q.reset_at_ms(tz, now_ms).map(rfc3339),
            alert_thresholds: q.policy.alert_thresholds.to_vec(),
            overridden: q.policy.overridden,
            windows: q
                .windows_usage(tz, now_ms)
                .into_iter()
                .map(Into::into)
                .collect(),
            rollover: rules.is_some_and(|r| r.rollover),
            rollover_max: rules.and_then(|r| r.rollover_max),
            carried_over: q.layers().map_or(0, |l| l.carry),
            preserve_overage: rules.is_some_and(|r| r.preserve_overage),
            shadow: q.policy.shadow(),
            scopes: rules
                .and_then(|r| r.scopes.as_ref())
                .map(crate::quota_rules_dto::ScopesSpec::of),
            grant_balance: q.grant_balance(now_ms),
            used_from_grants: q.layers().map_or(0, |l| l.from_grants),
            grants: crate::quota_rules_dto::GrantDto::all(q, now_ms),
            scope: None,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// A DNS label: unique, immutable.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub slug: String,
    /// FREE when absent.
    pub tier: Option<String>,
    /// UTC when absent.
    pub timezone: Option<String>,
    pub trial_days: Option<u32>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    /// The first owner's user id (`ownerId` is accepted too). Operators
    /// name one (or none); anyone else becomes the owner of what they
    /// create, and may only name themselves.
    #[serde(alias = "ownerId")]
    pub owner_user_id: Option<String>,
    /// The first owner's contact address, kept on their membership.
    pub owner_email: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTenant {
    pub name: Option<String>,
    pub timezone: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    /// ACTIVE, TRIAL or SUSPENDED.
    pub status: Option<String>,
    /// Present to give the "slug is immutable" error instead of "unknown field".
    pub slug: Option<String>,
    /// Present to point at the upgrade endpoint.
    pub tier: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Upgrade {
    pub tier: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierChangeDto {
    pub tenant: TenantDto,
    /// Quotas whose current usage is above the new tier's limit. They are
    /// reported, not cut: usage stays, further use is refused per action.
    pub over_limit: Vec<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

/// `PUT /tenants/{id}/quotas/{type}`: `limit` is required; every other
/// field left out keeps its current value (or its default for a new quota).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetQuota {
    /// Required: a number, or `null` for unlimited.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, required = true)]
    pub limit: Option<Option<u64>>,
    /// A number, `null` to remove it; absent keeps the current one.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub soft_limit: Option<Option<u64>>,
    /// hourly | daily | monthly | never (counters), second | minute (rates).
    #[schema(value_type = Option<String>)]
    pub period: Option<Period>,
    /// block | throttle | alert | allow_overage.
    #[schema(value_type = Option<String>)]
    pub action: Option<Action>,
    /// counter | rate | gauge; inferred from the period or the existing quota.
    #[schema(value_type = Option<String>)]
    pub kind: Option<QuotaKind>,
    pub alert_thresholds: Option<Vec<u8>>,
    /// Further windows every spend must also fit (e.g. 50 per second under
    /// a monthly allowance); `[]` removes them.
    pub windows: Option<Vec<crate::quota_rules_dto::LimitSpec>>,
    /// Carry the unused allowance into the next period (counters).
    pub rollover: Option<bool>,
    /// At most this much is carried; `null`: one period's limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub rollover_max: Option<Option<u64>>,
    /// Carry usage beyond the limit (not covered by grants) into the next
    /// period's usage.
    pub preserve_overage: Option<bool>,
    /// Decide and report, but admit: refusals answer `shadow_denied`.
    pub shadow: Option<bool>,
    /// Limits per scope value; `null` removes them.
    #[serde(default, deserialize_with = "present_scopes")]
    #[schema(value_type = Option<crate::quota_rules_dto::ScopesSpec>)]
    pub scopes: Option<Option<crate::quota_rules_dto::ScopesSpec>>,
}

fn present_scopes<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<crate::quota_rules_dto::ScopesSpec>>, D::Error> {
    Option::<crate::quota_rules_dto::ScopesSpec>::deserialize(d).map(Some)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberDto {
    pub user_id: String,
    pub role: String,
    /// Contact address, when one was given (`ownerEmail` at creation).
    pub email: Option<String>,
    pub added_at: String,
}

impl From<&quotad_engine::model::Member> for MemberDto {
    fn from(m: &quotad_engine::model::Member) -> Self {
        MemberDto {
            user_id: m.user_id.clone(),
            role: m.role.as_str().to_string(),
            email: m.email.clone(),
            added_at: rfc3339(m.added_at_ms),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMember {
    pub user_id: String,
    /// owner, admin, member or viewer.
    pub role: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeRole {
    pub role: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyDto {
    pub id: String,
    pub name: String,
    /// check, increment, reserve, usage:read.
    pub scopes: Vec<String>,
    /// The key's last 4 characters.
    pub last4: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub rotated_at: Option<String>,
    /// After a rotation with a grace period: until when the previous
    /// secret still works.
    pub previous_valid_until: Option<String>,
}

impl From<&quotad_engine::model::ApiKey> for ApiKeyDto {
    fn from(k: &quotad_engine::model::ApiKey) -> Self {
        ApiKeyDto {
            id: k.id.clone(),
            name: k.name.clone(),
            scopes: k.scopes.names().into_iter().map(str::to_string).collect(),
            last4: k.last4.clone(),
            created_at: rfc3339(k.created_at_ms),
            created_by: k.created_by.clone(),
            expires_at: k.expires_at_ms.map(rfc3339),
            rotated_at: k.rotated_at_ms.map(rfc3339),
            previous_valid_until: k.previous.map(|(_, until)| rfc3339(until)),
        }
    }
}

/// A key as created or rotated: its text, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedApiKeyDto {
    /// The key, to send as `authorization: Bearer <key>`. Only its hash is
    /// kept: it cannot be shown again.
    pub key: String,
    pub api_key: ApiKeyDto,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    /// 1 to 64 characters.
    pub name: String,
    /// Any of check, increment, reserve, usage:read.
    pub scopes: Vec<String>,
    /// RFC 3339; the key opens nothing from then on.
    pub expires_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateApiKey {
    /// How long the previous secret keeps working (0 to 604800) [default: 0].
    #[serde(default)]
    pub grace_seconds: i64,
}
