//! Several spends of one tenant decided as one: every quota admits its
//! amount and all are taken, or none is taken at all. Envoy's rate limit
//! service sends a request's descriptors together (a per-request limit, a
//! token limit, a model's sub-limit...); spending the first ones before a
//! later one refuses would charge the tenant for a request that never ran.
use super::decision::Decision;
use super::error::QuotaError;
use super::layer_state::{Draws, SpendCtx};
use super::layers::Checkpoint;
use super::quota_map::QuotaMap;
use super::quota_state::Use;
use crate::format::Added;
use crate::model::TenantId;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// One quota's part of an all-or-nothing decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    pub quota: String,
    /// At least 1 (validated before it is logged).
    pub amount: u64,
    /// A quota the tenant may not have defined (an Envoy sub-limit): when
    /// it has not, this part limits nothing and is answered `None`.
    pub optional: bool,
    /// The scope value this part spends in (format 20).
    #[serde(default)]
    pub scope: Added<20, Option<String>>,
}

/// The operation: spends in request order, under one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllOrNothing {
    pub spends: Vec<Spend>,
    pub idempotency_key: Option<String>,
    /// Each tier's cap on a tenant's live scope values, as the deciding
    /// node's catalog says, when a part names a scope (format 20).
    #[serde(default)]
    pub max_scopes: Added<20, Option<[u64; 4]>>,
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
            if let Some(scope) = s.scope.as_deref() {
                f.push('@');
                f.push_str(scope);
            }
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
    /// Live scope values of the tenant, and its tier's cap on them.
    pub live_scopes: u64,
    pub max_scopes: u64,
    /// The whole tenant is in shadow mode.
    pub shadow: bool,
}

/// Decide `op` on `state` at `now_ms` (already advanced to it). On error
/// (a required quota missing) nothing has changed; on refusal neither.
pub(crate) fn decide(
    state: Spender<'_>,
    op: &AllOrNothing,
    now_ms: i64,
) -> Result<AllDecided, QuotaError> {
    let (tz, refusal) = (state.tz, state.refusal);
    // Each part is decided on the live state, in request order (a quota
    // named twice sees its first part taken), after a checkpoint of what
    // it may touch; if any part refuses, the checkpoints are rolled back
    // last first. No copy of a quota (or its scope meters) is made.
    let mut live = state.live_scopes;
    let mut taken: Vec<(&str, Option<&str>, Checkpoint, Draws)> = Vec::new();
    let mut decisions = Vec::with_capacity(op.spends.len());
    let mut failure = None;
    for s in &op.spends {
        if s.amount == 0 {
            failure = Some(QuotaError::invalid("amount", "must be at least 1"));
            break;
        }
        let Some(q) = state.quotas.get_mut(&s.quota) else {
            if s.optional {
                decisions.push(None);
                continue;
            }
            failure = Some(QuotaError::QuotaNotFound {
                tenant: state.tenant,
                quota: s.quota.clone(),
            });
            break;
        };
        let d = match &refusal {
            Some(reason) => q.refused(tz, now_ms, reason.clone()),
            None => {
                let scope = s.scope.as_deref();
                let ctx = SpendCtx {
                    scope,
                    new_scope_fits: live < state.max_scopes,
                    max_scopes: state.max_scopes,
                    tenant_shadow: state.shadow,
                    ..SpendCtx::plain(state.tenant, tz, now_ms)
                };
                let checkpoint = q.checkpoint(scope);
                let before = q.live_scopes();
                match q.spend(&ctx, s.amount, Use::Consume) {
                    Ok((d, draws)) => {
                        live = live.saturating_add(q.live_scopes().saturating_sub(before) as u64);
                        taken.push((s.quota.as_str(), scope, checkpoint, draws));
                        d
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        };
        decisions.push(Some(d));
    }
    let admitted =
        failure.is_none() && refusal.is_none() && decisions.iter().flatten().all(|d| d.allowed);
    if !admitted {
        for (name, scope, checkpoint, draws) in taken.into_iter().rev() {
            if let Some(q) = state.quotas.get_mut(name) {
                q.rollback(checkpoint, &draws, scope);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if !admitted {
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
