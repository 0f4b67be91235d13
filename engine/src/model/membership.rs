//! The cluster as the meta group records it: nodes, where each group's
//! replicas are, which tenants are pinned to a dedicated group. Changed only
//! by committed meta entries, so every node that holds the meta group sees
//! the same map.
use super::TenantId;
use crate::format::Since;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's id in its cluster (also openraft's node id).
pub type NodeId = u64;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    /// Raft transport and internal forwarding.
    pub peer_addr: String,
    /// Client gRPC (QuotaService): what leader hints point at.
    pub grpc_addr: String,
    pub http_addr: String,
    /// Being drained: placement moves its replicas away.
    pub draining: bool,
    pub joined_at_ms: i64,
    /// `--node-label`s (format 5): `pool` names the node pool it belongs
    /// to, `zone` the failure domain placement spreads replicas over.
    pub labels: BTreeMap<String, String>,
    /// Reserved for its pool (format 5): only groups pinned to that pool
    /// are placed on it.
    pub reserved: bool,
}

/// The label naming a node's pool.
pub const POOL_LABEL: &str = "pool";
/// The label naming a node's zone.
pub const ZONE_LABEL: &str = "zone";

impl NodeInfo {
    pub fn pool(&self) -> Option<&str> {
        self.labels.get(POOL_LABEL).map(String::as_str)
    }

    pub fn zone(&self) -> Option<&str> {
        self.labels.get(ZONE_LABEL).map(String::as_str)
    }

    /// Whether a group pinned to `pool` (or to none) may have a replica
    /// here: a pool's groups only on its nodes, other groups only on nodes
    /// not reserved.
    pub fn admits(&self, pool: Option<&str>) -> bool {
        match pool {
            Some(p) => self.pool() == Some(p),
            None => !self.reserved,
        }
    }
}

/// Most labels a node may carry.
pub const MAX_LABELS: usize = 16;

/// A label `key=value`: both 1 to 63 characters of `a-z0-9._-`, starting
/// with a letter or digit (as Kubernetes label values, lower case).
pub fn check_label(key: &str, value: &str) -> Result<(), String> {
    for (what, s) in [("key", key), ("value", value)] {
        let ok = (1..=63).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if !ok {
            let shown: String = s.chars().take(32).collect();
            return Err(format!(
                "label {what} {shown:?}: 1 to 63 of a-z 0-9 . _ -, starting with a letter or digit"
            ));
        }
    }
    Ok(())
}

/// `NodeInfo` as formats 0 to 4 write it.
#[derive(Serialize, Deserialize)]
struct NodeInfoV0 {
    peer_addr: String,
    grpc_addr: String,
    http_addr: String,
    draining: bool,
    joined_at_ms: i64,
}

/// `NodeInfo` from format 5 on.
#[derive(Serialize, Deserialize)]
struct NodeInfoV5 {
    peer_addr: String,
    grpc_addr: String,
    http_addr: String,
    draining: bool,
    joined_at_ms: i64,
    labels: BTreeMap<String, String>,
    reserved: bool,
}

impl Serialize for NodeInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.clone();
        if !s.is_human_readable() && crate::format::encoding_version() < 5 {
            if !n.labels.is_empty() || n.reserved {
                crate::format::needs_newer_version();
                return Err(serde::ser::Error::custom(
                    "a node's labels need format version 5",
                ));
            }
            return NodeInfoV0 {
                peer_addr: n.peer_addr,
                grpc_addr: n.grpc_addr,
                http_addr: n.http_addr,
                draining: n.draining,
                joined_at_ms: n.joined_at_ms,
            }
            .serialize(s);
        }
        NodeInfoV5 {
            peer_addr: n.peer_addr,
            grpc_addr: n.grpc_addr,
            http_addr: n.http_addr,
            draining: n.draining,
            joined_at_ms: n.joined_at_ms,
            labels: n.labels,
            reserved: n.reserved,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for NodeInfo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() && crate::format::decoding_version() < 5 {
            let n = NodeInfoV0::deserialize(d)?;
            return Ok(NodeInfo {
                peer_addr: n.peer_addr,
                grpc_addr: n.grpc_addr,
                http_addr: n.http_addr,
                draining: n.draining,
                joined_at_ms: n.joined_at_ms,
                ..NodeInfo::default()
            });
        }
        let n = NodeInfoV5::deserialize(d)?;
        Ok(NodeInfo {
            peer_addr: n.peer_addr,
            grpc_addr: n.grpc_addr,
            http_addr: n.http_addr,
            draining: n.draining,
            joined_at_ms: n.joined_at_ms,
            labels: n.labels,
            reserved: n.reserved,
        })
    }
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
            ..NodeInfo::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPlacement {
    /// The nodes that should hold the group: voters, and learners beyond
    /// the largest odd number of them (see [`voters_for`]).
    pub replicas: Vec<NodeId>,
    /// The node that should lead it, when leaders are being balanced.
    pub leader: Option<NodeId>,
    /// A group created for one ENTERPRISE tenant.
    pub dedicated: Option<TenantId>,
    /// The voters as the group's leader last reported them: placement
    /// moves a group again only once these and `learners` hold every
    /// replica.
    pub voters: Vec<NodeId>,
    /// The leader as last reported, and its term.
    pub led_by: Option<(NodeId, u64)>,
    /// Learners the leader last reported caught up and answering
    /// (format 5).
    pub learners: Vec<NodeId>,
    /// The node pool the group is pinned to (format 5): its replicas only
    /// on that pool's nodes.
    pub pool: Option<String>,
}

