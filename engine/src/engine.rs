//! The engine facade: what the gRPC service and the control plane call.
//! It routes each tenant to its shard and each request to the tenant's actor.
use crate::actor::{BatchItem, Consistency};
use crate::archive::sync::SyncRound;
use crate::archive::{Archive, ArchiveChoice, EmbeddedArchive, ScyllaArchive};
use crate::audit::{AuditEvent, AuditMeta, AuditQuery, ChainBreak};
use crate::clock::{SharedClock, SystemClock};
use crate::clock_skew::{BoundedClock, PeerClocks};
use crate::cluster::{
    ForwardReply, ForwardRequest, META_GROUP, MembershipOp, NodeInfo, TenantAnswer, TenantCall,
};
use crate::error::EngineError;
use crate::error_code::ErrorCode;
use crate::format::Since;
use crate::model::{NewOwner, QuotaPolicy, Role, Tenant, TenantId, TenantStatus, Tier};
use crate::quota::{
    AllDecided, AllOrNothing, Decision, OpOutcome, QuotaError, Spend, TenantOp, TenantState,
    TenantUpdate, TierCatalog, validate,
};
use crate::raft::{
    Command, CommandResponse, Group, GroupConfig, MetaOp, NodeId, Peers, TransportService,
};
use crate::shard::{Shard, ShardMap};
use crate::storage::Store;
use crate::telemetry::{self, TenantLabels};
use crate::usage_history::{Granularity, Point, Statistics, UsageHistory, statistics};
use openraft::BasicNode;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
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
    /// This node's addresses as other nodes and clients reach it. The peer
    /// address (Raft and forwarding) is the node's identity in its cluster.
    pub advertise: Advertise,
    /// A member's peer address to join through, on first start.
    pub join: Option<String>,
    /// Replicas per shard group.
    pub replication: usize,
    /// A batch not committed by then is answered "outcome unknown" and the
    /// leader stops deciding until it is confirmed again.
    pub commit_timeout: Duration,
    /// How long a request waits for its group to have a reachable leader.
    pub route_timeout: Duration,
    /// How long a request forwarded to another node (its group's leader)
    /// waits for the answer. Above `commit_timeout`, so a leader that
    /// cannot commit answers for itself (OUTCOME_UNKNOWN) first.
    pub forward_timeout: Duration,
    /// Where peers' Raft messages for this node's groups are delivered.
    pub transport: TransportService,
    /// Local address for connections to peers.
    pub peer_source_ip: Option<std::net::IpAddr>,
    /// Where usage history, audit events and snapshots are archived.
    pub archive: ArchiveChoice,
    /// How often each led group's changes are synced to the archive.
    pub sync_interval: Duration,
    /// How far this node's stamps may be from the median of its cluster's
    /// clocks (see `clock_skew`); `None` trusts the local clock alone.
    pub max_clock_skew: Option<Duration>,
    /// Bounds on the queues in front of decisions; past them, requests are
    /// refused (`EngineError::Overloaded`).
    pub limits: crate::shed::Limits,
}

/// Addresses a node announces.
#[derive(Debug, Clone, Default)]
pub struct Advertise {
    pub peer: String,
    pub grpc: String,
    pub http: String,
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
            advertise: Advertise::default(),
            join: None,
            replication: 3,
            commit_timeout: Duration::from_secs(5),
            route_timeout: Duration::from_secs(10),
            forward_timeout: Duration::from_secs(6),
            transport: TransportService::default(),
            peer_source_ip: None,
            archive: ArchiveChoice::Embedded,
            sync_interval: Duration::from_secs(10),
            max_clock_skew: Some(Duration::from_secs(1)),
            limits: crate::shed::Limits::default(),
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
    /// The first owner (user id, contact email).
    pub owner: Option<NewOwner>,
}

