//! The sharing grants a tenant holds as a consumer, its uses through them,
//! and the transfers of its usage records to providers (see
//! `crate::sharing`).
use super::TenantState;
use crate::format::Added;
use crate::model::TenantId;
use crate::quota::decision::Decision;
use crate::quota::error::QuotaError;
use crate::quota::op::{Applied, OpOutcome, Received, SharedReserve, SharedUse};
use crate::quota::quota_state::Use;
use crate::quota::tenant_state::Reservation;
use crate::sharing::{Grant, HeldGrant, Permission, Pricing, UsageKey, UseRefused};
use uuid::Uuid;

impl TenantState {
    /// Hold `grant` as the catalog decided it. A grant already held takes
    /// the new terms and keeps its use; another grant for the same policy
    /// (an ended one, kept to explain refusals) is replaced.
    pub(super) fn hold_grant(&mut self, grant: &Grant, now_ms: i64) -> Result<Applied, QuotaError> {
        if grant.consumer != self.tenant.id {
            return Err(QuotaError::invalid(
                "grant",
                "the grant belongs to another consumer",
            ));
        }
        match self.grants.get_mut(&grant.policy) {
            Some(held) if held.grant.id == grant.id => held.follow(grant.clone()),
            // The end of an older grant, arriving after the consumer was
            // granted the policy again: the newer grant stays.
            Some(held) if grant.ended.is_some() && held.grant.ended.is_none() => {
                return Ok(Applied {
                    outcome: OpOutcome::Tenant,
                    changed: false,
                });
            }
            _ => {
                self.grants
                    .insert(grant.policy, HeldGrant::new(grant.clone()));
            }
        }
        // A subscription is charged from the day it is granted.
        self.bill_subscriptions(now_ms);
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    /// Charge every subscription grant for the months due (see
    /// [`HeldGrant::bill`]), as lines of one unit at the month's charge.
    pub(super) fn bill_subscriptions(&mut self, now_ms: i64) -> Applied {
        let mut charged = Vec::new();
        for held in self.grants.values_mut() {
            for (period, charge) in held.bill(now_ms) {
                charged.push(UsageKey::subscription(&held.grant, period, charge));
            }
        }
        let changed = !charged.is_empty();
        for key in charged {
            self.shared.record(key, 1);
        }
        Applied {
            outcome: OpOutcome::Tenant,
            changed,
        }
    }
}

impl TenantState {
    /// The held grant for `policy`, if it allows `permission` for `amount`
    /// now; `Ok(Err(reason))` when only its cap is reached (a denial like a
    /// full quota's, not an error).
    fn grant_for(
        &self,
        policy: Uuid,
        permission: Permission,
        quota: &str,
        amount: u64,
        now_ms: i64,
    ) -> Result<Result<(), String>, QuotaError> {
        let denied = |reason: String| QuotaError::SharingDenied { policy, reason };
        let held = self
            .grants
            .get(&policy)
            .ok_or_else(|| denied(UseRefused::NoGrant.to_string()))?;
        if let Pricing::UsageBased { unit_quota, .. } = &held.grant.pricing
            && unit_quota != quota
        {
            return Err(QuotaError::invalid(
                "quota",
                format!(
                    "this sharing policy is priced per unit of {unit_quota}; spend on that quota"
                ),
            ));
        }
        match held.check(permission, amount, self.tenant.timezone, now_ms) {
            Ok(()) => Ok(Ok(())),
            Err(cap @ UseRefused::CapReached { .. }) => Ok(Err(cap.to_string())),
            Err(other) => Err(denied(other.to_string())),
        }
    }

    /// Decision only, as of `now_ms`, for a use through a grant.
    pub fn check_shared(
        &self,
        quota: &str,
        amount: i64,
        policy: Uuid,
        permission: Permission,
        now_ms: i64,
    ) -> Result<Decision, QuotaError> {
        let units = super::positive_amount(amount)?;
        let q = self.quota(quota)?;
        match self.grant_for(policy, permission, quota, units, now_ms)? {
            Ok(()) => self.check(quota, amount, None, now_ms),
            Err(cap) => Ok(q.refused(self.tenant.timezone, now_ms, cap)),
        }
    }

    /// Spend through a grant: charged to this tenant's quota and the
    /// grant's cap, and recorded for the provider, all or nothing.
    pub(super) fn shared_use(&mut self, u: &SharedUse, now_ms: i64) -> Result<Applied, QuotaError> {
        let tz = self.tenant.timezone;
        let fingerprint = || {
            format!(
                "shared:{}:{}:{}:{}",
                u.policy,
                u.permission.as_str(),
                u.quota,
                u.amount
            )
        };
        if let Some(replay) = self.replay(u.idempotency_key.as_deref(), fingerprint)? {
            return Ok(replay);
        }
        let units = super::positive_amount(u.amount)?;
        let refusal = self.refusal(now_ms);
        self.quota(&u.quota)?;
        let cap = self.grant_for(u.policy, u.permission, &u.quota, units, now_ms)?;
        let ctx = self.spend_ctx(None, u64::MAX, now_ms);
        let q = self.quota_mut(&u.quota)?;
        let decision = match (refusal, cap) {
            (Some(reason), _) | (None, Err(reason)) => q.refused(tz, now_ms, reason),
            (None, Ok(())) => q.spend(&ctx, units, Use::Consume)?.0,
        };
        if decision.allowed {
            let held = self.grants.get_mut(&u.policy).expect("checked above");
            held.record(units, tz, now_ms);
            let key = UsageKey::of(&held.grant, now_ms);
            self.shared.record(key, units);
        }
        Ok(self.finish(
            &u.idempotency_key,
            fingerprint,
            OpOutcome::Decision(decision),
            now_ms,
            &[&u.quota],
        ))
    }

