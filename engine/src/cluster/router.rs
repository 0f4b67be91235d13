//! The router: this node's groups (the meta group and every shard group it
//! has open) and its peers. It opens the node's identity and groups, sends
//! each request to its group's leader (`routing`), serves what other nodes
//! forward here, and carries placement out (`driver`, `dedicate`).
use super::membership::NodeInfo;
use super::placement::META_GROUP;
use crate::archive::ArchiveHandle;
use crate::clock::SharedClock;
use crate::clock_skew::PeerClocks;
use crate::error::EngineError;
use crate::model::TenantId;
use crate::raft::{
    Command, Group, GroupConfig, GroupHandle, MetaOp, MetaState, NodeId, Peers, ShardState,
    TransportService,
};
use crate::shard::{Shard, ShardMap, SpawnActor};
use crate::shed::Shedder;
use crate::storage::Store;
use openraft::BasicNode;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What a node announces of itself: its addresses, and the labels and
/// reservation placement reads (see `NodeInfo`).
#[derive(Debug, Clone, Default)]
pub struct Advertise {
    pub peer: String,
    pub grpc: String,
    pub http: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub reserved: bool,
}

/// What the router needs of the node's configuration (see
/// `EngineConfig` for each setting).
#[derive(Clone)]
pub struct RouterConfig {
    pub node_id: u64,
    pub shards: u64,
    pub raft: GroupConfig,
    pub advertise: Advertise,
    pub join: Option<String>,
    pub join_token: Option<String>,
    pub peer_tls: Option<tonic::transport::ClientTlsConfig>,
    pub replication: usize,
    pub route_timeout: Duration,
    pub forward_timeout: Duration,
    pub commit_timeout: Duration,
    pub transport: TransportService,
    pub peer_source_ip: Option<std::net::IpAddr>,
    pub clock: SharedClock,
    pub idle_after: Duration,
    pub max_batch: usize,
}

pub struct Router {
    pub(crate) node_id: NodeId,
    pub(crate) meta: Group<MetaState>,
    /// Every shard group this node has open (a replica or not), by id.
    pub(crate) groups: RwLock<BTreeMap<u64, Arc<Shard>>>,
    pub(crate) map: ShardMap,
    pub(crate) peers: Peers,
    pub(crate) store: Store,
    pub(crate) config: RouterConfig,
    /// Admission: the node's in-flight bound and the shed counters.
    pub(crate) shedder: Arc<Shedder>,
    /// Starts tenant actors in the shards this router opens.
    spawn: SpawnActor,
    /// Where a finished tenant move checks that the tenant's own schema
    /// holds it before its old copy goes.
    pub(crate) archive: Arc<ArchiveHandle>,
    closing: AtomicBool,
}

