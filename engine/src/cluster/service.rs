//! The `quotad.cluster.v1.Cluster` service of the peer port: joins, the
//! shard map, status, node removal, forwarded requests and elections, for
//! the cluster's nodes only (a `Join` also for a node with the join token;
//! see `crate::peer_auth`). It is served before the router exists (a
//! joining node's peer port must be up while it joins), so it answers
//! UNAVAILABLE until the router is set. The client port serves the part
//! clients may use through `grpc::cluster_port`.
use super::forward::{self, ForwardReply};
use super::membership::{GroupPlacement, Membership, MembershipOp, MembershipReply, NodeInfo};
use super::placement::META_GROUP;
use super::router::Router;
use crate::error::EngineError;
use crate::peer_auth::PeerAuth;
use crate::raft::{Command, CommandResponse, MetaOp, NodeId};
use quotad_proto::cluster::cluster_server::{Cluster, ClusterServer};
use quotad_proto::cluster::*;
use std::sync::{Arc, OnceLock};
use tonic::{Request, Response, Status};

/// How long `MoveLeader` waits for the hand-over before answering.
const MOVE_LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone, Default)]
pub struct ClusterService {
    router: Arc<OnceLock<Arc<Router>>>,
    auth: Arc<PeerAuth>,
}

impl ClusterService {
    /// The service answering only callers `auth` accepts.
    pub fn with_auth(auth: Arc<PeerAuth>) -> Self {
        ClusterService {
            router: Arc::default(),
            auth,
        }
    }

    /// The node's router, once it is open.
    pub fn router(&self) -> Result<&Arc<Router>, Status> {
        self.engine()
    }

    pub fn set_router(&self, router: Arc<Router>) {
        let _ = self.router.set(router);
    }

    pub fn server(self) -> ClusterServer<ClusterService> {
        ClusterServer::new(self)
            .max_decoding_message_size(crate::raft::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::raft::MAX_MESSAGE_BYTES)
    }

    fn engine(&self) -> Result<&Arc<Router>, Status> {
        self.router
            .get()
            .ok_or_else(|| Status::unavailable("this node is still starting"))
    }
}

impl Router {
    /// The cluster as this node's copy of the meta group has it.
    pub(crate) fn membership(&self) -> Membership {
        self.meta
            .state
            .read()
            .map(|s| s.membership.clone())
            .unwrap_or_default()
    }

    /// Admit a node (meta-group write through its leader).
    pub async fn join_node(&self, info: NodeInfo) -> Result<u64, EngineError> {
        let op = MembershipOp::AddNode { info };
        match self
            .meta_write(Command::Meta(MetaOp::Membership(op)))
            .await?
        {
            CommandResponse::Membership(MembershipReply::NodeAdded { node }) => Ok(node),
            other => Err(EngineError::unexpected(other)),
        }
    }

    /// Start draining `node`; forget it once it holds no replica. Returns
    /// the replicas it still holds.
    pub async fn remove_node(&self, node: u64) -> Result<usize, EngineError> {
        let m = self.membership();
        if !m.nodes.contains_key(&node) {
            return Err(EngineError::UnknownNode { node });
        }
        let active = m
            .nodes
            .iter()
            .filter(|(id, n)| !n.draining && **id != node)
            .count();
        if active == 0 {
            return Err(EngineError::LastActiveNode { node });
        }
        if !m.nodes[&node].draining {
            let op = MembershipOp::SetDraining {
                node,
                draining: true,
            };
            self.meta_write(Command::Meta(MetaOp::Membership(op)))
                .await?;
        }
        let m = self.membership();
        let left = m.holding(node);
        if left == 0 {
            let op = MembershipOp::ForgetNode { node };
            self.meta_write(Command::Meta(MetaOp::Membership(op)))
                .await?;
        }
        Ok(left)
    }

