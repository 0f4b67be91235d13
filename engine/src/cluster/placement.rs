//! Where replicas and leaders should be: a pure function of the membership,
//! run by the meta group's leader. It proposes small steps; each group's
//! leader carries a step out (add learner, catch up, promote, remove the
//! old voter) and reports back, and only then does the group move again.
//!
//! Order of concerns: replace replicas on draining nodes, bring groups up
//! to the replication factor, then balance replica counts one move at a
//! time, then balance leaders.
use super::membership::{GroupPlacement, Membership};
use crate::raft::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// The meta group is on every active node, so each node has the cluster map.
pub const META_GROUP: u64 = 0;

/// Proposed placements for the groups that should change now.
///
/// A node is brought into one group at a time: while it is a replica of a
/// group that has not reported it caught up, no other group takes it. So a
/// node that joins and dies holds up one group's move, never the quorum of
/// every group at once (and as a learner, not even that one's quorum).
pub fn plan(m: &Membership, replication: usize) -> Vec<(u64, GroupPlacement)> {
    let active: Vec<NodeId> = m
        .nodes
        .iter()
        .filter(|(_, n)| !n.draining)
        .map(|(id, _)| *id)
        .collect();
    if active.is_empty() {
        return Vec::new();
    }
    let mut load: BTreeMap<NodeId, usize> = active.iter().map(|n| (*n, 0)).collect();
    for (id, g) in &m.groups {
        if *id == META_GROUP {
            continue;
        }
        for r in &g.replicas {
            if let Some(l) = load.get_mut(r) {
                *l += 1;
            }
        }
    }
    let mut incoming: BTreeSet<NodeId> = m
        .groups
        .values()
        .flat_map(|g| {
            g.replicas
                .iter()
                .filter(|r| !g.voters.contains(r) && !g.learners.contains(r))
        })
        .copied()
        .collect();
    let mut out = Vec::new();
    let mut all_settled = true;
    for (id, g) in &m.groups {
        let eligible = if *id == META_GROUP {
            active.clone()
        } else {
            m.eligible(g.pool.as_deref())
        };
        if !g.settled() {
            all_settled = false;
            // A replica that never caught up, on a node being removed or no
            // longer eligible: dropping it needs no vote, so it goes now
            // (an operator can remove a node that never came up).
            let keep: Vec<NodeId> = g
                .replicas
                .iter()
                .filter(|r| eligible.contains(r) || g.voters.contains(r) || g.learners.contains(r))
                .copied()
                .collect();
            if keep.len() < g.replicas.len() && !keep.is_empty() {
                out.push((
                    *id,
                    GroupPlacement {
                        replicas: keep,
                        ..g.clone()
                    },
                ));
            }
            continue;
        }
        let target = if *id == META_GROUP {
            active.len()
        } else {
            replication.min(eligible.len())
        };
        if target == 0 {
            continue;
        }
        let mut replicas = g.replicas.clone();
        let gone = replicas.iter().position(|r| !eligible.contains(r));
        let candidates: Vec<NodeId> = eligible
            .iter()
            .filter(|n| !incoming.contains(n))
            .copied()
            .collect();
        let spare = spare(m, &load, &candidates, &replicas);
        let changed = if let Some(i) = gone {
            // One member change at a time: swap a draining (or no longer
            // eligible) replica for a spare node, or drop it if the group
            // is over its size anyway.
            match spare {
                Some(n) if replicas.len() <= target => {
                    replicas[i] = n;
                    bump(&mut load, n, 1);
                    incoming.insert(n);
                }
                _ if replicas.len() > 1 => {
                    replicas.remove(i);
                }
                _ => continue,
            }
            true
        } else if replicas.len() < target {
            let Some(n) = spare else { continue };
            replicas.push(n);
            bump(&mut load, n, 1);
            incoming.insert(n);
            true
        } else if replicas.len() > target {
            let i = most_loaded_index(&load, &replicas);
            let n = replicas.remove(i);
            bump(&mut load, n, -1);
            true
        } else {
            false
        };
        if changed {
            all_settled = false;
            out.push((
                *id,
                GroupPlacement {
                    replicas,
                    leader: g.leader,
                    ..g.clone()
                },
            ));
        }
    }
    if !all_settled || !out.is_empty() {
        return out;
    }
    if let Some(step) = balance_replicas(m, &load) {
        return vec![step];
    }
    balance_leaders(m, &active)
}

