//! Branding and feature flag values. The features a change needs are
//! checked against the tenant's tier as it is when the change applies.
use super::TenantState;
use crate::custom::{FeatureRefused, Needs};
use crate::quota::error::QuotaError;
use crate::quota::op::{Applied, BrandingChange, FlagChange, OpOutcome};

impl TenantState {
    pub(super) fn needs(&self, needs: &Needs) -> Result<(), QuotaError> {
        if self.tenant.tier >= needs.tier {
            return Ok(());
        }
        Err(QuotaError::NotInTier(FeatureRefused {
            feature: needs.feature.clone(),
            needs: needs.tier,
            tier: self.tenant.tier,
        }))
    }

    pub(super) fn set_branding(&mut self, c: &BrandingChange) -> Result<Applied, QuotaError> {
        for n in &c.needs {
            self.needs(n)?;
        }
        self.custom.branding = c.branding.clone();
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn set_flag(&mut self, c: &FlagChange) -> Result<Applied, QuotaError> {
        let Some(value) = &c.value else {
            if self.custom.flags.remove(&c.key).is_none() {
                return Err(QuotaError::FlagNotFound {
                    tenant: self.tenant.id,
                    key: c.key.clone(),
                });
            }
            return Ok(Applied::changed(OpOutcome::Tenant));
        };
        if let Some(n) = &c.needs {
            self.needs(n)?;
        }
        if let Some(kind) = c.kind {
            value.expect("value", kind)?;
        }
        let new = !self.custom.flags.contains_key(&c.key);
        if let Some(limit) = c.limit
            && new
            && self.custom.flags.len() >= limit as usize
        {
            return Err(QuotaError::TooManyFlags {
                tenant: self.tenant.id,
                limit,
            });
        }
        self.custom.flags.insert(c.key.clone(), value.clone());
        Ok(Applied::changed(OpOutcome::Tenant))
    }
}
