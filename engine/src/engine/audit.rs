//! The audit chain: events recorded on their own (an access denial), and
//! pages of a tenant's chain with whether it verifies.
use super::Engine;
use crate::audit::{AuditMeta, AuditPage, AuditQuery};
use crate::cluster::{ForwardReply, ForwardRequest, forward};
use crate::error::EngineError;
use crate::model::{Consistency, TenantId};
use crate::quota::TenantOp;

impl Engine {
    /// Record an event that changes nothing else (an access denial) in the
    /// tenant's audit chain.
    pub async fn record_audit(
        &self,
        tenant: TenantId,
        by: &AuditMeta,
        action: &str,
        target: &str,
        detail: String,
    ) -> Result<(), EngineError> {
        let op = TenantOp::Audit {
            action: action.to_string(),
            target: target.to_string(),
            detail,
        };
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        Ok(())
    }

    /// A page of the tenant's audit chain (committed events), whether more
    /// follow, and whether the whole chain verifies. The chain of a purged
    /// tenant stays readable.
    pub async fn audit(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> Result<AuditPage, EngineError> {
        let req = ForwardRequest::Audit {
            tenant,
            query: query.clone(),
        };
        match self.router.dispatch_tenant(tenant, req, None, true).await? {
            ForwardReply::Audit(page) => Ok(page),
            other => Err(forward::unexpected(other)),
        }
    }
}
