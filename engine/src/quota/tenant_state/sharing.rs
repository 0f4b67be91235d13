//! The sharing grants a tenant holds as a consumer (see `crate::sharing`).
use super::TenantState;
use crate::quota::error::QuotaError;
use crate::quota::op::{Applied, OpOutcome};
use crate::sharing::{Grant, HeldGrant};

impl TenantState {
    /// Hold `grant` as the catalog decided it. A grant already held takes
    /// the new terms and keeps its use; another grant for the same policy
    /// (an ended one, kept to explain refusals) is replaced.
    pub(super) fn hold_grant(&mut self, grant: &Grant) -> Result<Applied, QuotaError> {
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
        Ok(Applied::changed(OpOutcome::Tenant))
    }
}