    pub(super) fn seal_transfer(&mut self, provider: TenantId) -> Applied {
        let before = self.shared.outbox.get(&provider).cloned();
        self.shared.seal(provider);
        Applied {
            outcome: OpOutcome::Tenant,
            changed: self.shared.outbox.get(&provider) != before.as_ref(),
        }
    }

    pub(super) fn receive_usage(&mut self, r: &Received) -> Result<Applied, QuotaError> {
        if r.transfer
            .lines
            .iter()
            .any(|(k, _)| k.provider != self.tenant.id)
        {
            return Err(QuotaError::invalid(
                "transfer",
                "holds usage of another provider",
            ));
        }
        let new = self.shared.receive(r.consumer, &r.transfer);
        Ok(Applied {
            outcome: OpOutcome::Tenant,
            changed: new,
        })
    }

    pub(super) fn ack_transfer(&mut self, provider: TenantId, seq: u64) -> Applied {
        let done = self.shared.acknowledge(provider, seq);
        Applied {
            outcome: OpOutcome::Tenant,
            changed: done,
        }
    }
}

impl TenantState {
    /// Hold an amount through a grant: on the tenant's quota and the
    /// grant's cap, all or nothing.
    pub(super) fn shared_reserve(
        &mut self,
        r: &SharedReserve,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let tz = self.tenant.timezone;
        let fingerprint = || format!("shared-reserve:{}:{}:{}", r.via.policy, r.quota, r.amount);
        if let Some(replay) = self.replay(r.idempotency_key.as_deref(), fingerprint)? {
            return Ok(replay);
        }
        if self.reservations.contains_key(&r.reservation_id) {
            return Err(QuotaError::invalid("reservation_id", "already in use"));
        }
        let amount = super::positive_amount(i64::try_from(r.amount).unwrap_or(i64::MAX))?;
        let refusal = self.refusal(now_ms);
        let q = self.quota(&r.quota)?;
        if q.policy.kind == crate::model::QuotaKind::Rate {
            return Err(QuotaError::invalid(
                "quota",
                format!(
                    "{:?} is a rate; reservations need a counter or a gauge",
                    r.quota
                ),
            ));
        }
        let cap = self.grant_for(r.via.policy, r.via.permission, &r.quota, amount, now_ms)?;
        let ctx = self.spend_ctx(None, u64::MAX, now_ms);
        let q = self.quota_mut(&r.quota)?;
        let (decision, draws) = match (refusal, cap) {
            (Some(reason), _) | (None, Err(reason)) => {
                (q.refused(tz, now_ms, reason), Default::default())
            }
            (None, Ok(())) => q.spend(&ctx, amount, Use::Hold)?,
        };
        let expires_at_ms = now_ms.saturating_add(r.ttl_ms as i64);
        let outcome = if decision.allowed {
            if let Some(held) = self.grants.get_mut(&r.via.policy) {
                held.hold(amount);
            }
            self.reservations.insert(
                r.reservation_id,
                Reservation {
                    quota: r.quota.clone(),
                    amount,
                    expires_at_ms,
                    via: Added(Some(r.via)),
                    scope: Added(None),
                    draws: Added(draws),
                },
            );
            OpOutcome::Reserved {
                decision,
                reservation_id: Some(r.reservation_id),
                expires_at_ms: Some(expires_at_ms),
            }
        } else {
            OpOutcome::Reserved {
                decision,
                reservation_id: None,
                expires_at_ms: None,
            }
        };
        Ok(self.finish(
            &r.idempotency_key,
            fingerprint,
            outcome,
            now_ms,
            &[&r.quota],
        ))
    }

    /// A reservation through a grant leaves the grant's cap (settled,
    /// released or expired).
    pub(super) fn unhold_grant(&mut self, r: &Reservation) {
        if let Some(via) = *r.via
            && let Some(held) = self.grants.get_mut(&via.policy)
        {
            held.unhold(r.amount);
        }
    }

    /// Record `units` of a settled reservation through a grant: on the
    /// grant's cap and in the usage records, at the grant's terms now.
    pub(super) fn record_shared(&mut self, r: &Reservation, units: u64, now_ms: i64) {
        let tz = self.tenant.timezone;
        if units == 0 {
            return;
        }
        if let Some(via) = *r.via
            && let Some(held) = self.grants.get_mut(&via.policy)
        {
            held.record(units, tz, now_ms);
            let key = UsageKey::of(&held.grant, now_ms);
            self.shared.record(key, units);
        }
    }
}
