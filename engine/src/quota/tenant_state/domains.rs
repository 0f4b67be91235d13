//! Custom domains: registered unverified with a token, then verified.
use super::TenantState;
use crate::model::Domain;
use crate::quota::error::QuotaError;
use crate::quota::op::{Applied, OpOutcome};

impl TenantState {
    pub(super) fn add_domain(
        &mut self,
        domain: &String,
        token: &str,
        now_ms: i64,
    ) -> Result<Applied, QuotaError> {
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
                token: token.to_string(),
                added_at_ms: now_ms,
            },
        );
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn verify_domain(&mut self, domain: &String) -> Result<Applied, QuotaError> {
        let d = self.domains.get_mut(domain).ok_or_else(|| {
            QuotaError::invalid(
                "domain",
                format!("{domain} is not registered to this tenant"),
            )
        })?;
        d.verified = true;
        Ok(Applied::changed(OpOutcome::Tenant))
    }

    pub(super) fn remove_domain(&mut self, domain: &String) -> Result<Applied, QuotaError> {
        if self.domains.remove(domain).is_none() {
            return Err(QuotaError::invalid(
                "domain",
                format!("{domain} is not registered to this tenant"),
            ));
        }
        Ok(Applied::changed(OpOutcome::Tenant))
    }
}