/// How many of `replicas` replicas vote: the largest odd number. An even
/// number of voters tolerates no more failures than one fewer, and a
/// second voter that joins and dies takes a one-voter group's quorum; the
/// rest follow as learners.
pub fn voters_for(replicas: usize) -> usize {
    if replicas == 0 {
        0
    } else {
        replicas - (1 - replicas % 2)
    }
}

impl GroupPlacement {
    /// Every replica is a voter or a caught-up learner, and as many vote
    /// as should: the group may be moved again.
    pub fn settled(&self) -> bool {
        let want: std::collections::BTreeSet<NodeId> = self.replicas.iter().copied().collect();
        let have: std::collections::BTreeSet<NodeId> =
            self.voters.iter().chain(&self.learners).copied().collect();
        want == have && self.voters.len() == voters_for(self.replicas.len())
    }
}

/// `GroupPlacement` as formats 0 to 4 write it.
#[derive(Serialize, Deserialize)]
struct GroupPlacementV0 {
    replicas: Vec<NodeId>,
    leader: Option<NodeId>,
    dedicated: Option<TenantId>,
    voters: Vec<NodeId>,
    led_by: Option<(NodeId, u64)>,
}

/// `GroupPlacement` from format 5 on.
#[derive(Serialize, Deserialize)]
struct GroupPlacementV5 {
    replicas: Vec<NodeId>,
    leader: Option<NodeId>,
    dedicated: Option<TenantId>,
    voters: Vec<NodeId>,
    led_by: Option<(NodeId, u64)>,
    learners: Vec<NodeId>,
    pool: Option<String>,
}

