//! A tenant's whole replicated state and the operations on it.
//!
//! [`TenantState::apply`] is the one function that changes a tenant: the
//! tenant actor runs it to decide, and every replica's state machine runs it
//! again on the committed entry with the same stamped time, reaching the same
//! state. It reads no clock and does no I/O.
mod admission;
mod alert_ops;
mod alerting;
mod api_keys;
mod credit;
mod custom;
mod domains;
mod lifecycle;
mod members;
mod reservations;
mod sharing;

use super::decision::Decision;
use super::error::QuotaError;
use super::idempotency::IdempotencyLog;
use super::layer_state::{Draws, SpendCtx};
use super::op::{Applied, OpOutcome, TenantOp};
use super::policy_pool::PolicyPool;
use super::quota_map::QuotaMap;
use super::quota_state::{QuotaState, Use};
use super::validate::positive_amount as valid_amount;
use crate::format::{Added, Since};
use crate::model::{
    ApiKeys, Domain, Member, NewOwner, QuotaPolicy, Role, Tenant, TenantStatus, well_known,
};
use crate::sharing::{HeldGrants, SharedUsage};
use crate::sparse::Sparse;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub quota: String,
    pub amount: u64,
    pub expires_at_ms: i64,
    /// The sharing grant it was made through, if any (format 8): its
    /// settlement is recorded for the provider.
    #[serde(default)]
    pub via: Added<8, Option<crate::sharing::Via>>,
    /// The scope value it holds on, and what its hold drew from credit
    /// grants (format 19): both are given back when it settles or ends.
    #[serde(default)]
    pub scope: Added<19, Option<String>>,
    #[serde(default)]
    pub draws: Added<19, Draws>,
}

/// Stored and replicated with postcard, which reads fields by position: a
/// field is added only with a new format version (see `crate::format`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    pub tenant: Tenant,
    pub quotas: QuotaMap,
    pub reservations: BTreeMap<Uuid, Reservation>,
    pub idempotency: IdempotencyLog,
    /// Members by user id.
    pub members: BTreeMap<String, Member>,
    /// Custom domains by name.
    pub domains: BTreeMap<String, Domain>,
    /// The latest operation time applied. A tenant's time never goes back:
    /// a new actor (after idleness or failover) continues from here even if
    /// its node's clock lags.
    pub last_at_ms: i64,
    /// API keys by id (format 4; see [`ApiKeys`]).
    #[serde(default)]
    pub api_keys: ApiKeys,
    /// The sharing grants it holds as a consumer, by policy id (format 6).
    #[serde(default)]
    pub grants: Added<6, HeldGrants>,
    /// Its cross-tenant usage, as consumer and as provider (format 7).
    #[serde(default)]
    pub shared: Added<7, Sparse<SharedUsage>>,
    /// Its branding and feature flag values (format 16).
    #[serde(default)]
    pub custom: Added<16, Sparse<crate::custom::Customization>>,
    /// Its alerts, webhook endpoints and their outbox (format 17).
    #[serde(default)]
    pub alerts: Added<17, Sparse<crate::alerts::TenantAlerts>>,
    /// Every quota in shadow mode: refusals are reported, not enforced
    /// (format 19).
    #[serde(default)]
    pub shadow: Added<19, bool>,
}

impl TenantState {
    pub fn new(tenant: Tenant, quotas: BTreeMap<String, QuotaPolicy>) -> Self {
        TenantState {
            tenant,
            quotas: quotas
                .into_iter()
                .map(|(k, p)| (k, QuotaState::new(p)))
                .collect(),
            reservations: BTreeMap::new(),
            idempotency: IdempotencyLog::default(),
            members: BTreeMap::new(),
            domains: BTreeMap::new(),
            last_at_ms: i64::MIN,
            api_keys: ApiKeys::default(),
            grants: Added::default(),
            shared: Added::default(),
            custom: Added::default(),
            alerts: Added::default(),
            shadow: Added::default(),
        }
    }

