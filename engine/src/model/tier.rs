use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Product tiers. Their default quotas live in the tier catalog
/// ([`crate::quota::TierCatalog`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tier {
    Free,
    Starter,
    Professional,
    Enterprise,
}

impl Tier {
    pub const ALL: [Tier; 4] = [
        Tier::Free,
        Tier::Starter,
        Tier::Professional,
        Tier::Enterprise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "FREE",
            Tier::Starter => "STARTER",
            Tier::Professional => "PROFESSIONAL",
            Tier::Enterprise => "ENTERPRISE",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text of a tier name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown tier {:?}: expected one of FREE, STARTER, PROFESSIONAL, ENTERPRISE",
    crate::excerpt::short(.0)
)]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownTier(s.to_string()))
    }
}
