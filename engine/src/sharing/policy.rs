//! A provider's sharing policy on one of its resources, as plain data with
//! the rules every policy obeys ([`PolicySpec::check`]): what the control
//! plane stores once a policy is created or changed. Errors name the field
//! as the REST body spells it.
use super::money::{Amount, Currency};
use crate::model::{Period, TenantId, Tier};
use crate::quota::QuotaError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::str::FromStr;

/// What a provider shares: one of the resource types of the catalog
/// (`[sharing] resource_types` in the tier catalog; service, model, dataset
/// and agent unless configured).
///
/// Stored as the index of one of the four built-in types, as it was when
/// those were all there were; a configured type's name needs format 12.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceType(String);

impl ResourceType {
    /// The built-in types, in the order of their stored index.
    pub const BUILTIN: [&'static str; 4] = ["service", "model", "dataset", "agent"];

    /// A type named `name`: 1 to 32 lowercase letters, digits and `_`,
    /// starting with a letter.
    pub fn named(name: &str) -> Result<ResourceType, QuotaError> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(ResourceType(name.to_string()))
        } else {
            Err(QuotaError::invalid(
                "resourceType",
                format!(
                    "{:?} is not a resource type name: 1 to 32 lowercase letters, digits and _",
                    crate::excerpt::short(name)
                ),
            ))
        }
    }

    pub fn model() -> ResourceType {
        ResourceType("model".into())
    }

    pub fn service() -> ResourceType {
        ResourceType("service".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn builtin_index(&self) -> Option<u32> {
        Self::BUILTIN
            .iter()
            .position(|b| *b == self.0)
            .map(|i| i as u32)
    }
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ResourceType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            // As the enum it was wrote the built-in ones (the state machine
            // writes this into audit events: replicas of two releases must
            // write the same bytes).
            return match self.builtin_index() {
                Some(i) => s.serialize_str(["Service", "Model", "Dataset", "Agent"][i as usize]),
                None => s.serialize_str(&self.0),
            };
        }
        if crate::format::encoding_version() < 12 {
            // The bytes of the enum it was: its variant index.
            return match self.builtin_index() {
                Some(i) => s.serialize_u32(i),
                None => {
                    crate::format::needs_newer_version();
                    Err(serde::ser::Error::custom(
                        "a configured resource type needs format version 12",
                    ))
                }
            };
        }
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ResourceType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() && crate::format::decoding_version() < 12 {
            let i = u32::deserialize(d)?;
            return ResourceType::BUILTIN
                .get(i as usize)
                .map(|n| ResourceType(n.to_string()))
                .ok_or_else(|| serde::de::Error::custom(format!("resource type index {i}")));
        }
        let name = String::deserialize(d)?;
        let name = match name.as_str() {
            "Service" | "Model" | "Dataset" | "Agent" => name.to_ascii_lowercase(),
            _ => name,
        };
        ResourceType::named(&name).map_err(serde::de::Error::custom)
    }
}

/// Who can see a policy (and so ask for access).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Visibility {
    /// The provider only.
    Private,
    /// The tenants the conditions allow by id.
    Tenant,
    /// Listed in the marketplace; access by request unless automatic.
    Marketplace,
    /// Anyone; access is automatic.
    Public,
}

/// What a grant lets a consumer do with the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Read,
    Execute,
    FineTune,
    Download,
    Write,
}

/// How a request for access is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Approval {
    /// At once, when every condition holds.
    Automatic,
    /// By the provider.
    #[default]
    Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pricing {
    Free,
    /// `price` per unit of the consumer's `unit_quota` (e.g. `llm_tokens`).
    UsageBased {
        price: Amount,
        currency: Currency,
        unit_quota: String,
    },
    /// `price` per calendar month, prorated on the first.
    Subscription {
        price: Amount,
        currency: Currency,
    },
}

/// The platform's fee and the provider's share, in basis points (1/100 of
/// a percent); they add up to 10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevenueShare {
    pub platform_fee_bp: u32,
    pub provider_share_bp: u32,
}

/// A cap on one consumer's use per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCap {
    pub units: u64,
    pub period: Period,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Conditions {
    /// Only these consumers (empty: anyone the visibility admits).
    pub allowed_tenants: BTreeSet<TenantId>,
    /// Never these consumers.
    pub denied_tenants: BTreeSet<TenantId>,
    pub min_consumer_tier: Option<Tier>,
    pub max_consumers: Option<u32>,
    /// Grants end then, and no new ones are made.
    pub expires_at_ms: Option<i64>,
    pub usage_cap: Option<UsageCap>,
    pub justification_required: bool,
    pub approval: Approval,
}

/// What a provider asks for when it creates or replaces a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    pub resource_id: String,
    pub resource_type: ResourceType,
    pub visibility: Visibility,
    pub permissions: BTreeSet<Permission>,
    pub pricing: Pricing,
    pub revenue_share: RevenueShare,
    pub conditions: Conditions,
}

/// Longest resource id.
pub const MAX_RESOURCE_ID: usize = 128;