    /// A new tenant as of `now_ms`; the leader and every replica build it
    /// this same way.
    pub fn create(
        tenant: Tenant,
        quotas: BTreeMap<String, QuotaPolicy>,
        owner: Option<&NewOwner>,
        now_ms: i64,
    ) -> Self {
        let mut state = TenantState::new(tenant, quotas);
        state.advance(now_ms);
        if let Some(owner) = owner {
            // The first owner always fits: a tier allows at least one user.
            if let Some(users) = state.quotas.get_mut(well_known::USERS) {
                users.used = users.used.saturating_add(1);
            }
            state.members.insert(
                owner.user_id.clone(),
                Member {
                    user_id: owner.user_id.clone(),
                    role: Role::Owner,
                    added_at_ms: now_ms,
                    email: owner.email.clone(),
                },
            );
        }
        state
    }

    /// The tenant as a read answers it, as of `now_ms`: everything but its
    /// idempotency log (the keys and stored answers of the last hour, up
    /// to a million) and its quotas' scope meters, which no access check
    /// needs and which can be most of its size. Every REST call's access
    /// check reads its tenant.
    pub fn view(&self, now_ms: i64) -> TenantState {
        let mut view = TenantState {
            tenant: self.tenant.clone(),
            // Without scope meters (millions, for some tenants): a page of
            // them is `scopes_page`.
            quotas: self
                .quotas
                .iter()
                .map(|(name, q)| (name.to_string(), q.probe(None)))
                .collect(),
            reservations: self.reservations.clone(),
            idempotency: IdempotencyLog::default(),
            members: self.members.clone(),
            domains: self.domains.clone(),
            last_at_ms: self.last_at_ms,
            api_keys: self.api_keys.clone(),
            grants: self.grants.clone(),
            shared: self.shared.clone(),
            custom: self.custom.clone(),
            alerts: self.alerts.clone(),
            shadow: self.shadow,
        };
        view.advance(now_ms);
        view
    }

    /// Scope values of one quota with their usage as of `now_ms` (the
    /// view has none).
    pub fn scopes_page(
        &self,
        query: &crate::quota::ScopesQuery,
        now_ms: i64,
    ) -> Result<crate::quota::ScopesPage, QuotaError> {
        let tz = self.tenant.timezone;
        self.quota(&query.quota)?.scopes_page(
            self.tenant.id,
            query,
            tz,
            now_ms.max(self.last_at_ms),
        )
    }

    /// Make every quota hold `pool`'s copy of its policy.
    pub fn share_policies(&mut self, pool: &mut PolicyPool) {
        for q in self.quotas.values_mut() {
            if let Some(shared) = pool.shared(&q.policy) {
                q.policy = shared;
            }
        }
    }

    /// The role of `user_id` in this tenant, if a member.
    pub fn role_of(&self, user_id: &str) -> Option<Role> {
        self.members.get(user_id).map(|m| m.role)
    }

