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
use std::collections::BTreeMap;

/// The meta group is on every active node, so each node has the cluster map.
pub const META_GROUP: u64 = 0;

/// Proposed placements for the groups that should change now.
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
    let settled = |g: &GroupPlacement| {
        let mut a = g.voters.clone();
        let mut b = g.replicas.clone();
        a.sort_unstable();
        b.sort_unstable();
        a == b
    };
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
    let mut out = Vec::new();
    let mut all_settled = true;
    for (id, g) in &m.groups {
        if !settled(g) {
            all_settled = false;
            continue;
        }
        let target = if *id == META_GROUP {
            active.len()
        } else {
            replication.min(active.len())
        };
        let mut replicas = g.replicas.clone();
        let gone = replicas.iter().position(|r| !active.contains(r));
        let spare = least_loaded(&load, &replicas);
        let changed = if let Some(i) = gone {
            // One member change at a time: swap a draining replica for a
            // spare node, or drop it if the group is over its size anyway.
            match spare {
                Some(n) if replicas.len() <= target => {
                    replicas[i] = n;
                    bump(&mut load, n, 1);
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

fn least_loaded(load: &BTreeMap<NodeId, usize>, exclude: &[NodeId]) -> Option<NodeId> {
    load.iter()
        .filter(|(n, _)| !exclude.contains(n))
        .min_by_key(|(n, l)| (**l, **n))
        .map(|(n, _)| *n)
}

fn most_loaded_index(load: &BTreeMap<NodeId, usize>, replicas: &[NodeId]) -> usize {
    (0..replicas.len())
        .max_by_key(|i| (load.get(&replicas[*i]).copied().unwrap_or(usize::MAX), *i))
        .unwrap_or(0)
}

/// Move one replica from the most to the least loaded node, if their loads
/// differ by more than one.
fn balance_replicas(
    m: &Membership,
    load: &BTreeMap<NodeId, usize>,
) -> Option<(u64, GroupPlacement)> {
    let (max_node, max) = load
        .iter()
        .max_by_key(|(n, l)| (**l, std::cmp::Reverse(**n)))?;
    let (min_node, min) = load.iter().min_by_key(|(n, l)| (**l, **n))?;
    if max - min <= 1 {
        return None;
    }
    let (id, g) = m.groups.iter().find(|(id, g)| {
        **id != META_GROUP && g.replicas.contains(max_node) && !g.replicas.contains(min_node)
    })?;
    let mut replicas = g.replicas.clone();
    for r in replicas.iter_mut() {
        if r == max_node {
            *r = *min_node;
        }
    }
    let leader = g.leader.filter(|l| l != max_node);
    Some((
        *id,
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
            .is_some_and(|l| active.contains(&l) && g.replicas.contains(&l))
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
            .replicas
            .iter()
            .filter(|r| **r != leader && leads.contains_key(r))
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
    use crate::cluster::membership::{MembershipOp, MembershipReply, NodeInfo};

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
                let leader = placement
                    .leader
                    .filter(|l| placement.replicas.contains(l))
                    .unwrap_or(placement.replicas[0]);
                let term = m.groups[&group].led_by.map_or(1, |(_, t)| t + 1);
                m.apply(&MembershipOp::Report {
                    group,
                    voters: placement.replicas.clone(),
                    leader,
                    term,
                });
            }
        }
        panic!("placement did not converge");
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
}
