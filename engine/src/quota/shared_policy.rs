//! Quota policies shared between the quotas that hold them. A million
//! tenants on one tier hold the same handful of policies: each quota keeps
//! a pointer to one shared copy instead of a copy of its own (56 bytes
//! less a quota here). Only memory changes: equality, serialization and
//! every decision see the policy's value.
use crate::model::QuotaPolicy;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashSet;
use std::ops::Deref;
use std::sync::{Arc, LazyLock, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedPolicy(Arc<QuotaPolicy>);

impl SharedPolicy {
    pub fn new(policy: QuotaPolicy) -> Self {
        SharedPolicy(intern(policy))
    }

    /// Whether two quotas hold the very same copy (for tests).
    pub fn shares_with(&self, other: &SharedPolicy) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for SharedPolicy {
    type Target = QuotaPolicy;
    fn deref(&self) -> &QuotaPolicy {
        &self.0
    }
}

impl From<QuotaPolicy> for SharedPolicy {
    fn from(policy: QuotaPolicy) -> Self {
        SharedPolicy::new(policy)
    }
}

impl Serialize for SharedPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        QuotaPolicy::deserialize(d).map(SharedPolicy::new)
    }
}

/// The copies in use. A cache, not configuration: losing it (a poisoned
/// lock) only means unshared copies.
struct Interner {
    policies: HashSet<Arc<QuotaPolicy>>,
    /// Size after the last sweep of copies no quota holds any more.
    swept_at: usize,
}

static POLICIES: LazyLock<Mutex<Interner>> = LazyLock::new(|| {
    Mutex::new(Interner {
        policies: HashSet::new(),
        swept_at: 0,
    })
});

/// Fewest copies before sweeping is worth it.
const SWEEP_FROM: usize = 1024;

fn intern(policy: QuotaPolicy) -> Arc<QuotaPolicy> {
    let Ok(mut interner) = POLICIES.lock() else {
        return Arc::new(policy);
    };
    if let Some(shared) = interner.policies.get(&policy) {
        return shared.clone();
    }
    // Per-tenant overrides come and go: whenever the set has doubled,
    // drop the copies only the set still holds. Amortized O(1).
    if interner.policies.len() >= (2 * interner.swept_at).max(SWEEP_FROM) {
        interner.policies.retain(|p| Arc::strong_count(p) > 1);
        interner.swept_at = interner.policies.len();
    }
    let shared = Arc::new(policy);
    interner.policies.insert(shared.clone());
    shared
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Period;

    #[test]
    fn equal_policies_share_one_copy_and_read_as_values() {
        let a = SharedPolicy::new(QuotaPolicy::counter(Period::Monthly, Some(1_000)));
        let b = SharedPolicy::new(QuotaPolicy::counter(Period::Monthly, Some(1_000)));
        let c = SharedPolicy::new(QuotaPolicy::counter(Period::Monthly, Some(2_000)));
        assert!(a.shares_with(&b));
        assert!(!a.shares_with(&c));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.limit, Some(1_000));
        // Serialized as the policy itself, and shared again when read.
        let bytes = postcard::to_allocvec(&a).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&*a).unwrap());
        let back: SharedPolicy = postcard::from_bytes(&bytes).unwrap();
        assert!(back.shares_with(&a));
    }

    #[test]
    fn copies_nobody_holds_are_swept() {
        // Many one-off overrides, each dropped at once.
        for limit in 0..(4 * SWEEP_FROM as u64) {
            let _ = SharedPolicy::new(QuotaPolicy::counter(Period::Daily, Some(7_000_000 + limit)));
        }
        let held = POLICIES.lock().unwrap().policies.len();
        assert!(held < 3 * SWEEP_FROM, "{held} copies kept");
    }
}
