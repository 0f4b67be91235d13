//! Quota math: windows, buckets, decisions, tier defaults. Pure functions of
//! (state, input, time); no I/O, no clock reads. Tested as data.
mod all_or_nothing;
mod decision;
mod error;
mod idempotency;
mod layer_state;
mod layers;
mod level_report;
mod meter;
mod op;
pub mod period;
mod policy_patch;
mod policy_pool;
mod quota_map;
mod quota_state;
mod scope_meters;
mod tenant_state;
mod tiers;
pub mod validate;

#[cfg(test)]
mod tests;

pub use all_or_nothing::{AllDecided, AllOrNothing, Spend};
pub use decision::{Decision, Limiter, Verdict};
pub use error::QuotaError;
pub use layer_state::{CreditGrant, Draws, Layers, MAX_GRANTS, Meter, NewCreditGrant, SpendCtx};
pub use level_report::{LevelUsage, MAX_SCOPES_PAGE, ScopeUsage, ScopesPage, ScopesQuery};
pub use op::{
    AlertOp, ApiKeyRotation, Applied, BrandingChange, FlagChange, GrantChange, NewApiKey, OpClass,
    OpOutcome, QuotaPatch, Received, ScopedSpend, SharedReserve, SharedUse, TenantOp, TenantUpdate,
    WebhookChange,
};
pub use policy_patch::{PolicyPatch, RulesPatch};
pub use policy_pool::{PolicyPool, SharedPolicy};
pub use quota_map::QuotaMap;
pub use quota_state::{QuotaState, Use};
pub use tenant_state::{Reservation, TenantState};
pub use tiers::{BUILTIN_CATALOG, CatalogError, TierCatalog};
