//! The engine facade: what the gRPC service and the control plane call.
//! It routes each tenant to its shard and each request to the tenant's actor.
use crate::actor::{Consistency, TenantMsg};
use crate::audit::{AuditEvent, AuditMeta, AuditQuery, ChainBreak};
use crate::clock::{SharedClock, SystemClock};
use crate::error::EngineError;
use crate::model::{QuotaPolicy, Role, Tenant, TenantId, TenantStatus, Tier};
use crate::quota::{
    Decision, OpOutcome, QuotaError, TenantOp, TenantState, TenantUpdate, TierCatalog, validate,
};
use crate::raft::{Command, CommandResponse, Group, GroupConfig, MetaOp};
use crate::shard::{Shard, ShardMap};
use crate::storage::Store;
use crate::telemetry::{self, TenantLabels};
use crate::usage_history::{Granularity, Point, Statistics, UsageHistory, statistics};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub node_id: u64,
    /// Shard groups; fixed when the data dir is first used.
    pub shards: u64,
    pub raft: GroupConfig,
    /// Used when a request does not say.
    pub default_consistency: Consistency,
    /// A tenant actor stops after this long without requests.
    pub idle_after: Duration,
    /// Most operations in one group-commit entry.
    pub max_batch: usize,
    /// How long a soft-deleted tenant can be restored before it is purged.
    pub deletion_retention: Duration,
    /// Tenants with their own label in per-tenant metrics; the rest are
    /// reported as `other`.
    pub metrics_max_tenants: usize,
    pub catalog: TierCatalog,
    pub clock: SharedClock,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            node_id: 1,
            shards: 4,
            raft: GroupConfig::default(),
            default_consistency: Consistency::Strict,
            idle_after: Duration::from_secs(300),
            max_batch: 4096,
            deletion_retention: Duration::from_secs(30 * 86_400),
            metrics_max_tenants: 1_000,
            catalog: TierCatalog::builtin(),
            clock: Arc::new(SystemClock),
        }
    }
}

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
    /// The first owner's user id.
    pub owner: Option<String>,
}

/// A page of an audit chain.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub more: bool,
    /// Where the whole chain fails to verify, if it does.
    pub chain: Result<(), ChainBreak>,
    pub total: usize,
}

impl Default for AuditPage {
    fn default() -> Self {
        AuditPage {
            events: Vec::new(),
            more: false,
            chain: Ok(()),
            total: 0,
        }
    }
}

/// The result of a reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub decision: Decision,
    pub reservation_id: Option<Uuid>,
    pub expires_at_ms: Option<i64>,
}

pub struct Engine {
    meta: Group,
    shards: Vec<Arc<Shard>>,
    map: ShardMap,
    catalog: TierCatalog,
    clock: SharedClock,
    default_consistency: Consistency,
    deletion_retention: Duration,
    labels: TenantLabels,
}

/// Per-tier tenant counts and per-tenant usage, for a metrics scrape.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub tenants_by_tier: Vec<(Tier, u64)>,
    /// (tenant label, quota, usage) for tenants within the label bound.
    pub usage: Vec<(String, String, u64)>,
}

const META_GROUP: u64 = 0;

impl Engine {
    pub async fn open(config: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        let store = Store::open(&config.data_dir)?;
        let shards = store.shard_count(config.shards)?;
        // Groups start together: each waits out an election timeout before
        // it leads, so starting them one by one would add those up.
        let starts = (META_GROUP..=shards)
            .map(|id| Group::start(config.node_id, id, store.clone(), &config.raft));
        let mut groups = futures::future::try_join_all(starts).await?.into_iter();
        let meta = groups.next().expect("meta group started");
        let started = groups
            .map(|group| {
                Shard::start(
                    group,
                    config.clock.clone(),
                    config.idle_after,
                    config.max_batch,
                )
            })
            .collect();
        Ok(Arc::new(Engine {
            meta,
            shards: started,
            map: ShardMap::new(shards),
            catalog: config.catalog,
            clock: config.clock,
            default_consistency: config.default_consistency,
            deletion_retention: config.deletion_retention,
            labels: TenantLabels::new(config.metrics_max_tenants),
        }))
    }

