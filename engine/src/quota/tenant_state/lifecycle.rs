//! A tenant's descriptive fields, tier, quota policies and deletion.
use super::TenantState;
use crate::model::{Deletion, QuotaPolicy, TenantStatus, Tier};
use crate::quota::error::QuotaError;
use crate::quota::op::{Applied, OpOutcome, TenantUpdate};
use crate::quota::policy_patch::PolicyPatch;
use crate::quota::quota_state::QuotaState;
use std::collections::BTreeMap;

impl TenantState {
    pub(super) fn update(&mut self, u: &TenantUpdate, now_ms: i64) -> Result<Applied, QuotaError> {
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
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn change_tier(
        &mut self,
        tier: &Tier,
        defaults: &BTreeMap<String, QuotaPolicy>,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let tz = self.tenant.timezone;
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
                Some(q) if q.policy.overridden || (q.policy.kind != policy.kind && q.in_use()) => {}
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
        Ok(Applied::changed(OpOutcome::TierChanged { over_limit }))
    }

    pub(super) fn set_quota(
        &mut self,
        quota: &String,
        policy: &QuotaPolicy,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let tz = self.tenant.timezone;
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
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn delete(
        &mut self,
        retention_ms: &i64,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
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
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn restore(&mut self, now_ms: i64) -> Result<Applied, QuotaError> {
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
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn purge(&mut self, now_ms: i64) -> Result<Applied, QuotaError> {
        match self.tenant.deleted {
            Some(d) if now_ms >= d.purge_after_ms => Ok(Applied::changed(OpOutcome::Tenant)),
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
        }
    }

    /// Resolve the patch against the quota's policy and the tenant's tier
    /// as they are now, then set it.
    pub(super) fn patch_quota(
        &mut self,
        quota: &String,
        patch: &PolicyPatch,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let existing = self.quotas.get(quota).map(|q| &*q.policy);
        let policy = patch.resolve(quota, existing, self.tenant.tier)?;
        self.set_quota(quota, &policy, now_ms)
    }
}
