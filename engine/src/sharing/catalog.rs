//! The deployment's sharing catalog: every policy, access request and grant,
//! held by the meta group so that the rules that span tenants are decided
//! in one place, exactly once (at most `maxConsumers` grants however many
//! requests race, one pending request per consumer and policy).
//!
//! The hot path does not read it: an approved grant is also copied into the
//! consumer's tenant state (see [`HeldGrant`]), where the consumer's actor
//! checks it. [`SharingCatalog::apply`] is deterministic: ids and times come
//! in the operation, chosen by the node that asked.
use super::error::SharingError;
use super::policy::{
    Approval, Permission, PolicySpec, Pricing, ResourceType, UsageCap, Visibility,
};
use crate::format::{Added, Since};
use crate::model::{TenantId, Tier};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A published policy: the provider's spec with its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub id: Uuid,
    pub provider: TenantId,
    pub spec: PolicySpec,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
}

impl RequestState {
    pub const ALL: [RequestState; 3] = [
        RequestState::Pending,
        RequestState::Approved,
        RequestState::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
        }
    }
}

/// A consumer's request for access to a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: Uuid,
    pub policy: Uuid,
    pub provider: TenantId,
    pub consumer: TenantId,
    pub justification: String,
    /// What the consumer asked for (the policy's permissions if it named none).
    pub permissions: BTreeSet<Permission>,
    pub state: RequestState,
    /// Why it was denied, or the provider's note on an approval.
    pub reason: Option<String>,
    pub grant: Option<Uuid>,
    pub requested_at_ms: i64,
    pub decided_at_ms: Option<i64>,
    /// Who decided: `automatic`, or the provider's user.
    pub decided_by: Option<String>,
}

/// How a grant ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEnd {
    pub at_ms: i64,
    pub reason: String,
    /// The tenant that ended it (`None`: the policy's own change or expiry).
    pub by: Option<TenantId>,
}

/// A consumer's access to a provider's resource, with the terms in force:
/// the catalog's record, and (as [`HeldGrant`]) the consumer's copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: Uuid,
    pub policy: Uuid,
    pub provider: TenantId,
    pub consumer: TenantId,
    pub resource_type: ResourceType,
    pub resource_id: String,
    pub permissions: BTreeSet<Permission>,
    /// The policy's expiry: the grant ends then.
    pub expires_at_ms: Option<i64>,
    pub cap: Option<UsageCap>,
    pub pricing: Pricing,
    pub platform_fee_bp: u32,
    /// The consumer's tier when granted (conditions are checked against it
    /// when the policy changes).
    pub consumer_tier: Tier,
    pub created_at_ms: i64,
    pub ended: Option<GrantEnd>,
    /// The zone its usage is placed in statement months by (UTC when
    /// none): the platform's setting when it was made (format 13).
    #[serde(default)]
    pub statement_zone: Added<13, Option<chrono_tz::Tz>>,
    /// Why its provider may not share now (suspended, deleted, trial over):
    /// it admits nothing until the provider may again (format 14).
    #[serde(default)]
    pub paused: Added<14, Option<String>>,
}

impl Grant {
    /// The zone of its statement months.
    pub fn zone(&self) -> chrono_tz::Tz {
        self.statement_zone.unwrap_or(chrono_tz::UTC)
    }

    /// Admits use at `now_ms`: not ended, not expired.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.ended.is_none() && self.expires_at_ms.is_none_or(|at| now_ms < at)
    }

    /// Admits use at `now_ms`: active, and its provider may share.
    pub fn admits(&self, now_ms: i64) -> bool {
        self.is_active(now_ms) && self.paused.is_none()
    }

    /// Why it admits nothing at `now_ms`, if it does not.
    pub fn inactive_reason(&self, now_ms: i64) -> Option<String> {
        if let Some(end) = &self.ended {
            return Some(format!("the grant was ended: {}", end.reason));
        }
        if self.expires_at_ms.is_some_and(|at| now_ms >= at) {
            return Some("the grant has expired".into());
        }
        if let Some(why) = self.paused.as_ref() {
            return Some(format!("the provider may not share now: {why}"));
        }
        None
    }

    /// Take the terms of `policy` (as changed), keeping what the consumer
    /// asked for within what the policy now offers.
    fn follow(&mut self, policy: &Policy) {
        let spec = &policy.spec;
        self.resource_type = spec.resource_type.clone();
        self.resource_id = spec.resource_id.clone();
        self.permissions = self
            .permissions
            .intersection(&spec.permissions)
            .copied()
            .collect();
        self.expires_at_ms = spec.conditions.expires_at_ms;
        self.cap = spec.conditions.usage_cap;
        self.pricing = spec.pricing.clone();
        self.platform_fee_bp = spec.revenue_share.platform_fee_bp;
    }
}