impl Serialize for GroupPlacement {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.clone();
        if !s.is_human_readable() && crate::format::encoding_version() < 5 {
            if !g.learners.is_empty() || g.pool.is_some() {
                crate::format::needs_newer_version();
                return Err(serde::ser::Error::custom(
                    "a group's learners and pool need format version 5",
                ));
            }
            return GroupPlacementV0 {
                replicas: g.replicas,
                leader: g.leader,
                dedicated: g.dedicated,
                voters: g.voters,
                led_by: g.led_by,
            }
            .serialize(s);
        }
        GroupPlacementV5 {
            replicas: g.replicas,
            leader: g.leader,
            dedicated: g.dedicated,
            voters: g.voters,
            led_by: g.led_by,
            learners: g.learners,
            pool: g.pool,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for GroupPlacement {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() && crate::format::decoding_version() < 5 {
            let g = GroupPlacementV0::deserialize(d)?;
            return Ok(GroupPlacement {
                replicas: g.replicas,
                leader: g.leader,
                dedicated: g.dedicated,
                voters: g.voters,
                led_by: g.led_by,
                ..GroupPlacement::default()
            });
        }
        let g = GroupPlacementV5::deserialize(d)?;
        Ok(GroupPlacement {
            replicas: g.replicas,
            leader: g.leader,
            dedicated: g.dedicated,
            voters: g.voters,
            led_by: g.led_by,
            learners: g.learners,
            pool: g.pool,
        })
    }
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
    /// A group's leader reports its voters and its caught-up learners
    /// (format 5; replaces `Report`).
    Members(Since<5, MembersReport>),
    /// `Dedicate` in a node pool (format 5): creates the tenant's group on
    /// the pool's nodes, or moves an existing one into the pool (`None`:
    /// out of any pool).
    DedicateIn(Since<5, DedicateIn>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersReport {
    pub group: u64,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub leader: NodeId,
    pub term: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedicateIn {
    pub tenant: TenantId,
    pub replication: usize,
    pub pool: Option<String>,
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
                    known.labels = info.labels.clone();
                    known.reserved = info.reserved;
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
                        n.labels = info.labels.clone();
                        n.reserved = info.reserved;
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
                    g.learners.clear();
                    g.led_by = Some((*leader, *term));
                }
                MembershipReply::Done
            }
            MembershipOp::Members(Since(r)) => {
                let Some(g) = self.groups.get_mut(&r.group) else {
                    return MembershipReply::Refused {
                        reason: format!("group {} does not exist", r.group),
                    };
                };
                if g.led_by.is_none_or(|(_, t)| r.term >= t) {
                    g.voters = r.voters.clone();
                    g.learners = r.learners.clone();
                    g.led_by = Some((r.leader, r.term));
                }
                MembershipReply::Done
            }
            MembershipOp::DedicateIn(Since(d)) => {
                self.dedicate(d.tenant, d.replication, d.pool.as_deref(), true)
            }
            MembershipOp::Dedicate {
                tenant,
                replication,
            } => self.dedicate(*tenant, *replication, None, false),
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

    /// `tenant`'s dedicated group: created on the `replication` least
    /// loaded active nodes that admit `pool` (spread over zones), or the
    /// one it has, moved into `pool` when `repool` (placement then moves
    /// its replicas).
    fn dedicate(
        &mut self,
        tenant: TenantId,
        replication: usize,
        pool: Option<&str>,
        repool: bool,
    ) -> MembershipReply {
        let candidates = self.eligible(pool);
        if let Some((group, g)) = self
            .groups
            .iter_mut()
            .find(|(_, g)| g.dedicated == Some(tenant))
        {
            if repool && g.pool.as_deref() != pool {
                if candidates.is_empty() {
                    return no_node_in(pool);
                }
                g.pool = pool.map(str::to_string);
            }
            return MembershipReply::Dedicated { group: *group };
        }
        if candidates.is_empty() {
            return no_node_in(pool);
        }
        let replicas = self.spread(&candidates, &[], replication.max(1));
        let group = self.groups.keys().next_back().map_or(1, |g| g + 1);
        self.groups.insert(
            group,
            GroupPlacement {
                replicas,
                dedicated: Some(tenant),
                pool: pool.map(str::to_string),
                ..Default::default()
            },
        );
        MembershipReply::Dedicated { group }
    }

    /// Active nodes that may hold a replica of a group in `pool`.
    pub fn eligible(&self, pool: Option<&str>) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| !n.draining && n.admits(pool))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Up to `n` nodes of `candidates` not in `existing`, least loaded
    /// first, each in a zone `existing` and the ones already picked do not
    /// cover while such a node remains.
    pub fn spread(&self, candidates: &[NodeId], existing: &[NodeId], n: usize) -> Vec<NodeId> {
        let zone = |id: &NodeId| self.nodes.get(id).and_then(NodeInfo::zone);
        let mut used: Vec<Option<&str>> = existing.iter().map(zone).collect();
        let mut rest: Vec<(usize, NodeId)> = candidates
            .iter()
            .filter(|c| !existing.contains(c))
            .map(|c| (self.replicas_on(*c), *c))
            .collect();
        rest.sort_unstable();
        let mut out = Vec::new();
        while out.len() < n && !rest.is_empty() {
            let i = rest
                .iter()
                .position(|(_, c)| zone(c).is_none_or(|z| !used.contains(&Some(z))))
                .unwrap_or(0);
            let (_, c) = rest.remove(i);
            used.push(zone(&c));
            out.push(c);
        }
        out
    }

    /// How many groups the node is placed in or still a member of: it can
    /// be forgotten only once this is 0.
    pub fn holding(&self, node: NodeId) -> usize {
        self.groups
            .values()
            .filter(|g| {
                g.replicas.contains(&node) || g.voters.contains(&node) || g.learners.contains(&node)
            })
            .count()
    }

    /// The pool of `group`, if it is pinned to one.
    pub fn pool_of(&self, group: u64) -> Option<&str> {
        self.groups.get(&group).and_then(|g| g.pool.as_deref())
    }

    /// How many groups list `node` as a replica.
    pub fn replicas_on(&self, node: NodeId) -> usize {
        self.groups
            .values()
            .filter(|g| g.replicas.contains(&node))
            .count()
    }
}

fn no_node_in(pool: Option<&str>) -> MembershipReply {
    MembershipReply::Refused {
        reason: match pool {
            Some(p) => format!(
                "no active node in pool {p:?} (nodes join a pool with --node-label pool={p})"
            ),
            None => "no active node that is not reserved for a pool".into(),
        },
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
