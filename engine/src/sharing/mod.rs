//! Cross-tenant sharing: providers' policies on their resources, the
//! meta group's catalog of policies, requests and grants, and the grants a
//! consumer holds in its own state. Pure rules here; the engine and the
//! control plane use them.
/// The platform's fee unless configured (`--platform-fee-percent`): 15%.
pub const DEFAULT_PLATFORM_FEE_BP: u32 = 1_500;

pub mod catalog;
pub mod error;
pub mod held;
pub mod ledger;
pub mod money;
pub mod period;
pub mod policy;

pub use catalog::{
    AccessRequest, Grant, GrantEnd, Policy, RequestState, SharingCatalog, SharingOp, SharingReply,
};
pub use error::SharingError;
pub use held::{HeldGrant, HeldGrants, UseRefused, Via};
pub use ledger::{SharedUsage, Transfer, UsageKey};
pub use money::{Amount, Currency, JsonAmount, MoneyError};
pub use policy::{
    Approval, Conditions, Permission, PolicySpec, Pricing, ResourceType, RevenueShare, UsageCap,
    Visibility,
};