/// Changes to the catalog. Ids and times are the asking node's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SharingOp {
    /// A new policy. `max_policies`: the provider's tier limit.
    Publish {
        policy: Policy,
        max_policies: Option<u32>,
    },
    /// Replace a policy's spec: grants follow the new terms, and those the
    /// new conditions no longer admit end.
    Replace {
        id: Uuid,
        provider: TenantId,
        spec: PolicySpec,
        at_ms: i64,
    },
    /// Delete a policy: its grants end, its pending requests are denied.
    Withdraw {
        id: Uuid,
        provider: TenantId,
        at_ms: i64,
    },
    /// A consumer asks for access; approved at once (making grant `grant`)
    /// when the policy is automatic and every condition holds.
    Request {
        request: AccessRequest,
        grant: Uuid,
        consumer_tier: Tier,
    },
    /// The provider approves or denies a pending request; conditions are
    /// checked again on approval.
    Decide {
        request: Uuid,
        provider: TenantId,
        approve: bool,
        reason: Option<String>,
        by: String,
        consumer_tier: Tier,
        grant: Uuid,
        at_ms: i64,
    },
    /// End a grant, by its provider or its consumer.
    Revoke {
        grant: Uuid,
        by: TenantId,
        reason: String,
        at_ms: i64,
    },
    /// The tenant is gone: its policies are withdrawn, the grants it holds
    /// or gave end, its pending requests are denied.
    TenantGone { tenant: TenantId, at_ms: i64 },
    /// Close a past statement period (format 10).
    ClosePeriod(Since<10, ClosePeriod>),
    /// Bring back archived policies, requests, grants and closed periods
    /// (a restore): what the catalog lacks is added, nothing is replaced
    /// (format 11).
    Restore(Since<11, Box<SharingCatalog>>),
    /// The zone of statement months for grants made from now on (format 13).
    SetStatementZone(Since<13, chrono_tz::Tz>),
    /// Pause (with the reason) or resume the grants `provider` gave, as it
    /// may or may not share (format 14).
    ProviderStanding(Since<14, ProviderStanding>),
}

/// What [`SharingOp::ProviderStanding`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStanding {
    pub provider: TenantId,
    /// Why it may not share; `None`: it may again.
    pub paused: Option<String>,
}

/// What [`SharingOp::ClosePeriod`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosePeriod {
    pub period: super::period::PeriodKey,
    pub at_ms: i64,
}

/// What applying a [`SharingOp`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SharingReply {
    Policy(Policy),
    /// A changed or withdrawn policy (`None` when withdrawn), with the
    /// grants that ended and those that now hold new terms: both must reach
    /// their consumers' copies.
    Changed {
        policy: Option<Policy>,
        ended: Vec<Grant>,
        updated: Vec<Grant>,
    },
    Request {
        request: AccessRequest,
        grant: Option<Grant>,
    },
    /// Grants that ended.
    Ended(Vec<Grant>),
    /// The period is closed, since then (format 10).
    Closed(Since<10, (super::period::PeriodKey, i64)>),
    Refused(SharingError),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharingCatalog {
    pub policies: BTreeMap<Uuid, Policy>,
    pub requests: BTreeMap<Uuid, AccessRequest>,
    pub grants: BTreeMap<Uuid, Grant>,
    /// Statement periods the platform closed, and when (format 10).
    #[serde(default)]
    pub closed: Added<10, BTreeMap<super::period::PeriodKey, i64>>,
    /// The zone of statement months for grants made from now on (UTC
    /// when none; format 13).
    #[serde(default)]
    pub statement_zone: Added<13, Option<chrono_tz::Tz>>,
}

/// What a caller may know of a policy it is not the provider of.
pub fn visible_to(policy: &Policy, tenant: TenantId) -> bool {
    if policy.provider == tenant {
        return true;
    }
    let c = &policy.spec.conditions;
    match policy.spec.visibility {
        Visibility::Private => false,
        Visibility::Tenant => c.allowed_tenants.contains(&tenant),
        Visibility::Marketplace | Visibility::Public => true,
    }
}

