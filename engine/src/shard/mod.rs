//! Shards: tenants hash to shard groups; each shard runs a group-commit
//! batcher in front of its Raft group and a registry of tenant actors.
mod batcher;
mod call;
mod reads;
mod shard_ctx;
mod shard_map;

pub use batcher::{PendingWrite, TenantSync};
pub use call::{BatchItem, ScopedCheck, SharedCheck, TenantAnswer, TenantCall, TenantMsg};
pub use shard_ctx::{Shard, SpawnActor};
pub use shard_map::ShardMap;
