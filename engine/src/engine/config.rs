//! The node's settings.
use crate::archive::ArchiveChoice;
use crate::clock::{SharedClock, SystemClock};
pub use crate::cluster::Advertise;
use crate::cluster::RouterConfig;
use crate::model::Consistency;
use crate::quota::TierCatalog;
use crate::raft::{GroupConfig, TransportService};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// The platform's fee on shared resources, in basis points: what a
    /// policy gets unless an operator sets another.
    pub platform_fee_bp: u32,
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
    /// The secret that admits nodes to the cluster: presented when this
    /// node joins, and required of nodes joining through it (see
    /// `crate::peer_auth`). `None`: this node admits no joins.
    pub join_token: Option<String>,
    /// Mutual TLS to peers (see `crate::tls::TlsFiles::peer_client`);
    /// `None`: plaintext.
    pub peer_tls: Option<tonic::transport::ClientTlsConfig>,
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
    /// The key secrets are sealed with (`QUOTAD_SECRET_KEY`); `None`:
    /// derived from the cluster key (see `crate::custom::secret`).
    pub secrets_key: Option<crate::custom::secret::SecretsKey>,
    /// How webhooks are delivered.
    pub webhooks: super::webhooks::WebhookConfig,
    /// What a reported payment failure does.
    pub billing: super::alerting::BillingConfig,
    /// How often time-driven alerts (trials, grace periods) are looked for.
    pub alert_interval: Duration,
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
            platform_fee_bp: crate::sharing::DEFAULT_PLATFORM_FEE_BP,
            metrics_max_tenants: 1_000,
            catalog: TierCatalog::builtin(),
            clock: Arc::new(SystemClock),
            advertise: Advertise::default(),
            join: None,
            join_token: None,
            peer_tls: None,
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
            secrets_key: None,
            webhooks: Default::default(),
            billing: Default::default(),
            alert_interval: Duration::from_secs(1),
        }
    }
}

impl EngineConfig {
    /// What the router needs of it.
    pub(crate) fn router(&self) -> RouterConfig {
        RouterConfig {
            node_id: self.node_id,
            shards: self.shards,
            raft: self.raft.clone(),
            advertise: self.advertise.clone(),
            join: self.join.clone(),
            join_token: self.join_token.clone(),
            peer_tls: self.peer_tls.clone(),
            replication: self.replication,
            route_timeout: self.route_timeout,
            forward_timeout: self.forward_timeout,
            commit_timeout: self.commit_timeout,
            transport: self.transport.clone(),
            peer_source_ip: self.peer_source_ip,
            clock: self.clock.clone(),
            idle_after: self.idle_after,
            max_batch: self.max_batch,
        }
    }
}
