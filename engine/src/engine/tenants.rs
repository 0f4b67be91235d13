//! Tenants: creation (with its slug claimed across the cluster), reads,
//! admin changes, tier changes, deletion and purge.
use super::Engine;
use crate::audit::AuditMeta;
use crate::cluster::forward;
use crate::error::EngineError;
use crate::error_code::ErrorCode;
use crate::model::{Consistency, NewOwner, Tenant, TenantId, TenantStatus, Tier};
use crate::quota::{OpOutcome, TenantOp, TenantState, validate};
use crate::raft::{Command, CommandResponse, MetaOp};
use crate::shard::{TenantAnswer, TenantCall};
use uuid::Uuid;

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: String,
    pub name: String,
    pub tier: Tier,
    pub timezone: chrono_tz::Tz,
    /// Start as a trial ending after this many days.
    pub trial_days: Option<u32>,
    pub settings_json: String,
    /// The first owner (user id, contact email).
    pub owner: Option<NewOwner>,
}

impl Engine {
    pub async fn create_tenant(
        &self,
        new: NewTenant,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        validate::slug(&new.slug)?;
        validate::tenant_name(&new.name)?;
        if let Some(owner) = &new.owner {
            validate::user_id(&owner.user_id)?;
            if let Some(email) = &owner.email {
                validate::email("ownerEmail", email)?;
            }
        }
        let id = Uuid::new_v4();
        let now = self.clock.now_ms();
        self.claim_slug(&new.slug, id, now).await?;
        let tenant = Tenant {
            id,
            slug: new.slug.clone(),
            name: new.name,
            tier: new.tier,
            status: if new.trial_days.is_some() {
                TenantStatus::Trial
            } else {
                TenantStatus::Active
            },
            timezone: new.timezone,
            trial_ends_at_ms: new.trial_days.map(|d| now + i64::from(d) * 86_400_000),
            settings_json: new.settings_json,
            created_at_ms: now,
            updated_at_ms: now,
            deleted: None,
        };
        let op = TenantOp::Create {
            tenant: Box::new(tenant),
            quotas: self.catalog.defaults(new.tier).clone(),
            owner: new.owner,
        };
        let TenantOp::Create {
            tenant,
            quotas,
            owner,
        } = &op
        else {
            unreachable!("built above")
        };
        let created = TenantState::create((**tenant).clone(), quotas.clone(), owner.as_ref(), now);
        if let Err(e) = self
            .apply(id, op, Some(by), Some(Consistency::Strict))
            .await
        {
            // Give the slug back so a retry can have it.
            let release = Command::Meta(MetaOp::ReleaseSlug {
                slug: new.slug,
                tenant: id,
            });
            if let Err(e2) = self.router.meta_write(release).await {
                tracing::error!(error = %e2, "could not release slug after failed create");
            }
            return Err(e);
        }
        Ok(created)
    }

    /// Claim a slug in the meta group. A slug held by a tenant that does
    /// not exist (its creation died half-way) is taken over once the claim
    /// is older than [`crate::raft::ORPHAN_CLAIM_AFTER_MS`].
    pub(crate) async fn claim_slug(
        &self,
        slug: &str,
        tenant: TenantId,
        now: i64,
    ) -> Result<(), EngineError> {
        let mut replacing = None;
        loop {
            let claim = Command::Meta(MetaOp::ClaimSlug {
                slug: slug.to_string(),
                tenant,
                at_ms: now,
                replacing,
            });
            match self.router.meta_write(claim).await? {
                CommandResponse::SlugTaken { owner }
                    if replacing.is_none() && !self.exists(owner).await? =>
                {
                    replacing = Some(owner);
                }
                CommandResponse::SlugTaken { .. } => {
                    return Err(EngineError::SlugTaken {
                        slug: slug.to_string(),
                    });
                }
                _ => return Ok(()),
            }
        }
    }

    /// The tenant's state as of now.
    pub async fn tenant(&self, tenant: TenantId) -> Result<TenantState, EngineError> {
        match self.router.call_tenant(tenant, TenantCall::Read).await? {
            TenantAnswer::State(s) => Ok(*s),
            other => Err(forward::unexpected(other)),
        }
    }

    /// Whether the tenant exists (asked of its group's leader).
    async fn exists(&self, tenant: TenantId) -> Result<bool, EngineError> {
        match self.tenant(tenant).await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Apply an audited control-plane change (always strict) and return
    /// the tenant as it now is: an update, a quota policy, a member or a
    /// role, a domain's verification, a restore. Changes that also claim or
    /// release a name across the cluster (create, domains, purge) have
    /// their own calls; so do a tier change (it reports the quotas left over
    /// their limit) and a deletion (its retention is the node's setting).
    pub async fn admin(
        &self,
        tenant: TenantId,
        op: TenantOp,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        op.validate_admin()?;
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        self.tenant(tenant).await
    }

    /// Move a tenant to `tier`. Returns the quotas whose usage is above
    /// their new limit (reported, not silently cut).
    pub async fn change_tier(
        &self,
        tenant: TenantId,
        tier: Tier,
        by: &AuditMeta,
    ) -> Result<(TenantState, Vec<String>), EngineError> {
        let op = TenantOp::ChangeTier {
            tier,
            defaults: self.catalog.defaults(tier).clone(),
        };
        let over = match self
            .apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?
        {
            OpOutcome::TierChanged { over_limit } => over_limit,
            _ => Vec::new(),
        };
        Ok((self.tenant(tenant).await?, over))
    }

    /// Soft-delete: the tenant is refused everything, and can be restored
    /// until its retention ends; then it is purged.
    pub async fn delete_tenant(
        &self,
        tenant: TenantId,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let op = TenantOp::Delete {
            retention_ms: self.deletion_retention.as_millis() as i64,
        };
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        // Its policies are withdrawn and the grants it gave or held end.
        self.sharing_tenant_gone(tenant, by).await?;
        self.tenant(tenant).await
    }

    /// Remove a deleted tenant whose retention has ended, and free its slug.
    pub async fn purge_tenant(&self, tenant: TenantId, by: &AuditMeta) -> Result<(), EngineError> {
        let state = self.tenant(tenant).await?;
        let slug = state.tenant.slug;
        self.apply(tenant, TenantOp::Purge, Some(by), Some(Consistency::Strict))
            .await?;
        self.sharing_tenant_gone(tenant, by).await?;
        for domain in state.domains.into_keys() {
            self.router
                .meta_write(Command::Meta(MetaOp::ReleaseDomain { domain, tenant }))
                .await?;
        }
        self.router
            .meta_write(Command::Meta(MetaOp::ReleaseSlug { slug, tenant }))
            .await?;
        Ok(())
    }

    /// Purge every deleted tenant whose retention has ended; returns how
    /// many. The node runs this periodically.
    pub async fn purge_expired(&self) -> Result<usize, EngineError> {
        let now = self.clock.now_ms();
        let mut due = Vec::new();
        for shard in &self.router.served() {
            if let Ok(state) = shard.group.state.read() {
                due.extend(
                    state
                        .tenants
                        .values()
                        .filter(|t| t.tenant.deleted.is_some_and(|d| now >= d.purge_after_ms))
                        .map(|t| t.tenant.id),
                );
            }
        }
        let by = AuditMeta::new("system", "retention-sweep");
        let mut purged = 0;
        for tenant in &due {
            // One tenant failing (restored meanwhile, say) must not stop
            // the others.
            match self.purge_tenant(*tenant, &by).await {
                Ok(()) => purged += 1,
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "could not purge a tenant past its retention")
                }
            }
        }
        Ok(purged)
    }
}
