//! The tier catalog: each tier's default quotas, and its limits on what
//! a tenant may hold (`[limits.TIER]`), read from TOML.
use super::QuotaError;
use super::validate;
use crate::custom::{FeatureRefused, Features, FlagDef, FlagType, FlagValue};
use crate::model::{QuotaPolicy, Tier};
use std::collections::BTreeMap;

/// The catalog compiled into the binary (`engine/tiers.toml`).
pub const BUILTIN_CATALOG: &str = include_str!("../../tiers.toml");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierCatalog {
    tiers: BTreeMap<Tier, BTreeMap<String, QuotaPolicy>>,
    limits: BTreeMap<Tier, TierLimits>,
    /// Features by the lowest tier that has them, and SLAs.
    features: Features,
    /// Feature flags with their tier defaults (`[flags.KEY]`).
    flags: BTreeMap<String, FlagDef>,
    /// What providers may share (`[sharing] resource_types`).
    resource_types: Vec<crate::sharing::ResourceType>,
}

/// The catalog's `[sharing]` table.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SharingTable {
    resource_types: Option<Vec<String>>,
}

/// What a tier allows a tenant to hold, beyond its quotas. A limit left
/// out is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierLimits {
    /// Sharing policies a tenant publishes.
    pub sharing_policies: Option<u32>,
    /// Webhook endpoints a tenant registers.
    pub webhook_endpoints: Option<u32>,
    /// Feature flag values a tenant sets (its own flags and its values of
    /// defined ones).
    pub feature_flags: Option<u32>,
    /// Scope values with usage in their current period, over all of a
    /// tenant's quotas.
    pub live_scopes: Option<u64>,
}