impl PolicySpec {
    /// The rules of a policy, with the provider: `now_ms` to refuse an
    /// expiry already past. A public policy is always automatic.
    pub fn check(mut self, provider: TenantId, now_ms: i64) -> Result<PolicySpec, QuotaError> {
        let id = self.resource_id.trim();
        if id.is_empty() || id.len() > MAX_RESOURCE_ID || id.chars().any(char::is_control) {
            return Err(QuotaError::invalid(
                "resourceId",
                format!("1 to {MAX_RESOURCE_ID} characters, no control characters"),
            ));
        }
        self.resource_id = id.to_string();
        if self.permissions.is_empty() {
            return Err(QuotaError::invalid(
                "permissions",
                "at least one of read, execute, fine_tune, download, write",
            ));
        }
        match &self.pricing {
            Pricing::Free => {}
            Pricing::UsageBased {
                price, unit_quota, ..
            } => {
                if price.is_negative() {
                    return Err(QuotaError::invalid(
                        "pricing.usagePrice",
                        "must be 0 or more",
                    ));
                }
                crate::quota::validate::quota_name(unit_quota)
                    .map_err(|e| QuotaError::invalid("pricing.unitQuota", e.to_string()))?;
            }
            Pricing::Subscription { price, .. } => {
                if price.is_negative() {
                    return Err(QuotaError::invalid(
                        "pricing.subscriptionPrice",
                        "must be 0 or more",
                    ));
                }
            }
        }
        let r = self.revenue_share;
        if r.platform_fee_bp.checked_add(r.provider_share_bp) != Some(10_000) {
            return Err(QuotaError::invalid(
                "revenueShare",
                "platformFeePercent and providerSharePercent must add up to 100",
            ));
        }
        let c = &mut self.conditions;
        if let Some(t) = c.allowed_tenants.intersection(&c.denied_tenants).next() {
            return Err(QuotaError::invalid(
                "conditions.deniedTenants",
                format!("tenant {t} is both allowed and denied"),
            ));
        }
        if c.allowed_tenants.contains(&provider) || c.denied_tenants.contains(&provider) {
            return Err(QuotaError::invalid(
                "conditions.allowedTenants",
                "the provider itself cannot be named: it always has its own resource",
            ));
        }
        if self.visibility == Visibility::Tenant && c.allowed_tenants.is_empty() {
            return Err(QuotaError::invalid(
                "conditions.allowedTenants",
                "a policy of visibility tenant names the tenants that may see it",
            ));
        }
        if c.max_consumers == Some(0) {
            return Err(QuotaError::invalid(
                "conditions.maxConsumers",
                "at least 1 (or leave it out for no limit)",
            ));
        }
        if c.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(QuotaError::invalid(
                "conditions.expiresAt",
                "is in the past",
            ));
        }
        if let Some(cap) = c.usage_cap {
            if cap.units == 0 {
                return Err(QuotaError::invalid(
                    "conditions.usageCap.units",
                    "at least 1",
                ));
            }
            if matches!(cap.period, Period::Second | Period::Minute) {
                return Err(QuotaError::invalid(
                    "conditions.usageCap.period",
                    "hourly, daily, monthly or never",
                ));
            }
        }
        if self.visibility == Visibility::Public {
            c.approval = Approval::Automatic;
        }
        Ok(self)
    }
}

/// Words as the REST body spells them, parsed with the field's name.
macro_rules! words {
    ($t:ty, $field:literal, $($word:literal => $v:ident),+ $(,)?) => {
        impl FromStr for $t {
            type Err = QuotaError;
            fn from_str(s: &str) -> Result<Self, QuotaError> {
                match s {
                    $($word => Ok(Self::$v),)+
                    other => Err(QuotaError::invalid(
                        $field,
                        format!(
                            "unknown value {:?}: expected {}",
                            crate::excerpt::short(other),
                            [$($word),+].join(", ")
                        ),
                    )),
                }
            }
        }

        impl $t {
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$v => $word,)+
                }
            }
        }
    };
}

words!(Visibility, "visibility",
    "private" => Private,
    "tenant" => Tenant,
    "marketplace" => Marketplace,
    "public" => Public,
);
words!(Permission, "permissions",
    "read" => Read,
    "execute" => Execute,
    "fine_tune" => FineTune,
    "download" => Download,
    "write" => Write,
);
words!(Approval, "conditions.approval",
    "automatic" => Automatic,
    "request" => Request,
);