fn not_found(policy: Uuid) -> SharingError {
    SharingError::not_found(format!("sharing policy {policy} not found"))
}

impl SharingCatalog {
    pub fn apply(&mut self, op: &SharingOp) -> SharingReply {
        let answer = match op {
            SharingOp::Publish {
                policy,
                max_policies,
            } => self.publish(policy, *max_policies),
            SharingOp::Replace {
                id,
                provider,
                spec,
                at_ms,
            } => self.replace(*id, *provider, spec, *at_ms),
            SharingOp::Withdraw {
                id,
                provider,
                at_ms,
            } => self.withdraw(*id, *provider, *at_ms),
            SharingOp::Request {
                request,
                grant,
                consumer_tier,
            } => self.request(request, *grant, *consumer_tier),
            SharingOp::Decide {
                request,
                provider,
                approve,
                reason,
                by,
                consumer_tier,
                grant,
                at_ms,
            } => self.decide(
                *request,
                *provider,
                *approve,
                reason,
                by,
                *consumer_tier,
                *grant,
                *at_ms,
            ),
            SharingOp::Revoke {
                grant,
                by,
                reason,
                at_ms,
            } => self.revoke(*grant, *by, reason, *at_ms),
            SharingOp::TenantGone { tenant, at_ms } => Ok(self.tenant_gone(*tenant, *at_ms)),
            SharingOp::ClosePeriod(Since(c)) => self.close_period(c.period, c.at_ms),
            SharingOp::Restore(Since(archived)) => Ok(self.restore(archived)),
            SharingOp::ProviderStanding(Since(s)) => {
                let mut changed = Vec::new();
                for g in self.grants.values_mut() {
                    if g.provider == s.provider && g.ended.is_none() && *g.paused != s.paused {
                        g.paused = Added(s.paused.clone());
                        changed.push(g.clone());
                    }
                }
                Ok(SharingReply::Ended(changed))
            }
            SharingOp::SetStatementZone(Since(zone)) => {
                self.statement_zone = Added((*zone != chrono_tz::UTC).then_some(*zone));
                Ok(SharingReply::Ended(Vec::new()))
            }
        };
        answer.unwrap_or_else(SharingReply::Refused)
    }

    /// The policies `provider` publishes.
    pub fn policies_of(&self, provider: TenantId) -> impl Iterator<Item = &Policy> {
        self.policies
            .values()
            .filter(move |p| p.provider == provider)
    }

    /// Grants of `policy` that admit use at `now_ms`.
    pub fn active_grants(&self, policy: Uuid, now_ms: i64) -> usize {
        self.grants
            .values()
            .filter(|g| g.policy == policy && g.is_active(now_ms))
            .count()
    }

    fn publish(
        &mut self,
        policy: &Policy,
        max_policies: Option<u32>,
    ) -> Result<SharingReply, SharingError> {
        if self.policies.contains_key(&policy.id) {
            // The same operation again (a retried write): the same answer.
            return match self.policies.get(&policy.id) {
                Some(p) if p == policy => Ok(SharingReply::Policy(p.clone())),
                _ => Err(SharingError::conflict(Some("id"), "policy id already used")),
            };
        }
        if let Some(max) = max_policies {
            let held = self.policies_of(policy.provider).count();
            if held >= max as usize {
                return Err(SharingError::conflict(
                    None,
                    format!(
                        "the tenant's tier allows {max} sharing policies and it publishes {held}; \
                         delete one or move to a higher tier"
                    ),
                ));
            }
        }
        self.policies.insert(policy.id, policy.clone());
        Ok(SharingReply::Policy(policy.clone()))
    }

    fn owned(&self, id: Uuid, provider: TenantId) -> Result<&Policy, SharingError> {
        self.policies
            .get(&id)
            .filter(|p| p.provider == provider)
            .ok_or_else(|| not_found(id))
    }

