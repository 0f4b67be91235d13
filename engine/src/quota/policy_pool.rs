//! Quota policies shared between the quotas that hold them. A million
//! tenants on one tier hold the same handful of policies: each quota keeps
//! a pointer to one shared copy instead of a copy of its own (56 bytes
//! less a quota). Only memory changes: equality, serialization and every
//! decision see the policy's value.
//!
//! The sharing is owned by the state that holds the policies: a group's
//! replicated state keeps a [`PolicyPool`] and passes the tenants it
//! creates, changes or reads from a snapshot through it. No global lock:
//! decoding a policy is a plain allocation.
use crate::model::QuotaPolicy;
pub use crate::model::SharedPolicy;
use std::collections::HashSet;
use std::sync::Arc;

/// The policies in use in one state. A cache, not state: two pools are
/// equal whatever they hold, and a state is the same with or without one.
#[derive(Default)]
pub struct PolicyPool {
    policies: HashSet<Arc<QuotaPolicy>>,
    /// Size after the last sweep of copies no quota holds any more.
    swept_at: usize,
}

/// Fewest copies before sweeping is worth it.
const SWEEP_FROM: usize = 1024;

impl PolicyPool {
    /// The pool's copy of `policy`, which it keeps from now on.
    pub fn share(&mut self, policy: &SharedPolicy) -> SharedPolicy {
        if let Some(shared) = self.policies.get(policy.arc()) {
            return SharedPolicy::from_arc(shared.clone());
        }
        // Per-tenant overrides come and go: whenever the set has doubled,
        // drop the copies only the pool still holds. Amortized O(1).
        if self.policies.len() >= (2 * self.swept_at).max(SWEEP_FROM) {
            self.policies.retain(|p| Arc::strong_count(p) > 1);
            self.swept_at = self.policies.len();
        }
        self.policies.insert(policy.arc().clone());
        policy.clone()
    }

    /// The pool's copy of `policy`, unless `policy` is that copy already.
    pub fn shared(&mut self, policy: &SharedPolicy) -> Option<SharedPolicy> {
        match self.policies.get(policy.arc()) {
            Some(p) if Arc::ptr_eq(p, policy.arc()) => None,
            _ => Some(self.share(policy)),
        }
    }

    /// Distinct policies held.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

impl Clone for PolicyPool {
    /// A clone of a state shares the same copies.
    fn clone(&self) -> Self {
        PolicyPool {
            policies: self.policies.clone(),
            swept_at: self.swept_at,
        }
    }
}

impl PartialEq for PolicyPool {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for PolicyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyPool({} policies)", self.policies.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Period;

    #[test]
    fn equal_policies_share_one_copy_and_read_as_values() {
        let mut pool = PolicyPool::default();
        let a = pool.share(&QuotaPolicy::counter(Period::Monthly, Some(1_000)).into());
        let b = pool.share(&QuotaPolicy::counter(Period::Monthly, Some(1_000)).into());
        let c = pool.share(&QuotaPolicy::counter(Period::Monthly, Some(2_000)).into());
        assert!(a.shares_with(&b));
        assert!(!a.shares_with(&c));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.limit, Some(1_000));
        // Serialized as the policy itself; read back as a copy of its own
        // until a pool shares it.
        let bytes = postcard::to_allocvec(&a).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&*a).unwrap());
        let back: SharedPolicy = postcard::from_bytes(&bytes).unwrap();
        assert!(!back.shares_with(&a));
        assert!(pool.share(&back).shares_with(&a));
    }

    #[test]
    fn copies_nobody_holds_are_swept() {
        let mut pool = PolicyPool::default();
        // Many one-off overrides, each dropped at once.
        for limit in 0..(4 * SWEEP_FROM as u64) {
            let _ =
                pool.share(&QuotaPolicy::counter(Period::Daily, Some(7_000_000 + limit)).into());
        }
        assert!(pool.len() < 3 * SWEEP_FROM, "{} copies kept", pool.len());
    }
}
