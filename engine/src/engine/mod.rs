//! The engine: what the gRPC service and the control plane call. It holds
//! the node's [`Router`] (groups, peers, routing to leaders) and archive
//! [`Syncer`], and turns each API operation into a call on a tenant's actor
//! or a read of its group.
//!
//! # Public surface, by file
//! - `mod.rs`: [`Engine::open`], [`Engine::shutdown`], [`Engine::node_id`],
//!   [`Engine::catalog`], [`Engine::now_ms`], [`Engine::default_consistency`].
//! - `config.rs`: [`EngineConfig`], [`Advertise`].
//! - `admission.rs`: [`Engine::check`], [`Engine::increment`],
//!   [`Engine::increment_all`], [`Engine::batch`] ([`BatchOp`]),
//!   [`Engine::reserve`] ([`Reserved`]), [`Engine::settle`],
//!   [`Engine::release`].
//! - `tenants.rs`: [`Engine::create_tenant`] ([`NewTenant`]),
//!   [`Engine::tenant`], [`Engine::admin`] (every audited change that is one
//!   `TenantOp`), [`Engine::change_tier`], [`Engine::delete_tenant`],
//!   [`Engine::purge_tenant`], [`Engine::purge_expired`].
//! - `directory.rs`: [`Engine::tenant_directory`] (every tenant, for
//!   operators).
//! - `sessions.rs`: [`Engine::sign_out_session`],
//!   [`Engine::session_signed_out`] (console sign-outs).
//! - `domains.rs`: [`Engine::add_domain`], [`Engine::remove_domain`],
//!   [`Engine::tenant_for_host`].
//! - `usage.rs`: [`Engine::usage_history`].
//! - `audit.rs`: [`Engine::record_audit`], [`Engine::audit`].
//! - `archive.rs`: [`Engine::archive`], [`Engine::sync_archive`],
//!   [`Engine::backup_to_archive`].
//! - `restore.rs`: [`Engine::restore_from_archive`].
//! - `cluster.rs`: [`Engine::router`], [`Engine::placement_of`],
//!   [`Engine::leader_hint`], [`Engine::leader_node`],
//!   [`Engine::dedicate_tenant`].
//! - `health.rs`: [`Engine::ready`], [`Engine::failure`],
//!   [`Engine::in_flight`], [`Engine::active_actors`],
//!   [`Engine::metrics_snapshot`] ([`MetricsSnapshot`]).
mod admission;
mod alerting;
mod archive;
mod audit;
mod cluster;
mod config;
mod customization;
mod directory;
mod domains;
mod health;
mod platform_alerts;
mod quota_levels;
mod restore;
mod sessions;
mod shared_use;
mod sharing;
mod sso;
mod tenants;
mod transfers;
mod usage;
mod webhooks;

pub use crate::sharing::Via;
pub use admission::{BatchOp, Hold, Reserved};
pub use alerting::BillingConfig;
pub use archive::ArchiveBacklog;
pub use config::{Advertise, EngineConfig};
pub use customization::FlagSource;
pub use health::MetricsSnapshot;
pub use sso::SsoUser;
pub use tenants::NewTenant;
pub use webhooks::WebhookConfig;

use crate::archive::{ArchiveChoice, ArchiveHandle, Syncer};
use crate::audit::AuditMeta;
use crate::clock::SharedClock;
use crate::clock_skew::{BoundedClock, PeerClocks};
use crate::cluster::{Router, forward};
use crate::error::EngineError;
use crate::model::{Consistency, TenantId};
use crate::quota::{OpOutcome, TenantOp, TierCatalog};
use crate::raft::NodeId;
use crate::shard::{TenantAnswer, TenantCall};
use crate::storage::Store;
use crate::telemetry::TenantLabels;
use std::sync::Arc;
use std::time::Duration;

pub struct Engine {
    router: Arc<Router>,
    syncer: Syncer,
    catalog: TierCatalog,
    clock: SharedClock,
    default_consistency: Consistency,
    deletion_retention: Duration,
    platform_fee_bp: u32,
    labels: TenantLabels,
    secrets: webhooks::Secrets,
    webhooks: WebhookConfig,
    billing: BillingConfig,
    /// SSO issuers' keys, by issuer.
    sso_keys: dashmap::DashMap<String, sso::IssuerKeys>,
    /// Tenants' alerts this node knows the operators' feed has.
    handed_on: platform_alerts::HandedOn,
}

impl Engine {
    /// Open the node: its identity (founding a cluster, joining one through
    /// `config.join`, or as stored), its groups, and the cluster and archive
    /// loops.
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
        config
            .transport
            .peer_auth()
            .configure(&config.data_dir, config.join_token.clone())
            .map_err(|e| {
                EngineError::Storage(crate::storage::StorageError::ClusterKey {
                    path: config
                        .data_dir
                        .join(crate::peer_auth::KEY_FILE)
                        .display()
                        .to_string(),
                    source: e,
                })
            })?;
        let archive = Arc::new(ArchiveHandle::new(
            config.archive.clone(),
            config.data_dir.clone(),
            config.clock.clone(),
        ));
        let router = Router::open(
            config.router(),
            store.clone(),
            peer_clocks,
            Arc::new(crate::shed::Shedder::new(config.limits)),
            crate::actor::spawner(),
            archive.clone(),
        )
        .await?;
        crate::cluster::spawn_loops(&router);
        let engine = Arc::new(Engine {
            router,
            syncer: Syncer::new(archive, store, config.clock.clone()),
            catalog: config.catalog.clone(),
            clock: config.clock.clone(),
            default_consistency: config.default_consistency,
            deletion_retention: config.deletion_retention,
            platform_fee_bp: config.platform_fee_bp,
            labels: TenantLabels::new(config.metrics_max_tenants),
            secrets: webhooks::Secrets {
                fixed: config.secrets_key.clone(),
                peer_auth: config.transport.peer_auth().clone(),
            },
            webhooks: config.webhooks.clone(),
            billing: config.billing.clone(),
            sso_keys: Default::default(),
            handed_on: Default::default(),
        });
        archive::spawn_sync(Arc::downgrade(&engine), config.sync_interval);
        webhooks::spawn_deliveries(Arc::downgrade(&engine), config.webhooks.clone());
        alerting::spawn_alert_loop(Arc::downgrade(&engine), config.alert_interval);
        Ok(engine)
    }

    pub fn node_id(&self) -> NodeId {
        self.router.node_id()
    }

    /// The platform's fee on shared resources, in basis points, unless an
    /// operator sets another for a policy.
    pub fn platform_fee_bp(&self) -> u32 {
        self.platform_fee_bp
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

    /// Ask a tenant's actor to apply `op`, on whichever node leads its
    /// group.
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
        match self.router.call_tenant(tenant, call).await? {
            TenantAnswer::Outcome(o) => Ok(o),
            other => Err(forward::unexpected(other)),
        }
    }

    pub async fn shutdown(&self) {
        self.router.shutdown().await;
    }
}
