//! Cross-tenant sharing (issue 19, being built): providers' policies on
//! their resources, consumers' grants, metered cross-tenant usage and
//! statements. Pure rules here; the engine and the control plane use them.
pub mod money;
pub mod policy;

pub use money::{Amount, Currency, JsonAmount, MoneyError};
pub use policy::{
    Approval, Conditions, Permission, PolicySpec, Pricing, ResourceType, RevenueShare, UsageCap,
    Visibility,
};
