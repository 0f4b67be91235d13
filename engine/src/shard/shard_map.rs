use crate::model::TenantId;

/// Tenant -> shard group. Group 0 is the meta group; shards are 1..=count.
/// The hash is our own (not std's, which may change between releases), so a
/// tenant stays on its shard across upgrades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardMap {
    count: u64,
}

impl ShardMap {
    pub fn new(count: u64) -> Self {
        assert!(count > 0, "at least one shard");
        ShardMap { count }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn shard_of(&self, tenant: &TenantId) -> u64 {
        // One implementation for the engine and the client library.
        quotad_proto::routing::shard_of(tenant.as_u128(), self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_balanced() {
        let map = ShardMap::new(4);
        // Pinned values: changing the hash would strand tenants' state.
        assert_eq!(map.shard_of(&uuid::Uuid::from_u128(1)), 2);
        assert_eq!(map.shard_of(&uuid::Uuid::from_u128(u128::MAX)), 4);
        // Pinned: changing the hash would strand tenants' state.
        assert_eq!(
            map.shard_of(&uuid::Uuid::from_u128(1)),
            map.shard_of(&uuid::Uuid::from_u128(1))
        );
        let mut counts = [0u32; 4];
        for i in 0..4000u128 {
            let id =
                uuid::Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
            let s = map.shard_of(&id);
            assert!((1..=4).contains(&s));
            counts[(s - 1) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }
}
