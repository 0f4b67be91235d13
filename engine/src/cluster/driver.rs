//! The loops that carry placement out, one set per node:
//! - the meta leader plans placement steps and records them;
//! - each group's leader brings its Raft membership to the placement (add
//!   learner, let it catch up, promote; remove old voters), hands
//!   leadership over when asked, and reports voters and leader back;
//! - every node announces its addresses and opens groups created later
//!   (dedicated groups).
use super::membership::{GroupPlacement, MembershipOp, MembershipReply, NodeInfo};
use super::placement::{META_GROUP, plan};
use super::router::Router;
use crate::error::EngineError;
use crate::raft::{Command, Group, GroupHandle, MetaOp, NodeId, ShardState};
use dashmap::DashSet;
use openraft::BasicNode;
use quotad_proto::cluster::ElectRequest;
use quotad_proto::cluster::cluster_client::ClusterClient;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

const TICK: Duration = Duration::from_millis(250);

/// How long a node asked to take over a group has to answer.
const ELECT_TIMEOUT: Duration = Duration::from_secs(3);

pub fn spawn_loops(router: &Arc<Router>) {
    let weak = Arc::downgrade(router);
    tokio::spawn(run(weak));
}

async fn run(router: Weak<Router>) {
    // Groups with a membership change or leader transfer under way.
    let busy: Arc<DashSet<u64>> = Arc::new(DashSet::new());
    loop {
        tokio::time::sleep(TICK).await;
        let Some(e) = router.upgrade() else { return };
        if e.is_closing() {
            return;
        }
        if let Err(err) = tick(&e, &busy).await {
            tracing::warn!(error = %err, "cluster upkeep failed; retrying");
        }
    }
}

async fn tick(e: &Arc<Router>, busy: &Arc<DashSet<u64>>) -> Result<(), EngineError> {
    let membership = e.membership();
    if membership.nodes.is_empty() {
        // Not bootstrapped yet, or this node has not received the meta
        // group's state.
        return Ok(());
    }
    announce(e, &membership.nodes).await?;
    open_new_groups(e, &membership.groups).await?;
    let meta_leader = e.leader_of(META_GROUP) == Some(e.node_id);
    if meta_leader {
        for (group, placement) in plan(&membership, e.config.replication) {
            tracing::info!(group, replicas = ?placement.replicas, leader = ?placement.leader, "placement step");
            e.meta_write(place(group, placement)).await?;
        }
    }
    for shard in e.served() {
        if let Err(err) = e.finish_moves(&shard).await {
            tracing::info!(group = shard.group.id, error = %err, "tenant move not finished yet");
        }
    }
    let mut groups: Vec<GroupHandle> = vec![e.meta.handle().clone()];
    if let Ok(g) = e.groups.read() {
        groups.extend(g.values().map(|s| s.group.handle().clone()));
    }
    for group in groups {
        let m = group.raft.metrics().borrow().clone();
        if m.current_leader != Some(e.node_id) {
            continue;
        }
        let Some(placement) = membership.groups.get(&group.id).cloned() else {
            continue;
        };
        if !busy.insert(group.id) {
            continue;
        }
        let (e, busy) = (e.clone(), busy.clone());
        tokio::spawn(async move {
            if let Err(err) = lead(&e, &group, &placement).await {
                tracing::info!(group = group.id, error = %err, "group upkeep; will retry");
            }
            busy.remove(&group.id);
        });
    }
    Ok(())
}

fn place(group: u64, placement: GroupPlacement) -> Command {
    Command::Meta(MetaOp::Membership(MembershipOp::Place { group, placement }))
}

/// Make sure the meta group knows this node's current addresses.
async fn announce(e: &Router, nodes: &BTreeMap<NodeId, NodeInfo>) -> Result<(), EngineError> {
    let a = &e.config.advertise;
    if a.peer.is_empty() {
        return Ok(());
    }
    let known = nodes.get(&e.node_id);
    if known
        .is_some_and(|n| n.peer_addr == a.peer && n.grpc_addr == a.grpc && n.http_addr == a.http)
    {
        return Ok(());
    }
    let Some(known) = known else {
        // Not (or no longer) a member: joining is explicit.
        return Ok(());
    };
    let info = NodeInfo {
        peer_addr: a.peer.clone(),
        grpc_addr: a.grpc.clone(),
        http_addr: a.http.clone(),
        ..known.clone()
    };
    let op = MembershipOp::UpdateNode {
        node: e.node_id,
        info,
    };
    e.meta_write(Command::Meta(MetaOp::Membership(op))).await?;
    Ok(())
}

/// Open groups created after this node started (dedicated groups); the
/// first listed replica of a new group initializes it.
async fn open_new_groups(
    e: &Arc<Router>,
    groups: &BTreeMap<u64, GroupPlacement>,
) -> Result<(), EngineError> {
    for (id, placement) in groups {
        if *id == META_GROUP || e.local_shard(*id).is_some() {
            continue;
        }
        let group = Group::<ShardState>::open(
            e.node_id,
            *id,
            e.store.clone(),
            &e.config.raft,
            e.peers.clone(),
        )
        .await?;
        e.config.transport.register(*id, group.raft.clone());
        if placement.replicas.first() == Some(&e.node_id) && placement.led_by.is_none() {
            let nodes = e.membership().nodes;
            let members = placement
                .replicas
                .iter()
                .map(|n| {
                    let addr = nodes
                        .get(n)
                        .map(|i| i.peer_addr.clone())
                        .unwrap_or_default();
                    (*n, BasicNode::new(addr))
                })
                .collect();
            group.initialize(members).await?;
        }
        e.start_shard(group);
        tracing::info!(group = id, "opened a new group");
    }
    Ok(())
}

