//! Names that are unique across the deployment (tenant slugs, custom
//! domains), each held by one tenant, recorded in the meta group. One type
//! for both: a claim is taken, refused, taken over when orphaned, or
//! released by its holder.
use crate::model::TenantId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Deref;

/// Who holds a name, since when (leader-stamped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub tenant: TenantId,
    pub at_ms: i64,
}

/// A claim whose tenant never came to exist (its creation died between
/// claiming the name and creating the tenant) may be taken over after this.
pub const ORPHAN_CLAIM_AFTER_MS: i64 = 60_000;

/// The claims on one kind of name. Stored as the map itself (the same bytes
/// as before this type existed); read through `Deref`, changed only by
/// [`Claims::claim`] and [`Claims::release`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Claims(BTreeMap<String, Claim>);

impl Deref for Claims {
    type Target = BTreeMap<String, Claim>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Claims {
    /// Claim `name` for `tenant` at `at_ms`. Refused with the holder when
    /// another tenant holds it, unless the caller names that holder as
    /// `replacing` (it found the holder does not exist) and the claim is
    /// older than [`ORPHAN_CLAIM_AFTER_MS`]. Claiming again what one holds
    /// succeeds.
    pub fn claim(
        &mut self,
        name: &str,
        tenant: TenantId,
        at_ms: i64,
        replacing: Option<TenantId>,
    ) -> Result<(), TenantId> {
        if let Some(c) = self.0.get(name)
            && c.tenant != tenant
            && !(Some(c.tenant) == replacing && at_ms - c.at_ms >= ORPHAN_CLAIM_AFTER_MS)
        {
            return Err(c.tenant);
        }
        self.0.insert(name.to_string(), Claim { tenant, at_ms });
        Ok(())
    }

    /// Give `name` back, if `tenant` holds it; another holder's claim stays.
    pub fn release(&mut self, name: &str, tenant: TenantId) {
        if self.0.get(name).is_some_and(|c| c.tenant == tenant) {
            self.0.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn one_holder_per_name_orphans_taken_over_late_release_by_the_holder_only() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut c = Claims::default();
        assert_eq!(c.claim("acme", a, 0, None), Ok(()));
        assert_eq!(c.claim("acme", a, 5, None), Ok(()), "again, by its holder");
        assert_eq!(c.claim("acme", b, 10, None), Err(a));
        assert_eq!(
            c.claim("acme", b, 5 + ORPHAN_CLAIM_AFTER_MS - 1, Some(a)),
            Err(a),
            "too early to call it orphaned"
        );
        c.release("acme", b);
        assert_eq!(c["acme"].tenant, a, "only the holder releases");
        assert_eq!(
            c.claim("acme", b, 5 + ORPHAN_CLAIM_AFTER_MS, Some(a)),
            Ok(())
        );
        assert_eq!(
            c["acme"],
            Claim {
                tenant: b,
                at_ms: 5 + ORPHAN_CLAIM_AFTER_MS
            }
        );
        c.release("acme", b);
        assert!(c.is_empty());
        // The same bytes as the map it replaced.
        c.claim("x", a, 7, None).unwrap();
        assert_eq!(
            postcard::to_allocvec(&c).unwrap(),
            postcard::to_allocvec(&*c).unwrap()
        );
    }
}
