//! The tier catalog: each tier's default quotas, and its limits on what
//! a tenant may hold (`[limits.TIER]`), read from TOML.
use super::QuotaError;
use super::validate;
use crate::model::{QuotaPolicy, Tier};
use std::collections::BTreeMap;

/// The catalog compiled into the binary (`engine/tiers.toml`).
pub const BUILTIN_CATALOG: &str = include_str!("../../tiers.toml");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierCatalog {
    tiers: BTreeMap<Tier, BTreeMap<String, QuotaPolicy>>,
    limits: BTreeMap<Tier, TierLimits>,
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
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("tier catalog is not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("tier catalog: {0}")]
    UnknownTier(#[from] crate::model::tier_error::UnknownTier),
    #[error("tier catalog, [sharing]: {0}")]
    Sharing(String),
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
        Ok(TierCatalog {
            tiers,
            limits,
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
        let mut text = BUILTIN_CATALOG.replace("[limits.FREE]", "[limits.IGNORED]");
        text = text.replace("[limits.IGNORED]\nsharing_policies = 1", "");
        let cat = TierCatalog::parse(&text).unwrap();
        assert_eq!(cat.sharing_policies(Tier::Free), None, "left out: no limit");
    }
}
