//! A tenant's whole replicated state and the operations on it.
//!
//! [`TenantState::apply`] is the one function that changes a tenant: the
//! tenant actor runs it to decide, and every replica's state machine runs it
//! again on the committed entry with the same stamped time, reaching the same
//! state. It reads no clock and does no I/O.
use super::all_or_nothing::{self, AllDecided, AllOrNothing};
use super::decision::Decision;
use super::error::QuotaError;
use super::idempotency::{IdempotencyLog, MAX_KEYS};
use super::quota_map::QuotaMap;
use super::quota_state::{QuotaState, Use};
use super::validate::positive_amount as valid_amount;
use crate::format::Since;
use crate::model::{
    Deletion, Domain, Member, NewOwner, QuotaKind, QuotaPolicy, Role, Tenant, TenantStatus, Tier,
    well_known,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub quota: String,
    pub amount: u64,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    pub tenant: Tenant,
    pub quotas: QuotaMap,
    pub reservations: BTreeMap<Uuid, Reservation>,
    pub idempotency: IdempotencyLog,
    /// Members by user id.
    #[serde(default)]
    pub members: BTreeMap<String, Member>,
    /// Custom domains by name.
    #[serde(default)]
    pub domains: BTreeMap<String, Domain>,
    /// The latest operation time applied. A tenant's time never goes back:
    /// a new actor (after idleness or failover) continues from here even if
    /// its node's clock lags.
    #[serde(default)]
    pub last_at_ms: i64,
}

/// Changes to the descriptive fields of a tenant; `None` leaves a field as is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUpdate {
    pub name: Option<String>,
    pub timezone: Option<Tz>,
    pub status: Option<TenantStatus>,
    pub trial_ends_at_ms: Option<Option<i64>>,
    pub settings_json: Option<String>,
}

