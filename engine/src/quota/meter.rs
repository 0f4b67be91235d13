//! The counters of one further window or one scope value of a quota.
use crate::model::QuotaKind;
use serde::{Deserialize, Serialize};

/// The counters of one further window or one scope value: as a
/// `QuotaState` keeps them, without the policy (the window's or the scope
/// rule's, which the quota's policy holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meter {
    pub start_ms: i64,
    /// `i64::MIN`: not computed yet.
    pub end_ms: i64,
    pub used: u64,
    pub reserved: u64,
    pub tat_ns: i64,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            start_ms: 0,
            end_ms: i64::MIN,
            used: 0,
            reserved: 0,
            tat_ns: 0,
        }
    }
}

impl Meter {
    /// The first instant at which this meter equals a fresh one (nothing
    /// used or held): the end of its period for a counter, the time its
    /// bucket is full again for a rate. `None` while something is held.
    pub(super) fn idle_from_ms(&self, kind: QuotaKind) -> Option<i64> {
        if self.reserved > 0 {
            return None;
        }
        match kind {
            QuotaKind::Rate => Some((self.tat_ns + 999_999).div_euclid(1_000_000)),
            _ if self.used == 0 => Some(i64::MIN),
            _ if self.end_ms == i64::MIN => None,
            _ => Some(self.end_ms),
        }
    }
}
