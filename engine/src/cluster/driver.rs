//! The loops that carry placement out, one set per node:
//! - the meta leader plans placement steps and records them;
//! - each group's leader brings its Raft membership to the placement (add
//!   learner, let it catch up, promote; remove old voters), hands
//!   leadership over when asked, and reports voters and leader back;
//! - every node announces its addresses and opens groups created later
//!   (dedicated groups).
use super::membership::{
    GroupPlacement, MembersReport, MembershipOp, MembershipReply, NodeInfo, voters_for,
};
use super::placement::{META_GROUP, plan};
use super::router::Router;
use crate::error::EngineError;
use crate::format::Since;
use crate::raft::{Command, Group, GroupHandle, MetaOp, NodeId, ShardState};
use crate::repeats::Repeats;
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
    // Upkeep under way: a group's membership change or leader transfer
    // (`lead/G`), a tenant move out of a group (`move/G`).
    let busy: Arc<DashSet<String>> = Arc::new(DashSet::new());
    // Retried failures, logged once with a count.
    let repeats = Arc::new(Repeats::default());
    loop {
        tokio::time::sleep(TICK).await;
        let Some(e) = router.upgrade() else { return };
        if e.is_closing() {
            return;
        }
        match tick(&e, &busy, &repeats).await {
            Err(err) => crate::log_repeated!(
                tracing::Level::WARN,
                repeats,
                "upkeep",
                err,
                "cluster upkeep failed; retrying"
            ),
            Ok(()) => {
                if let Some(n) = repeats.recovered("upkeep").filter(|n| *n > 0) {
                    tracing::info!(repeated = n, "cluster upkeep recovered");
                }
            }
        }
    }
}

