//! Cross-tenant sharing, as calls: a provider publishes, changes and
//! deletes policies; a consumer asks for access; the provider decides;
//! either ends a grant. The meta group's catalog decides each step (see
//! `crate::sharing::catalog`); this file then brings the consumers' copies
//! of their grants in line and records the audit events on both tenants.
use super::Engine;
use crate::alerts::AlertType;
use crate::audit::AuditMeta;
use crate::error::EngineError;
use crate::format::Since;
use crate::model::{Consistency, TenantId};
use crate::quota::TenantOp;
use crate::raft::{Command, CommandResponse, MetaOp, MetaState};
use crate::sharing::{
    AccessRequest, Grant, Permission, Policy, PolicySpec, RequestState, SharingCatalog,
    SharingError, SharingOp, SharingReply,
};
use std::collections::BTreeSet;
use uuid::Uuid;

/// What a decided request answers: the request, and its grant if approved.
pub type Decided = (AccessRequest, Option<Grant>);

impl Engine {
    /// Read this node's copy of the sharing catalog.
    pub fn with_catalog<R>(&self, f: impl FnOnce(&SharingCatalog) -> R) -> R {
        let state = self.router.meta.state.read();
        match state {
            Ok(s) => f(&s.sharing),
            Err(poisoned) => f(&poisoned.into_inner().sharing),
        }
    }

    async fn sharing_write(
        &self,
        op: SharingOp,
        seen: impl Fn(&MetaState) -> bool,
    ) -> Result<SharingReply, EngineError> {
        let reply = match self
            .router
            .meta_write(Command::Meta(MetaOp::Sharing(Since(Box::new(op)))))
            .await?
        {
            CommandResponse::Sharing(Since(r)) => match *r {
                SharingReply::Refused(e) => return Err(e.into()),
                r => r,
            },
            other => return Err(EngineError::unexpected(other)),
        };
        // Reads that follow on this node see the change.
        self.router.await_meta(seen).await;
        Ok(reply)
    }

