//! Several spends of one tenant decided as one: every quota admits its
//! amount and all are taken, or none is taken at all. Envoy's rate limit
//! service sends a request's descriptors together (a per-request limit, a
//! token limit, a model's sub-limit...); spending the first ones before a
//! later one refuses would charge the tenant for a request that never ran.
use super::decision::Decision;
use super::error::QuotaError;
use super::quota_map::QuotaMap;
use super::quota_state::{QuotaState, Use};
use crate::model::TenantId;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One quota's part of an all-or-nothing decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    pub quota: String,
    /// At least 1 (validated before it is logged).
    pub amount: u64,
    /// A quota the tenant may not have defined (an Envoy sub-limit): when
    /// it has not, this part limits nothing and is answered `None`.
    pub optional: bool,
}

/// The operation: spends in request order, under one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllOrNothing {
    pub spends: Vec<Spend>,
    pub idempotency_key: Option<String>,
}

impl AllOrNothing {
    /// What a request with the same idempotency key must repeat exactly.
    pub(crate) fn fingerprint(&self) -> String {
        let mut f = String::from("all");
        for s in &self.spends {
            f.push_str(&format!(
                ":{}={}{}",
                s.quota,
                s.amount,
                if s.optional { "?" } else { "" }
            ));
        }
        f
    }
}

/// The answer: one decision per spend (`None`: an optional quota the
/// tenant does not have).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllDecided {
    /// Every part admitted, and every amount taken. When false nothing was
    /// taken; parts whose own limit would have admitted them say
    /// `allowed: true` with the usage as it stands.
    pub admitted: bool,
    pub decisions: Vec<Option<Decision>>,
}

impl AllDecided {
    pub(crate) fn mark_replayed(&mut self) {
        for d in self.decisions.iter_mut().flatten() {
            d.replayed = true;
        }
    }

    /// Whether deciding it changed anything persistent (see
    /// `TenantState::finish`).
    pub(crate) fn changed(&self) -> bool {
        self.admitted
    }
}

/// A tenant's quotas, as one all-or-nothing decision sees them.
pub(crate) struct Spender<'a> {
    pub tenant: TenantId,
    pub tz: Tz,
    pub quotas: &'a mut QuotaMap,
    /// Why the tenant may not spend at all now, if it may not.
    pub refusal: Option<String>,
}

/// Decide `op` on `state` at `now_ms` (already advanced to it). On error
/// (a required quota missing) nothing has changed; on refusal neither.
pub(crate) fn decide(
    state: Spender<'_>,
    op: &AllOrNothing,
    now_ms: i64,
) -> Result<AllDecided, QuotaError> {
    let (tz, refusal) = (state.tz, state.refusal);
    // Each quota is decided on a copy, in request order (a quota named
    // twice sees its first part), and the copies replace the originals
    // only if every part admits.
    let mut staged: BTreeMap<&str, QuotaState> = BTreeMap::new();
    let mut decisions = Vec::with_capacity(op.spends.len());
    for s in &op.spends {
        if s.amount == 0 {
            return Err(QuotaError::invalid("amount", "must be at least 1"));
        }
        let q = match staged.entry(s.quota.as_str()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => match state.quotas.get(&s.quota) {
                Some(q) => v.insert(q.clone()),
                None if s.optional => {
                    decisions.push(None);
                    continue;
                }
                None => {
                    return Err(QuotaError::QuotaNotFound {
                        tenant: state.tenant,
                        quota: s.quota.clone(),
                    });
                }
            },
        };
        let d = match &refusal {
            Some(reason) => q.refused(tz, now_ms, reason.clone()),
            None => q.admit(tz, now_ms, s.amount, Use::Consume),
        };
        decisions.push(Some(d));
    }
    let admitted = refusal.is_none() && decisions.iter().flatten().all(|d| d.allowed);
    if admitted {
        for (name, q) in staged {
            if let Some(original) = state.quotas.get_mut(name) {
                *original = q;
            }
        }
    } else {
        // Nothing was taken: report each quota as it stands, and no
        // threshold crossed (none was recorded).
        for (s, d) in op.spends.iter().zip(decisions.iter_mut()) {
            if let (Some(d), Some(q)) = (d.as_mut(), state.quotas.get(&s.quota)) {
                d.usage = q.usage(now_ms);
                d.remaining = q.remaining(now_ms);
                d.thresholds_crossed.clear();
            }
        }
    }
    Ok(AllDecided {
        admitted,
        decisions,
    })
}