    /// Bring time-driven state up to `now_ms`: period resets, reservation
    /// expiry, forgotten idempotency keys.
    pub fn advance(&mut self, now_ms: i64) {
        self.last_at_ms = self.last_at_ms.max(now_ms);
        let tz = self.tenant.timezone;
        // Holds end in the order they expire, each on its quota as of its
        // expiry: a period's rollover sees the holds (and grant draws) of
        // that period whether this runs once a month or every second.
        let mut expired: Vec<(i64, Uuid)> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.expires_at_ms <= now_ms)
            .map(|(id, r)| (r.expires_at_ms, *id))
            .collect();
        expired.sort_unstable();
        for (at, id) in expired {
            if let Some(r) = self.reservations.remove(&id) {
                self.unhold_grant(&r);
                if let Some(q) = self.quotas.get_mut(&r.quota) {
                    q.roll(tz, at);
                    q.end_hold(r.amount, &r.draws, r.scope.as_deref());
                }
            }
        }
        for q in self.quotas.values_mut() {
            q.roll(tz, now_ms);
            q.sweep_scopes(now_ms);
        }
        self.idempotency.expire(now_ms);
    }

    /// Why this tenant may not spend anything now, if it may not.
    pub fn refusal(&self, now_ms: i64) -> Option<String> {
        let t = &self.tenant;
        if !t.status.admits() {
            return Some(format!("tenant is {}", t.status.as_str().to_lowercase()));
        }
        if t.status == TenantStatus::Trial && t.trial_ends_at_ms.is_some_and(|end| now_ms >= end) {
            return Some("tenant trial has expired".to_string());
        }
        None
    }

    fn quota_mut(&mut self, quota: &str) -> Result<&mut QuotaState, QuotaError> {
        let tenant = self.tenant.id;
        self.quotas
            .get_mut(quota)
            .ok_or_else(|| QuotaError::QuotaNotFound {
                tenant,
                quota: quota.to_string(),
            })
    }

    pub fn quota(&self, quota: &str) -> Result<&QuotaState, QuotaError> {
        self.quotas
            .get(quota)
            .ok_or_else(|| QuotaError::QuotaNotFound {
                tenant: self.tenant.id,
                quota: quota.to_string(),
            })
    }

    /// Decision only, as of `now_ms`, on every level a spend in `scope`
    /// would meet; changes nothing.
    pub fn check(
        &self,
        quota: &str,
        amount: i64,
        scope: Option<&str>,
        now_ms: i64,
    ) -> Result<Decision, QuotaError> {
        let q = self.quota(quota)?;
        let amount = positive_amount(amount)?;
        let tz = self.tenant.timezone;
        let mut probe = q.probe(scope);
        probe.roll(tz, now_ms);
        // Holds that have expired by now no longer count.
        for r in self
            .reservations
            .values()
            .filter(|r| r.quota == quota && r.expires_at_ms <= now_ms)
        {
            probe.end_hold(r.amount, &r.draws, r.scope.as_deref());
        }
        if let Some(reason) = self.refusal(now_ms) {
            return Ok(probe.refused(tz, now_ms, reason));
        }
        // Report usage as it stands, not as it would be after the amount.
        let (usage, remaining) = (probe.usage(now_ms), probe.remaining(now_ms));
        // The cap on live scopes is the tier's, which the state does not
        // hold: a check reports the limits, a spend meets the cap.
        let ctx = self.spend_ctx(scope, u64::MAX, now_ms);
        let (mut d, _) = probe.spend(&ctx, amount, Use::Consume)?;
        d.thresholds_crossed.clear();
        d.usage = usage;
        d.remaining = remaining;
        Ok(d)
    }

    /// Scope values live across the tenant's quotas (what the tier caps).
    pub(super) fn live_scopes(&self) -> u64 {
        self.quotas
            .values()
            .fold(0u64, |n, q| n.saturating_add(q.live_scopes() as u64))
    }

    /// What a spend at `now_ms` in `scope` needs to know of the tenant.
    pub(super) fn spend_ctx<'a>(
        &self,
        scope: Option<&'a str>,
        max_scopes: u64,
        now_ms: i64,
    ) -> SpendCtx<'a> {
        let live = if scope.is_some() {
            self.live_scopes()
        } else {
            0
        };
        SpendCtx {
            tenant: self.tenant.id,
            tz: self.tenant.timezone,
            now_ms,
            scope,
            new_scope_fits: live < max_scopes,
            max_scopes,
            tenant_shadow: *self.shadow,
        }
    }

    /// Apply `op` at `now_ms`. On error nothing has changed. Each concern
    /// has its file: `admission` (spends), `reservations`, `lifecycle`
    /// (descriptive fields, tier, quotas, deletion), `members`, `domains`.
    pub fn apply(&mut self, op: &TenantOp, now_ms: i64) -> Result<Applied, QuotaError> {
        self.advance(now_ms);
        match op {
            TenantOp::Create { tenant, .. } => Err(QuotaError::TenantExists { tenant: tenant.id }),
            TenantOp::Update(u) => self.update(u, now_ms),
            TenantOp::ChangeTier { tier, defaults } => self.change_tier(tier, defaults, now_ms),
            TenantOp::SetQuota { quota, policy } => self.set_quota(quota, policy, now_ms),
            TenantOp::PatchQuota(Since(p)) => self.patch_quota(&p.quota, &p.patch, now_ms),
            TenantOp::Delete { retention_ms } => self.delete(retention_ms, now_ms),
            TenantOp::Restore => self.restore(now_ms),
            TenantOp::Purge => self.purge(now_ms),
            TenantOp::Audit { .. } => Ok(Applied::changed(OpOutcome::Tenant)),
            TenantOp::Increment {
                quota,
                amount,
                idempotency_key,
            } => self.increment(quota, amount, idempotency_key, now_ms),
            TenantOp::IncrementAll(Since(all)) => self.increment_all(all, now_ms),
            TenantOp::Reserve {
                quota,
                amount,
                ttl_ms,
                reservation_id,
                idempotency_key,
            } => self.reserve(
                quota,
                amount,
                ttl_ms,
                reservation_id,
                idempotency_key,
                now_ms,
            ),
            TenantOp::Settle {
                reservation_id,
                actual,
            } => self.settle(reservation_id, actual, now_ms),
            TenantOp::Release { reservation_id } => self.release(reservation_id),
            TenantOp::AddMember { user_id, role } => self.add_member(user_id, role, now_ms),
            TenantOp::RemoveMember { user_id } => self.remove_member(user_id, now_ms),
            TenantOp::ChangeRole { user_id, role } => self.change_role(user_id, role),
            TenantOp::AddDomain { domain, token } => self.add_domain(domain, token, now_ms),
            TenantOp::VerifyDomain { domain } => self.verify_domain(domain),
            TenantOp::RemoveDomain { domain } => self.remove_domain(domain),
            TenantOp::CreateApiKey(Since(k)) => self.create_api_key(k, now_ms),
            TenantOp::RotateApiKey(Since(r)) => self.rotate_api_key(r, now_ms),
            TenantOp::RevokeApiKey(Since(id)) => self.revoke_api_key(id),
            TenantOp::HoldGrant(Since(g)) => self.hold_grant(g, now_ms),
            TenantOp::SharedUse(Since(u)) => self.shared_use(u, now_ms),
            TenantOp::SealTransfer(Since(provider)) => Ok(self.seal_transfer(*provider)),
            TenantOp::ReceiveUsage(Since(r)) => self.receive_usage(r),
            TenantOp::AckTransfer(Since((provider, seq))) => Ok(self.ack_transfer(*provider, *seq)),
            TenantOp::SharedReserve(Since(r)) => self.shared_reserve(r, now_ms),
            TenantOp::BillSubscriptions(_) => Ok(self.bill_subscriptions(now_ms)),
            TenantOp::SetBranding(Since(b)) => self.set_branding(b),
            TenantOp::SetFlag(Since(f)) => self.set_flag(f),
            TenantOp::Webhook(Since(c)) => self.change_webhook(c, now_ms),
            TenantOp::Alerts(Since(a)) => self.alert_op(a, now_ms),
            TenantOp::SetApiSettings(Since(c)) => {
                self.needs(&c.1)?;
                *self.custom.api = c.0.clone();
                Ok(Applied::changed(OpOutcome::Tenant))
            }
            TenantOp::SetSso(Since(c)) => {
                if c.0.is_some() {
                    self.needs(&c.1)?;
                }
                *self.custom.sso = c.0.clone();
                Ok(Applied::changed(OpOutcome::Tenant))
            }
            TenantOp::Spend(Since(s)) => self.scoped_spend(s, now_ms),
            TenantOp::CreditGrant(Since(g)) => self.change_grant(g, now_ms),
            TenantOp::SetShadow(Since(on)) => {
                *self.shadow = *on;
                Ok(Applied::changed(OpOutcome::Tenant))
            }
            TenantOp::ClosePeriod(Since((period, at_ms))) => Ok(Applied {
                outcome: OpOutcome::Tenant,
                changed: self.shared.close(*period, *at_ms),
            }),
        }
    }
}

fn positive_amount(amount: i64) -> Result<u64, QuotaError> {
    valid_amount("amount", amount)
}