    pub fn catalog(&self) -> &TierCatalog {
        &self.catalog
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn default_consistency(&self) -> Consistency {
        self.default_consistency
    }

    /// Tenant actors active on this node.
    pub fn active_actors(&self) -> usize {
        self.shards.iter().map(|s| s.active_actors()).sum()
    }

    fn shard(&self, tenant: &TenantId) -> &Arc<Shard> {
        &self.shards[(self.map.shard_of(tenant) - 1) as usize]
    }

    /// The shard of an existing tenant; unknown tenants are refused before
    /// any actor is started for them.
    fn existing(&self, tenant: &TenantId) -> Result<&Arc<Shard>, EngineError> {
        let shard = self.shard(tenant);
        if shard.actors.contains_key(tenant) || shard.knows(tenant) {
            Ok(shard)
        } else {
            Err(QuotaError::TenantNotFound { tenant: *tenant }.into())
        }
    }

    async fn apply(
        &self,
        tenant: TenantId,
        op: TenantOp,
        audit: Option<&AuditMeta>,
        consistency: Option<Consistency>,
    ) -> Result<OpOutcome, EngineError> {
        let shard = match op {
            TenantOp::Create { .. } => self.shard(&tenant),
            _ => self.existing(&tenant)?,
        };
        let consistency = consistency.unwrap_or(self.default_consistency);
        shard
            .call(tenant, |reply| TenantMsg::Apply {
                op: op.clone(),
                audit: audit.cloned(),
                consistency,
                reply,
            })
            .await
    }

    /// Apply an audited control-plane operation (always strict) and return
    /// the tenant as it now is.
    async fn admin(
        &self,
        tenant: TenantId,
        op: TenantOp,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        self.tenant(tenant).await
    }

    pub async fn create_tenant(
        &self,
        new: NewTenant,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        validate::slug(&new.slug)?;
        validate::tenant_name(&new.name)?;
        if let Some(owner) = &new.owner {
            validate::user_id(owner)?;
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
            tenant,
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
        let created = TenantState::create(tenant.clone(), quotas.clone(), owner.as_deref(), now);
        if let Err(e) = self
            .apply(id, op, Some(by), Some(Consistency::Strict))
            .await
        {
            // Give the slug back so a retry can have it.
            let release = Command::Meta(MetaOp::ReleaseSlug {
                slug: new.slug,
                tenant: id,
            });
            if let Err(e2) = self.meta.write(release).await {
                tracing::error!(error = %e2, "could not release slug after failed create");
            }
            return Err(e);
        }
        Ok(created)
    }

    /// Claim a slug in the meta group. A slug held by a tenant that does
    /// not exist (its creation died half-way) is taken over once the claim
    /// is older than [`crate::raft::ORPHAN_CLAIM_AFTER_MS`].
    async fn claim_slug(&self, slug: &str, tenant: TenantId, now: i64) -> Result<(), EngineError> {
        let mut replacing = None;
        loop {
            let claim = Command::Meta(MetaOp::ClaimSlug {
                slug: slug.to_string(),
                tenant,
                at_ms: now,
                replacing,
            });
            match self.meta.write(claim).await? {
                CommandResponse::SlugTaken { owner }
                    if replacing.is_none() && !self.shard(&owner).knows(&owner) =>
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
        self.existing(&tenant)?
            .call(tenant, |reply| TenantMsg::Read { reply })
            .await
    }

    pub async fn update_tenant(
        &self,
        tenant: TenantId,
        update: TenantUpdate,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        if let Some(name) = &update.name {
            validate::tenant_name(name)?;
        }
        self.apply(
            tenant,
            TenantOp::Update(update),
            Some(by),
            Some(Consistency::Strict),
        )
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

    pub async fn set_quota(
        &self,
        tenant: TenantId,
        quota: &str,
        policy: QuotaPolicy,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        validate::quota_name(quota)?;
        validate::policy(&policy)?;
        // `policy.overridden` says whether it survives a tier change.
        let op = TenantOp::SetQuota {
            quota: quota.to_string(),
            policy,
        };
        self.admin(tenant, op, by).await
    }

    pub async fn add_member(
        &self,
        tenant: TenantId,
        user_id: &str,
        role: Role,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        validate::user_id(user_id)?;
        let op = TenantOp::AddMember {
            user_id: user_id.to_string(),
            role,
        };
        self.admin(tenant, op, by).await
    }

    pub async fn remove_member(
        &self,
        tenant: TenantId,
        user_id: &str,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let op = TenantOp::RemoveMember {
            user_id: user_id.to_string(),
        };
        self.admin(tenant, op, by).await
    }

    pub async fn change_role(
        &self,
        tenant: TenantId,
        user_id: &str,
        role: Role,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let op = TenantOp::ChangeRole {
            user_id: user_id.to_string(),
            role,
        };
        self.admin(tenant, op, by).await
    }

    pub async fn check(
        &self,
        tenant: TenantId,
        quota: &str,
        amount: i64,
    ) -> Result<Decision, EngineError> {
        validate::quota_name(quota)?;
        validate::positive_amount("amount", amount)?;
        let quota = quota.to_string();
        let d = self
            .existing(&tenant)?
            .call(tenant, |reply| TenantMsg::Check {
                quota: quota.clone(),
                amount,
                reply,
            })
            .await?;
        telemetry::decision(&self.labels, &tenant, d.allowed);
        Ok(d)
    }

    pub async fn increment(
        &self,
        tenant: TenantId,
        quota: &str,
        amount: i64,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    ) -> Result<Decision, EngineError> {
        validate::quota_name(quota)?;
        validate::amount(amount)?;
        idempotency_key_ok(&idempotency_key)?;
        let op = TenantOp::Increment {
            quota: quota.to_string(),
            amount,
            idempotency_key,
        };
        let d = decision(self.apply(tenant, op, None, consistency).await?)?;
        telemetry::decision(&self.labels, &tenant, d.allowed);
        Ok(d)
    }

    pub async fn reserve(
        &self,
        tenant: TenantId,
        quota: &str,
        amount: i64,
        ttl_ms: u64,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    ) -> Result<Reserved, EngineError> {
        validate::quota_name(quota)?;
        let amount = validate::positive_amount("amount", amount)?;
        let ttl_ms = validate::ttl_ms(ttl_ms)?;
        idempotency_key_ok(&idempotency_key)?;
        let op = TenantOp::Reserve {
            quota: quota.to_string(),
            amount,
            ttl_ms,
            reservation_id: Uuid::new_v4(),
            idempotency_key,
        };
        match self.apply(tenant, op, None, consistency).await? {
            OpOutcome::Reserved {
                decision,
                reservation_id,
                expires_at_ms,
            } => {
                telemetry::decision(&self.labels, &tenant, decision.allowed);
                Ok(Reserved {
                    decision,
                    reservation_id,
                    expires_at_ms,
                })
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn settle(
        &self,
        tenant: TenantId,
        reservation: Uuid,
        actual: i64,
        consistency: Option<Consistency>,
    ) -> Result<Decision, EngineError> {
        if actual < 0 {
            return Err(QuotaError::invalid("actual", "must not be negative").into());
        }
        if actual as u64 > validate::MAX_AMOUNT {
            return Err(QuotaError::invalid(
                "actual",
                format!(
                    "{actual} is larger than the maximum of {}",
                    validate::MAX_AMOUNT
                ),
            )
            .into());
        }
        let op = TenantOp::Settle {
            reservation_id: reservation,
            actual: actual as u64,
        };
        decision(self.apply(tenant, op, None, consistency).await?)
    }

    /// Returns the amount released.
    pub async fn release(
        &self,
        tenant: TenantId,
        reservation: Uuid,
        consistency: Option<Consistency>,
    ) -> Result<u64, EngineError> {
        let op = TenantOp::Release {
            reservation_id: reservation,
        };
        match self.apply(tenant, op, None, consistency).await? {
            OpOutcome::Released { amount } => Ok(amount),
            other => Err(unexpected(other)),
        }
    }

    /// A quota's usage series over `[from_ms, to_ms)` and its statistics
    /// (committed state).
    pub fn usage_history(
        &self,
        tenant: TenantId,
        quota: &str,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(Vec<Point>, Statistics), EngineError> {
        if to_ms <= from_ms {
            return Err(QuotaError::invalid("to", "must be after from").into());
        }
        let shard = self.existing(&tenant)?;
        let state = shard.group.state.read().map_err(|_| EngineError::Raft {
            group: shard.group.id,
            message: "state lock poisoned".into(),
        })?;
        let t = state
            .tenants
            .get(&tenant)
            .ok_or(QuotaError::TenantNotFound { tenant })?;
        let tz = t.tenant.timezone;
        let now = self.clock.now_ms();
        let mut q = t.quota(quota)?.clone();
        q.roll(tz, now);
        let period = crate::quota::period::window(q.policy.period, tz, now);
        let points = state
            .usage
            .get(&tenant)
            .map(|h| h.series(quota, tz, granularity, from_ms, to_ms))
            .unwrap_or_else(|| {
                UsageHistory::default().series(quota, tz, granularity, from_ms, to_ms)
            });
        let stats = statistics(
            &points,
            q.policy.limit,
            q.used,
            period.start_ms,
            period.end_ms,
            now,
        );
        Ok((points, stats))
    }

    /// Register a custom domain for the tenant, unverified; returns its
    /// verification token. Domains are unique across the deployment.
    pub async fn add_domain(
        &self,
        tenant: TenantId,
        domain: &str,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        validate::domain(domain)?;
        if self.tenant(tenant).await?.domains.contains_key(domain) {
            // Checked before claiming, so a retry never releases a claim
            // the tenant already held.
            return Err(QuotaError::invalid(
                "domain",
                format!("{domain} is already registered to this tenant"),
            )
            .into());
        }
        let now = self.clock.now_ms();
        let mut replacing = None;
        loop {
            let claim = Command::Meta(MetaOp::ClaimDomain {
                domain: domain.to_string(),
                tenant,
                at_ms: now,
                replacing,
            });
            match self.meta.write(claim).await? {
                CommandResponse::DomainTaken { owner }
                    if replacing.is_none() && !self.lists_domain(owner, domain) =>
                {
                    replacing = Some(owner);
                }
                CommandResponse::DomainTaken { .. } => {
                    return Err(EngineError::DomainTaken {
                        domain: domain.to_string(),
                    });
                }
                _ => break,
            }
        }
        let token: String = (0..16)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let op = TenantOp::AddDomain {
            domain: domain.to_string(),
            token,
        };
        if let Err(e) = self
            .apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await
        {
            let release = Command::Meta(MetaOp::ReleaseDomain {
                domain: domain.to_string(),
                tenant,
            });
            if let Err(e2) = self.meta.write(release).await {
                tracing::error!(error = %e2, "could not release a domain after a failed add");
            }
            return Err(e);
        }
        self.tenant(tenant).await
    }

    /// Mark a domain verified (the platform checked its token).
    pub async fn verify_domain(
        &self,
        tenant: TenantId,
        domain: &str,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let op = TenantOp::VerifyDomain {
            domain: domain.to_string(),
        };
        self.admin(tenant, op, by).await
    }

    pub async fn remove_domain(
        &self,
        tenant: TenantId,
        domain: &str,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        let op = TenantOp::RemoveDomain {
            domain: domain.to_string(),
        };
        self.apply(tenant, op, Some(by), Some(Consistency::Strict))
            .await?;
        self.meta
            .write(Command::Meta(MetaOp::ReleaseDomain {
                domain: domain.to_string(),
                tenant,
            }))
            .await?;
        self.tenant(tenant).await
    }

    /// Whether `tenant`'s committed state lists `domain` (a claim by a
    /// tenant that does not is left over from a failed registration).
    fn lists_domain(&self, tenant: TenantId, domain: &str) -> bool {
        let shard = self.shard(&tenant);
        shard
            .group
            .state
            .read()
            .map(|s| {
                s.tenants
                    .get(&tenant)
                    .is_some_and(|t| t.domains.contains_key(domain))
            })
            .unwrap_or(true)
    }

    /// The tenant whose *verified* custom domain `host` is (port ignored).
    pub fn tenant_for_host(&self, host: &str) -> Option<TenantId> {
        let name = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        let tenant = self.meta.state.read().ok()?.domains.get(&name)?.tenant;
        let shard = self.shard(&tenant);
        let state = shard.group.state.read().ok()?;
        let verified = state.tenants.get(&tenant)?.domains.get(&name)?.verified;
        verified.then_some(tenant)
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
        self.admin(tenant, op, by).await
    }

    pub async fn restore_tenant(
        &self,
        tenant: TenantId,
        by: &AuditMeta,
    ) -> Result<TenantState, EngineError> {
        self.apply(
            tenant,
            TenantOp::Restore,
            Some(by),
            Some(Consistency::Strict),
        )
        .await?;
        self.tenant(tenant).await
    }

    /// Remove a deleted tenant whose retention has ended, and free its slug.
    pub async fn purge_tenant(&self, tenant: TenantId, by: &AuditMeta) -> Result<(), EngineError> {
        let state = self.tenant(tenant).await?;
        let slug = state.tenant.slug;
        self.apply(tenant, TenantOp::Purge, Some(by), Some(Consistency::Strict))
            .await?;
        for domain in state.domains.into_keys() {
            self.meta
                .write(Command::Meta(MetaOp::ReleaseDomain { domain, tenant }))
                .await?;
        }
        self.meta
            .write(Command::Meta(MetaOp::ReleaseSlug { slug, tenant }))
            .await?;
        Ok(())
    }

    /// Purge every deleted tenant whose retention has ended; returns how
    /// many. The node runs this periodically.
    pub async fn purge_expired(&self) -> Result<usize, EngineError> {
        let now = self.clock.now_ms();
        let mut due = Vec::new();
        for shard in &self.shards {
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
    pub fn audit(&self, tenant: TenantId, query: &AuditQuery) -> Result<AuditPage, EngineError> {
        let shard = self.shard(&tenant);
        let state = shard.group.state.read().map_err(|_| EngineError::Raft {
            group: shard.group.id,
            message: "state lock poisoned".into(),
        })?;
        let Some(log) = state.audit.get(&tenant) else {
            if state.tenants.contains_key(&tenant) {
                return Ok(AuditPage::default());
            }
            return Err(QuotaError::TenantNotFound { tenant }.into());
        };
        let (events, more) = log.query(query);
        Ok(AuditPage {
            events,
            more,
            chain: log.verify(),
            total: log.len(),
        })
    }

    /// What a metrics scrape reports from state: tenants per tier, and the
    /// usage of labelled tenants' quotas (committed state).
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        let now = self.clock.now_ms();
        let mut per_tier = std::collections::BTreeMap::new();
        let mut usage = Vec::new();
        for shard in &self.shards {
            let Ok(state) = shard.group.state.read() else {
                continue;
            };
            for t in state.tenants.values() {
                *per_tier.entry(t.tenant.tier).or_insert(0u64) += 1;
                let label = self.labels.label(&t.tenant.id);
                if label == "other" {
                    continue;
                }
                for (name, q) in &t.quotas {
                    let mut q = q.clone();
                    q.roll(t.tenant.timezone, now);
                    usage.push((label.clone(), name.clone(), q.usage(now)));
                }
            }
        }
        MetricsSnapshot {
            tenants_by_tier: Tier::ALL
                .iter()
                .map(|t| (*t, per_tier.get(t).copied().unwrap_or(0)))
                .collect(),
            usage,
        }
    }

    /// Ready when this node leads every group it serves (single node) and
    /// none of them has failed.
    pub async fn ready(&self) -> Result<(), String> {
        for g in std::iter::once(&self.meta).chain(self.shards.iter().map(|s| &s.group)) {
            let m = g.raft.metrics().borrow().clone();
            if let Err(e) = &m.running_state {
                return Err(format!("group {} stopped: {e}", g.id));
            }
            if m.current_leader != Some(m.id) {
                return Err(format!("group {} has no leader on this node", g.id));
            }
        }
        Ok(())
    }

    pub async fn shutdown(&self) {
        for s in &self.shards {
            s.group.shutdown().await;
        }
        self.meta.shutdown().await;
    }
}

fn idempotency_key_ok(key: &Option<String>) -> Result<(), QuotaError> {
    match key {
        Some(k) if k.len() > 256 => {
            Err(QuotaError::invalid("idempotency_key", "at most 256 bytes"))
        }
        _ => Ok(()),
    }
}

fn decision(outcome: OpOutcome) -> Result<Decision, EngineError> {
    match outcome {
        OpOutcome::Decision(d) => Ok(d),
        other => Err(unexpected(other)),
    }
}

fn unexpected(outcome: OpOutcome) -> EngineError {
    EngineError::Raft {
        group: 0,
        message: format!("unexpected outcome {outcome:?}"),
    }
}