/// A page of an audit chain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    pub(crate) node_id: NodeId,
    pub(crate) meta: Group,
    /// Every shard group this node has open (a replica or not), by id.
    pub(crate) groups: RwLock<BTreeMap<u64, Arc<Shard>>>,
    pub(crate) map: ShardMap,
    pub(crate) peers: Peers,
    pub(crate) store: Store,
    pub(crate) config: EngineConfig,
    catalog: TierCatalog,
    clock: SharedClock,
    default_consistency: Consistency,
    deletion_retention: Duration,
    labels: TenantLabels,
    pub(crate) closing: AtomicBool,
    /// Admission: the node's in-flight bound and the shed counters.
    pub(crate) shedder: Arc<crate::shed::Shedder>,
    /// Connected (and migrated) on first use, so a node starts while its
    /// archive is away.
    archive: tokio::sync::OnceCell<Arc<dyn Archive>>,
    /// Per group, the log index of the snapshot last archived from here.
    archived_snapshots: std::sync::Mutex<BTreeMap<u64, u64>>,
    /// Dedicated tenants whose copy in the shared archive schema is to be
    /// deleted (their own schema has it all), with their quota names.
    purges_due: std::sync::Mutex<BTreeMap<crate::model::TenantId, Vec<String>>>,
    /// Dedicated tenants whose shared copy this process has purged.
    purged_from_shared: std::sync::Mutex<std::collections::HashSet<crate::model::TenantId>>,
}

/// Per-tier tenant counts and per-tenant usage, for a metrics scrape.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub tenants_by_tier: Vec<(Tier, u64)>,
    /// (tenant label, quota, usage) for tenants within the label bound.
    pub usage: Vec<(String, String, u64)>,
}

impl Engine {
    /// Open the node: its identity (founding a cluster, joining one through
    /// `config.join`, or as stored), its groups, and the cluster loops.
    pub async fn open(mut config: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        if let ArchiveChoice::Scylla(c) = &config.archive {
            c.validate()?;
        }
        // Peers' clocks are measured over Raft round trips; every stamp this
        // node makes stays within `max_clock_skew` of their median.
        let peer_clocks = PeerClocks::new(config.clock.clone());
        config.transport.set_clock(config.clock.clone());
        if let Some(max) = config.max_clock_skew {
            config.clock = Arc::new(BoundedClock::new(
                peer_clocks.clone(),
                max.as_millis() as i64,
            ));
        }
        let store = Store::open(&config.data_dir)?;
        let me = NodeInfo {
            peer_addr: config.advertise.peer.clone(),
            grpc_addr: config.advertise.grpc.clone(),
            http_addr: config.advertise.http.clone(),
            draining: false,
            joined_at_ms: config.clock.now_ms(),
        };
        // A node founds its cluster (and initializes the shard groups, again
        // after a crash half-way: initializing is idempotent) or joins one
        // (and its groups' leaders add it).
        let (node_id, shards, founding) = match store.node_id()? {
            Some(id) if store.joined()? => (id, store.shard_count_stored()?, false),
            Some(id) => (id, store.shard_count(config.shards)?, true),
            None => match &config.join {
                None => {
                    let shards = store.shard_count(config.shards)?;
                    store.set_identity(config.node_id, None)?;
                    (config.node_id, shards, true)
                }
                Some(seed) => {
                    let (id, shards) = crate::cluster::join(seed, &me).await?;
                    store.set_identity(id, Some(shards))?;
                    (id, shards, false)
                }
            },
        };
        let peers = Peers::with_source_ip(config.peer_source_ip).with_clocks(peer_clocks);
        let open = |id| Group::open(node_id, id, store.clone(), &config.raft, peers.clone());
        let meta = open(META_GROUP).await?;
        // Dedicated groups this node already knew of, beyond the hash shards.
        let dedicated: Vec<u64> = meta
            .state
            .read()
            .map(|s| {
                s.membership
                    .groups
                    .keys()
                    .copied()
                    .filter(|g| *g > shards)
                    .collect()
            })
            .unwrap_or_default();
        let opened = futures::future::try_join_all((1..=shards).chain(dedicated).map(open)).await?;
        let all: Vec<&Group> = std::iter::once(&meta).chain(opened.iter()).collect();
        for g in &all {
            config.transport.register(g.id, g.raft.clone());
        }
        if founding {
            let members =
                BTreeMap::from([(node_id, BasicNode::new(config.advertise.peer.clone()))]);
            // Only the groups a founder creates: dedicated groups are
            // initialized by their first replica.
            for g in all.iter().filter(|g| g.id <= shards) {
                g.initialize(members.clone()).await?;
            }
        }
        // Groups this node alone votes in (a single node, or a founder)
        // have no one to wait for: lead them before answering anything.
        futures::future::try_join_all(
            all.iter()
                .filter(|g| g.sole_voter() == Some(node_id))
                .map(|g| g.wait_leader(Duration::from_secs(30))),
        )
        .await?;
        let shedder = Arc::new(crate::shed::Shedder::new(config.limits));
        let started = opened
            .into_iter()
            .map(|group| {
                (
                    group.id,
                    Shard::start(
                        group,
                        config.clock.clone(),
                        config.idle_after,
                        config.max_batch,
                        config.commit_timeout,
                        shedder.clone(),
                    ),
                )
            })
            .collect();
        let engine = Arc::new(Engine {
            node_id,
            meta,
            groups: RwLock::new(started),
            map: ShardMap::new(shards),
            peers,
            store,
            catalog: config.catalog.clone(),
            clock: config.clock.clone(),
            default_consistency: config.default_consistency,
            deletion_retention: config.deletion_retention,
            labels: TenantLabels::new(config.metrics_max_tenants),
            config,
            closing: AtomicBool::new(false),
            shedder,
            archive: tokio::sync::OnceCell::new(),
            archived_snapshots: std::sync::Mutex::new(BTreeMap::new()),
            purges_due: Default::default(),
            purged_from_shared: Default::default(),
        });
        let bootstrapped = engine
            .meta
            .state
            .read()
            .map(|s| !s.membership.nodes.is_empty())
            .unwrap_or(true);
        if founding && !bootstrapped {
            let boot = MembershipOp::Bootstrap {
                node: node_id,
                info: me,
                shards,
            };
            engine
                .meta_write(Command::Meta(MetaOp::Membership(boot)))
                .await?;
        }
        crate::cluster::spawn_loops(&engine);
        crate::archive::sync::spawn(&engine);
        Ok(engine)
    }

