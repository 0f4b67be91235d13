//! Tenant actors: one per active tenant on its shard's leader, so admission
//! for a tenant is serialized without locks. Thin shells over
//! [`crate::quota::TenantState`].
mod tenant_actor;

pub use tenant_actor::{TenantActor, spawner};