    /// Have `node` lead shard group `group`: the placement names it as the
    /// group's leader, and the group's leader hands over (the driver's
    /// `transfer`). Waits up to `wait` for the hand-over; returns the
    /// leader then.
    pub async fn move_leader(
        &self,
        group: u64,
        node: u64,
        wait: std::time::Duration,
    ) -> Result<Option<NodeId>, EngineError> {
        let m = self.membership();
        if !m.nodes.contains_key(&node) {
            return Err(EngineError::UnknownNode { node });
        }
        let g = match m.groups.get(&group) {
            Some(g) if group != META_GROUP => g,
            _ => return Err(EngineError::UnknownGroup { group }),
        };
        if !g.voters.contains(&node) || m.nodes[&node].draining {
            return Err(EngineError::NotAVoter {
                group,
                node,
                voters: g.voters.clone(),
            });
        }
        if g.leader != Some(node) {
            let placement = GroupPlacement {
                leader: Some(node),
                ..g.clone()
            };
            let op = MembershipOp::Place { group, placement };
            if let CommandResponse::Membership(MembershipReply::Refused { reason }) = self
                .meta_write(Command::Meta(MetaOp::Membership(op)))
                .await?
            {
                return Err(EngineError::HandOverFailed {
                    group,
                    to: node,
                    reason,
                });
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let leader = self.membership().groups.get(&group).and_then(|g| g.led_by);
            if leader.is_some_and(|(n, _)| n == node) || tokio::time::Instant::now() >= deadline {
                return Ok(leader.map(|(n, _)| n));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// `MoveLeader`, as both ports answer it.
    pub(crate) async fn answer_move_leader(
        &self,
        r: MoveLeaderRequest,
    ) -> Result<Response<MoveLeaderReply>, Status> {
        let leader = self
            .move_leader(r.group, r.node, MOVE_LEADER_WAIT)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(MoveLeaderReply {
            leader: leader.unwrap_or(0),
            moved: leader == Some(r.node),
        }))
    }

    pub fn shard_map(&self) -> ShardMapReply {
        let m = self.membership();
        ShardMapReply {
            shards: self.map.count(),
            groups: m
                .groups
                .keys()
                .filter(|g| **g != META_GROUP)
                .map(|g| {
                    let leader = self.leader_of(*g);
                    GroupRoute {
                        group: *g,
                        leader: leader.unwrap_or(0),
                        leader_grpc_addr: leader
                            .and_then(|l| m.nodes.get(&l))
                            .map(|n| n.grpc_addr.clone())
                            .unwrap_or_default(),
                    }
                })
                .collect(),
            pins: m
                .pins
                .iter()
                .map(|(t, g)| TenantPin {
                    tenant_id: t.to_string(),
                    group: *g,
                })
                .collect(),
        }
    }

    /// The cluster as this node sees it; replication lag is filled in for
    /// the groups it leads.
    pub fn cluster_status(&self) -> ClusterStatus {
        let m = self.membership();
        let mut groups = Vec::new();
        for (id, placement) in &m.groups {
            let raft = if *id == META_GROUP {
                Some(self.meta.raft.clone())
            } else {
                self.local_shard(*id).map(|s| s.group.raft.clone())
            };
            let mut g = GroupStatus {
                group: *id,
                replicas: placement.replicas.clone(),
                voters: placement.voters.clone(),
                learners: placement.learners.clone(),
                leader: placement.led_by.map_or(0, |(n, _)| n),
                term: placement.led_by.map_or(0, |(_, t)| t),
                dedicated_tenant: placement
                    .dedicated
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                ..Default::default()
            };
            if let Some(raft) = raft {
                let rm = raft.metrics().borrow().clone();
                let membership = rm.membership_config.membership();
                if membership.get_node(&self.node_id).is_some() {
                    g.voters = membership.voter_ids().collect();
                    g.learners = membership.learner_ids().collect();
                    g.leader = rm.current_leader.unwrap_or(0);
                    g.term = rm.current_term;
                    g.last_log_index = rm.last_log_index.unwrap_or(0);
                    g.applied_index = rm.last_applied.map_or(0, |l| l.index);
                    if let Some(repl) = &rm.replication {
                        let last = rm.last_log_index.unwrap_or(0);
                        g.lag = repl
                            .iter()
                            .map(|(n, l)| (*n, last.saturating_sub(l.map_or(0, |l| l.index))))
                            .collect();
                    }
                }
            }
            groups.push(g);
        }
        let nodes = m
            .nodes
            .iter()
            .map(|(id, n)| NodeStatus {
                id: *id,
                peer_addr: n.peer_addr.clone(),
                grpc_addr: n.grpc_addr.clone(),
                http_addr: n.http_addr.clone(),
                state: if n.draining { "draining" } else { "active" }.into(),
                replicas: m.replicas_on(*id) as u32,
                leaders: groups
                    .iter()
                    .filter(|g| g.group != META_GROUP && g.leader == *id)
                    .count() as u32,
            })
            .collect();
        ClusterStatus {
            node_id: self.node_id,
            nodes,
            groups,
        }
    }

    /// Start an election for `group` here (the receiving end of a leader
    /// hand-over).
    pub async fn elect(&self, group: u64) -> Result<(), EngineError> {
        let raft = if group == META_GROUP {
            self.meta.raft.clone()
        } else {
            self.local_shard(group)
                .ok_or(EngineError::GroupNotHere { group })?
                .group
                .raft
                .clone()
        };
        raft.trigger().elect().await.map_err(|e| EngineError::Raft {
            group,
            message: e.to_string(),
        })
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        self.auth.check_join(req.metadata())?;
        let e = self.engine()?;
        let key = self
            .auth
            .key()
            .ok_or_else(|| Status::unavailable("this node has no cluster key yet"))?;
        let r = req.into_inner();
        for (field, v) in [("peer_addr", &r.peer_addr), ("grpc_addr", &r.grpc_addr)] {
            if v.parse::<std::net::SocketAddr>().is_err() {
                return Err(Status::invalid_argument(format!(
                    "{field}: {v:?} is not a host:port address"
                )));
            }
        }
        let node_id = e
            .join_node(NodeInfo {
                peer_addr: r.peer_addr,
                grpc_addr: r.grpc_addr,
                http_addr: r.http_addr,
                draining: false,
                joined_at_ms: e.config.clock.now_ms(),
                labels: checked_labels(r.labels)?,
                reserved: r.reserved,
            })
            .await
            .map_err(Status::from)?;
        Ok(Response::new(JoinReply {
            node_id,
            shards: e.map.count(),
            cluster_key: key.as_bytes().to_vec(),
        }))
    }

    async fn shard_map(
        &self,
        req: Request<ShardMapRequest>,
    ) -> Result<Response<ShardMapReply>, Status> {
        self.auth.check_peer(req.metadata())?;
        Ok(Response::new(self.engine()?.shard_map()))
    }

    async fn status(&self, req: Request<StatusRequest>) -> Result<Response<ClusterStatus>, Status> {
        self.auth.check_peer(req.metadata())?;
        Ok(Response::new(self.engine()?.cluster_status()))
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeReply>, Status> {
        self.auth.check_peer(req.metadata())?;
        let left = self
            .engine()?
            .remove_node(req.into_inner().node_id)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(RemoveNodeReply {
            remaining_replicas: left as u32,
            removed: left == 0,
        }))
    }

    async fn forward(
        &self,
        req: Request<ForwardMessage>,
    ) -> Result<Response<ForwardMessage>, Status> {
        self.auth.check_peer(req.metadata())?;
        let e = self.engine()?;
        let by = super::principal::from_metadata(req.metadata())?;
        let request = forward::decode_request(&req.into_inner().payload)?;
        let answer: Result<ForwardReply, EngineError> = e.serve_forward(request, by).await;
        Ok(Response::new(ForwardMessage {
            payload: forward::encode_reply(&answer)?,
        }))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderReply>, Status> {
        self.auth.check_peer(req.metadata())?;
        self.engine()?.answer_move_leader(req.into_inner()).await
    }

    async fn elect(&self, req: Request<ElectRequest>) -> Result<Response<ElectReply>, Status> {
        self.auth.check_peer(req.metadata())?;
        self.engine()?
            .elect(req.into_inner().group)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(ElectReply {}))
    }
}

/// A joining node's labels, as `--node-label` checks them.
fn checked_labels(
    labels: std::collections::HashMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, Status> {
    if labels.len() > crate::model::membership::MAX_LABELS {
        return Err(Status::invalid_argument(format!(
            "labels: at most {} labels",
            crate::model::membership::MAX_LABELS
        )));
    }
    let labels: std::collections::BTreeMap<String, String> = labels.into_iter().collect();
    for (k, v) in &labels {
        crate::model::membership::check_label(k, v)
            .map_err(|m| Status::invalid_argument(format!("labels: {m}")))?;
    }
    Ok(labels)
}