    /// The archive, connected and its schema migrated on first use.
    pub async fn archive(&self) -> Result<Arc<dyn Archive>, EngineError> {
        let archive = self
            .archive
            .get_or_try_init(|| async {
                let archive: Arc<dyn Archive> = match &self.config.archive {
                    ArchiveChoice::Embedded => {
                        EmbeddedArchive::open(&self.config.data_dir, self.clock.clone())?
                    }
                    ArchiveChoice::EmbeddedAt(dir) => {
                        EmbeddedArchive::open(dir, self.clock.clone())?
                    }
                    ArchiveChoice::Scylla(c) => {
                        ScyllaArchive::connect(c.clone(), self.clock.clone()).await?
                    }
                    ArchiveChoice::Opened(a) => a.clone(),
                };
                let version = archive.migrate().await?;
                tracing::info!(backend = archive.name(), version, "archive ready");
                Ok::<_, EngineError>(archive)
            })
            .await?;
        Ok(archive.clone())
    }

    /// Snapshot every group this node leads now, then sync: the archive
    /// then holds the groups' whole state as of this moment (a backup before
    /// maintenance, or for a restore drill).
    pub async fn backup_to_archive(&self) -> Result<Vec<SyncRound>, EngineError> {
        for shard in self.served() {
            let raft = &shard.group.raft;
            let group = shard.group.id;
            let fail = |e: String| EngineError::Raft {
                group,
                message: format!("snapshot for the archive: {e}"),
            };
            let applied = raft.metrics().borrow().last_applied.map(|l| l.index);
            raft.trigger()
                .snapshot()
                .await
                .map_err(|e| fail(e.to_string()))?;
            raft.wait(Some(Duration::from_secs(120)))
                .metrics(
                    |m| m.snapshot.map(|s| s.index) >= applied,
                    "snapshot covers everything applied",
                )
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        self.sync_archive().await
    }

    /// One sync round for every group this node leads: their unarchived
    /// usage and audit, and newer snapshots, go to the archive (a dedicated
    /// group's to its tenant's own schema). Runs every `sync_interval` on
    /// its own; callable at any time. A group that fails does not hold the
    /// others back; the first failure is returned after all were tried.
    pub async fn sync_archive(&self) -> Result<Vec<SyncRound>, EngineError> {
        let shared = self.archive().await?;
        let mut first_error = self.purge_due(shared.as_ref()).await.err();
        let mut rounds = Vec::new();
        for shard in self.served() {
            match self.sync_one(&shared, &shard).await {
                Ok(round) => {
                    crate::archive::sync::report(&round);
                    rounds.push(round);
                }
                Err(e) => {
                    tracing::debug!(group = shard.group.id, error = %e, "archive sync of a group failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(rounds),
        }
    }

    async fn sync_one(
        &self,
        shared: &Arc<dyn Archive>,
        shard: &Arc<crate::shard::Shard>,
    ) -> Result<SyncRound, EngineError> {
        let group = shard.group.id;
        let dedicated_to = self.dedicated_tenant_of(group);
        let archive = match dedicated_to {
            Some(tenant) => shared.dedicated(tenant).await?,
            None => shared.clone(),
        };
        let mut archived = self
            .archived_snapshots
            .lock()
            .map(|m| m.get(&group).copied())
            .unwrap_or(None);
        let round = crate::archive::sync::sync_group(
            archive.as_ref(),
            shard,
            &self.store,
            &mut archived,
            self.clock.now_ms(),
        )
        .await;
        if let (Some(index), Ok(mut m)) = (archived, self.archived_snapshots.lock()) {
            m.insert(group, index);
        }
        let round = round?;
        if let Some(tenant) = dedicated_to {
            self.after_dedicated_round(shard, tenant, &round).await?;
        }
        Ok(round)
    }

    async fn after_dedicated_round(
        &self,
        shard: &crate::shard::Shard,
        tenant: crate::model::TenantId,
        round: &SyncRound,
    ) -> Result<(), EngineError> {
        if round.whole.contains(&tenant) {
            // Just arrived: its group's state goes to its own schema next
            // round, so the source group may drop its copy (`finish_moves`)
            // and a restore finds the tenant there.
            let raft = &shard.group.raft;
            let applied = raft.metrics().borrow().last_applied.map(|l| l.index);
            let built = async {
                raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
                raft.wait(Some(Duration::from_secs(30)))
                    .metrics(
                        |m| m.snapshot.map(|s| s.index) >= applied,
                        "the new dedicated group's snapshot",
                    )
                    .await
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = built.await {
                tracing::info!(group = shard.group.id, error = %e, "cannot snapshot a new dedicated group");
            }
        }
        // Its whole history reached its own schema (it arrived listed from
        // the beginning of time, and that is acknowledged, here or by an
        // earlier leader): the shared copy may go. Checked once a process.
        let whole_archived = shard.group.state.read().is_ok_and(|s| {
            s.tenants.contains_key(&tenant)
                && s.unarchived
                    .get(&tenant)
                    .is_none_or(|u| u.since_ms != i64::MIN)
        });
        let checked = self
            .purged_from_shared
            .lock()
            .is_ok_and(|p| p.contains(&tenant));
        if whole_archived && !checked {
            let quotas = crate::archive::sync::quota_names(shard, tenant)?;
            if let Ok(mut due) = self.purges_due.lock() {
                due.insert(tenant, quotas);
            }
        }
        Ok(())
    }

    /// The tenant a group was created for, if it is a dedicated group.
    fn dedicated_tenant_of(&self, group: u64) -> Option<crate::model::TenantId> {
        self.meta
            .state
            .read()
            .ok()?
            .membership
            .groups
            .get(&group)?
            .dedicated
    }

    /// Delete dedicated tenants' copies from the shared schema, a round
    /// after their own schema was seen to hold everything: by then a shard
    /// group's round on this node that took the tenant just before it
    /// moved has long written. Kept and retried until done.
    async fn purge_due(&self, shared: &dyn Archive) -> Result<(), EngineError> {
        let due: Vec<(crate::model::TenantId, Vec<String>)> = self
            .purges_due
            .lock()
            .map(|d| d.iter().map(|(t, q)| (*t, q.clone())).collect())
            .unwrap_or_default();
        for (tenant, quotas) in due {
            shared.purge_tenant(tenant, &quotas).await?;
            tracing::info!(%tenant, "dedicated tenant's archive purged from the shared schema");
            if let Ok(mut d) = self.purges_due.lock() {
                d.remove(&tenant);
            }
            if let Ok(mut p) = self.purged_from_shared.lock() {
                p.insert(tenant);
            }
        }
        Ok(())
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
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

    /// Requests this node is serving now (what `Limits::max_in_flight`
    /// bounds).
    pub fn in_flight(&self) -> usize {
        self.shedder.in_flight()
    }

    /// Tenant actors active on this node.
    pub fn active_actors(&self) -> usize {
        self.served().iter().map(|s| s.active_actors()).sum()
    }

    /// The shard groups this node currently decides for.
    pub(crate) fn served(&self) -> Vec<Arc<Shard>> {
        self.groups
            .read()
            .map(|g| g.values().filter(|s| s.serving()).cloned().collect())
            .unwrap_or_default()
    }

    async fn apply(
        &self,
        tenant: TenantId,
        op: TenantOp,
        audit: Option<&AuditMeta>,
        consistency: Option<Consistency>,
    ) -> Result<OpOutcome, EngineError> {
        let call = TenantCall::Apply {
            op,
            audit: audit.cloned(),
            consistency: consistency.unwrap_or(self.default_consistency),
        };
        match self.call_tenant(tenant, call).await? {
            TenantAnswer::Outcome(o) => Ok(o),
            other => Err(crate::cluster::forward::unexpected(other)),
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
        let created = TenantState::create(tenant.clone(), quotas.clone(), owner.as_ref(), now);
        if let Err(e) = self
            .apply(id, op, Some(by), Some(Consistency::Strict))
            .await
        {
            // Give the slug back so a retry can have it.
            let release = Command::Meta(MetaOp::ReleaseSlug {
                slug: new.slug,
                tenant: id,
            });
            if let Err(e2) = self.meta_write(release).await {
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
            match self.meta_write(claim).await? {
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
        match self.call_tenant(tenant, TenantCall::Read).await? {
            TenantAnswer::State(s) => Ok(*s),
            other => Err(crate::cluster::forward::unexpected(other)),
        }
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
        let call = TenantCall::Check {
            quota: quota.to_string(),
            amount,
        };
        let d = match self.call_tenant(tenant, call).await? {
            TenantAnswer::Decision(d) => d,
            other => return Err(crate::cluster::forward::unexpected(other)),
        };
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

    /// Spend on several of one tenant's quotas as one decision: every
    /// amount is taken or none is (see [`crate::quota::AllOrNothing`]).
    /// An optional spend whose quota the tenant lacks limits nothing.
    pub async fn increment_all(
        &self,
        tenant: TenantId,
        spends: Vec<Spend>,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    ) -> Result<AllDecided, EngineError> {
        if spends.is_empty() {
            return Err(QuotaError::invalid("descriptors", "nothing to spend").into());
        }
        for s in &spends {
            validate::quota_name(&s.quota)?;
            validate::positive_amount("amount", i64::try_from(s.amount).unwrap_or(i64::MAX))?;
        }
        idempotency_key_ok(&idempotency_key)?;
        let op = TenantOp::IncrementAll(Since(AllOrNothing {
            spends,
            idempotency_key,
        }));
        let decided = match self.apply(tenant, op, None, consistency).await? {
            OpOutcome::AllDecided(Since(all)) => all,
            other => return Err(unexpected(other)),
        };
        for d in decided.decisions.iter().flatten() {
            telemetry::decision(&self.labels, &tenant, d.allowed && decided.admitted);
        }
        Ok(decided)
    }

    /// Decide a batch of checks and increments, over any tenants. Items of
    /// one tenant go to its actor in one message and are decided in request
    /// order; tenants proceed in parallel. Each item gets its own answer:
    /// a bad item fails alone.
    pub async fn batch(
        &self,
        items: Vec<(TenantId, BatchOp)>,
    ) -> Vec<Result<Decision, EngineError>> {
        let mut results: Vec<Option<Result<Decision, EngineError>>> =
            (0..items.len()).map(|_| None).collect();
        let mut by_tenant: std::collections::HashMap<TenantId, (Vec<usize>, Vec<BatchItem>)> =
            std::collections::HashMap::new();
        for (i, (tenant, op)) in items.into_iter().enumerate() {
            match self.batch_item(op) {
                Ok(item) => {
                    let (indexes, items) = by_tenant.entry(tenant).or_default();
                    indexes.push(i);
                    items.push(item);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let answers = futures::future::join_all(by_tenant.into_iter().map(
            |(tenant, (indexes, items))| async move {
                let answer = self.call_tenant(tenant, TenantCall::Batch(items)).await;
                (tenant, indexes, answer)
            },
        ))
        .await;
        for (tenant, indexes, answer) in answers {
            match answer {
                Ok(TenantAnswer::Batch(decided)) if decided.len() == indexes.len() => {
                    let (mut requests, mut refused) = (0, 0);
                    for (i, d) in indexes.into_iter().zip(decided) {
                        if let Ok(d) = &d {
                            requests += 1;
                            refused += u64::from(!d.allowed);
                        }
                        results[i] = Some(d.map_err(EngineError::from));
                    }
                    self.labels.count(&tenant, requests, refused);
                }
                other => {
                    let e = match other {
                        Err(e) => crate::cluster::forward::WireError::from(&e),
                        Ok(a) => (&crate::cluster::forward::unexpected(a)).into(),
                    };
                    for i in indexes {
                        results[i] = Some(Err(e.clone().into()));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every item answered"))
            .collect()
    }

    fn batch_item(&self, op: BatchOp) -> Result<BatchItem, EngineError> {
        Ok(match op {
            BatchOp::Check { quota, amount } => {
                validate::quota_name(&quota)?;
                validate::positive_amount("amount", amount)?;
                BatchItem::Check { quota, amount }
            }
            BatchOp::Increment {
                quota,
                amount,
                idempotency_key,
                consistency,
            } => {
                validate::quota_name(&quota)?;
                validate::amount(amount)?;
                idempotency_key_ok(&idempotency_key)?;
                BatchItem::Apply {
                    op: TenantOp::Increment {
                        quota,
                        amount,
                        idempotency_key,
                    },
                    consistency: consistency.unwrap_or(self.default_consistency),
                }
            }
        })
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
    pub async fn usage_history(
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
        let req = ForwardRequest::Usage {
            tenant,
            quota: quota.to_string(),
            granularity,
            from_ms,
            to_ms,
        };
        match self.dispatch_tenant(tenant, req, true).await? {
            ForwardReply::Usage(points, stats) => Ok((points, stats)),
            other => Err(crate::cluster::forward::unexpected(other)),
        }
    }

    /// [`Engine::usage_history`] on the group's leader.
    pub(crate) fn usage_local(
        &self,
        shard: &Shard,
        tenant: TenantId,
        quota: &str,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(Vec<Point>, Statistics), EngineError> {
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
            match self.meta_write(claim).await? {
                CommandResponse::DomainTaken { owner }
                    if replacing.is_none() && !self.lists_domain(owner, domain).await? =>
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
            if let Err(e2) = self.meta_write(release).await {
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
        self.meta_write(Command::Meta(MetaOp::ReleaseDomain {
            domain: domain.to_string(),
            tenant,
        }))
        .await?;
        self.tenant(tenant).await
    }

    /// Whether `tenant`'s committed state lists `domain` (a claim by a
    /// tenant that does not is left over from a failed registration).
    async fn lists_domain(&self, tenant: TenantId, domain: &str) -> Result<bool, EngineError> {
        match self.tenant(tenant).await {
            Ok(t) => Ok(t.domains.contains_key(domain)),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The tenant whose *verified* custom domain `host` is (port ignored).
    pub async fn tenant_for_host(&self, host: &str) -> Option<TenantId> {
        let name = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        let tenant = self.meta.state.read().ok()?.domains.get(&name)?.tenant;
        let state = self.tenant(tenant).await.ok()?;
        let verified = state.domains.get(&name)?.verified;
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
            self.meta_write(Command::Meta(MetaOp::ReleaseDomain { domain, tenant }))
                .await?;
        }
        self.meta_write(Command::Meta(MetaOp::ReleaseSlug { slug, tenant }))
            .await?;
        Ok(())
    }

    /// Purge every deleted tenant whose retention has ended; returns how
    /// many. The node runs this periodically.
    pub async fn purge_expired(&self) -> Result<usize, EngineError> {
        let now = self.clock.now_ms();
        let mut due = Vec::new();
        for shard in &self.served() {
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
    pub async fn audit(
        &self,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> Result<AuditPage, EngineError> {
        let req = ForwardRequest::Audit {
            tenant,
            query: query.clone(),
        };
        match self.dispatch_tenant(tenant, req, true).await? {
            ForwardReply::Audit(page) => Ok(page),
            other => Err(crate::cluster::forward::unexpected(other)),
        }
    }

    /// [`Engine::audit`] on the group's leader.
    pub(crate) fn audit_local(
        &self,
        shard: &Shard,
        tenant: TenantId,
        query: &AuditQuery,
    ) -> Result<AuditPage, EngineError> {
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
        for shard in &self.served() {
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
                    usage.push((label.clone(), name.to_string(), q.usage(now)));
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

    /// Ready when every group this node is a member of has a leader, none
    /// of them has failed, and every group it should lead is served.
    pub async fn ready(&self) -> Result<(), String> {
        let shards: Vec<Arc<Shard>> = self
            .groups
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default();
        for (g, shard) in
            std::iter::once((&self.meta, None)).chain(shards.iter().map(|s| (&s.group, Some(s))))
        {
            if let Some(e) = g.failure() {
                return Err(format!(
                    "group {} stopped on an error; restart the node once its data dir is \
                     writable: {e}",
                    g.id
                ));
            }
            let m = g.raft.metrics().borrow().clone();
            let member = m
                .membership_config
                .membership()
                .get_node(&self.node_id)
                .is_some();
            if !member && g.id != META_GROUP {
                continue;
            }
            match m.current_leader {
                None => return Err(format!("group {} has no leader", g.id)),
                Some(l) if l == self.node_id && shard.is_some_and(|s| !s.serving()) => {
                    return Err(format!("group {} is not serving yet", g.id));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// A group of this node that stopped on an error (a failed write of
    /// the data dir), with why: only a restart brings it back, so the node
    /// is not live (`/healthz`).
    pub fn failure(&self) -> Option<String> {
        let shards: Vec<Arc<Shard>> = self
            .groups
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default();
        std::iter::once(&self.meta)
            .chain(shards.iter().map(|s| &s.group))
            .find_map(|g| g.failure().map(|e| format!("group {} stopped: {e}", g.id)))
    }

    pub async fn shutdown(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let shards: Vec<Arc<Shard>> = self
            .groups
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default();
        for s in shards {
            s.group.shutdown().await;
        }
        self.meta.shutdown().await;
    }
}

/// One item of [`Engine::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Check {
        quota: String,
        amount: i64,
    },
    Increment {
        quota: String,
        amount: i64,
        idempotency_key: Option<String>,
        consistency: Option<Consistency>,
    },
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