/// Upkeep of a group this node leads: membership to placement, leader
/// transfer, report.
async fn lead(
    e: &Router,
    group: &GroupHandle,
    placement: &GroupPlacement,
) -> Result<(), EngineError> {
    let err = |m: String| EngineError::Raft {
        group: group.id,
        message: m,
    };
    let m = group.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
    let desired: BTreeSet<NodeId> = placement.replicas.iter().copied().collect();
    let joint = membership.get_joint_config().len() > 1;
    if desired != voters && !joint && !desired.is_empty() {
        let nodes = e.membership().nodes;
        for n in desired.difference(&voters) {
            if learners.contains(n) {
                continue;
            }
            let addr = nodes
                .get(n)
                .map(|i| i.peer_addr.clone())
                .ok_or_else(|| err(format!("node {n} has no address")))?;
            tracing::info!(group = group.id, node = n, "adding learner");
            // Blocking: returns once the learner has caught up.
            tokio::time::timeout(
                Duration::from_secs(60),
                group.raft.add_learner(*n, BasicNode::new(addr), true),
            )
            .await
            .map_err(|_| err(format!("learner {n} did not catch up within 60 s")))?
            .map_err(|x| err(x.to_string()))?;
        }
        tracing::info!(group = group.id, voters = ?desired, "changing voters");
        group
            .raft
            .change_membership(desired.clone(), false)
            .await
            .map_err(|x| err(x.to_string()))?;
    }
    let m = group.raft.metrics().borrow().clone();
    if m.current_leader != Some(e.node_id) {
        return Ok(());
    }
    // Members that moved to another address (restarted elsewhere): Raft
    // must reach them where they are now.
    let nodes = e.membership().nodes;
    let moved: BTreeMap<NodeId, BasicNode> = m
        .membership_config
        .membership()
        .nodes()
        .filter_map(|(id, n)| {
            let now = &nodes.get(id)?.peer_addr;
            (!now.is_empty() && *now != n.addr).then(|| (*id, BasicNode::new(now.clone())))
        })
        .collect();
    if !moved.is_empty() {
        tracing::info!(group = group.id, nodes = ?moved, "updating member addresses");
        group
            .raft
            .change_membership(openraft::ChangeMembers::SetNodes(moved), false)
            .await
            .map_err(|x| err(x.to_string()))?;
    }
    let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
    if placement.voters != voters || placement.led_by != Some((e.node_id, m.current_term)) {
        let report = MembershipOp::Report {
            group: group.id,
            voters: voters.clone(),
            leader: e.node_id,
            term: m.current_term,
        };
        if let crate::raft::CommandResponse::Membership(MembershipReply::Refused { reason }) = e
            .meta_write(Command::Meta(MetaOp::Membership(report)))
            .await?
        {
            return Err(err(reason));
        }
    }
    match placement.leader {
        Some(to) if to != e.node_id && voters.contains(&to) && group.id != META_GROUP => {
            transfer(e, group, to).await
        }
        _ => Ok(()),
    }
}

/// Hand leadership of `group` to `to`. openraft 0.9 has no transfer call,
/// so: stop deciding, stop heartbeats until followers' leader leases run
/// out, then have `to` start an election, which it wins with the longest
/// log. Requests wait (and retry) meanwhile.
async fn transfer(e: &Router, group: &GroupHandle, to: NodeId) -> Result<(), EngineError> {
    let Some(shard) = e.local_shard(group.id) else {
        return Ok(());
    };
    let addr = e
        .peer_addr(to)
        .ok_or(EngineError::UnknownNode { node: to })?;
    tracing::info!(group = group.id, to, "handing leadership over");
    shard.pause();
    group.raft.runtime_config().heartbeat(false);
    tokio::time::sleep(Duration::from_millis(
        e.config.raft.election_timeout_ms.1 + 50,
    ))
    .await;
    let elect = async {
        let mut client = ClusterClient::new(e.peers.channel(&addr).map_err(|x| x.to_string())?);
        let mut request = tonic::Request::new(ElectRequest { group: group.id });
        request.set_timeout(ELECT_TIMEOUT);
        tokio::time::timeout(ELECT_TIMEOUT, client.elect(request))
            .await
            .map_err(|_| format!("no answer within {} s", ELECT_TIMEOUT.as_secs()))?
            .map_err(|s| s.message().to_string())
    };
    let asked = elect.await;
    let moved = group
        .raft
        .wait(Some(Duration::from_secs(3)))
        .metrics(|m| m.current_leader != Some(e.node_id), "leader moved")
        .await
        .is_ok();
    group.raft.runtime_config().heartbeat(true);
    shard.resume();
    match (asked, moved) {
        (_, true) => Ok(()),
        (Err(why), false) => Err(EngineError::HandOverFailed {
            group: group.id,
            to,
            reason: format!("it could not be asked: {why}"),
        }),
        (Ok(_), false) => Err(EngineError::HandOverFailed {
            group: group.id,
            to,
            reason: "it was asked but did not win the election".into(),
        }),
    }
}
