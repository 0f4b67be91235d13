//! Spending: increments, all-or-nothing spends, and the idempotency keys
//! that make a retried spend answer what the first one did.
use super::TenantState;
use crate::format::Since;
use crate::model::QuotaKind;
use crate::quota::all_or_nothing::{self, AllOrNothing};
use crate::quota::error::QuotaError;
use crate::quota::idempotency::MAX_KEYS;
use crate::quota::op::{Applied, OpOutcome, ScopedSpend};
use crate::quota::quota_state::Use;

impl TenantState {
    pub(super) fn increment(
        &mut self,
        quota: &String,
        amount: &i64,
        idempotency_key: &Option<String>,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        self.spend_one(quota, *amount, None, u64::MAX, idempotency_key, now_ms)
    }

    /// A spend that names a scope: an increment, or with `hold` a
    /// reservation.
    pub(super) fn scoped_spend(
        &mut self,
        s: &ScopedSpend,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let cap = s.cap(self.tenant.tier);
        match s.hold {
            None => self.spend_one(
                &s.quota,
                s.amount,
                Some(&s.scope),
                cap,
                &s.idempotency_key,
                now_ms,
            ),
            Some((ttl_ms, id)) => self.hold(
                &s.quota,
                u64::try_from(s.amount).unwrap_or(0),
                ttl_ms,
                &id,
                &s.idempotency_key,
                Some(&s.scope),
                cap,
                now_ms,
            ),
        }
    }

    /// Spend `amount` on `quota` (and on `scope`'s limit within it), or
    /// lower a gauge by a negative amount.
    fn spend_one(
        &mut self,
        quota: &String,
        amount: i64,
        scope: Option<&str>,
        max_scopes: u64,
        idempotency_key: &Option<String>,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let tz = self.tenant.timezone;
        let fingerprint = || match scope {
            None => format!("increment:{quota}:{amount}"),
            Some(s) => format!("increment:{quota}:{amount}:scope={s}"),
        };
        if let Some(replay) = self.replay(idempotency_key.as_deref(), fingerprint)? {
            return Ok(replay);
        }
        let refusal = self.refusal(now_ms);
        let ctx = self.spend_ctx(scope, max_scopes, now_ms);
        let q = self.quota_mut(quota)?;
        let decision = if let Some(reason) = refusal {
            q.refused(tz, now_ms, reason)
        } else if amount < 0 {
            if q.policy.kind != QuotaKind::Gauge {
                return Err(QuotaError::invalid(
                    "amount",
                    "must be positive (only gauges go down)",
                ));
            }
            let down = amount.unsigned_abs();
            if down > q.used {
                return Err(QuotaError::GaugeUnderflow {
                    quota: quota.clone(),
                    level: q.used,
                    amount: down,
                });
            }
            q.lower(tz, now_ms, down)
        } else {
            q.spend(&ctx, super::positive_amount(amount)?, Use::Consume)?
                .0
        };
        Ok(self.finish(
            idempotency_key,
            fingerprint,
            OpOutcome::Decision(decision),
            now_ms,
            &[quota],
        ))
    }

    pub(super) fn increment_all(
        &mut self,
        all: &AllOrNothing,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let fingerprint = || all.fingerprint();
        if let Some(replay) = self.replay(all.idempotency_key.as_deref(), fingerprint)? {
            return Ok(replay);
        }
        let scoped = all.spends.iter().any(|s| s.scope.is_some());
        let max_scopes = all.max_scopes.map_or(u64::MAX, |m| {
            super::super::op::tier_cap(&m, self.tenant.tier)
        });
        let live_scopes = if scoped { self.live_scopes() } else { 0 };
        let spender = all_or_nothing::Spender {
            tenant: self.tenant.id,
            tz: self.tenant.timezone,
            refusal: self.refusal(now_ms),
            live_scopes,
            max_scopes,
            shadow: *self.shadow,
            quotas: &mut self.quotas,
        };
        let decided = all_or_nothing::decide(spender, all, now_ms)?;
        let quotas: Vec<&str> = all.spends.iter().map(|s| s.quota.as_str()).collect();
        Ok(self.finish(
            &all.idempotency_key,
            fingerprint,
            OpOutcome::AllDecided(Since(decided)),
            now_ms,
            &quotas,
        ))
    }

    /// The stored answer for `key`, if any. The fingerprint (what the
    /// request was) is only built when there is a key.
    pub(super) fn replay(
        &self,
        key: Option<&str>,
        fingerprint: impl Fn() -> String,
    ) -> Result<Option<Applied>, QuotaError> {
        let Some(key) = key else { return Ok(None) };
        match self.idempotency.get(key) {
            None if self.idempotency.len() >= MAX_KEYS => Err(QuotaError::TooManyIdempotencyKeys {
                tenant: self.tenant.id,
                limit: MAX_KEYS,
            }),
            None => Ok(None),
            Some(r) if r.fingerprint == fingerprint() => Ok(Some(Applied {
                outcome: r.outcome.clone().replayed(),
                changed: false,
            })),
            Some(_) => Err(QuotaError::IdempotencyKeyReused {
                key: key.to_string(),
            }),
        }
    }

    /// Remember the answer under its idempotency key, and raise the
    /// alerts its decisions call for (`quotas`: the quota of each decision,
    /// in order). A decision that raised an alert changed the tenant.
    pub(super) fn finish(
        &mut self,
        key: &Option<String>,
        fingerprint: impl Fn() -> String,
        outcome: OpOutcome,
        now_ms: i64,
        quotas: &[&str],
    ) -> Applied {
        let mut alerted = false;
        match &outcome {
            OpOutcome::Decision(d) | OpOutcome::Reserved { decision: d, .. } => {
                if let Some(q) = quotas.first() {
                    alerted = self.alert_on(q, d, now_ms);
                }
            }
            OpOutcome::AllDecided(all) => {
                for (q, d) in quotas.iter().zip(&all.0.decisions) {
                    if let Some(d) = d {
                        alerted |= self.alert_on(q, d, now_ms);
                    }
                }
            }
            _ => {}
        }
        let admitted = alerted
            || match &outcome {
                OpOutcome::Decision(d) | OpOutcome::Reserved { decision: d, .. } => {
                    d.allowed || !d.thresholds_crossed.is_empty()
                }
                OpOutcome::AllDecided(all) => all.0.changed(),
                _ => true,
            };
        match key {
            Some(key) => {
                self.idempotency
                    .remember(key.clone(), fingerprint(), outcome.clone(), now_ms);
                Applied::changed(outcome)
            }
            None => Applied {
                outcome,
                changed: admitted,
            },
        }
    }
}
