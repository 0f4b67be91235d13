//! Tier features: what each tier has beyond its quotas (custom branding,
//! SSO, white label, ...), and its SLA. The tier catalog's `[features]`
//! table names each feature with the lowest tier that has it; every tier
//! above has it too, as in the product's tier table. A tenant whose tier
//! drops below a feature keeps the feature's data, switched off, and gets
//! it back on an upgrade: the check is made against the tier each time,
//! nothing is deleted.
use crate::model::Tier;
use std::collections::BTreeMap;

/// The features quotad itself checks. The catalog must name each of them;
/// it may name more, for gateways to ask about (`CheckFeature`).
pub const CUSTOM_DOMAINS: &str = "custom_domains";
pub const CUSTOM_BRANDING: &str = "custom_branding";
pub const SSO: &str = "sso";
pub const PRIORITY_SUPPORT: &str = "priority_support";
pub const WHITE_LABEL: &str = "white_label";
pub const DEDICATED_SCHEMA: &str = "dedicated_schema";
pub const WEBHOOKS: &str = "webhooks";
pub const API_SETTINGS: &str = "api_settings";

pub const CHECKED: [&str; 8] = [
    CUSTOM_DOMAINS,
    CUSTOM_BRANDING,
    SSO,
    PRIORITY_SUPPORT,
    WHITE_LABEL,
    DEDICATED_SCHEMA,
    WEBHOOKS,
    API_SETTINGS,
];

/// A feature the tenant's tier does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{feature} needs the {needs} tier or above; the tenant is on {tier}")]
pub struct FeatureRefused {
    pub feature: String,
    pub needs: Tier,
    pub tier: Tier,
}

/// A feature name the catalog does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feature {:?}", crate::excerpt::short(.0))]
pub struct UnknownFeature(pub String);

/// The catalog's `[features]` and `[sla]` tables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features {
    min_tier: BTreeMap<String, Tier>,
    sla: BTreeMap<Tier, Sla>,
}

/// A tier's service level: none, or an availability such as 99.9%.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sla(Option<String>);

impl Sla {
    pub fn parse(raw: &str) -> Result<Sla, String> {
        if raw == "none" {
            return Ok(Sla(None));
        }
        let number = raw.strip_suffix('%').ok_or_else(|| {
            format!("{raw:?} is neither \"none\" nor a percentage like \"99.9%\"")
        })?;
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{raw:?} is not a percentage like \"99.9%\""))?;
        if !(0.0..=100.0).contains(&value) || number.starts_with('+') {
            return Err(format!("{raw:?} is not between 0% and 100%"));
        }
        Ok(Sla(Some(raw.to_string())))
    }

    /// `"none"` or the availability, e.g. `"99.9%"`.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("none")
    }
}

impl Features {
    /// Build from the catalog's tables; `features` maps a name to the
    /// lowest tier that has it.
    pub fn new(
        features: BTreeMap<String, String>,
        sla: BTreeMap<String, String>,
    ) -> Result<Features, String> {
        let mut min_tier = BTreeMap::new();
        for (name, tier) in features {
            check_name(&name).map_err(|e| format!("[features] {name:?}: {e}"))?;
            let tier: Tier = tier
                .parse()
                .map_err(|e| format!("[features] {name}: {e}"))?;
            min_tier.insert(name, tier);
        }
        for name in CHECKED {
            if !min_tier.contains_key(name) {
                return Err(format!(
                    "[features] must name {name} (quotad checks it) with its lowest tier"
                ));
            }
        }
        let mut levels = BTreeMap::new();
        for (tier, raw) in sla {
            let tier: Tier = tier.parse().map_err(|e| format!("[sla]: {e}"))?;
            levels.insert(
                tier,
                Sla::parse(&raw).map_err(|e| format!("[sla] {tier}: {e}"))?,
            );
        }
        for tier in Tier::ALL {
            levels.entry(tier).or_insert(Sla(None));
        }
        Ok(Features {
            min_tier,
            sla: levels,
        })
    }

    /// The one check: whether `tier` has `feature`, or why not.
    pub fn requires(&self, tier: Tier, feature: &str) -> Result<(), FeatureRefused> {
        let needs = self.min_tier.get(feature).copied().unwrap_or_else(|| {
            // Only CHECKED names reach here from quotad's own code, and the
            // catalog must hold those; an unknown one is off for everyone.
            debug_assert!(false, "feature {feature} is not in the catalog");
            Tier::Enterprise
        });
        if tier >= needs {
            Ok(())
        } else {
            Err(FeatureRefused {
                feature: feature.to_string(),
                needs,
                tier,
            })
        }
    }

    /// The lowest tier that has `feature`.
    pub fn min_tier(&self, feature: &str) -> Result<Tier, UnknownFeature> {
        self.min_tier
            .get(feature)
            .copied()
            .ok_or_else(|| UnknownFeature(feature.to_string()))
    }

    /// Every feature with the lowest tier that has it, by name.
    pub fn all(&self) -> impl Iterator<Item = (&str, Tier)> {
        self.min_tier.iter().map(|(n, t)| (n.as_str(), *t))
    }

    pub fn sla(&self, tier: Tier) -> &Sla {
        &self.sla[&tier]
    }
}

/// Feature (and flag) names: lowercase words joined by `_`, `-` or `.`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err("must be 1 to 64 characters: a lowercase letter, then lowercase letters, digits, '_', '-' or '.'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        CHECKED
            .iter()
            .map(|n| (n.to_string(), "PROFESSIONAL".to_string()))
            .chain(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())))
            .collect()
    }

    #[test]
    fn a_feature_is_on_from_its_tier_up_and_the_refusal_names_the_tier() {
        let f = Features::new(table(&[("beta_models", "STARTER")]), BTreeMap::new()).unwrap();
        assert!(f.requires(Tier::Free, "beta_models").is_err());
        assert!(f.requires(Tier::Starter, "beta_models").is_ok());
        assert!(f.requires(Tier::Enterprise, "beta_models").is_ok());
        let e = f.requires(Tier::Starter, SSO).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sso needs the PROFESSIONAL tier or above; the tenant is on STARTER"
        );
        assert_eq!(f.min_tier("nope"), Err(UnknownFeature("nope".into())));
    }

    #[test]
    fn the_catalog_must_name_every_checked_feature_and_valid_slas() {
        let mut t = table(&[]);
        t.remove(WHITE_LABEL);
        let e = Features::new(t, BTreeMap::new()).unwrap_err();
        assert!(e.contains("white_label"), "{e}");
        let e = Features::new(table(&[("Bad Name", "FREE")]), BTreeMap::new()).unwrap_err();
        assert!(e.contains("Bad Name"), "{e}");
        let e = Features::new(table(&[("x", "GOLD")]), BTreeMap::new()).unwrap_err();
        assert!(e.contains("GOLD"), "{e}");
        for bad in ["99", "101%", "fast", "+5%"] {
            let sla = BTreeMap::from([("FREE".to_string(), bad.to_string())]);
            assert!(Features::new(table(&[]), sla).is_err(), "{bad}");
        }
        let sla = BTreeMap::from([("STARTER".to_string(), "99%".to_string())]);
        let f = Features::new(table(&[]), sla).unwrap();
        assert_eq!(f.sla(Tier::Starter).as_str(), "99%");
        assert_eq!(f.sla(Tier::Free).as_str(), "none");
    }
}