fn bump(load: &mut BTreeMap<NodeId, usize>, n: NodeId, by: isize) {
    if let Some(l) = load.get_mut(&n) {
        *l = l.saturating_add_signed(by);
    }
}

/// The node to add to a group holding `replicas`: among `candidates`, the
/// least loaded in a zone the group does not cover yet, else the least
/// loaded.
fn spare(
    m: &Membership,
    load: &BTreeMap<NodeId, usize>,
    candidates: &[NodeId],
    replicas: &[NodeId],
) -> Option<NodeId> {
    let zone = |n: &NodeId| m.nodes.get(n).and_then(|i| i.zone());
    let covered: BTreeSet<&str> = replicas.iter().filter_map(zone).collect();
    candidates
        .iter()
        .filter(|n| !replicas.contains(n))
        .min_by_key(|n| {
            let new_zone = zone(n).is_some_and(|z| !covered.contains(z));
            (!new_zone, load.get(n).copied().unwrap_or(usize::MAX), **n)
        })
        .copied()
}

fn most_loaded_index(load: &BTreeMap<NodeId, usize>, replicas: &[NodeId]) -> usize {
    (0..replicas.len())
        .max_by_key(|i| (load.get(&replicas[*i]).copied().unwrap_or(usize::MAX), *i))
        .unwrap_or(0)
}

/// Move one replica from a more to a less loaded node the group may use,
/// where their loads differ by more than one (the largest such gap), without
/// leaving a zone the group covered uncovered.
fn balance_replicas(
    m: &Membership,
    load: &BTreeMap<NodeId, usize>,
) -> Option<(u64, GroupPlacement)> {
    let zone = |n: &NodeId| m.nodes.get(n).and_then(|i| i.zone());
    let mut best: Option<(usize, u64, NodeId, NodeId)> = None;
    for (id, g) in &m.groups {
        if *id == META_GROUP {
            continue;
        }
        let eligible = m.eligible(g.pool.as_deref());
        for from in &g.replicas {
            let Some(high) = load.get(from) else { continue };
            for to in eligible.iter().filter(|n| !g.replicas.contains(n)) {
                let low = load.get(to).copied().unwrap_or(usize::MAX);
                if high.saturating_sub(low) <= 1 {
                    continue;
                }
                let keeps_zones = zone(from).is_none_or(|z| {
                    zone(to) == Some(z)
                        || g.replicas.iter().any(|r| r != from && zone(r) == Some(z))
                });
                if !keeps_zones {
                    continue;
                }
                let gap = high - low;
                if best.is_none_or(|(b, ..)| gap > b) {
                    best = Some((gap, *id, *from, *to));
                }
            }
        }
    }
    let (_, id, from, to) = best?;
    let g = &m.groups[&id];
    let replicas = g
        .replicas
        .iter()
        .map(|r| if *r == from { to } else { *r })
        .collect();
    let leader = g.leader.filter(|l| *l != from);
    Some((
        id,
        GroupPlacement {
            replicas,
            leader,
            ..g.clone()
        },
    ))
}