/// One `[flags.KEY]` table.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagTable {
    r#type: String,
    default: toml::Value,
    #[serde(default)]
    tiers: BTreeMap<String, toml::Value>,
    min_tier: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    description: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("tier catalog is not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("tier catalog: {0}")]
    UnknownTier(#[from] crate::model::tier_error::UnknownTier),
    #[error("tier catalog, [sharing]: {0}")]
    Sharing(String),
    #[error("tier catalog, {0}")]
    Features(String),
    #[error("tier catalog, [flags.{key}]: {reason}")]
    Flag { key: String, reason: String },
    #[error("tier catalog has no tier {0}")]
    MissingTier(Tier),
    #[error("tier catalog, {tier}.{quota}: {source}")]
    Invalid {
        tier: Tier,
        quota: String,
        source: QuotaError,
    },
}

impl TierCatalog {
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_CATALOG).expect("the built-in tier catalog is valid")
    }

    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let mut table: toml::Table = toml::from_str(text)?;
        let sharing: SharingTable = match table.remove("sharing") {
            Some(raw) => raw.try_into()?,
            None => SharingTable::default(),
        };
        let names = sharing.resource_types.unwrap_or_else(|| {
            crate::sharing::ResourceType::BUILTIN
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        let mut resource_types = Vec::new();
        for name in &names {
            let t = crate::sharing::ResourceType::named(name)
                .map_err(|e| CatalogError::Sharing(e.reason()))?;
            if resource_types.contains(&t) {
                return Err(CatalogError::Sharing(format!(
                    "resource type {name:?} is listed twice"
                )));
            }
            resource_types.push(t);
        }
        if resource_types.is_empty() {
            return Err(CatalogError::Sharing("resource_types lists none".into()));
        }
        let features = take_table(&mut table, "features")?;
        let sla = take_table(&mut table, "sla")?;
        let mut flags = BTreeMap::new();
        if let Some(raw) = table.remove("flags") {
            let raw: BTreeMap<String, FlagTable> = raw.try_into()?;
            for (key, f) in raw {
                let def = flag_def(&key, f).map_err(|reason| CatalogError::Flag {
                    key: key.clone(),
                    reason,
                })?;
                flags.insert(key, def);
            }
        }
        let mut limits = BTreeMap::new();
        if let Some(raw) = table.remove("limits") {
            let raw: BTreeMap<String, TierLimits> = raw.try_into()?;
            for (name, l) in raw {
                limits.insert(name.parse::<Tier>()?, l);
            }
        }
        let raw: BTreeMap<String, BTreeMap<String, QuotaPolicy>> = table.try_into()?;
        let mut tiers = BTreeMap::new();
        for (name, quotas) in raw {
            let tier: Tier = name.parse()?;
            for (quota, policy) in &quotas {
                validate::quota_name(quota)
                    .and_then(|_| validate::policy(policy))
                    .map_err(|source| CatalogError::Invalid {
                        tier,
                        quota: quota.clone(),
                        source,
                    })?;
            }
            tiers.insert(tier, quotas);
        }
        for tier in Tier::ALL {
            if !tiers.contains_key(&tier) {
                return Err(CatalogError::MissingTier(tier));
            }
        }
        let features = Features::new(features, sla).map_err(CatalogError::Features)?;
        Ok(TierCatalog {
            tiers,
            limits,
            features,
            flags,
            resource_types,
        })
    }

    pub fn defaults(&self, tier: Tier) -> &BTreeMap<String, QuotaPolicy> {
        &self.tiers[&tier]
    }

    /// The resource types providers may share.
    pub fn resource_types(&self) -> &[crate::sharing::ResourceType] {
        &self.resource_types
    }

    /// `raw` as one of the catalog's resource types (field `resourceType`).
    pub fn resource_type(&self, raw: &str) -> Result<crate::sharing::ResourceType, QuotaError> {
        self.resource_types
            .iter()
            .find(|t| t.as_str() == raw)
            .cloned()
            .ok_or_else(|| {
                QuotaError::invalid(
                    "resourceType",
                    format!(
                        "unknown value {:?}: expected {}",
                        crate::excerpt::short(raw),
                        self.resource_types
                            .iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }

    /// How many sharing policies a tenant of `tier` may publish.
    pub fn sharing_policies(&self, tier: Tier) -> Option<u32> {
        self.limits.get(&tier).and_then(|l| l.sharing_policies)
    }

    /// How many webhook endpoints a tenant of `tier` may register.
    pub fn webhook_endpoints(&self, tier: Tier) -> Option<u32> {
        self.limits.get(&tier).and_then(|l| l.webhook_endpoints)
    }

    /// How many scope values each tier's tenants may have live, in
    /// [`Tier::ALL`] order (no limit: `u64::MAX`), as a scoped spend
    /// carries them.
    pub fn live_scopes(&self) -> [u64; 4] {
        Tier::ALL.map(|t| {
            self.limits
                .get(&t)
                .and_then(|l| l.live_scopes)
                .unwrap_or(u64::MAX)
        })
    }

    /// How many flag values a tenant of `tier` may set.
    pub fn feature_flags(&self, tier: Tier) -> Option<u32> {
        self.limits.get(&tier).and_then(|l| l.feature_flags)
    }

    /// The tier features and SLAs.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The one feature check: whether `tier` has `feature`, or why not.
    pub fn requires(&self, tier: Tier, feature: &str) -> Result<(), FeatureRefused> {
        self.features.requires(tier, feature)
    }

    /// The flags the catalog defines.
    pub fn flags(&self) -> &BTreeMap<String, FlagDef> {
        &self.flags
    }
}

/// A top-level table of string values, removed from `table` (empty if
/// absent).
fn take_table(
    table: &mut toml::Table,
    name: &str,
) -> Result<BTreeMap<String, String>, CatalogError> {
    match table.remove(name) {
        None => Ok(BTreeMap::new()),
        Some(raw) => Ok(raw.try_into()?),
    }
}

fn flag_value(v: &toml::Value) -> Result<FlagValue, String> {
    let json = serde_json::to_value(v).map_err(|e| e.to_string())?;
    FlagValue::of("value", &json).map_err(|e| e.reason())
}

fn flag_def(key: &str, f: FlagTable) -> Result<FlagDef, String> {
    crate::custom::features::check_name(key)?;
    let kind = FlagType::parse(&f.r#type)?;
    let mut tiers = BTreeMap::new();
    for (tier, v) in &f.tiers {
        let tier: Tier = tier
            .parse()
            .map_err(|e: crate::model::tier_error::UnknownTier| e.to_string())?;
        tiers.insert(
            tier,
            flag_value(v).map_err(|e| format!("tiers.{tier}: {e}"))?,
        );
    }
    let min_tier = match &f.min_tier {
        None => None,
        Some(t) => Some(t.parse::<Tier>().map_err(|e| format!("min_tier: {e}"))?),
    };
    let def = FlagDef {
        kind,
        default: flag_value(&f.default).map_err(|e| format!("default: {e}"))?,
        tiers,
        min_tier,
        enabled: f.enabled,
        description: f.description,
    };
    def.check().map_err(|e| e.to_string())?;
    Ok(def)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{QuotaKind, well_known::*};

    fn limit(tier: Tier, quota: &str) -> Option<u64> {
        TierCatalog::builtin().defaults(tier)[quota].limit
    }

    #[test]
    fn builtin_catalog_matches_the_product_table() {
        use Tier::*;
        let table: [(&str, [Option<u64>; 4]); 5] = [
            (
                API_REQUESTS,
                [Some(10_000), Some(100_000), Some(1_000_000), None],
            ),
            (
                COMPUTE_HOURS,
                [Some(10_000), Some(100_000), Some(500_000), None],
            ),
            (USERS, [Some(3), Some(10), Some(50), None]),
            (SERVICES, [Some(5), Some(25), Some(100), None]),
            (
                STORAGE,
                [
                    Some(1_000_000_000),
                    Some(10_000_000_000),
                    Some(100_000_000_000),
                    Some(1_000_000_000_000),
                ],
            ),
        ];
        for (quota, limits) in table {
            for (tier, want) in [Free, Starter, Professional, Enterprise]
                .into_iter()
                .zip(limits)
            {
                assert_eq!(limit(tier, quota), want, "{tier} {quota}");
            }
        }
        let cat = TierCatalog::builtin();
        assert_eq!(cat.defaults(Free)[STORAGE].kind, QuotaKind::Gauge);
        assert_eq!(
            cat.defaults(Free)[API_REQUESTS].alert_thresholds.as_slice(),
            [80, 90, 95]
        );
    }

    #[test]
    fn catalog_errors_name_the_problem() {
        let err = TierCatalog::parse(
            "[GOLD]\nx = { kind = \"counter\", period = \"monthly\", action = \"block\" }",
        )
        .unwrap_err();
        assert!(err.to_string().contains("GOLD"), "{err}");
        let err = TierCatalog::parse(
            "[FREE]\nx = { kind = \"rate\", period = \"monthly\", action = \"block\" }",
        )
        .unwrap_err();
        assert!(err.to_string().contains("period"), "{err}");
        let err = TierCatalog::parse(
            &BUILTIN_CATALOG.replace("sharing_policies = 1", "sharing_polices = 1"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("sharing_polices"), "{err}");
    }

    #[test]
    fn resource_types_come_from_the_catalog() {
        let cat = TierCatalog::builtin();
        let names: Vec<&str> = cat.resource_types().iter().map(|t| t.as_str()).collect();
        assert_eq!(names, ["service", "model", "dataset", "agent"]);
        assert!(cat.resource_type("spaceship").is_err());
        let with = |types: &str| {
            BUILTIN_CATALOG.replace(
                "resource_types = [\"service\", \"model\", \"dataset\", \"agent\"]",
                &format!("resource_types = {types}"),
            )
        };
        let cat = TierCatalog::parse(&with("[\"model\", \"prompt_pack\"]")).unwrap();
        assert_eq!(
            cat.resource_type("prompt_pack").unwrap().as_str(),
            "prompt_pack"
        );
        let e = cat.resource_type("service").unwrap_err();
        assert!(e.to_string().contains("model, prompt_pack"), "{e}");
        for bad in ["[\"Model\"]", "[\"model\", \"model\"]", "[]"] {
            assert!(TierCatalog::parse(&with(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn tier_limits_come_from_the_catalog() {
        let cat = TierCatalog::builtin();
        assert_eq!(cat.sharing_policies(Tier::Free), Some(1));
        assert_eq!(cat.sharing_policies(Tier::Professional), Some(25));
        assert_eq!(cat.sharing_policies(Tier::Enterprise), None);
        assert_eq!(cat.feature_flags(Tier::Free), Some(5));
        assert_eq!(cat.webhook_endpoints(Tier::Starter), Some(3));
        let text = BUILTIN_CATALOG.replace(
            "[limits.FREE]\nsharing_policies = 1\nfeature_flags = 5\nlive_scopes = 10000\n",
            "",
        );
        let cat = TierCatalog::parse(&text).unwrap();
        assert_eq!(cat.sharing_policies(Tier::Free), None, "left out: no limit");
        assert_eq!(cat.live_scopes()[0], u64::MAX);
        assert_eq!(
            TierCatalog::builtin().live_scopes(),
            [10_000, 100_000, 1_000_000, 10_000_000]
        );
    }

    #[test]
    fn features_and_slas_match_the_product_table() {
        use crate::custom::features::*;
        let cat = TierCatalog::builtin();
        let has = |tier, f| cat.requires(tier, f).is_ok();
        for (feature, tiers) in [
            (CUSTOM_BRANDING, [false, false, true, true]),
            (SSO, [false, false, true, true]),
            (PRIORITY_SUPPORT, [false, false, true, true]),
            (WHITE_LABEL, [false, false, false, true]),
            (DEDICATED_SCHEMA, [false, false, false, true]),
        ] {
            for (tier, want) in Tier::ALL.into_iter().zip(tiers) {
                assert_eq!(has(tier, feature), want, "{feature} on {tier}");
            }
        }
        let slas: Vec<&str> = Tier::ALL
            .iter()
            .map(|t| cat.features().sla(*t).as_str())
            .collect();
        assert_eq!(slas, ["none", "99%", "99.9%", "99.99%"]);
    }

    #[test]
    fn flags_come_from_the_catalog_and_bad_ones_are_named() {
        let cat = TierCatalog::builtin();
        let beta = &cat.flags()["beta_models"];
        assert_eq!(beta.min_tier, Some(Tier::Professional));
        assert!(!beta.allows(Tier::Starter));
        let ctx = &cat.flags()["max_context_tokens"];
        assert_eq!(ctx.tiers[&Tier::Enterprise].as_text(), "131072");
        let bad = BUILTIN_CATALOG.replace(
            "[flags.model_routing]\ntype = \"string\"\ndefault = \"balanced\"",
            "[flags.model_routing]\ntype = \"string\"\ndefault = 3",
        );
        let e = TierCatalog::parse(&bad).unwrap_err().to_string();
        assert!(
            e.contains("[flags.model_routing]") && e.contains("type string"),
            "{e}"
        );
        let bad = BUILTIN_CATALOG.replace("white_label      = \"ENTERPRISE\"\n", "");
        let e = TierCatalog::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("white_label"), "{e}");
    }
}
