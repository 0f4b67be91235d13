//! Tenant customization: tier features, branding and white label, feature
//! flags. Plain data and pure rules; the tenant's part lives in its
//! replicated state ([`Customization`]), the platform's flags in the meta
//! group.
//!
//! # Layout
//! - [`api_settings`]: the networks a tenant's API keys may be used from, its CORS origins.
//! - [`features`]: the catalog's features by lowest tier, SLAs, `requires`.
//! - [`branding`]: logo, colours, theme, product name, white label.
//! - [`contrast`]: `#rrggbb` colours and their WCAG contrast ratio.
//! - [`flags`]: flag definitions and values, evaluation with OpenFeature's
//!   reasons.
//! - [`platform_flags`]: operators' flags for the whole platform (meta group).
//! - [`sso`]: a tenant's OIDC issuer, client and claim-to-role mapping.
//! - [`secret`]: secrets sealed at rest, shown by their last four characters.
pub mod api_settings;
pub mod branding;
pub mod contrast;
pub mod features;
pub mod flags;
pub mod platform_flags;
pub mod secret;
pub mod sso;

pub use branding::{Branding, BrandingInput, Theme};
pub use features::{FeatureRefused, Features, Sla};
pub use flags::{Evaluation, FlagDef, FlagType, FlagValue, Reason};
pub use platform_flags::{PlatformFlagOp, PlatformFlags};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A tenant's customization, in its replicated state (format 16). Data of
/// a feature its tier has lost is kept here, unused, until it is back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customization {
    pub branding: Option<Branding>,
    /// The tenant's flag values by key: its values of defined flags, and
    /// flags of its own.
    pub flags: BTreeMap<String, FlagValue>,
    /// Its API settings (format 17).
    #[serde(default)]
    pub api: crate::format::Added<17, api_settings::ApiSettings>,
    /// Its single sign-on (format 17).
    #[serde(default)]
    pub sso: crate::format::Added<17, Option<sso::SsoSettings>>,
}

/// A change that needs a feature: the tenant's tier when it applies must
/// be at least `tier` (checked in apply, so a downgrade between the
/// request and its commit cannot slip through).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    pub feature: String,
    pub tier: crate::model::Tier,
}

crate::shared_default!(Customization);
