//! Credit grants on a tenant's quotas: added by operators (or the
//! platform's billing system), drawn once the period allowance is spent,
//! voided with what was drawn kept.
use super::TenantState;
use crate::format::Since;
use crate::quota::error::QuotaError;
use crate::quota::op::{Applied, GrantChange, OpOutcome};

impl TenantState {
    pub(super) fn change_grant(
        &mut self,
        change: &GrantChange,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
        let tenant = self.tenant.id;
        let grant = match change {
            GrantChange::Add { quota, grant } => self.quota_mut(quota)?.add_grant(grant, now_ms)?,
            GrantChange::Void { quota, grant } => self
                .quota_mut(quota)?
                .void_grant(tenant, quota, *grant, now_ms)?,
        };
        Ok(Applied::changed(OpOutcome::CreditGrant(Since(Box::new(
            grant,
        )))))
    }
}
