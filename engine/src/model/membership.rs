//! The cluster as the meta group records it: nodes, where each group's
//! replicas are, which tenants are pinned to a dedicated group. Changed only
//! by committed meta entries, so every node that holds the meta group sees
//! the same map.
use super::TenantId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's id in its cluster (also openraft's node id).
pub type NodeId = u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Raft transport and internal forwarding.
    pub peer_addr: String,
    /// Client gRPC (QuotaService): what leader hints point at.
    pub grpc_addr: String,
    pub http_addr: String,
    /// Being drained: placement moves its replicas away.
    pub draining: bool,
    pub joined_at_ms: i64,
}

#[cfg(test)]
impl NodeInfo {
    /// A node on 127.0.0.1:`port` (tests).
    pub(crate) fn at_port(port: u16) -> NodeInfo {
        NodeInfo {
            peer_addr: format!("127.0.0.1:{port}"),
            grpc_addr: String::new(),
            http_addr: String::new(),
            draining: false,
            joined_at_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPlacement {
    /// The nodes that should hold the group, voters all.
    pub replicas: Vec<NodeId>,
    /// The node that should lead it, when leaders are being balanced.
    pub leader: Option<NodeId>,
    /// A group created for one ENTERPRISE tenant.
    pub dedicated: Option<TenantId>,
    /// The voters as the group's leader last reported them: placement
    /// moves a group again only once this matches `replicas`.
    pub voters: Vec<NodeId>,
    /// The leader as last reported, and its term.
    pub led_by: Option<(NodeId, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// Hash shards are groups 1..=shards; dedicated groups follow.
    pub shards: u64,
    pub groups: BTreeMap<u64, GroupPlacement>,
    /// Tenant -> its dedicated group.
    pub pins: BTreeMap<TenantId, u64>,
}

/// Changes to the membership, as meta-group operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipOp {
    /// The first node of a new cluster: it holds every group.
    Bootstrap {
        node: NodeId,
        info: NodeInfo,
        shards: u64,
    },
    /// A node joins; it is given the next free id, or its old id if a node
    /// with the same peer address is already known (a retried join).
    AddNode {
        info: NodeInfo,
    },
    /// A member's current addresses (it restarted elsewhere).
    UpdateNode {
        node: NodeId,
        info: NodeInfo,
    },
    SetDraining {
        node: NodeId,
        draining: bool,
    },
    /// Forget a node that no longer holds any replica.
    ForgetNode {
        node: NodeId,
    },
    Place {
        group: u64,
        placement: GroupPlacement,
    },
    /// A group's leader reports its voters (and itself).
    Report {
        group: u64,
        voters: Vec<NodeId>,
        leader: NodeId,
        term: u64,
    },
    /// Create a group of its own for `tenant` (or name the one it has),
    /// on the `replication` least loaded active nodes.
    Dedicate {
        tenant: TenantId,
        replication: usize,
    },
    /// Route `tenant` to `group` from now on (its state has moved there).
    Pin {
        tenant: TenantId,
        group: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipReply {
    Done,
    NodeAdded { node: NodeId },
    Dedicated { group: u64 },
    Refused { reason: String },
}

impl Membership {
    pub fn apply(&mut self, op: &MembershipOp) -> MembershipReply {
        match op {
            MembershipOp::Bootstrap { node, info, shards } => {
                if !self.nodes.is_empty() {
                    return MembershipReply::Refused {
                        reason: "the cluster is already bootstrapped".into(),
                    };
                }
                self.nodes.insert(*node, info.clone());
                self.shards = *shards;
                for g in 0..=*shards {
                    self.groups.insert(
                        g,
                        GroupPlacement {
                            replicas: vec![*node],
                            voters: vec![*node],
                            ..Default::default()
                        },
                    );
                }
                MembershipReply::Done
            }
            MembershipOp::AddNode { info } => {
                if let Some((id, known)) = self
                    .nodes
                    .iter_mut()
                    .find(|(_, n)| n.peer_addr == info.peer_addr)
                {
                    // A restarted or retried node: keep its id, take its
                    // current client addresses.
                    known.grpc_addr = info.grpc_addr.clone();
                    known.http_addr = info.http_addr.clone();
                    return MembershipReply::NodeAdded { node: *id };
                }
                let id = self.nodes.keys().next_back().map_or(1, |last| last + 1);
                self.nodes.insert(id, info.clone());
                MembershipReply::NodeAdded { node: id }
            }
            MembershipOp::UpdateNode { node, info } => {
                if let Some((other, _)) = self
                    .nodes
                    .iter()
                    .find(|(id, n)| *id != node && n.peer_addr == info.peer_addr)
                {
                    return MembershipReply::Refused {
                        reason: format!("node {other} already has peer address {}", info.peer_addr),
                    };
                }
                match self.nodes.get_mut(node) {
                    Some(n) => {
                        n.peer_addr = info.peer_addr.clone();
                        n.grpc_addr = info.grpc_addr.clone();
                        n.http_addr = info.http_addr.clone();
                        MembershipReply::Done
                    }
                    None => MembershipReply::Refused {
                        reason: format!("node {node} is not a member"),
                    },
                }
            }
            MembershipOp::SetDraining { node, draining } => match self.nodes.get_mut(node) {
                Some(n) => {
                    n.draining = *draining;
                    MembershipReply::Done
                }
                None => MembershipReply::Refused {
                    reason: format!("node {node} is not a member"),
                },
            },
            MembershipOp::ForgetNode { node } => {
                let holding = self.holding(*node);
                if holding > 0 {
                    return MembershipReply::Refused {
                        reason: format!("node {node} still holds {holding} replicas"),
                    };
                }
                self.nodes.remove(node);
                MembershipReply::Done
            }
            MembershipOp::Place { group, placement } => {
                if !self.groups.contains_key(group) {
                    return MembershipReply::Refused {
                        reason: format!("group {group} does not exist"),
                    };
                }
                if let Some(n) = placement
                    .replicas
                    .iter()
                    .find(|n| !self.nodes.contains_key(n))
                {
                    return MembershipReply::Refused {
                        reason: format!("node {n} is not a member"),
                    };
                }
                if placement.replicas.is_empty() {
                    return MembershipReply::Refused {
                        reason: "a group needs at least one replica".into(),
                    };
                }
                let g = self.groups.get_mut(group).expect("checked above");
                g.replicas = placement.replicas.clone();
                g.leader = placement.leader;
                MembershipReply::Done
            }
            MembershipOp::Report {
                group,
                voters,
                leader,
                term,
            } => {
                let Some(g) = self.groups.get_mut(group) else {
                    return MembershipReply::Refused {
                        reason: format!("group {group} does not exist"),
                    };
                };
                // Reports from deposed leaders arrive late; keep the newest.
                if g.led_by.is_none_or(|(_, t)| *term >= t) {
                    g.voters = voters.clone();
                    g.led_by = Some((*leader, *term));
                }
                MembershipReply::Done
            }
            MembershipOp::Dedicate {
                tenant,
                replication,
            } => {
                if let Some((group, _)) = self
                    .groups
                    .iter()
                    .find(|(_, g)| g.dedicated == Some(*tenant))
                {
                    return MembershipReply::Dedicated { group: *group };
                }
                let mut active: Vec<(usize, NodeId)> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| !n.draining)
                    .map(|(id, _)| (self.replicas_on(*id), *id))
                    .collect();
                if active.is_empty() {
                    return MembershipReply::Refused {
                        reason: "no active node to place a group on".into(),
                    };
                }
                active.sort_unstable();
                let replicas: Vec<NodeId> = active
                    .iter()
                    .take((*replication).max(1))
                    .map(|(_, n)| *n)
                    .collect();
                let group = self.groups.keys().next_back().map_or(1, |g| g + 1);
                self.groups.insert(
                    group,
                    GroupPlacement {
                        replicas,
                        dedicated: Some(*tenant),
                        ..Default::default()
                    },
                );
                MembershipReply::Dedicated { group }
            }
            MembershipOp::Pin { tenant, group } => {
                if !self.groups.contains_key(group) {
                    return MembershipReply::Refused {
                        reason: format!("group {group} does not exist"),
                    };
                }
                self.pins.insert(*tenant, *group);
                MembershipReply::Done
            }
        }
    }

    /// How many groups the node is placed in or still a voter of: it can
    /// be forgotten only once this is 0.
    pub fn holding(&self, node: NodeId) -> usize {
        self.groups
            .values()
            .filter(|g| g.replicas.contains(&node) || g.voters.contains(&node))
            .count()
    }

    /// How many groups list `node` as a replica.
    pub fn replicas_on(&self, node: NodeId) -> usize {
        self.groups
            .values()
            .filter(|g| g.replicas.contains(&node))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(port: u16) -> NodeInfo {
        NodeInfo::at_port(port)
    }

    #[test]
    fn nodes_get_ids_once_and_groups_only_name_members() {
        let mut m = Membership::default();
        assert_eq!(
            m.apply(&MembershipOp::Bootstrap {
                node: 1,
                info: info(1),
                shards: 2
            }),
            MembershipReply::Done
        );
        assert_eq!(m.groups.len(), 3);
        assert_eq!(
            m.apply(&MembershipOp::AddNode { info: info(2) }),
            MembershipReply::NodeAdded { node: 2 }
        );
        // A node that restarted elsewhere keeps its id; no two share an address.
        assert!(matches!(
            m.apply(&MembershipOp::UpdateNode {
                node: 2,
                info: info(1)
            }),
            MembershipReply::Refused { .. }
        ));
        assert_eq!(
            m.apply(&MembershipOp::UpdateNode {
                node: 2,
                info: info(9)
            }),
            MembershipReply::Done
        );
        assert_eq!(
            m.apply(&MembershipOp::UpdateNode {
                node: 2,
                info: info(2)
            }),
            MembershipReply::Done
        );
        // A retried join keeps its id.
        assert_eq!(
            m.apply(&MembershipOp::AddNode { info: info(2) }),
            MembershipReply::NodeAdded { node: 2 }
        );
        let bad = MembershipOp::Place {
            group: 1,
            placement: GroupPlacement {
                replicas: vec![1, 7],
                ..Default::default()
            },
        };
        assert!(matches!(m.apply(&bad), MembershipReply::Refused { .. }));
        assert_eq!(m.groups[&1].replicas, vec![1]);
        // A node holding replicas cannot be forgotten.
        assert!(matches!(
            m.apply(&MembershipOp::ForgetNode { node: 1 }),
            MembershipReply::Refused { .. }
        ));
        // Placed elsewhere is not enough: a node still voting in a group
        // (its leader has not reported the change yet) stays.
        m.apply(&MembershipOp::Report {
            group: 2,
            voters: vec![1, 2],
            leader: 1,
            term: 1,
        });
        assert_eq!(m.replicas_on(2), 0);
        assert!(matches!(
            m.apply(&MembershipOp::ForgetNode { node: 2 }),
            MembershipReply::Refused { .. }
        ));
        m.apply(&MembershipOp::Report {
            group: 2,
            voters: vec![1],
            leader: 1,
            term: 1,
        });
        assert_eq!(
            m.apply(&MembershipOp::ForgetNode { node: 2 }),
            MembershipReply::Done
        );
        let t = uuid::Uuid::from_u128(5);
        let dedicate = MembershipOp::Dedicate {
            tenant: t,
            replication: 3,
        };
        let d = m.apply(&dedicate);
        assert_eq!(d, MembershipReply::Dedicated { group: 3 });
        assert_eq!(m.groups[&3].replicas, vec![1]);
        assert!(m.pins.is_empty(), "pinned only once its state has moved");
        // Dedicating again answers the same group.
        assert_eq!(m.apply(&dedicate), d);
        assert_eq!(
            m.apply(&MembershipOp::Pin {
                tenant: t,
                group: 3
            }),
            MembershipReply::Done
        );
        assert_eq!(m.pins[&t], 3);
    }
}
