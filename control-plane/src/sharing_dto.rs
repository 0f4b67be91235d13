//! The sharing API's JSON: a policy as the product's README writes it
//! (`resourceId`, `resourceType`, `visibility`, `permissions`,
//! `pricing: {type, usagePrice, currency}`), read into the engine's
//! [`PolicySpec`] with every error naming its field; and what the API
//! answers about policies, requests and grants. Money is read and written
//! as JSON numbers from their decimal text, never through a float.
use crate::dto::rfc3339;
use crate::envelope::ApiError;
use crate::extract::time_param;
use quotad_engine::model::{Period, TenantId, Tier};
use quotad_engine::sharing::policy::percent_bp;
use quotad_engine::sharing::{
    AccessRequest, Amount, Approval, Conditions, Currency, Grant, JsonAmount, Permission, Policy,
    PolicySpec, Pricing, RevenueShare, UsageCap, Visibility,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeSet;

/// The quota a usage-based price is per unit of, when the body names none.
pub const DEFAULT_UNIT_QUOTA: &str = "api_requests";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyBody {
    /// The provider's id of the resource (1 to 128 characters).
    pub resource_id: String,
    /// One of the catalog's resource types (service, model, dataset, agent
    /// unless configured).
    pub resource_type: String,
    /// private, tenant, marketplace or public.
    pub visibility: String,
    /// Any of read, execute, fine_tune, download, write.
    pub permissions: Vec<String>,
    #[serde(default)]
    pub pricing: Option<PricingBody>,
    #[serde(default)]
    pub revenue_share: Option<RevenueShareBody>,
    #[serde(default)]
    pub conditions: Option<ConditionsBody>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PricingBody {
    /// free, usage_based or subscription.
    #[serde(rename = "type")]
    pub kind: String,
    /// Price per unit (usage_based), a decimal number or a string of one.
    #[schema(value_type = Option<f64>, example = 0.001)]
    pub usage_price: Option<JsonAmount>,
    /// Price per calendar month (subscription).
    #[schema(value_type = Option<f64>, example = 49.99)]
    pub subscription_price: Option<JsonAmount>,
    /// ISO 4217 code, e.g. USD.
    pub currency: Option<String>,
    /// The consumer's quota a unit is counted in [default: api_requests].
    pub unit_quota: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevenueShareBody {
    /// The platform's fee in percent (operators only; default: the
    /// platform's).
    #[schema(value_type = Option<f64>, example = 15)]
    pub platform_fee_percent: Option<JsonAmount>,
    /// The provider's share in percent; with the fee, 100.
    #[schema(value_type = Option<f64>, example = 85)]
    pub provider_share_percent: Option<JsonAmount>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionsBody {
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub allowed_tenants: Vec<uuid::Uuid>,
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub denied_tenants: Vec<uuid::Uuid>,
    /// FREE, STARTER, PROFESSIONAL or ENTERPRISE.
    pub min_consumer_tier: Option<String>,
    pub max_consumers: Option<u32>,
    /// RFC 3339; grants end then.
    pub expires_at: Option<String>,
    pub usage_cap: Option<UsageCapBody>,
    #[serde(default)]
    pub justification_required: bool,
    /// automatic or request [default: request; public policies: automatic].
    pub approval: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageCapBody {
    pub units: u64,
    /// hourly, daily, monthly or never.
    pub period: String,
}

fn from_quota(e: quotad_engine::quota::QuotaError) -> ApiError {
    ApiError::from(e)
}

fn money(field: &'static str, a: Option<JsonAmount>) -> Result<Amount, ApiError> {
    a.map(|a| a.0)
        .ok_or_else(|| ApiError::invalid(field, "required for this pricing type"))
}

fn percent(field: &'static str, a: JsonAmount) -> Result<u32, ApiError> {
    percent_bp(field, &a.0.to_string()).map_err(from_quota)
}

impl PolicyBody {
    /// The spec this body asks for. `platform_fee_bp`: the platform's
    /// default; only an operator may set another.
    pub fn spec(
        self,
        catalog: &quotad_engine::quota::TierCatalog,
        platform_fee_bp: u32,
        operator: bool,
    ) -> Result<PolicySpec, ApiError> {
        let resource_type = catalog
            .resource_type(&self.resource_type)
            .map_err(from_quota)?;
        let visibility: Visibility = self.visibility.parse().map_err(from_quota)?;
        let permissions = self
            .permissions
            .iter()
            .map(|p| p.parse::<Permission>())
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(from_quota)?;
        let pricing = match self.pricing {
            None => Pricing::Free,
            Some(p) => pricing(p)?,
        };
        let revenue_share = revenue_share(self.revenue_share, platform_fee_bp, operator)?;
        let conditions = conditions(self.conditions.unwrap_or_default())?;
        Ok(PolicySpec {
            resource_id: self.resource_id,
            resource_type,
            visibility,
            permissions,
            pricing,
            revenue_share,
            conditions,
        })
    }
}

fn currency(raw: Option<String>) -> Result<Currency, ApiError> {
    let raw = raw.ok_or_else(|| {
        ApiError::invalid(
            "pricing.currency",
            "required for a priced policy (e.g. USD)",
        )
    })?;
    Currency::parse(&raw).map_err(|e| ApiError::invalid("pricing.currency", e.to_string()))
}

fn pricing(p: PricingBody) -> Result<Pricing, ApiError> {
    match p.kind.as_str() {
        "free" => {
            if p.usage_price.is_some() || p.subscription_price.is_some() {
                return Err(ApiError::invalid(
                    "pricing.type",
                    "a free policy has no price",
                ));
            }
            Ok(Pricing::Free)
        }
        "usage_based" => {
            if p.subscription_price.is_some() {
                return Err(ApiError::invalid(
                    "pricing.subscriptionPrice",
                    "a usage_based policy has a usagePrice",
                ));
            }
            Ok(Pricing::UsageBased {
                price: money("pricing.usagePrice", p.usage_price)?,
                currency: currency(p.currency)?,
                unit_quota: p
                    .unit_quota
                    .unwrap_or_else(|| DEFAULT_UNIT_QUOTA.to_string()),
            })
        }
        "subscription" => {
            if p.usage_price.is_some() || p.unit_quota.is_some() {
                return Err(ApiError::invalid(
                    "pricing.usagePrice",
                    "a subscription policy has a subscriptionPrice per month",
                ));
            }
            Ok(Pricing::Subscription {
                price: money("pricing.subscriptionPrice", p.subscription_price)?,
                currency: currency(p.currency)?,
            })
        }
        other => Err(ApiError::invalid(
            "pricing.type",
            format!(
                "unknown value {:?}: expected free, usage_based, subscription",
                quotad_engine::excerpt::short(other)
            ),
        )),
    }
}

fn revenue_share(
    body: Option<RevenueShareBody>,
    default_fee: u32,
    operator: bool,
) -> Result<RevenueShare, ApiError> {
    let body = body.unwrap_or(RevenueShareBody {
        platform_fee_percent: None,
        provider_share_percent: None,
    });
    let fee = match body.platform_fee_percent {
        Some(f) => percent("revenueShare.platformFeePercent", f)?,
        None => default_fee,
    };
    if fee != default_fee && !operator {
        return Err(ApiError {
            field: Some("revenueShare.platformFeePercent".into()),
            ..ApiError::new(
                quotad_engine::error_code::ErrorCode::PermissionDenied,
                "only a platform operator sets a policy's platform fee",
            )
        });
    }
    let share = match body.provider_share_percent {
        Some(s) => percent("revenueShare.providerSharePercent", s)?,
        None => 10_000u32.saturating_sub(fee),
    };
    Ok(RevenueShare {
        platform_fee_bp: fee,
        provider_share_bp: share,
    })
}

fn conditions(c: ConditionsBody) -> Result<Conditions, ApiError> {
    let min_consumer_tier = c
        .min_consumer_tier
        .map(|t| {
            t.parse::<Tier>()
                .map_err(|e| ApiError::invalid("conditions.minConsumerTier", e.to_string()))
        })
        .transpose()?;
    let expires_at_ms = c
        .expires_at
        .map(|at| time_param("conditions.expiresAt", &at))
        .transpose()?;
    let usage_cap = c
        .usage_cap
        .map(|cap| {
            let period: Period = serde_json::from_value(serde_json::Value::String(
                cap.period.clone(),
            ))
            .map_err(|_| {
                ApiError::invalid(
                    "conditions.usageCap.period",
                    "expected hourly, daily, monthly or never",
                )
            })?;
            Ok::<_, ApiError>(UsageCap {
                units: cap.units,
                period,
            })
        })
        .transpose()?;
    let approval = c
        .approval
        .map(|a| a.parse::<Approval>().map_err(from_quota))
        .transpose()?
        .unwrap_or_default();
    Ok(Conditions {
        allowed_tenants: c.allowed_tenants.into_iter().collect(),
        denied_tenants: c.denied_tenants.into_iter().collect(),
        min_consumer_tier,
        max_consumers: c.max_consumers,
        expires_at_ms,
        usage_cap,
        justification_required: c.justification_required,
        approval,
    })
}

/// A decimal as a JSON number, written from its exact text.
#[derive(Debug, Clone)]
pub struct Decimal(Box<RawValue>);

impl Decimal {
    pub fn of(a: Amount) -> Decimal {
        Decimal(RawValue::from_string(a.to_string()).expect("a decimal is a JSON number"))
    }

    /// Basis points as a percentage (1,500 -> 15, 1,250 -> 12.5).
    pub fn percent(bp: u32) -> Decimal {
        Decimal::of(Amount::from_picos(i128::from(bp) * 10_000_000_000))
    }
}

impl Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricingDto {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub usage_price: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub subscription_price: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_quota: Option<String>,
}

impl From<&Pricing> for PricingDto {
    fn from(p: &Pricing) -> Self {
        match p {
            Pricing::Free => PricingDto {
                kind: "free",
                usage_price: None,
                subscription_price: None,
                currency: None,
                unit_quota: None,
            },
            Pricing::UsageBased {
                price,
                currency,
                unit_quota,
            } => PricingDto {
                kind: "usage_based",
                usage_price: Some(Decimal::of(*price)),
                subscription_price: None,
                currency: Some(currency.to_string()),
                unit_quota: Some(unit_quota.clone()),
            },
            Pricing::Subscription { price, currency } => PricingDto {
                kind: "subscription",
                usage_price: None,
                subscription_price: Some(Decimal::of(*price)),
                currency: Some(currency.to_string()),
                unit_quota: None,
            },
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevenueShareDto {
    #[schema(value_type = f64)]
    pub platform_fee_percent: Decimal,
    #[schema(value_type = f64)]
    pub provider_share_percent: Decimal,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageCapDto {
    pub units: u64,
    #[schema(value_type = String, example = "daily")]
    pub period: Period,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionsDto {
    #[schema(value_type = Vec<String>)]
    pub allowed_tenants: Vec<TenantId>,
    #[schema(value_type = Vec<String>)]
    pub denied_tenants: Vec<TenantId>,
    #[schema(value_type = Option<String>, example = "PROFESSIONAL")]
    pub min_consumer_tier: Option<Tier>,
    pub max_consumers: Option<u32>,
    pub expires_at: Option<String>,
    pub usage_cap: Option<UsageCapDto>,
    pub justification_required: bool,
    pub approval: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDto {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub provider_tenant_id: TenantId,
    pub resource_id: String,
    pub resource_type: String,
    pub visibility: &'static str,
    pub permissions: Vec<&'static str>,
    pub pricing: PricingDto,
    pub revenue_share: RevenueShareDto,
    /// The provider's own view only: who may see it and on what terms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<ConditionsDto>,
    /// Whether access is granted at once (automatic) or by the provider.
    pub approval: &'static str,
    pub active_consumers: usize,
    pub max_consumers: Option<u32>,
    #[schema(value_type = Option<String>, example = "PROFESSIONAL")]
    pub min_consumer_tier: Option<Tier>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl PolicyDto {
    /// `own`: the caller is the provider (or an operator), who sees the
    /// conditions in full; others see what bears on whether they qualify.
    pub fn new(p: &Policy, active_consumers: usize, own: bool) -> Self {
        let s = &p.spec;
        let c = &s.conditions;
        PolicyDto {
            id: p.id,
            provider_tenant_id: p.provider,
            resource_id: s.resource_id.clone(),
            resource_type: s.resource_type.to_string(),
            visibility: s.visibility.as_str(),
            permissions: s.permissions.iter().map(|p| p.as_str()).collect(),
            pricing: PricingDto::from(&s.pricing),
            revenue_share: RevenueShareDto {
                platform_fee_percent: Decimal::percent(s.revenue_share.platform_fee_bp),
                provider_share_percent: Decimal::percent(s.revenue_share.provider_share_bp),
            },
            conditions: own.then(|| ConditionsDto {
                allowed_tenants: c.allowed_tenants.iter().copied().collect(),
                denied_tenants: c.denied_tenants.iter().copied().collect(),
                min_consumer_tier: c.min_consumer_tier,
                max_consumers: c.max_consumers,
                expires_at: c.expires_at_ms.map(rfc3339),
                usage_cap: c.usage_cap.map(|u| UsageCapDto {
                    units: u.units,
                    period: u.period,
                }),
                justification_required: c.justification_required,
                approval: c.approval.as_str(),
            }),
            approval: c.approval.as_str(),
            active_consumers,
            max_consumers: c.max_consumers,
            min_consumer_tier: c.min_consumer_tier,
            expires_at: c.expires_at_ms.map(rfc3339),
            created_at: rfc3339(p.created_at_ms),
            updated_at: rfc3339(p.updated_at_ms),
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAccessBody {
    #[serde(default)]
    pub justification: String,
    /// A subset of the policy's permissions [default: all of them].
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionBody {
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantDto {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub policy_id: uuid::Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub provider_tenant_id: TenantId,
    #[schema(value_type = String, format = Uuid)]
    pub consumer_tenant_id: TenantId,
    pub resource_type: String,
    pub resource_id: String,
    pub permissions: Vec<&'static str>,
    pub expires_at: Option<String>,
    pub usage_cap: Option<UsageCapDto>,
    pub pricing: PricingDto,
    /// active, expired or ended.
    pub status: &'static str,
    pub ended_at: Option<String>,
    pub ended_reason: Option<String>,
    pub created_at: String,
    /// The zone its usage is counted in statement months by.
    pub statement_timezone: String,
}

impl GrantDto {
    pub fn new(g: &Grant, now_ms: i64) -> Self {
        let status = match (&g.ended, g.is_active(now_ms)) {
            (Some(_), _) => "ended",
            (None, true) => "active",
            (None, false) => "expired",
        };
        GrantDto {
            id: g.id,
            policy_id: g.policy,
            provider_tenant_id: g.provider,
            consumer_tenant_id: g.consumer,
            resource_type: g.resource_type.to_string(),
            resource_id: g.resource_id.clone(),
            permissions: g.permissions.iter().map(|p| p.as_str()).collect(),
            expires_at: g.expires_at_ms.map(rfc3339),
            usage_cap: g.cap.map(|u| UsageCapDto {
                units: u.units,
                period: u.period,
            }),
            pricing: PricingDto::from(&g.pricing),
            status,
            ended_at: g.ended.as_ref().map(|e| rfc3339(e.at_ms)),
            ended_reason: g.ended.as_ref().map(|e| e.reason.clone()),
            created_at: rfc3339(g.created_at_ms),
            statement_timezone: g.zone().name().to_string(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequestDto {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub policy_id: uuid::Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub provider_tenant_id: TenantId,
    #[schema(value_type = String, format = Uuid)]
    pub consumer_tenant_id: TenantId,
    pub justification: String,
    pub permissions: Vec<&'static str>,
    /// pending, approved or denied.
    pub status: &'static str,
    pub reason: Option<String>,
    pub requested_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    /// The grant an approval made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantDto>,
}

impl AccessRequestDto {
    pub fn new(r: &AccessRequest, grant: Option<&Grant>, now_ms: i64) -> Self {
        AccessRequestDto {
            id: r.id,
            policy_id: r.policy,
            provider_tenant_id: r.provider,
            consumer_tenant_id: r.consumer,
            justification: r.justification.clone(),
            permissions: r.permissions.iter().map(|p| p.as_str()).collect(),
            status: r.state.as_str(),
            reason: r.reason.clone(),
            requested_at: rfc3339(r.requested_at_ms),
            decided_at: r.decided_at_ms.map(rfc3339),
            decided_by: r.decided_by.clone(),
            grant: grant.map(|g| GrantDto::new(g, now_ms)),
        }
    }
}