/// Ask one group led by a node with more than its share of leaders to hand
/// leadership to a replica with fewer.
fn balance_leaders(m: &Membership, active: &[NodeId]) -> Vec<(u64, GroupPlacement)> {
    let shard_groups: Vec<(&u64, &GroupPlacement)> = m
        .groups
        .iter()
        .filter(|(id, _)| **id != META_GROUP)
        .collect();
    // A transfer already asked for and not yet done: wait for it.
    if shard_groups.iter().any(|(_, g)| {
        g.leader
            .is_some_and(|l| active.contains(&l) && g.voters.contains(&l))
            && g.leader != g.led_by.map(|(n, _)| n)
    }) {
        return Vec::new();
    }
    let mut leads: BTreeMap<NodeId, usize> = active.iter().map(|n| (*n, 0)).collect();
    for (_, g) in &shard_groups {
        if let Some((n, _)) = g.led_by
            && let Some(c) = leads.get_mut(&n)
        {
            *c += 1;
        }
    }
    let fair = shard_groups.len().div_ceil(active.len().max(1));
    for (id, g) in &shard_groups {
        let Some((leader, _)) = g.led_by else {
            continue;
        };
        if leads.get(&leader).copied().unwrap_or(0) <= fair {
            continue;
        }
        let to = g
            .voters
            .iter()
            .filter(|r| **r != leader && leads.contains_key(r) && g.replicas.contains(r))
            .min_by_key(|r| (leads[r], **r));
        if let Some(to) = to
            && leads[to] + 1 < leads[&leader]
        {
            return vec![(
                **id,
                GroupPlacement {
                    leader: Some(*to),
                    ..(*g).clone()
                },
            )];
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::{
        DedicateIn, MembersReport, MembershipOp, MembershipReply, NodeInfo, voters_for,
    };
    use crate::format::Since;

    fn info(port: u16) -> NodeInfo {
        NodeInfo::at_port(port)
    }

    /// Apply plans (with group leaders carrying each step out at once and
    /// the first replica leading) until nothing changes; returns the steps.
    fn converge(m: &mut Membership, rf: usize) -> usize {
        for step in 0..1000 {
            let moves = plan(m, rf);
            if moves.is_empty() {
                return step;
            }
            for (group, placement) in moves {
                assert!(matches!(
                    m.apply(&MembershipOp::Place {
                        group,
                        placement: placement.clone()
                    }),
                    MembershipReply::Done
                ));
                report_as_leader(m, group, &placement);
            }
        }
        panic!("placement did not converge");
    }

    /// What the group's leader reports once it has carried `placement`
    /// out: the largest odd number of replicas vote (the old voters first),
    /// the rest are caught-up learners.
    fn report_as_leader(m: &mut Membership, group: u64, placement: &GroupPlacement) {
        let before = &m.groups[&group];
        let mut order: Vec<NodeId> = placement
            .replicas
            .iter()
            .filter(|r| before.voters.contains(r))
            .copied()
            .collect();
        order.extend(
            placement
                .replicas
                .iter()
                .filter(|r| !before.voters.contains(r)),
        );
        let k = voters_for(order.len());
        let learners = order.split_off(k);
        let leader = placement
            .leader
            .filter(|l| order.contains(l))
            .unwrap_or(order[0]);
        let term = before.led_by.map_or(1, |(_, t)| t + 1);
        m.apply(&MembershipOp::Members(Since(MembersReport {
            group,
            voters: order,
            learners,
            leader,
            term,
        })));
    }

    fn cluster(nodes: u16, shards: u64) -> Membership {
        let mut m = Membership::default();
        m.apply(&MembershipOp::Bootstrap {
            node: 1,
            info: info(1),
            shards,
        });
        m.apply(&MembershipOp::Report {
            group: 0,
            voters: vec![1],
            leader: 1,
            term: 1,
        });
        for g in 1..=shards {
            m.apply(&MembershipOp::Report {
                group: g,
                voters: vec![1],
                leader: 1,
                term: 1,
            });
        }
        for p in 2..=nodes {
            m.apply(&MembershipOp::AddNode { info: info(p) });
        }
        m
    }

    fn loads(m: &Membership) -> BTreeMap<NodeId, (usize, usize)> {
        let mut out = BTreeMap::new();
        for (id, g) in &m.groups {
            if *id == META_GROUP {
                continue;
            }
            for r in &g.replicas {
                out.entry(*r).or_insert((0, 0)).0 += 1;
            }
            if let Some((l, _)) = g.led_by {
                out.entry(l).or_insert((0, 0)).1 += 1;
            }
        }
        out
    }

    #[test]
    fn three_nodes_get_every_group_at_replication_three() {
        let mut m = cluster(3, 8);
        converge(&mut m, 3);
        for (id, g) in &m.groups {
            assert_eq!(g.replicas.len(), 3, "group {id}");
        }
        let l = loads(&m);
        let leaders: Vec<usize> = l.values().map(|x| x.1).collect();
        assert!(
            leaders.iter().max().unwrap() - leaders.iter().min().unwrap() <= 1,
            "{l:?}"
        );
    }

    #[test]
    fn a_fourth_node_takes_its_share_of_replicas_and_leaders() {
        let mut m = cluster(3, 8);
        converge(&mut m, 3);
        m.apply(&MembershipOp::AddNode { info: info(4) });
        converge(&mut m, 3);
        let l = loads(&m);
        // 8 groups x 3 replicas over 4 nodes: 6 each; 8 leaders: 2 each.
        assert_eq!(l[&4].0, 6, "{l:?}");
        assert!(l.values().all(|(r, _)| *r == 6), "{l:?}");
        assert!(l.values().all(|(_, ld)| *ld == 2), "{l:?}");
        assert_eq!(m.groups[&0].replicas.len(), 4, "meta is on every node");
    }

    #[test]
    fn draining_moves_every_replica_off_the_node() {
        let mut m = cluster(4, 6);
        converge(&mut m, 3);
        m.apply(&MembershipOp::SetDraining {
            node: 2,
            draining: true,
        });
        converge(&mut m, 3);
        assert_eq!(m.replicas_on(2), 0);
        for g in m.groups.values() {
            assert_eq!(g.replicas.len(), 3);
        }
        assert_eq!(
            m.apply(&MembershipOp::ForgetNode { node: 2 }),
            MembershipReply::Done
        );
    }

    #[test]
    fn unsettled_groups_are_left_alone() {
        let mut m = cluster(3, 2);
        let first = plan(&m, 3);
        assert!(!first.is_empty());
        for (group, placement) in first {
            m.apply(&MembershipOp::Place { group, placement });
        }
        // Nobody reported the change yet: no further step for those groups.
        assert!(plan(&m, 3).is_empty());
    }

    fn labelled(port: u16, labels: &[(&str, &str)], reserved: bool) -> NodeInfo {
        NodeInfo {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            reserved,
            ..NodeInfo::at_port(port)
        }
    }

    #[test]
    fn a_second_node_follows_as_a_learner_and_a_third_makes_three_voters() {
        let mut m = cluster(2, 2);
        converge(&mut m, 3);
        for (id, g) in &m.groups {
            assert_eq!((&g.voters, &g.learners), (&vec![1], &vec![2]), "group {id}");
        }
        m.apply(&MembershipOp::AddNode { info: info(3) });
        converge(&mut m, 3);
        for (id, g) in &m.groups {
            assert_eq!(g.voters.len(), 3, "group {id}");
            assert!(g.learners.is_empty(), "group {id}");
        }
    }

    #[test]
    fn a_new_node_is_brought_into_one_group_at_a_time() {
        let mut m = cluster(3, 4);
        let mut rounds = 0;
        loop {
            let moves = plan(&m, 3);
            if moves.is_empty() {
                break;
            }
            rounds += 1;
            for (group, placement) in &moves {
                m.apply(&MembershipOp::Place {
                    group: *group,
                    placement: placement.clone(),
                });
            }
            // No node is new to two groups at once.
            for n in [2, 3] {
                let new_in = m
                    .groups
                    .values()
                    .filter(|g| {
                        g.replicas.contains(&n)
                            && !g.voters.contains(&n)
                            && !g.learners.contains(&n)
                    })
                    .count();
                assert!(new_in <= 1, "node {n} enters {new_in} groups at once");
            }
            for (group, placement) in moves {
                report_as_leader(&mut m, group, &placement);
            }
        }
        assert!(rounds >= 5, "5 groups, one at a time per node: {rounds}");
        assert!(m.groups.values().all(|g| g.voters.len() == 3));
    }

    #[test]
    fn a_node_that_never_caught_up_is_dropped_when_removed() {
        let mut m = cluster(2, 2);
        let moves = plan(&m, 3);
        assert_eq!(moves.len(), 1, "{moves:?}");
        for (group, placement) in moves {
            m.apply(&MembershipOp::Place { group, placement });
        }
        // Node 2 never answers: nobody reports it. The operator removes it.
        m.apply(&MembershipOp::SetDraining {
            node: 2,
            draining: true,
        });
        for (group, placement) in plan(&m, 3) {
            assert_eq!(placement.replicas, vec![1], "group {group}");
            m.apply(&MembershipOp::Place { group, placement });
        }
        assert_eq!(m.replicas_on(2), 0);
        assert_eq!(
            m.apply(&MembershipOp::ForgetNode { node: 2 }),
            MembershipReply::Done
        );
    }

    #[test]
    fn a_pool_holds_its_groups_and_nothing_else() {
        let mut m = Membership::default();
        m.apply(&MembershipOp::Bootstrap {
            node: 1,
            info: info(1),
            shards: 4,
        });
        for g in 0..=4 {
            let p = m.groups[&g].clone();
            report_as_leader(&mut m, g, &p);
        }
        m.apply(&MembershipOp::AddNode { info: info(2) });
        for p in [3, 4, 5] {
            m.apply(&MembershipOp::AddNode {
                info: labelled(p, &[("pool", "acme")], true),
            });
        }
        converge(&mut m, 3);
        let tenant = uuid::Uuid::from_u128(7);
        let reply = m.apply(&MembershipOp::DedicateIn(Since(DedicateIn {
            tenant,
            replication: 3,
            pool: Some("acme".into()),
        })));
        let MembershipReply::Dedicated { group } = reply else {
            panic!("{reply:?}")
        };
        let p = m.groups[&group].clone();
        report_as_leader(&mut m, group, &p);
        converge(&mut m, 3);
        let pool = [3, 4, 5];
        let mut in_pool: Vec<NodeId> = m.groups[&group].replicas.clone();
        in_pool.sort_unstable();
        assert_eq!(in_pool, pool);
        for (id, g) in &m.groups {
            if *id != group && *id != META_GROUP {
                assert!(
                    g.replicas.iter().all(|r| !pool.contains(r)),
                    "group {id} on a reserved node: {:?}",
                    g.replicas
                );
            }
        }
        // A pool with no node is refused by name.
        let reply = m.apply(&MembershipOp::DedicateIn(Since(DedicateIn {
            tenant: uuid::Uuid::from_u128(8),
            replication: 3,
            pool: Some("nowhere".into()),
        })));
        assert!(
            matches!(&reply, MembershipReply::Refused { reason } if reason.contains("nowhere")),
            "{reply:?}"
        );
        // Out of the pool again: its replicas leave the reserved nodes.
        m.apply(&MembershipOp::DedicateIn(Since(DedicateIn {
            tenant,
            replication: 3,
            pool: None,
        })));
        converge(&mut m, 3);
        assert!(m.groups[&group].replicas.iter().all(|r| !pool.contains(r)));
    }

    #[test]
    fn zones_spread_a_groups_replicas() {
        let mut m = Membership::default();
        m.apply(&MembershipOp::Bootstrap {
            node: 1,
            info: labelled(1, &[("zone", "a")], false),
            shards: 6,
        });
        for g in 0..=6 {
            let p = m.groups[&g].clone();
            report_as_leader(&mut m, g, &p);
        }
        for (p, z) in [(2, "a"), (3, "b"), (4, "b")] {
            m.apply(&MembershipOp::AddNode {
                info: labelled(p, &[("zone", z)], false),
            });
        }
        converge(&mut m, 2);
        let zone = |n: &NodeId| m.nodes[n].zone().unwrap().to_string();
        for (id, g) in &m.groups {
            if *id == META_GROUP {
                continue;
            }
            let zones: BTreeSet<String> = g.replicas.iter().map(zone).collect();
            assert_eq!(zones.len(), 2, "group {id}: {:?}", g.replicas);
        }
    }
}
