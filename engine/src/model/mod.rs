//! Plain data: tenants, tiers and quota policies. No I/O, no time reads.
mod domain;
mod member;
mod quota_policy;
mod tenant;
mod tier;
pub mod tier_error {
    pub use super::tier::UnknownTier;
}

pub use domain::Domain;
pub use member::{Member, NewOwner, Role, UnknownRole};
pub use quota_policy::{Action, Period, QuotaKind, QuotaPolicy, well_known};
pub use tenant::{Deletion, Tenant, TenantId, TenantStatus};
pub use tier::Tier;