    fn replace(
        &mut self,
        id: Uuid,
        provider: TenantId,
        spec: &PolicySpec,
        at_ms: i64,
    ) -> Result<SharingReply, SharingError> {
        self.owned(id, provider)?;
        let policy = self.policies.get_mut(&id).expect("checked above");
        policy.spec = spec.clone();
        policy.updated_at_ms = at_ms;
        let policy = policy.clone();
        let (mut ended, mut updated) = (Vec::new(), Vec::new());
        for g in self.grants.values_mut() {
            if g.policy != id || g.ended.is_some() {
                continue;
            }
            g.follow(&policy);
            match refusal(&policy, g.consumer, g.consumer_tier, at_ms) {
                Some(why) => {
                    g.ended = Some(GrantEnd {
                        at_ms,
                        reason: format!("the policy changed: {}", why.reason),
                        by: None,
                    });
                    ended.push(g.clone());
                }
                None if g.permissions.is_empty() => {
                    g.ended = Some(GrantEnd {
                        at_ms,
                        reason: "the policy changed: it no longer offers any permission the \
                                 grant held"
                            .into(),
                        by: None,
                    });
                    ended.push(g.clone());
                }
                None => updated.push(g.clone()),
            }
        }
        // Pending requests are decided against the new conditions.
        Ok(SharingReply::Changed {
            policy: Some(policy),
            ended,
            updated,
        })
    }

    fn withdraw(
        &mut self,
        id: Uuid,
        provider: TenantId,
        at_ms: i64,
    ) -> Result<SharingReply, SharingError> {
        self.owned(id, provider)?;
        self.policies.remove(&id);
        let ended = self.end_where(|g| g.policy == id, "the policy was deleted", None, at_ms);
        self.deny_pending(|r| r.policy == id, "the policy was deleted", at_ms);
        Ok(SharingReply::Changed {
            policy: None,
            ended,
            updated: Vec::new(),
        })
    }

