//! Plain data: tenants, tiers and quota policies, API keys and the
//! data-plane callers they make, the consistency a caller asks for, and the cluster's membership as the meta group
//! records it. No I/O, no time reads.
mod api_key;
mod caller;
mod consistency;
mod domain;
mod member;
pub mod membership;
mod principal;
mod quota_policy;
pub mod quota_rules;
mod shared_policy;
mod signed_out;
mod tenant;
mod tier;
pub mod tier_error {
    pub use super::tier::UnknownTier;
}

pub use api_key::{ApiKey, ApiKeyView, ApiKeys, MAX_API_KEYS};
pub use caller::{Caller, Refusal, Scope, Scopes, UnknownScope};
pub use consistency::Consistency;
pub use domain::Domain;
pub use member::{Member, NewOwner, Role, UnknownRole};
pub use membership::NodeId;
pub use principal::{KeyProof, Principal};
pub use quota_policy::{
    Action, Period, QuotaKind, QuotaPolicy, QuotaRules, ScopeRules, SharedPolicy, well_known,
};
pub use signed_out::{SessionId, SignedOut};
pub use tenant::{Deletion, Tenant, TenantId, TenantStatus};
pub use tier::Tier;