async fn tick(
    e: &Arc<Router>,
    busy: &Arc<DashSet<String>>,
    repeats: &Arc<Repeats>,
) -> Result<(), EngineError> {
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
    // Moves finish on their own tasks: one waits for its destination
    // group, whose replicas may need this very loop to place them.
    for shard in e.served() {
        let key = format!("move/{}", shard.group.id);
        if !busy.insert(key.clone()) {
            continue;
        }
        let (e, busy, repeats) = (e.clone(), busy.clone(), repeats.clone());
        tokio::spawn(async move {
            match e.finish_moves(&shard).await {
                Err(err) => crate::log_repeated!(
                    tracing::Level::INFO,
                    repeats,
                    key,
                    err,
                    "tenant move not finished yet",
                    group = shard.group.id
                ),
                Ok(()) => {
                    repeats.recovered(&key);
                }
            }
            busy.remove(&key);
        });
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
        let key = format!("lead/{}", group.id);
        if !busy.insert(key.clone()) {
            continue;
        }
        let (e, busy, repeats) = (e.clone(), busy.clone(), repeats.clone());
        tokio::spawn(async move {
            match lead(&e, &group, &placement).await {
                Err(err) => crate::log_repeated!(
                    tracing::Level::INFO,
                    repeats,
                    key,
                    err,
                    "group upkeep; will retry",
                    group = group.id
                ),
                Ok(()) => {
                    repeats.recovered(&key);
                }
            }
            busy.remove(&key);
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
    if known.is_some_and(|n| {
        n.peer_addr == a.peer
            && n.grpc_addr == a.grpc
            && n.http_addr == a.http
            && n.labels == a.labels
            && n.reserved == a.reserved
    }) {
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
        labels: a.labels.clone(),
        reserved: a.reserved,
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
    if !desired.is_empty() && !joint {
        let nodes = e.membership().nodes;
        // New replicas join as learners; the leader streams them the log
        // (or a snapshot) in the background.
        for n in desired.difference(&voters) {
            if learners.contains(n) {
                continue;
            }
            let addr = nodes
                .get(n)
                .map(|i| i.peer_addr.clone())
                .ok_or_else(|| err(format!("node {n} has no address")))?;
            tracing::info!(group = group.id, node = n, "adding learner");
            group
                .raft
                .add_learner(*n, BasicNode::new(addr), false)
                .await
                .map_err(|x| err(x.to_string()))?;
        }
        // Learners no longer placed here (a node removed before it ever
        // caught up) leave without a vote.
        let gone: BTreeSet<NodeId> = learners.difference(&desired).copied().collect();
        if !gone.is_empty() {
            tracing::info!(group = group.id, nodes = ?gone, "removing learners");
            group
                .raft
                .change_membership(openraft::ChangeMembers::RemoveNodes(gone), false)
                .await
                .map_err(|x| err(x.to_string()))?;
        }
        let next = next_voters(e.node_id, &placement.replicas, &voters, |n| {
            caught_up(e, &m, n)
        });
        if let Some(next) = next.filter(|n| *n != voters) {
            tracing::info!(group = group.id, voters = ?next, "changing voters");
            group
                .raft
                .change_membership(next, true)
                .await
                .map_err(|x| err(x.to_string()))?;
        }
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
    let learners: Vec<NodeId> = m
        .membership_config
        .membership()
        .learner_ids()
        .filter(|n| placement.replicas.contains(n) && caught_up(e, &m, *n))
        .collect();
    if placement.voters != voters
        || placement.learners != learners
        || placement.led_by != Some((e.node_id, m.current_term))
    {
        let report = MembershipOp::Members(Since(MembersReport {
            group: group.id,
            voters: voters.clone(),
            learners,
            leader: e.node_id,
            term: m.current_term,
        }));
        if let crate::raft::CommandResponse::Membership(MembershipReply::Refused { reason }) = e
            .meta_write(Command::Meta(MetaOp::Membership(report)))
            .await?
        {
            return Err(err(reason));
        }
    }
    // Only to a voter that has the log and answers: handing over to one
    // that is down would pause the group for nothing, every tick.
    match placement.leader {
        Some(to)
            if to != e.node_id
                && voters.contains(&to)
                && group.id != META_GROUP
                && caught_up(e, &m, to) =>
        {
            transfer(e, group, to).await
        }
        _ => Ok(()),
    }
}

/// How far behind the leader's log a learner may be and still count as
/// caught up.
const CAUGHT_UP_LAG: u64 = 64;

/// How recently a learner must have answered to count as caught up.
const ANSWERED_WITHIN: Duration = Duration::from_secs(3);

/// Whether `node` has (nearly) all of the leader's log and answers.
fn caught_up(e: &Router, m: &openraft::RaftMetrics<NodeId, BasicNode>, node: NodeId) -> bool {
    let Some(matched) = m
        .replication
        .as_ref()
        .and_then(|r| r.get(&node))
        .and_then(|l| l.as_ref())
        .map(|l| l.index)
    else {
        return false;
    };
    let last = m.last_log_index.unwrap_or(0);
    matched + CAUGHT_UP_LAG >= last && e.peers.heard_from(node, ANSWERED_WITHIN)
}

/// The voters a group should move to, if it can move now: the largest
/// odd number of its replicas, keeping current voters (this leader first)
/// and adding caught-up learners. `None` while too few are ready: a voter
/// being replaced stays until its replacement has caught up.
pub(crate) fn next_voters(
    me: NodeId,
    replicas: &[NodeId],
    voters: &BTreeSet<NodeId>,
    caught_up: impl Fn(NodeId) -> bool,
) -> Option<BTreeSet<NodeId>> {
    let want = voters_for(replicas.len());
    let mut order: Vec<NodeId> = Vec::new();
    if replicas.contains(&me) && voters.contains(&me) {
        order.push(me);
    }
    order.extend(replicas.iter().filter(|r| **r != me && voters.contains(r)));
    order.extend(
        replicas
            .iter()
            .filter(|r| !voters.contains(r) && caught_up(**r)),
    );
    if order.len() < want || want == 0 {
        return None;
    }
    Some(order.into_iter().take(want).collect())
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