    fn request(
        &mut self,
        request: &AccessRequest,
        grant: Uuid,
        consumer_tier: Tier,
    ) -> Result<SharingReply, SharingError> {
        if let Some(r) = self.requests.get(&request.id) {
            // A retried write: answer what it did.
            let grant = r.grant.and_then(|g| self.grants.get(&g)).cloned();
            return Ok(SharingReply::Request {
                request: r.clone(),
                grant,
            });
        }
        let policy = self
            .policies
            .get(&request.policy)
            .filter(|p| visible_to(p, request.consumer))
            .ok_or_else(|| not_found(request.policy))?
            .clone();
        if policy.provider == request.consumer {
            return Err(SharingError::invalid(
                "policyId",
                "a tenant cannot request access to its own policy",
            ));
        }
        if !request.permissions.is_subset(&policy.spec.permissions) {
            return Err(SharingError::invalid(
                "permissions",
                "asks for a permission the policy does not offer",
            ));
        }
        let c = &policy.spec.conditions;
        if c.justification_required && request.justification.trim().is_empty() {
            return Err(SharingError::invalid(
                "justification",
                "this policy requires a justification",
            ));
        }
        let consumer = request.consumer;
        if self.requests.values().any(|r| {
            r.policy == policy.id && r.consumer == consumer && r.state == RequestState::Pending
        }) {
            return Err(SharingError::conflict(
                Some("policyId"),
                "a request from this tenant is already pending for this policy",
            ));
        }
        if self.holds(policy.id, consumer, request.requested_at_ms) {
            return Err(SharingError::conflict(
                Some("policyId"),
                "this tenant already holds an active grant for this policy",
            ));
        }
        let at_ms = request.requested_at_ms;
        if let Some(why) = refusal(&policy, consumer, consumer_tier, at_ms) {
            return Err(why);
        }
        let mut request = request.clone();
        request.provider = policy.provider;
        request.state = RequestState::Pending;
        request.grant = None;
        let made = if c.approval == Approval::Automatic {
            self.full(&policy, at_ms)?;
            request.state = RequestState::Approved;
            request.decided_at_ms = Some(at_ms);
            request.decided_by = Some("automatic".into());
            Some(self.make_grant(&policy, &request, grant, consumer_tier, at_ms))
        } else {
            None
        };
        request.grant = made.as_ref().map(|g| g.id);
        self.requests.insert(request.id, request.clone());
        Ok(SharingReply::Request {
            request,
            grant: made,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn decide(
        &mut self,
        id: Uuid,
        provider: TenantId,
        approve: bool,
        reason: &Option<String>,
        by: &str,
        consumer_tier: Tier,
        grant: Uuid,
        at_ms: i64,
    ) -> Result<SharingReply, SharingError> {
        let request = self
            .requests
            .get(&id)
            .filter(|r| r.provider == provider)
            .ok_or_else(|| SharingError::not_found(format!("access request {id} not found")))?
            .clone();
        if request.state != RequestState::Pending {
            let same = (request.state == RequestState::Approved) == approve;
            if same && request.decided_by.as_deref() == Some(by) {
                // A retried write.
                let grant = request.grant.and_then(|g| self.grants.get(&g)).cloned();
                return Ok(SharingReply::Request { request, grant });
            }
            return Err(SharingError::conflict(
                Some("requestId"),
                format!("the request was already {}", request.state.as_str()),
            ));
        }
        let policy = self
            .policies
            .get(&request.policy)
            .ok_or_else(|| not_found(request.policy))?
            .clone();
        let mut request = request;
        request.decided_at_ms = Some(at_ms);
        request.decided_by = Some(by.to_string());
        request.reason = reason.clone();
        let made = if approve {
            if let Some(why) = refusal(&policy, request.consumer, consumer_tier, at_ms) {
                return Err(why);
            }
            if self.holds(policy.id, request.consumer, at_ms) {
                return Err(SharingError::conflict(
                    Some("requestId"),
                    "the consumer already holds an active grant for this policy",
                ));
            }
            self.full(&policy, at_ms)?;
            request.state = RequestState::Approved;
            let g = self.make_grant(&policy, &request, grant, consumer_tier, at_ms);
            request.grant = Some(g.id);
            Some(g)
        } else {
            request.state = RequestState::Denied;
            None
        };
        self.requests.insert(id, request.clone());
        Ok(SharingReply::Request {
            request,
            grant: made,
        })
    }

    fn revoke(
        &mut self,
        id: Uuid,
        by: TenantId,
        reason: &str,
        at_ms: i64,
    ) -> Result<SharingReply, SharingError> {
        let g = self
            .grants
            .get_mut(&id)
            .filter(|g| g.provider == by || g.consumer == by)
            .ok_or_else(|| SharingError::not_found(format!("grant {id} not found")))?;
        if g.ended.is_none() {
            g.ended = Some(GrantEnd {
                at_ms,
                reason: reason.to_string(),
                by: Some(by),
            });
        }
        Ok(SharingReply::Ended(vec![g.clone()]))
    }

    fn tenant_gone(&mut self, tenant: TenantId, at_ms: i64) -> SharingReply {
        self.policies.retain(|_, p| p.provider != tenant);
        let ended = self.end_where(
            |g| g.provider == tenant || g.consumer == tenant,
            "the provider or the consumer was deleted",
            None,
            at_ms,
        );
        self.deny_pending(
            |r| r.provider == tenant || r.consumer == tenant,
            "the provider or the consumer was deleted",
            at_ms,
        );
        SharingReply::Ended(ended)
    }

    fn close_period(
        &mut self,
        period: super::period::PeriodKey,
        at_ms: i64,
    ) -> Result<SharingReply, SharingError> {
        // Ended in UTC and in the zone of grants made now.
        let zone = self.statement_zone.unwrap_or(chrono_tz::UTC);
        let current = super::period::period_of(at_ms).min(super::period::period_in(at_ms, zone));
        if period >= current {
            return Err(SharingError::conflict(
                Some("period"),
                format!(
                    "{} has not ended yet; only a past month can be closed",
                    super::period::period_text(period)
                ),
            ));
        }
        let at = *self.closed.entry(period).or_insert(at_ms);
        Ok(SharingReply::Closed(Since((period, at))))
    }

    fn restore(&mut self, archived: &SharingCatalog) -> SharingReply {
        for (id, p) in &archived.policies {
            self.policies.entry(*id).or_insert_with(|| p.clone());
        }
        for (id, r) in &archived.requests {
            self.requests.entry(*id).or_insert_with(|| r.clone());
        }
        for (id, g) in &archived.grants {
            self.grants.entry(*id).or_insert_with(|| g.clone());
        }
        for (period, at) in archived.closed.iter() {
            self.closed.entry(*period).or_insert(*at);
        }
        if self.statement_zone.is_none() {
            self.statement_zone = archived.statement_zone;
        }
        SharingReply::Ended(Vec::new())
    }

    /// The part of the catalog about `tenants` only: policies they
    /// provide, requests and grants between two of them.
    pub fn only(&self, tenants: &std::collections::HashSet<TenantId>) -> SharingCatalog {
        SharingCatalog {
            policies: self
                .policies
                .iter()
                .filter(|(_, p)| tenants.contains(&p.provider))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            requests: self
                .requests
                .iter()
                .filter(|(_, r)| tenants.contains(&r.provider) && tenants.contains(&r.consumer))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            grants: self
                .grants
                .iter()
                .filter(|(_, g)| tenants.contains(&g.provider) && tenants.contains(&g.consumer))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            closed: self.closed.clone(),
            statement_zone: self.statement_zone,
        }
    }

    fn holds(&self, policy: Uuid, consumer: TenantId, now_ms: i64) -> bool {
        self.grants
            .values()
            .any(|g| g.policy == policy && g.consumer == consumer && g.is_active(now_ms))
    }

    /// Refuses a new grant when the policy has its `maxConsumers`.
    fn full(&self, policy: &Policy, now_ms: i64) -> Result<(), SharingError> {
        match policy.spec.conditions.max_consumers {
            Some(max) if self.active_grants(policy.id, now_ms) >= max as usize => {
                Err(SharingError::conflict(
                    Some("conditions.maxConsumers"),
                    format!("the policy already has its {max} consumers"),
                ))
            }
            _ => Ok(()),
        }
    }

    fn make_grant(
        &mut self,
        policy: &Policy,
        request: &AccessRequest,
        id: Uuid,
        consumer_tier: Tier,
        at_ms: i64,
    ) -> Grant {
        let spec = &policy.spec;
        let g = Grant {
            id,
            policy: policy.id,
            provider: policy.provider,
            consumer: request.consumer,
            resource_type: spec.resource_type.clone(),
            resource_id: spec.resource_id.clone(),
            permissions: request.permissions.clone(),
            expires_at_ms: spec.conditions.expires_at_ms,
            cap: spec.conditions.usage_cap,
            pricing: spec.pricing.clone(),
            platform_fee_bp: spec.revenue_share.platform_fee_bp,
            consumer_tier,
            created_at_ms: at_ms,
            ended: None,
            statement_zone: self.statement_zone,
            paused: Added(None),
        };
        self.grants.insert(id, g.clone());
        g
    }

    fn end_where(
        &mut self,
        which: impl Fn(&Grant) -> bool,
        reason: &str,
        by: Option<TenantId>,
        at_ms: i64,
    ) -> Vec<Grant> {
        let mut ended = Vec::new();
        for g in self.grants.values_mut() {
            if g.ended.is_none() && which(g) {
                g.ended = Some(GrantEnd {
                    at_ms,
                    reason: reason.to_string(),
                    by,
                });
                ended.push(g.clone());
            }
        }
        ended
    }

    fn deny_pending(&mut self, which: impl Fn(&AccessRequest) -> bool, reason: &str, at_ms: i64) {
        for r in self.requests.values_mut() {
            if r.state == RequestState::Pending && which(r) {
                r.state = RequestState::Denied;
                r.reason = Some(reason.to_string());
                r.decided_at_ms = Some(at_ms);
                r.decided_by = Some("automatic".into());
            }
        }
    }
}

/// Why `policy`'s conditions refuse `consumer` (of `tier`) at `now_ms`.
/// Visibility is the caller's to check first: a tenant that may not see a
/// policy is told it does not exist.
pub fn refusal(
    policy: &Policy,
    consumer: TenantId,
    tier: Tier,
    now_ms: i64,
) -> Option<SharingError> {
    let c = &policy.spec.conditions;
    if policy.spec.visibility == Visibility::Private {
        return Some(SharingError::forbidden(
            "visibility",
            "the policy is private to its provider",
        ));
    }
    if c.denied_tenants.contains(&consumer) {
        return Some(SharingError::forbidden(
            "conditions.deniedTenants",
            "the policy denies this tenant",
        ));
    }
    if !c.allowed_tenants.is_empty() && !c.allowed_tenants.contains(&consumer) {
        return Some(SharingError::forbidden(
            "conditions.allowedTenants",
            "the policy admits only the tenants it names",
        ));
    }
    if let Some(min) = c.min_consumer_tier
        && tier < min
    {
        return Some(SharingError::forbidden(
            "conditions.minConsumerTier",
            format!("the policy needs a consumer of tier {min} or above; this tenant is {tier}"),
        ));
    }
    if c.expires_at_ms.is_some_and(|at| now_ms >= at) {
        return Some(SharingError::forbidden(
            "conditions.expiresAt",
            "the policy has expired",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_code::ErrorCode;
    use crate::sharing::{Amount, Conditions, Currency, RevenueShare};

    const PROVIDER: Uuid = Uuid::from_u128(0xa);

    fn consumer(n: u128) -> TenantId {
        Uuid::from_u128(0x100 + n)
    }

    fn spec(conditions: Conditions) -> PolicySpec {
        PolicySpec {
            resource_id: "model-7".into(),
            resource_type: ResourceType::model(),
            visibility: Visibility::Marketplace,
            permissions: [Permission::Read, Permission::Execute].into(),
            pricing: Pricing::UsageBased {
                price: Amount::parse("0.001").unwrap(),
                currency: Currency::parse("USD").unwrap(),
                unit_quota: "api_requests".into(),
            },
            revenue_share: RevenueShare {
                platform_fee_bp: 1_500,
                provider_share_bp: 8_500,
            },
            conditions,
        }
    }

    fn published(conditions: Conditions) -> (SharingCatalog, Uuid) {
        let mut c = SharingCatalog::default();
        let policy = Policy {
            id: Uuid::from_u128(1),
            provider: PROVIDER,
            spec: spec(conditions),
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        let r = c.apply(&SharingOp::Publish {
            policy,
            max_policies: None,
        });
        assert!(matches!(r, SharingReply::Policy(_)), "{r:?}");
        (c, Uuid::from_u128(1))
    }

    fn ask(
        c: &mut SharingCatalog,
        policy: Uuid,
        who: TenantId,
        tier: Tier,
        n: u128,
    ) -> SharingReply {
        c.apply(&SharingOp::Request {
            request: AccessRequest {
                id: Uuid::from_u128(0x1000 + n),
                policy,
                provider: PROVIDER,
                consumer: who,
                justification: "pipeline".into(),
                permissions: [Permission::Execute].into(),
                state: RequestState::Pending,
                reason: None,
                grant: None,
                requested_at_ms: 10 + n as i64,
                decided_at_ms: None,
                decided_by: None,
            },
            grant: Uuid::from_u128(0x2000 + n),
            consumer_tier: tier,
        })
    }

    fn refused(r: SharingReply) -> (ErrorCode, Option<String>) {
        match r {
            SharingReply::Refused(e) => (e.code, e.field),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn automatic_approval_stops_at_max_consumers_however_many_ask() {
        let (mut c, p) = published(Conditions {
            max_consumers: Some(10),
            approval: Approval::Automatic,
            ..Conditions::default()
        });
        let mut granted = 0;
        for n in 0..40 {
            match ask(&mut c, p, consumer(n), Tier::Starter, n) {
                SharingReply::Request {
                    request,
                    grant: Some(g),
                } => {
                    assert_eq!(request.state, RequestState::Approved);
                    assert_eq!(g.permissions, [Permission::Execute].into());
                    granted += 1;
                }
                r => assert_eq!(
                    refused(r),
                    (
                        ErrorCode::FailedPrecondition,
                        Some("conditions.maxConsumers".into())
                    )
                ),
            }
        }
        assert_eq!(granted, 10);
        assert_eq!(c.active_grants(p, 100), 10);
        // A revocation frees a place.
        let first = *c.grants.keys().next().unwrap();
        let gone = c.apply(&SharingOp::Revoke {
            grant: first,
            by: PROVIDER,
            reason: "abuse".into(),
            at_ms: 200,
        });
        assert!(matches!(gone, SharingReply::Ended(ref g) if g[0].ended.is_some()));
        assert!(matches!(
            ask(&mut c, p, consumer(99), Tier::Starter, 99),
            SharingReply::Request { grant: Some(_), .. }
        ));
    }

    #[test]
    fn conditions_visibility_and_duplicates_refuse_with_their_field() {
        let denied = consumer(1);
        let (mut c, p) = published(Conditions {
            denied_tenants: [denied].into(),
            min_consumer_tier: Some(Tier::Professional),
            justification_required: true,
            ..Conditions::default()
        });
        let field = |r| refused(r).1.unwrap();
        assert_eq!(
            refused(ask(&mut c, p, consumer(2), Tier::Free, 1)),
            (
                ErrorCode::PermissionDenied,
                Some("conditions.minConsumerTier".into())
            )
        );
        assert_eq!(
            field(ask(&mut c, p, denied, Tier::Enterprise, 2)),
            "conditions.deniedTenants"
        );
        assert_eq!(
            refused(ask(&mut c, p, PROVIDER, Tier::Enterprise, 3)),
            (ErrorCode::InvalidArgument, Some("policyId".into()))
        );
        let unknown = Uuid::from_u128(77);
        assert_eq!(
            refused(ask(&mut c, unknown, consumer(3), Tier::Enterprise, 4)).0,
            ErrorCode::NotFound
        );
        // Pending (approval by request), then a second request conflicts.
        let r = ask(&mut c, p, consumer(3), Tier::Enterprise, 5);
        assert!(matches!(
            r,
            SharingReply::Request { ref request, grant: None } if request.state == RequestState::Pending
        ));
        assert_eq!(
            refused(ask(&mut c, p, consumer(3), Tier::Enterprise, 6)),
            (ErrorCode::FailedPrecondition, Some("policyId".into()))
        );
        // The same request again (a retried write) answers the same.
        assert_eq!(ask(&mut c, p, consumer(3), Tier::Enterprise, 5), r);

        // Private and tenant-visible policies do not exist for others.
        let mut private = c.policies[&p].clone();
        private.id = Uuid::from_u128(2);
        private.spec.visibility = Visibility::Private;
        c.apply(&SharingOp::Publish {
            policy: private,
            max_policies: None,
        });
        assert_eq!(
            refused(ask(
                &mut c,
                Uuid::from_u128(2),
                consumer(3),
                Tier::Enterprise,
                7
            ))
            .0,
            ErrorCode::NotFound
        );
        // The tier's limit on policies.
        let mut third = c.policies[&p].clone();
        third.id = Uuid::from_u128(3);
        assert_eq!(
            refused(c.apply(&SharingOp::Publish {
                policy: third,
                max_policies: Some(2),
            }))
            .0,
            ErrorCode::FailedPrecondition
        );
    }

    #[test]
    fn approval_checks_conditions_again_and_a_changed_policy_ends_grants_it_no_longer_admits() {
        let (mut c, p) = published(Conditions::default());
        let (a, b) = (consumer(1), consumer(2));
        for (n, who) in [(1, a), (2, b)] {
            ask(&mut c, p, who, Tier::Starter, n);
        }
        let decide = |c: &mut SharingCatalog, n: u128, tier, approve| {
            c.apply(&SharingOp::Decide {
                request: Uuid::from_u128(0x1000 + n),
                provider: PROVIDER,
                approve,
                reason: Some("ok".into()),
                by: "owner-1".into(),
                consumer_tier: tier,
                grant: Uuid::from_u128(0x3000 + n),
                at_ms: 50,
            })
        };
        assert!(matches!(
            decide(&mut c, 1, Tier::Starter, true),
            SharingReply::Request { grant: Some(_), .. }
        ));
        assert!(matches!(
            decide(&mut c, 2, Tier::Starter, false),
            SharingReply::Request { ref request, grant: None } if request.state == RequestState::Denied
        ));
        assert_eq!(
            refused(decide(&mut c, 2, Tier::Starter, true)),
            (ErrorCode::FailedPrecondition, Some("requestId".into()))
        );
        // Deny `a` from now on, and change the price: its grant ends; a new
        // consumer's grant takes the new price.
        ask(&mut c, p, consumer(3), Tier::Starter, 3);
        decide(&mut c, 3, Tier::Starter, true);
        let mut changed = spec(Conditions {
            denied_tenants: [a].into(),
            ..Conditions::default()
        });
        changed.pricing = Pricing::UsageBased {
            price: Amount::parse("0.002").unwrap(),
            currency: Currency::parse("USD").unwrap(),
            unit_quota: "api_requests".into(),
        };
        let SharingReply::Changed { ended, updated, .. } = c.apply(&SharingOp::Replace {
            id: p,
            provider: PROVIDER,
            spec: changed.clone(),
            at_ms: 60,
        }) else {
            panic!("not changed")
        };
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].consumer, a);
        assert!(ended[0].ended.as_ref().unwrap().reason.contains("denies"));
        assert_eq!(updated.len(), 1);
        assert_eq!(updated[0].pricing, changed.pricing);
        // Only the provider changes or deletes it.
        assert_eq!(
            refused(c.apply(&SharingOp::Withdraw {
                id: p,
                provider: a,
                at_ms: 70,
            }))
            .0,
            ErrorCode::NotFound
        );
        let SharingReply::Changed { ended, policy, .. } = c.apply(&SharingOp::Withdraw {
            id: p,
            provider: PROVIDER,
            at_ms: 70,
        }) else {
            panic!("not withdrawn")
        };
        assert!(policy.is_none());
        assert_eq!(ended.len(), 1, "the remaining grant ends");
        assert_eq!(c.active_grants(p, 80), 0);
    }
}
