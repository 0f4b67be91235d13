//! Tenant -> shard group, shared by the engine and the client library so a
//! client can compute where a tenant lives. Group 0 is the meta group;
//! shards are 1..=count. The hash is our own (not std's, which may change
//! between releases): a tenant stays on its shard across upgrades.

/// The shard group of the tenant whose UUID is `tenant` (as a u128).
pub fn shard_of(tenant: u128, count: u64) -> u64 {
    assert!(count > 0, "at least one shard");
    let hi = (tenant >> 64) as u64;
    let lo = tenant as u64;
    1 + mix(hi ^ mix(lo)) % count
}

/// splitmix64's finalizer: spreads UUID bits evenly.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