impl Router {
    /// Open the node: its identity (founding a cluster, joining one
    /// through `config.join`, or as stored), its groups and their shards.
    /// The cluster loops are the caller's to start (`spawn_loops`).
    pub(crate) async fn open(
        config: RouterConfig,
        store: Store,
        peer_clocks: Arc<PeerClocks>,
        shedder: Arc<Shedder>,
        spawn: SpawnActor,
        archive: Arc<ArchiveHandle>,
    ) -> Result<Arc<Router>, EngineError> {
        let me = NodeInfo {
            peer_addr: config.advertise.peer.clone(),
            grpc_addr: config.advertise.grpc.clone(),
            http_addr: config.advertise.http.clone(),
            draining: false,
            joined_at_ms: config.clock.now_ms(),
            labels: config.advertise.labels.clone(),
            reserved: config.advertise.reserved,
        };
        // A node founds its cluster (and initializes the shard groups, again
        // after a crash half-way: initializing is idempotent) or joins one
        // (and its groups' leaders add it).
        let auth = config.transport.peer_auth().clone();
        let keep_key = |e: std::io::Error| {
            EngineError::Storage(crate::storage::StorageError::ClusterKey {
                path: crate::peer_auth::KEY_FILE.into(),
                source: e,
            })
        };
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
                    let (id, shards, key) = super::join::join(
                        seed,
                        &me,
                        config.join_token.as_deref(),
                        config.peer_tls.as_ref(),
                    )
                    .await?;
                    // Kept before the identity: a node that has an identity
                    // has its key.
                    auth.adopt(key).map_err(keep_key)?;
                    store.set_identity(id, Some(shards))?;
                    (id, shards, false)
                }
            },
        };
        if auth.key().is_none() {
            // A founding node, or one whose data dir predates cluster keys.
            if !founding && config.join_token.is_none() {
                tracing::warn!(
                    "this node has no cluster key and no join token to derive one from: its peers \
                     will refuse it until it gets the cluster's (restart it with the cluster's \
                     --join-token)"
                );
            }
            auth.found().map_err(keep_key)?;
        }
        let peers = Peers::with_source_ip(config.peer_source_ip)
            .with_clocks(peer_clocks)
            .with_auth(auth)
            .with_tls(config.peer_tls.clone());
        let open =
            |id| Group::<ShardState>::open(node_id, id, store.clone(), &config.raft, peers.clone());
        let meta = Group::<MetaState>::open(
            node_id,
            META_GROUP,
            store.clone(),
            &config.raft,
            peers.clone(),
        )
        .await?;
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
        let all: Vec<&GroupHandle> = std::iter::once(meta.handle())
            .chain(opened.iter().map(Group::handle))
            .collect();
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
        let router = Arc::new(Router {
            node_id,
            meta,
            groups: RwLock::new(BTreeMap::new()),
            map: ShardMap::new(shards),
            peers,
            store,
            config,
            shedder,
            spawn,
            archive,
            closing: AtomicBool::new(false),
        });
        for group in opened {
            router.start_shard(group);
        }
        let bootstrapped = router
            .meta
            .state
            .read()
            .map(|s| !s.membership.nodes.is_empty())
            .unwrap_or(true);
        if founding && !bootstrapped {
            let boot = super::MembershipOp::Bootstrap {
                node: node_id,
                info: me,
                shards,
            };
            router
                .meta_write(Command::Meta(MetaOp::Membership(boot)))
                .await?;
        }
        Ok(router)
    }

    /// Serve `group` here: its batcher, leadership watch and actors.
    pub(crate) fn start_shard(&self, group: Group) {
        let id = group.id;
        let shard = Shard::start(
            group,
            self.config.clock.clone(),
            self.config.idle_after,
            self.config.max_batch,
            self.config.commit_timeout,
            self.shedder.clone(),
            self.spawn.clone(),
        );
        if let Ok(mut g) = self.groups.write() {
            g.entry(id).or_insert(shard);
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Every shard group this node has open.
    pub(crate) fn shards(&self) -> Vec<Arc<Shard>> {
        self.groups
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The shard groups this node currently decides for.
    pub(crate) fn served(&self) -> Vec<Arc<Shard>> {
        self.shards().into_iter().filter(|s| s.serving()).collect()
    }

    /// The tenant a group was created for, if it is a dedicated group.
    pub(crate) fn dedicated_tenant_of(&self, group: u64) -> Option<TenantId> {
        self.meta
            .state
            .read()
            .ok()?
            .membership
            .groups
            .get(&group)?
            .dedicated
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Ready when every group this node is a member of has a leader, none
    /// of them has failed, and every group it should lead is served.
    pub fn ready(&self) -> Result<(), String> {
        let shards = self.shards();
        for (g, shard) in std::iter::once((self.meta.handle(), None))
            .chain(shards.iter().map(|s| (s.group.handle(), Some(s))))
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
    /// the data dir), with why: only a restart brings it back.
    pub fn failure(&self) -> Option<String> {
        let shards = self.shards();
        std::iter::once(self.meta.handle())
            .chain(shards.iter().map(|s| s.group.handle()))
            .find_map(|g| g.failure().map(|e| format!("group {} stopped: {e}", g.id)))
    }

    /// Stop the loops and every group.
    pub async fn shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        for s in self.shards() {
            s.group.shutdown().await;
        }
        self.meta.shutdown().await;
    }
}
