//! The quota model beyond one limit as a service: credit grants added and
//! voided by operators (or the platform's billing system), shadow mode for
//! a whole tenant, and pages of a quota's live scope values.
use super::Engine;
use crate::audit::AuditMeta;
use crate::cluster::forward;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::{Consistency, TenantId};
use crate::quota::{
    CreditGrant, GrantChange, NewCreditGrant, OpOutcome, ScopesPage, ScopesQuery, TenantOp,
};
use crate::shard::{TenantAnswer, TenantCall};

impl Engine {
    /// Add a credit grant to `quota` (a counter). With an idempotency key,
    /// asking again with the same fields answers the same grant.
    pub async fn add_grant(
        &self,
        tenant: TenantId,
        quota: &str,
        grant: NewCreditGrant,
        by: &AuditMeta,
    ) -> Result<CreditGrant, EngineError> {
        let op = TenantOp::CreditGrant(Since(Box::new(GrantChange::Add {
            quota: quota.to_string(),
            grant,
        })));
        self.grant_op(tenant, op, by).await
    }

    /// Void grant `seq` of `quota`: nothing more is drawn from it; what
    /// was drawn stays drawn. Voiding a voided grant answers it again.
    pub async fn void_grant(
        &self,
        tenant: TenantId,
        quota: &str,
        seq: u32,
        by: &AuditMeta,
    ) -> Result<CreditGrant, EngineError> {
        let op = TenantOp::CreditGrant(Since(Box::new(GrantChange::Void {
            quota: quota.to_string(),
            grant: seq,
        })));
        self.grant_op(tenant, op, by).await
    }

    async fn grant_op(
        &self,
        tenant: TenantId,
        op: TenantOp,
        by: &AuditMeta,
    ) -> Result<CreditGrant, EngineError> {
        op.validate_admin()?;
        match self
            .apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?
        {
            OpOutcome::CreditGrant(Since(g)) => Ok(*g),
            other => Err(EngineError::Unexpected {
                answer: format!("{other:?} to a credit grant change"),
            }),
        }
    }

    /// Put the whole tenant in shadow mode (or take it out): every refusal
    /// is reported as `shadow_denied` and admitted.
    pub async fn set_shadow(
        &self,
        tenant: TenantId,
        on: bool,
        by: &AuditMeta,
    ) -> Result<crate::quota::TenantState, EngineError> {
        self.admin(tenant, TenantOp::SetShadow(Since(on)), by).await
    }

    /// Scope values of a quota with their usage: one named value, or a
    /// page of the live ones, highest usage first.
    pub async fn scopes(
        &self,
        tenant: TenantId,
        query: ScopesQuery,
    ) -> Result<ScopesPage, EngineError> {
        match self
            .router
            .call_tenant(tenant, TenantCall::Scopes(Since(query)))
            .await?
        {
            TenantAnswer::Scopes(Since(page)) => Ok(page),
            other => Err(forward::unexpected(other)),
        }
    }
}