/// A percentage as the REST body gives it (`15`, `12.5`), in basis points:
/// at most two decimal places, 0 to 100.
pub fn percent_bp(field: &'static str, text: &str) -> Result<u32, QuotaError> {
    let bad = || QuotaError::invalid(field, "a percentage from 0 to 100, at most 2 decimals");
    let amount = Amount::parse(text).map_err(|_| bad())?;
    // 1% = 100 bp = 10^-2 in Amount's 10^-12 units: picos / 10^10.
    let picos = amount.picos();
    if picos < 0 || picos % 10_000_000_000 != 0 {
        return Err(bad());
    }
    let bp = u32::try_from(picos / 10_000_000_000).map_err(|_| bad())?;
    if bp > 10_000 {
        return Err(bad());
    }
    Ok(bp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const NOW: i64 = 1_790_000_000_000;

    fn spec() -> PolicySpec {
        PolicySpec {
            resource_id: "service-123".into(),
            resource_type: ResourceType::service(),
            visibility: Visibility::Marketplace,
            permissions: [Permission::Read, Permission::Execute].into(),
            pricing: Pricing::UsageBased {
                price: Amount::parse("0.001").unwrap(),
                currency: Currency::parse("USD").unwrap(),
                unit_quota: "llm_tokens".into(),
            },
            revenue_share: RevenueShare {
                platform_fee_bp: 1_500,
                provider_share_bp: 8_500,
            },
            conditions: Conditions::default(),
        }
    }

    fn field(r: Result<PolicySpec, QuotaError>) -> &'static str {
        match r {
            Err(QuotaError::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_products_example_policy_is_valid() {
        let provider = Uuid::from_u128(1);
        let checked = spec().check(provider, NOW).unwrap();
        assert_eq!(checked.conditions.approval, Approval::Request);
        let public = PolicySpec {
            visibility: Visibility::Public,
            ..spec()
        };
        assert_eq!(
            public.check(provider, NOW).unwrap().conditions.approval,
            Approval::Automatic,
            "public is automatic"
        );
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let provider = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        let cases: Vec<(PolicySpec, &str)> = vec![
            (
                PolicySpec {
                    resource_id: " ".into(),
                    ..spec()
                },
                "resourceId",
            ),
            (
                PolicySpec {
                    permissions: BTreeSet::new(),
                    ..spec()
                },
                "permissions",
            ),
            (
                PolicySpec {
                    pricing: Pricing::UsageBased {
                        price: Amount::parse("-0.5").unwrap(),
                        currency: Currency::parse("USD").unwrap(),
                        unit_quota: "llm_tokens".into(),
                    },
                    ..spec()
                },
                "pricing.usagePrice",
            ),
            (
                PolicySpec {
                    pricing: Pricing::UsageBased {
                        price: Amount::ZERO,
                        currency: Currency::parse("USD").unwrap(),
                        unit_quota: "Tokens!".into(),
                    },
                    ..spec()
                },
                "pricing.unitQuota",
            ),
            (
                PolicySpec {
                    revenue_share: RevenueShare {
                        platform_fee_bp: 1_500,
                        provider_share_bp: 8_000,
                    },
                    ..spec()
                },
                "revenueShare",
            ),
            (
                PolicySpec {
                    visibility: Visibility::Tenant,
                    ..spec()
                },
                "conditions.allowedTenants",
            ),
            (
                PolicySpec {
                    conditions: Conditions {
                        allowed_tenants: [other].into(),
                        denied_tenants: [other].into(),
                        ..Conditions::default()
                    },
                    ..spec()
                },
                "conditions.deniedTenants",
            ),
            (
                PolicySpec {
                    conditions: Conditions {
                        allowed_tenants: [provider].into(),
                        ..Conditions::default()
                    },
                    ..spec()
                },
                "conditions.allowedTenants",
            ),
            (
                PolicySpec {
                    conditions: Conditions {
                        max_consumers: Some(0),
                        ..Conditions::default()
                    },
                    ..spec()
                },
                "conditions.maxConsumers",
            ),
            (
                PolicySpec {
                    conditions: Conditions {
                        expires_at_ms: Some(NOW),
                        ..Conditions::default()
                    },
                    ..spec()
                },
                "conditions.expiresAt",
            ),
            (
                PolicySpec {
                    conditions: Conditions {
                        usage_cap: Some(UsageCap {
                            units: 10,
                            period: Period::Second,
                        }),
                        ..Conditions::default()
                    },
                    ..spec()
                },
                "conditions.usageCap.period",
            ),
        ];
        for (s, want) in cases {
            assert_eq!(field(s.check(provider, NOW)), want);
        }
    }

    #[test]
    fn words_and_percentages_parse_with_their_field() {
        assert_eq!(
            "fine_tune".parse::<Permission>().unwrap(),
            Permission::FineTune
        );
        assert_eq!(Permission::FineTune.as_str(), "fine_tune");
        match "teleport".parse::<Permission>() {
            Err(QuotaError::InvalidArgument { field, reason }) => {
                assert_eq!(field, "permissions");
                assert!(
                    reason.contains("read, execute, fine_tune, download, write"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!("secret".parse::<Visibility>().is_err());
        assert_eq!(percent_bp("f", "15").unwrap(), 1_500);
        assert_eq!(percent_bp("f", "12.5").unwrap(), 1_250);
        assert_eq!(percent_bp("f", "0").unwrap(), 0);
        assert_eq!(percent_bp("f", "100").unwrap(), 10_000);
        for bad in ["100.01", "-1", "12.345", "x"] {
            assert!(percent_bp("f", bad).is_err(), "{bad}");
        }
    }
}