/// Every change to a tenant. Ids (reservation ids) are chosen by the leader
/// and carried here, so replicas need no randomness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantOp {
    Create {
        tenant: Tenant,
        quotas: BTreeMap<String, QuotaPolicy>,
        /// The first owner (counts against the `users` quota).
        owner: Option<NewOwner>,
    },
    Update(TenantUpdate),
    /// Move to `tier`; `defaults` are that tier's quotas from the catalog.
    ChangeTier {
        tier: Tier,
        defaults: BTreeMap<String, QuotaPolicy>,
    },
    SetQuota {
        quota: String,
        policy: QuotaPolicy,
    },
    Increment {
        quota: String,
        amount: i64,
        idempotency_key: Option<String>,
    },
    Reserve {
        quota: String,
        amount: u64,
        ttl_ms: u64,
        reservation_id: Uuid,
        idempotency_key: Option<String>,
    },
    Settle {
        reservation_id: Uuid,
        actual: u64,
    },
    Release {
        reservation_id: Uuid,
    },
    AddMember {
        user_id: String,
        role: Role,
    },
    RemoveMember {
        user_id: String,
    },
    ChangeRole {
        user_id: String,
        role: Role,
    },
    /// Register a custom domain (unverified), with its verification token.
    AddDomain {
        domain: String,
        token: String,
    },
    VerifyDomain {
        domain: String,
    },
    RemoveDomain {
        domain: String,
    },
    /// Soft delete: refuse everything until restored or purged.
    Delete {
        retention_ms: i64,
    },
    Restore,
    /// Remove the tenant's state for good (after its retention).
    Purge,
    /// Record an event that changes nothing else (an access denial).
    Audit {
        action: String,
        target: String,
        detail: String,
    },
    /// Spend on several quotas as one decision: all or nothing (format 2).
    IncrementAll(Since<2, AllOrNothing>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpOutcome {
    /// Tenant created or changed.
    Tenant,
    /// Tier changed; quotas whose current usage is above their new limit.
    TierChanged {
        over_limit: Vec<String>,
    },
    Decision(Decision),
    Reserved {
        decision: Decision,
        reservation_id: Option<Uuid>,
        expires_at_ms: Option<i64>,
    },
    Released {
        amount: u64,
    },
    /// The answer to [`TenantOp::IncrementAll`] (format 2).
    AllDecided(Since<2, AllDecided>),
}

impl OpOutcome {
    /// An answer stored for an idempotency key, not a new decision.
    pub fn is_replay(&self) -> bool {
        match self {
            OpOutcome::Decision(d) | OpOutcome::Reserved { decision: d, .. } => d.replayed,
            OpOutcome::AllDecided(all) => all.0.decisions.iter().flatten().any(|d| d.replayed),
            _ => false,
        }
    }

    fn replayed(mut self) -> Self {
        match &mut self {
            OpOutcome::Decision(d) | OpOutcome::Reserved { decision: d, .. } => d.replayed = true,
            OpOutcome::AllDecided(all) => all.0.mark_replayed(),
            _ => {}
        }
        self
    }
}

/// What applying an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub outcome: OpOutcome,
    /// False when nothing persistent changed (a denial without an
    /// idempotency key, a replay): such operations need no log entry,
    /// because time-driven changes (period resets, expiries) happen the same
    /// way at the next logged operation.
    pub changed: bool,
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

    /// The role of `user_id` in this tenant, if a member.
    pub fn role_of(&self, user_id: &str) -> Option<Role> {
        self.members.get(user_id).map(|m| m.role)
    }

    fn owners(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Owner)
            .count()
    }

    /// Bring time-driven state up to `now_ms`: period resets, reservation
    /// expiry, forgotten idempotency keys.
    pub fn advance(&mut self, now_ms: i64) {
        self.last_at_ms = self.last_at_ms.max(now_ms);
        let tz = self.tenant.timezone;
        for q in self.quotas.values_mut() {
            q.roll(tz, now_ms);
        }
        let expired: Vec<Uuid> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.expires_at_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(r) = self.reservations.remove(&id)
                && let Some(q) = self.quotas.get_mut(&r.quota)
            {
                q.release(r.amount);
            }
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

    /// Decision only, as of `now_ms`; changes nothing.
    pub fn check(&self, quota: &str, amount: i64, now_ms: i64) -> Result<Decision, QuotaError> {
        let q = self.quota(quota)?;
        let amount = positive_amount(amount)?;
        let mut probe = q.clone();
        probe.roll(self.tenant.timezone, now_ms);
        // Holds that have expired by now no longer count.
        let expired: u64 = self
            .reservations
            .values()
            .filter(|r| r.quota == quota && r.expires_at_ms <= now_ms)
            .fold(0u64, |sum, r| sum.saturating_add(r.amount));
        probe.release(expired);
        if let Some(reason) = self.refusal(now_ms) {
            return Ok(refused(&probe, self.tenant.timezone, now_ms, reason));
        }
        // Report usage as it stands, not as it would be after the amount.
        let (usage, remaining) = (probe.usage(now_ms), probe.remaining(now_ms));
        let mut d = probe.admit(self.tenant.timezone, now_ms, amount, Use::Consume);
        d.thresholds_crossed.clear();
        d.usage = usage;
        d.remaining = remaining;
        Ok(d)
    }

    /// Apply `op` at `now_ms`. On error nothing has changed.
    pub fn apply(&mut self, op: &TenantOp, now_ms: i64) -> Result<Applied, QuotaError> {
        self.advance(now_ms);
        let tz = self.tenant.timezone;
        match op {
            TenantOp::Create { tenant, .. } => Err(QuotaError::TenantExists { tenant: tenant.id }),
            TenantOp::Update(u) => {
                if u.status.is_some() && self.tenant.deleted.is_some() {
                    return Err(QuotaError::invalid(
                        "status",
                        "the tenant is deleted: restore it first (POST /restore)",
                    ));
                }
                let t = &mut self.tenant;
                if let Some(name) = &u.name {
                    t.name = name.clone();
                }
                if let Some(tz) = u.timezone {
                    t.timezone = tz;
                    for q in self.quotas.values_mut() {
                        q.rebase_window(tz, now_ms);
                    }
                }
                if let Some(status) = u.status {
                    t.status = status;
                }
                if let Some(trial) = u.trial_ends_at_ms {
                    t.trial_ends_at_ms = trial;
                }
                if let Some(settings) = &u.settings_json {
                    t.settings_json = settings.clone();
                }
                t.updated_at_ms = now_ms;
                // A new timezone moves period boundaries.
                self.advance(now_ms);
                Ok(changed(OpOutcome::Tenant))
            }
            TenantOp::ChangeTier { tier, defaults } => {
                self.tenant.tier = *tier;
                // Choosing a tier ends a trial: the tenant is now on it.
                if self.tenant.status == TenantStatus::Trial {
                    self.tenant.status = TenantStatus::Active;
                    self.tenant.trial_ends_at_ms = None;
                }
                self.tenant.updated_at_ms = now_ms;
                let mut over_limit = Vec::new();
                for (name, policy) in defaults {
                    match self.quotas.get_mut(name) {
                        // Explicit settings stay; so does a quota in use whose
                        // kind the new tier would change (that would reset it).
                        Some(q)
                            if q.policy.overridden
                                || (q.policy.kind != policy.kind && q.in_use()) => {}
                        Some(q) => {
                            q.set_policy(policy.clone());
                            q.rebase_window(tz, now_ms);
                        }
                        None => {
                            self.quotas
                                .insert(name.clone(), QuotaState::new(policy.clone()));
                        }
                    }
                }
                for (name, q) in &self.quotas {
                    if q.policy.limit.is_some_and(|l| q.usage(now_ms) > l) {
                        over_limit.push(name.to_string());
                    }
                }
                self.advance(now_ms);
                Ok(changed(OpOutcome::TierChanged { over_limit }))
            }
            TenantOp::SetQuota { quota, policy } => {
                if let Some(q) = self.quotas.get(quota)
                    && q.policy.kind != policy.kind
                    && q.in_use()
                {
                    return Err(QuotaError::invalid(
                        "kind",
                        format!(
                            "{quota:?} is a {} in use; its kind can change only while nothing is used or held",
                            format!("{:?}", q.policy.kind).to_lowercase()
                        ),
                    ));
                }
                match self.quotas.get_mut(quota) {
                    Some(q) => {
                        q.set_policy(policy.clone());
                        q.rebase_window(tz, now_ms);
                    }
                    None => {
                        self.quotas
                            .insert(quota.clone(), QuotaState::new(policy.clone()));
                    }
                }
                self.tenant.updated_at_ms = now_ms;
                self.advance(now_ms);
                Ok(changed(OpOutcome::Tenant))
            }
            TenantOp::Increment {
                quota,
                amount,
                idempotency_key,
            } => {
                let fingerprint = || format!("increment:{quota}:{amount}");
                if let Some(replay) = self.replay(idempotency_key.as_deref(), fingerprint)? {
                    return Ok(replay);
                }
                let refusal = self.refusal(now_ms);
                let q = self.quota_mut(quota)?;
                let decision = if let Some(reason) = refusal {
                    refused(q, tz, now_ms, reason)
                } else if *amount < 0 {
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
                    q.admit(tz, now_ms, positive_amount(*amount)?, Use::Consume)
                };
                Ok(self.finish(
                    idempotency_key,
                    fingerprint,
                    OpOutcome::Decision(decision),
                    now_ms,
                ))
            }
            TenantOp::IncrementAll(Since(all)) => {
                let fingerprint = || all.fingerprint();
                if let Some(replay) = self.replay(all.idempotency_key.as_deref(), fingerprint)? {
                    return Ok(replay);
                }
                let decided = all_or_nothing::decide(self, all, now_ms)?;
                Ok(self.finish(
                    &all.idempotency_key,
                    fingerprint,
                    OpOutcome::AllDecided(Since(decided)),
                    now_ms,
                ))
            }
            TenantOp::Reserve {
                quota,
                amount,
                ttl_ms,
                reservation_id,
                idempotency_key,
            } => {
                let fingerprint = || format!("reserve:{quota}:{amount}");
                if let Some(replay) = self.replay(idempotency_key.as_deref(), fingerprint)? {
                    return Ok(replay);
                }
                if self.reservations.contains_key(reservation_id) {
                    return Err(QuotaError::invalid("reservation_id", "already in use"));
                }
                let refusal = self.refusal(now_ms);
                let q = self.quota_mut(quota)?;
                if q.policy.kind == QuotaKind::Rate {
                    return Err(QuotaError::invalid(
                        "quota",
                        format!("{quota:?} is a rate; reservations need a counter or a gauge"),
                    ));
                }
                let decision = match refusal {
                    Some(reason) => refused(q, tz, now_ms, reason),
                    None => q.admit(tz, now_ms, *amount, Use::Hold),
                };
                let expires_at_ms = now_ms.saturating_add(*ttl_ms as i64);
                let outcome = if decision.allowed {
                    self.reservations.insert(
                        *reservation_id,
                        Reservation {
                            quota: quota.clone(),
                            amount: *amount,
                            expires_at_ms,
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
                Ok(self.finish(idempotency_key, fingerprint, outcome, now_ms))
            }
            TenantOp::Settle {
                reservation_id,
                actual,
            } => {
                let r = self.take_reservation(reservation_id)?;
                let q = self.quota_mut(&r.quota)?;
                let decision = q.settle(tz, now_ms, r.amount, *actual);
                Ok(changed(OpOutcome::Decision(decision)))
            }
            TenantOp::Release { reservation_id } => {
                let r = self.take_reservation(reservation_id)?;
                if let Some(q) = self.quotas.get_mut(&r.quota) {
                    q.release(r.amount);
                }
                Ok(changed(OpOutcome::Released { amount: r.amount }))
            }
            TenantOp::Audit { .. } => Ok(changed(OpOutcome::Tenant)),
            TenantOp::AddDomain { domain, token } => {
                if self.domains.contains_key(domain) {
                    return Err(QuotaError::invalid(
                        "domain",
                        format!("{domain} is already registered"),
                    ));
                }
                self.domains.insert(
                    domain.clone(),
                    Domain {
                        name: domain.clone(),
                        verified: false,
                        token: token.clone(),
                        added_at_ms: now_ms,
                    },
                );
                Ok(changed(OpOutcome::Tenant))
            }
            TenantOp::VerifyDomain { domain } => {
                let d = self.domains.get_mut(domain).ok_or_else(|| {
                    QuotaError::invalid(
                        "domain",
                        format!("{domain} is not registered to this tenant"),
                    )
                })?;
                d.verified = true;
                Ok(changed(OpOutcome::Tenant))
            }
            TenantOp::RemoveDomain { domain } => {
                if self.domains.remove(domain).is_none() {
                    return Err(QuotaError::invalid(
                        "domain",
                        format!("{domain} is not registered to this tenant"),
                    ));
                }
                Ok(changed(OpOutcome::Tenant))
            }
            TenantOp::Delete { retention_ms } => {
                let t = &mut self.tenant;
                if t.deleted.is_some() {
                    return Err(QuotaError::invalid(
                        "status",
                        "the tenant is already deleted",
                    ));
                }
                t.deleted = Some(Deletion {
                    at_ms: now_ms,
                    purge_after_ms: now_ms.saturating_add(*retention_ms),
                    previous_status: t.status,
                });
                t.status = TenantStatus::Deleted;
                t.updated_at_ms = now_ms;
                Ok(changed(OpOutcome::Tenant))
            }
            TenantOp::Restore => {
                let t = &mut self.tenant;
                let Some(d) = t.deleted else {
                    return Err(QuotaError::invalid("status", "the tenant is not deleted"));
                };
                if now_ms >= d.purge_after_ms {
                    return Err(QuotaError::invalid(
                        "status",
                        "the retention has ended; the tenant is being purged",
                    ));
                }
                t.deleted = None;
                t.status = d.previous_status;
                t.updated_at_ms = now_ms;
                Ok(changed(OpOutcome::Tenant))
            }
            TenantOp::Purge => match self.tenant.deleted {
                Some(d) if now_ms >= d.purge_after_ms => Ok(changed(OpOutcome::Tenant)),
                Some(d) => Err(QuotaError::invalid(
                    "status",
                    format!(
                        "the tenant's retention runs until {} (Unix ms)",
                        d.purge_after_ms
                    ),
                )),
                None => Err(QuotaError::invalid(
                    "status",
                    "only a deleted tenant can be purged",
                )),
            },
            TenantOp::AddMember { user_id, role } => {
                if self.members.contains_key(user_id) {
                    return Err(QuotaError::MemberExists {
                        tenant: self.tenant.id,
                        user: user_id.clone(),
                    });
                }
                if let Some(users) = self.quotas.get_mut(well_known::USERS) {
                    let d = users.admit(tz, now_ms, 1, Use::Consume);
                    if !d.allowed {
                        return Err(QuotaError::QuotaExceeded {
                            quota: well_known::USERS.to_string(),
                            limit: d.limit.unwrap_or_default(),
                        });
                    }
                }
                self.members.insert(
                    user_id.clone(),
                    Member {
                        user_id: user_id.clone(),
                        role: *role,
                        added_at_ms: now_ms,
                        email: None,
                    },
                );
                Ok(changed(OpOutcome::Tenant))
            }
            TenantOp::RemoveMember { user_id } => {
                let role = self.member_role(user_id)?;
                if role == Role::Owner && self.owners() == 1 {
                    return Err(QuotaError::LastOwner {
                        tenant: self.tenant.id,
                    });
                }
                self.members.remove(user_id);
                if let Some(users) = self.quotas.get_mut(well_known::USERS) {
                    let level = users.used;
                    users.lower(tz, now_ms, level.min(1));
                }
                Ok(changed(OpOutcome::Tenant))
            }
            TenantOp::ChangeRole { user_id, role } => {
                let current = self.member_role(user_id)?;
                if current == Role::Owner && *role != Role::Owner && self.owners() == 1 {
                    return Err(QuotaError::LastOwner {
                        tenant: self.tenant.id,
                    });
                }
                if let Some(m) = self.members.get_mut(user_id) {
                    m.role = *role;
                }
                Ok(changed(OpOutcome::Tenant))
            }
        }
    }

    fn member_role(&self, user_id: &str) -> Result<Role, QuotaError> {
        self.role_of(user_id)
            .ok_or_else(|| QuotaError::MemberNotFound {
                tenant: self.tenant.id,
                user: user_id.to_string(),
            })
    }

    fn take_reservation(&mut self, id: &Uuid) -> Result<Reservation, QuotaError> {
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

    /// The stored answer for `key`, if any. The fingerprint (what the
    /// request was) is only built when there is a key.
    fn replay(
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

    fn finish(
        &mut self,
        key: &Option<String>,
        fingerprint: impl Fn() -> String,
        outcome: OpOutcome,
        now_ms: i64,
    ) -> Applied {
        let admitted = match &outcome {
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
                changed(outcome)
            }
            None => Applied {
                outcome,
                changed: admitted,
            },
        }
    }
}

fn changed(outcome: OpOutcome) -> Applied {
    Applied {
        outcome,
        changed: true,
    }
}

pub(super) fn refused(q: &QuotaState, tz: Tz, now_ms: i64, reason: String) -> Decision {
    Decision {
        usage: q.usage(now_ms),
        limit: q.policy.limit,
        soft_limit: q.policy.soft_limit,
        remaining: q.remaining(now_ms),
        reset_at_ms: q.reset_at_ms(tz, now_ms),
        ..Decision::denied(reason)
    }
}

fn positive_amount(amount: i64) -> Result<u64, QuotaError> {
    valid_amount("amount", amount)
}
