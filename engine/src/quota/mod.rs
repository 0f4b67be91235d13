//! Quota math: windows, buckets, decisions, tier defaults. Pure functions of
//! (state, input, time); no I/O, no clock reads. Tested as data.
mod all_or_nothing;
mod decision;
mod error;
mod idempotency;
mod op;
pub mod period;
mod quota_map;
mod quota_state;
mod shared_policy;
mod tenant_state;
mod tiers;
pub mod validate;

#[cfg(test)]
mod tests;

pub use all_or_nothing::{AllDecided, AllOrNothing, Spend};
pub use decision::{Decision, Verdict};
pub use error::QuotaError;
pub use op::{Applied, OpClass, OpOutcome, TenantOp, TenantUpdate};
pub use quota_map::QuotaMap;
pub use quota_state::{QuotaState, Use};
pub use shared_policy::SharedPolicy;
pub use tenant_state::{Reservation, TenantState};
pub use tiers::{BUILTIN_CATALOG, CatalogError, TierCatalog};