    /// Publish a policy on one of `provider`'s resources (`spec` checked).
    pub async fn publish_policy(
        &self,
        provider: TenantId,
        spec: PolicySpec,
        by: &AuditMeta,
    ) -> Result<Policy, EngineError> {
        let now = self.clock.now_ms();
        let spec = spec.check(provider, now)?;
        let state = self.tenant(provider).await?;
        if let Some(why) = state.refusal(now) {
            return Err(SharingError::conflict(None, format!("cannot publish: {why}")).into());
        }
        let policy = Policy {
            id: Uuid::new_v4(),
            provider,
            spec,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let max_policies = self.catalog.sharing_policies(state.tenant.tier);
        let id = policy.id;
        let op = SharingOp::Publish {
            policy,
            max_policies,
        };
        let policy = match self
            .sharing_write(op, |m| m.sharing.policies.contains_key(&id))
            .await?
        {
            SharingReply::Policy(p) => p,
            other => return Err(EngineError::unexpected(other)),
        };
        self.record_audit(
            provider,
            by,
            "sharing.policy_created",
            &id.to_string(),
            json(&policy),
        )
        .await?;
        Ok(policy)
    }

    /// Replace a policy's spec. Grants take the new terms; those its new
    /// conditions no longer admit end, with the reason.
    pub async fn replace_policy(
        &self,
        provider: TenantId,
        id: Uuid,
        spec: PolicySpec,
        by: &AuditMeta,
    ) -> Result<Policy, EngineError> {
        let now = self.clock.now_ms();
        let spec = spec.check(provider, now)?;
        let op = SharingOp::Replace {
            id,
            provider,
            spec,
            at_ms: now,
        };
        let reply = self
            .sharing_write(op, |m| {
                m.sharing
                    .policies
                    .get(&id)
                    .is_some_and(|p| p.updated_at_ms == now)
            })
            .await?;
        let SharingReply::Changed {
            policy: Some(policy),
            ended,
            updated,
        } = reply
        else {
            return Err(EngineError::unexpected(reply));
        };
        self.record_audit(
            provider,
            by,
            "sharing.policy_updated",
            &id.to_string(),
            json(&policy),
        )
        .await?;
        self.hold_all(ended.iter().chain(&updated), by).await;
        Ok(policy)
    }

    /// Delete a policy: its grants end and its pending requests are denied.
    pub async fn withdraw_policy(
        &self,
        provider: TenantId,
        id: Uuid,
        by: &AuditMeta,
    ) -> Result<(), EngineError> {
        let now = self.clock.now_ms();
        let op = SharingOp::Withdraw {
            id,
            provider,
            at_ms: now,
        };
        let reply = self
            .sharing_write(op, |m| !m.sharing.policies.contains_key(&id))
            .await?;
        let SharingReply::Changed { ended, .. } = reply else {
            return Err(EngineError::unexpected(reply));
        };
        self.record_audit(
            provider,
            by,
            "sharing.policy_deleted",
            &id.to_string(),
            String::new(),
        )
        .await?;
        self.hold_all(ended.iter(), by).await;
        Ok(())
    }

    /// `consumer` asks for access to `policy`: approved at once when the
    /// policy is automatic and every condition holds, else pending.
    pub async fn request_access(
        &self,
        consumer: TenantId,
        policy: Uuid,
        justification: String,
        permissions: Option<BTreeSet<Permission>>,
        by: &AuditMeta,
    ) -> Result<Decided, EngineError> {
        let now = self.clock.now_ms();
        let state = self.tenant(consumer).await?;
        if let Some(why) = state.refusal(now) {
            return Err(
                SharingError::conflict(None, format!("cannot request access: {why}")).into(),
            );
        }
        // Visibility first: a policy the consumer may not see "does not
        // exist", whatever else is wrong with the request.
        let offered = self.with_catalog(|c| {
            c.policies
                .get(&policy)
                .filter(|p| crate::sharing::catalog::visible_to(p, consumer))
                .map(|p| (p.provider, p.spec.permissions.clone()))
        });
        let Some((provider, offered)) = offered else {
            return Err(
                SharingError::not_found(format!("sharing policy {policy} not found")).into(),
            );
        };
        self.require_active_provider(provider, policy, now).await?;
        let request = AccessRequest {
            id: Uuid::new_v4(),
            policy,
            provider,
            consumer,
            justification,
            permissions: permissions.unwrap_or(offered),
            state: RequestState::Pending,
            reason: None,
            grant: None,
            requested_at_ms: now,
            decided_at_ms: None,
            decided_by: None,
        };
        let rid = request.id;
        let op = SharingOp::Request {
            request,
            grant: Uuid::new_v4(),
            consumer_tier: state.tenant.tier,
        };
        let reply = self
            .sharing_write(op, |m| m.sharing.requests.contains_key(&rid))
            .await?;
        let SharingReply::Request { request, grant } = reply else {
            return Err(EngineError::unexpected(reply));
        };
        let detail = json(&request);
        self.record_audit(
            consumer,
            by,
            "sharing.access_requested",
            &policy.to_string(),
            detail.clone(),
        )
        .await?;
        self.record_audit(
            provider,
            by,
            "sharing.access_requested",
            &policy.to_string(),
            detail,
        )
        .await?;
        if let Some(g) = &grant {
            self.hold(g, by).await?;
            self.record_audit(
                provider,
                by,
                "sharing.access_granted",
                &g.id.to_string(),
                json(g),
            )
            .await?;
        }
        self.sharing_alert(
            provider,
            AlertType::SharingAccessRequested,
            format!("request:{}", request.id),
            serde_json::json!({
                "tenantId": provider.to_string(),
                "requestId": request.id.to_string(),
                "policyId": policy.to_string(),
                "consumerTenantId": consumer.to_string(),
                "permissions": request.permissions,
                "justification": request.justification,
                "approved": grant.is_some(),
            }),
        )
        .await;
        if let Some(g) = &grant {
            self.grant_alert(g).await;
        }
        Ok((request, grant))
    }

    /// The provider approves or denies a pending request.
    pub async fn decide_request(
        &self,
        provider: TenantId,
        request: Uuid,
        approve: bool,
        reason: Option<String>,
        by: &AuditMeta,
    ) -> Result<Decided, EngineError> {
        let now = self.clock.now_ms();
        let consumer = self
            .with_catalog(|c| {
                c.requests
                    .get(&request)
                    .filter(|r| r.provider == provider)
                    .map(|r| r.consumer)
            })
            .ok_or_else(|| {
                SharingError::not_found(format!("access request {request} not found"))
            })?;
        let tier = self.tenant(consumer).await?.tenant.tier;
        let op = SharingOp::Decide {
            request,
            provider,
            approve,
            reason,
            by: by.actor.clone(),
            consumer_tier: tier,
            grant: Uuid::new_v4(),
            at_ms: now,
        };
        let reply = self
            .sharing_write(op, |m| {
                m.sharing
                    .requests
                    .get(&request)
                    .is_some_and(|r| r.state != RequestState::Pending)
            })
            .await?;
        let SharingReply::Request { request: r, grant } = reply else {
            return Err(EngineError::unexpected(reply));
        };
        let action = if approve {
            "sharing.access_approved"
        } else {
            "sharing.access_denied"
        };
        let detail = json(&r);
        self.record_audit(provider, by, action, &r.id.to_string(), detail.clone())
            .await?;
        self.record_audit(consumer, by, action, &r.id.to_string(), detail)
            .await?;
        if let Some(g) = &grant {
            self.hold(g, by).await?;
            self.grant_alert(g).await;
        }
        Ok((r, grant))
    }

    /// End a grant, as its provider or its consumer (`by_tenant`). The
    /// consumer's copy ends first: that is what stops admission.
    pub async fn revoke_grant(
        &self,
        by_tenant: TenantId,
        grant: Uuid,
        reason: String,
        by: &AuditMeta,
    ) -> Result<Grant, EngineError> {
        let now = self.clock.now_ms();
        let known = self.with_catalog(|c| {
            c.grants
                .get(&grant)
                .filter(|g| g.provider == by_tenant || g.consumer == by_tenant)
                .cloned()
        });
        let Some(known) = known else {
            return Err(SharingError::not_found(format!("grant {grant} not found")).into());
        };
        let reason = if reason.trim().is_empty() {
            if by_tenant == known.provider {
                "revoked by the provider".to_string()
            } else {
                "given up by the consumer".to_string()
            }
        } else {
            reason
        };
        let op = SharingOp::Revoke {
            grant,
            by: by_tenant,
            reason,
            at_ms: now,
        };
        let reply = self
            .sharing_write(op, |m| {
                m.sharing
                    .grants
                    .get(&grant)
                    .is_some_and(|g| g.ended.is_some())
            })
            .await?;
        let SharingReply::Ended(mut ended) = reply else {
            return Err(EngineError::unexpected(reply));
        };
        let g = ended.pop().ok_or_else(|| EngineError::Unexpected {
            answer: "a revocation that ended no grant".into(),
        })?;
        self.hold(&g, by).await?;
        // The consumer's chain records the end with its copy of the grant.
        self.record_audit(
            g.provider,
            by,
            "sharing.grant_ended",
            &g.id.to_string(),
            json(&g),
        )
        .await?;
        Ok(g)
    }

    /// Close a past statement period: from then on each tenant's lines of
    /// it are final, and what arrives for it later is an adjustment. The
    /// tenants involved are closed here; any left (a failure on the way)
    /// are closed by the transfer rounds before they take more usage.
    pub async fn close_period(
        &self,
        period: crate::sharing::ledger::PeriodKey,
        by: &AuditMeta,
    ) -> Result<i64, EngineError> {
        let now = self.clock.now_ms();
        let op = SharingOp::ClosePeriod(Since(crate::sharing::catalog::ClosePeriod {
            period,
            at_ms: now,
        }));
        let reply = self
            .sharing_write(op, |m| m.sharing.closed.contains_key(&period))
            .await?;
        let SharingReply::Closed(Since((_, at))) = reply else {
            return Err(EngineError::unexpected(reply));
        };
        let tenants: BTreeSet<TenantId> = self.with_catalog(|c| {
            c.policies
                .values()
                .map(|p| p.provider)
                .chain(c.grants.values().flat_map(|g| [g.provider, g.consumer]))
                .collect()
        });
        for tenant in tenants {
            let op = TenantOp::ClosePeriod(Since((period, at)));
            match self
                .apply(tenant, op, Some(by), Some(Consistency::Strict))
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == crate::error_code::ErrorCode::NotFound => {}
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "period not closed for a tenant yet; the transfer rounds retry")
                }
            }
        }
        Ok(at)
    }

    /// The zone statement months are counted in for grants made from now
    /// on (UTC unless set). Grants keep the zone they were made in.
    pub async fn set_statement_zone(&self, zone: chrono_tz::Tz) -> Result<(), EngineError> {
        let op = SharingOp::SetStatementZone(Since(zone));
        let want = (zone != chrono_tz::UTC).then_some(zone);
        self.sharing_write(op, |m| m.sharing.statement_zone.0 == want)
            .await?;
        Ok(())
    }

    /// Pause the grants `provider` gave while it may not share (`paused`:
    /// why), or resume them; the consumers' copies follow at once.
    pub(crate) async fn set_provider_standing(
        &self,
        provider: TenantId,
        paused: Option<String>,
    ) -> Result<(), EngineError> {
        let op = SharingOp::ProviderStanding(Since(crate::sharing::catalog::ProviderStanding {
            provider,
            paused: paused.clone(),
        }));
        let reply = self
            .sharing_write(op, |m| {
                !m.sharing
                    .grants
                    .values()
                    .any(|g| g.provider == provider && g.ended.is_none() && *g.paused != paused)
            })
            .await?;
        let SharingReply::Ended(changed) = reply else {
            return Err(EngineError::unexpected(reply));
        };
        let by = AuditMeta::new("system", "provider-standing");
        for g in &changed {
            self.hold(g, &by).await?;
        }
        Ok(())
    }

    /// A deleted tenant's policies are withdrawn and the grants it gave or
    /// held end.
    pub(crate) async fn sharing_tenant_gone(
        &self,
        tenant: TenantId,
        by: &AuditMeta,
    ) -> Result<(), EngineError> {
        let involved = self.with_catalog(|c| {
            c.policies.values().any(|p| p.provider == tenant)
                || c.grants
                    .values()
                    .any(|g| g.ended.is_none() && (g.provider == tenant || g.consumer == tenant))
                || c.requests.values().any(|r| {
                    r.state == RequestState::Pending
                        && (r.provider == tenant || r.consumer == tenant)
                })
        });
        if !involved {
            return Ok(());
        }
        let op = SharingOp::TenantGone {
            tenant,
            at_ms: self.clock.now_ms(),
        };
        let reply = self
            .sharing_write(op, |m| {
                !m.sharing.policies.values().any(|p| p.provider == tenant)
            })
            .await?;
        let SharingReply::Ended(ended) = reply else {
            return Err(EngineError::unexpected(reply));
        };
        self.hold_all(ended.iter().filter(|g| g.consumer != tenant), by)
            .await;
        Ok(())
    }

    /// Refuse access to a policy whose provider may not share now
    /// (suspended, deleted, trial over): as if it were not listed.
    async fn require_active_provider(
        &self,
        provider: TenantId,
        policy: Uuid,
        now_ms: i64,
    ) -> Result<(), EngineError> {
        let active = match self.tenant(provider).await {
            Ok(s) => s.refusal(now_ms).is_none(),
            Err(e) if e.code() == crate::error_code::ErrorCode::NotFound => false,
            Err(e) => return Err(e),
        };
        if active {
            Ok(())
        } else {
            Err(SharingError::not_found(format!("sharing policy {policy} not found")).into())
        }
    }

    /// Bring the consumer's copy of `grant` in line with the catalog.
    async fn hold(&self, grant: &Grant, by: &AuditMeta) -> Result<(), EngineError> {
        let op = TenantOp::HoldGrant(Since(Box::new(grant.clone())));
        self.apply(grant.consumer, op, Some(by), Some(Consistency::Strict))
            .await?;
        Ok(())
    }

    /// [`Engine::hold`] for each grant; one consumer failing does not stop
    /// the others (its copy is corrected by the next sweep).
    async fn hold_all<'a>(&self, grants: impl Iterator<Item = &'a Grant>, by: &AuditMeta) {
        for g in grants {
            if let Err(e) = self.hold(g, by).await {
                tracing::warn!(grant = %g.id, consumer = %g.consumer, error = %e,
                    "could not bring a consumer's grant in line with the catalog");
            }
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Engine {
    /// Raise a sharing alert once per `key`; a failure is logged, not
    /// returned (the sharing change it reports has happened).
    async fn sharing_alert(
        &self,
        tenant: TenantId,
        kind: AlertType,
        key: String,
        data: serde_json::Value,
    ) {
        if let Err(e) = self.raise_alert(tenant, kind, &key, 0, data).await {
            tracing::warn!(error = %e, %tenant, kind = kind.as_str(), "could not raise a sharing alert");
        }
    }

    /// `sharing.access_granted`, to the consumer that now holds `g`.
    async fn grant_alert(&self, g: &crate::sharing::Grant) {
        let data = serde_json::json!({
            "tenantId": g.consumer.to_string(),
            "grantId": g.id.to_string(),
            "policyId": g.policy.to_string(),
            "providerTenantId": g.provider.to_string(),
            "resourceType": g.resource_type.as_str(),
            "resourceId": g.resource_id,
            "permissions": g.permissions,
            "expiresAtMs": g.expires_at_ms,
        });
        self.sharing_alert(
            g.consumer,
            AlertType::SharingAccessGranted,
            format!("grant:{}", g.id),
            data,
        )
        .await;
    }
}
