//! Reservations: hold an amount now, settle it with what was used, or
//! release it; holds that expire are released by `advance`.
use super::{Reservation, TenantState};
use crate::format::Added;
use crate::model::QuotaKind;
use crate::quota::error::QuotaError;
use crate::quota::op::{Applied, OpOutcome};
use crate::quota::quota_state::Use;
use uuid::Uuid;

impl TenantState {
    pub(super) fn reserve(
        &mut self,
        quota: &String,
        amount: &u64,
        ttl_ms: &u64,
        reservation_id: &Uuid,
        idempotency_key: &Option<String>,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        self.hold(
            quota,
            *amount,
            *ttl_ms,
            reservation_id,
            idempotency_key,
            None,
            u64::MAX,
            now_ms,
        )
    }

    /// Hold `amount` of `quota` (and of `scope`'s limit within it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hold(
        &mut self,
        quota: &String,
        amount: u64,
        ttl_ms: u64,
        reservation_id: &Uuid,
        idempotency_key: &Option<String>,
        scope: Option<&str>,
        max_scopes: u64,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let tz = self.tenant.timezone;
        let fingerprint = || match scope {
            None => format!("reserve:{quota}:{amount}"),
            Some(s) => format!("reserve:{quota}:{amount}:scope={s}"),
        };
        if let Some(replay) = self.replay(idempotency_key.as_deref(), fingerprint)? {
            return Ok(replay);
        }
        if self.reservations.contains_key(reservation_id) {
            return Err(QuotaError::invalid("reservation_id", "already in use"));
        }
        let refusal = self.refusal(now_ms);
        let ctx = self.spend_ctx(scope, max_scopes, now_ms);
        let q = self.quota_mut(quota)?;
        if q.policy.kind == QuotaKind::Rate {
            return Err(QuotaError::invalid(
                "quota",
                format!("{quota:?} is a rate; reservations need a counter or a gauge"),
            ));
        }
        let (decision, draws) = match refusal {
            Some(reason) => (q.refused(tz, now_ms, reason), Default::default()),
            None => q.spend(&ctx, amount, Use::Hold)?,
        };
        let expires_at_ms = now_ms.saturating_add(ttl_ms as i64);
        let outcome = if decision.allowed {
            self.reservations.insert(
                *reservation_id,
                Reservation {
                    quota: quota.clone(),
                    amount,
                    expires_at_ms,
                    via: Default::default(),
                    scope: Added(scope.map(str::to_string)),
                    draws: Added(draws),
                },
            );
            OpOutcome::Reserved {
                decision,
                reservation_id: Some(*reservation_id),
                expires_at_ms: Some(expires_at_ms),
            }
        } else {
            OpOutcome::Reserved {
                decision,
                reservation_id: None,
                expires_at_ms: None,
            }
        };
        Ok(self.finish(idempotency_key, fingerprint, outcome, now_ms, &[quota]))
    }

    pub(super) fn settle(
        &mut self,
        reservation_id: &Uuid,
        actual: &u64,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let tz = self.tenant.timezone;
        let r = self.take_reservation(reservation_id)?;
        let q = self.quota_mut(&r.quota)?;
        let decision = q.settle(tz, now_ms, r.amount, *actual, &r.draws);
        q.release_layers(r.amount, r.scope.as_deref());
        q.charge_layers(tz, now_ms, *actual, r.scope.as_deref());
        // Through a grant: the hold leaves the cap, the use is recorded.
        self.unhold_grant(&r);
        self.record_shared(&r, *actual, now_ms);
        Ok(Applied::changed(OpOutcome::Decision(decision)))
    }

    pub(super) fn release(&mut self, reservation_id: &Uuid) -> Result<Applied, QuotaError> {
        let r = self.take_reservation(reservation_id)?;
        self.unhold_grant(&r);
        if let Some(q) = self.quotas.get_mut(&r.quota) {
            q.end_hold(r.amount, &r.draws, r.scope.as_deref());
        }
        Ok(Applied::changed(OpOutcome::Released { amount: r.amount }))
    }

    pub(super) fn take_reservation(&mut self, id: &Uuid) -> Result<Reservation, QuotaError> {
        let tenant = self.tenant.id;
        let r = self
            .reservations
            .get(id)
            .ok_or_else(|| QuotaError::ReservationNotFound {
                tenant,
                reservation: id.to_string(),
            })?;
        if !self.quotas.contains_key(&r.quota) {
            return Err(QuotaError::QuotaNotFound {
                tenant,
                quota: r.quota.clone(),
            });
        }
        Ok(self.reservations.remove(id).expect("checked above"))
    }
}
