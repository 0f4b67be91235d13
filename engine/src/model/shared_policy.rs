//! A quota policy behind a shared pointer: quotas (and the windows and
//! scope rules inside a policy) holding equal policies can hold one copy
//! (see `quota::PolicyPool`). Equality, hashing and serialization see the
//! policy's value only.
use super::{QuotaPolicy, SharedPolicy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ops::Deref;
use std::sync::Arc;

impl SharedPolicy {
    pub fn new(policy: QuotaPolicy) -> Self {
        SharedPolicy(Arc::new(policy))
    }

    pub(crate) fn from_arc(policy: Arc<QuotaPolicy>) -> Self {
        SharedPolicy(policy)
    }

    pub(crate) fn arc(&self) -> &Arc<QuotaPolicy> {
        &self.0
    }

    /// Whether two quotas hold the very same copy.
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
