//! `quotad cluster status|remove|lead`: the cluster as its nodes see it,
//! draining a node out of it, and moving a group's leader.
use super::client::Conn;
use super::table;
use crate::cli::out::outln;
use anyhow::{Context, bail};
use clap::Subcommand;
use quotad_proto::cluster::cluster_client::ClusterClient;
use quotad_proto::cluster::{
    ClusterStatus, GroupStatus, MoveLeaderRequest, RemoveNodeRequest, StatusRequest,
};
use quotad_proto::credential::AuthChannel;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Nodes, groups, replicas, leaders and replication lag.
    Status,
    /// Drain a node (its replicas move to others), then remove it.
    Remove {
        node: u64,
        /// Give up waiting for the drain after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Have a node (one of the group's voters) lead a shard group: its
    /// leader hands over, and the leader balancing keeps it there.
    Lead {
        group: u64,
        node: u64,
        /// Give up waiting for the hand-over after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
}

async fn client(conn: &Conn, addr: &str) -> anyhow::Result<ClusterClient<AuthChannel>> {
    // A node's advertised address has no scheme: the same as `conn`'s.
    let url = if addr.contains("://") || !conn.grpc_url().starts_with("https://") {
        addr.to_string()
    } else {
        format!("https://{addr}")
    };
    let channel = conn
        .endpoint(&url)?
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ClusterClient::new(conn.bearer()?.on(channel)))
}

/// Status from `conn`'s node, with each group's figures taken from the
/// node that leads it (only a leader knows its followers' lag).
pub async fn gather(conn: &Conn) -> anyhow::Result<ClusterStatus> {
    let mut status = client(conn, conn.grpc_url())
        .await?
        .status(StatusRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("status: {}", s.message()))?
        .into_inner();
    let mut best: BTreeMap<u64, GroupStatus> = BTreeMap::new();
    for n in &status.nodes {
        let Ok(mut c) = client(conn, &n.grpc_addr).await else {
            continue;
        };
        let Ok(s) = c.status(StatusRequest {}).await else {
            continue;
        };
        for g in s.into_inner().groups {
            if g.leader == n.id {
                best.insert(g.group, g);
            }
        }
    }
    for g in status.groups.iter_mut() {
        if let Some(b) = best.remove(&g.group) {
            *g = b;
        }
    }
    for n in status.nodes.iter_mut() {
        n.leaders = status
            .groups
            .iter()
            .filter(|g| g.group != 0 && g.leader == n.id)
            .count() as u32;
    }
    Ok(status)
}

pub async fn run(conn: &Conn, cmd: ClusterCmd) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Status => {
            let s = gather(conn).await?;
            if conn.json_output() {
                let nodes: Vec<_> = s.nodes.iter().map(|n| json!({"id": n.id, "peerAddr": n.peer_addr, "grpcAddr": n.grpc_addr, "httpAddr": n.http_addr, "state": n.state, "replicas": n.replicas, "leaders": n.leaders})).collect();
                let groups: Vec<_> = s.groups.iter().map(|g| json!({"group": g.group, "replicas": g.replicas, "voters": g.voters, "learners": g.learners, "leader": g.leader, "term": g.term, "lastLogIndex": g.last_log_index, "appliedIndex": g.applied_index, "lag": g.lag, "dedicatedTenant": g.dedicated_tenant})).collect();
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"nodes": nodes, "groups": groups}))?
                )?;
                return Ok(());
            }
            let rows: Vec<Vec<String>> = s
                .nodes
                .iter()
                .map(|n| {
                    vec![
                        n.id.to_string(),
                        n.state.clone(),
                        n.peer_addr.clone(),
                        n.grpc_addr.clone(),
                        n.http_addr.clone(),
                        n.replicas.to_string(),
                        n.leaders.to_string(),
                    ]
                })
                .collect();
            table::print(
                &["NODE", "STATE", "PEER", "GRPC", "HTTP", "REPLICAS", "LEADS"],
                &rows,
            )?;
            outln!()?;
            let ids = |v: &[u64]| {
                v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let rows: Vec<Vec<String>> = s
                .groups
                .iter()
                .map(|g| {
                    let lag = g
                        .lag
                        .iter()
                        .filter(|(n, _)| **n != g.leader)
                        .map(|(n, l)| format!("{n}:{l}"))
                        .collect::<Vec<_>>()
                        .join(",");
                    vec![
                        if g.group == 0 {
                            "0 (meta)".to_string()
                        } else if !g.dedicated_tenant.is_empty() {
                            format!("{} (dedicated)", g.group)
                        } else {
                            g.group.to_string()
                        },
                        ids(&g.replicas),
                        ids(&g.voters),
                        ids(&g.learners),
                        if g.leader == 0 {
                            "-".into()
                        } else {
                            g.leader.to_string()
                        },
                        g.term.to_string(),
                        g.applied_index.to_string(),
                        if lag.is_empty() { "-".into() } else { lag },
                    ]
                })
                .collect();
            table::print(
                &[
                    "GROUP", "PLACED", "VOTERS", "LEARNERS", "LEADER", "TERM", "APPLIED", "LAG",
                ],
                &rows,
            )?;
            Ok(())
        }
        ClusterCmd::Remove { node, timeout_secs } => {
            let mut c = client(conn, conn.grpc_url()).await?;
            let deadline = Instant::now() + Duration::from_secs(timeout_secs);
            loop {
                let r = c
                    .remove_node(RemoveNodeRequest { node_id: node })
                    .await
                    .map_err(|s| anyhow::anyhow!("remove node {node}: {}", s.message()))?
                    .into_inner();
                if r.removed {
                    outln!("node {node} drained and removed")?;
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    bail!(
                        "node {node} still holds {} replicas after {timeout_secs} s; it stays draining",
                        r.remaining_replicas
                    );
                }
                eprintln!(
                    "draining node {node}: {} replicas left",
                    r.remaining_replicas
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        ClusterCmd::Lead {
            group,
            node,
            timeout_secs,
        } => {
            let mut c = client(conn, conn.grpc_url()).await?;
            let deadline = Instant::now() + Duration::from_secs(timeout_secs);
            loop {
                let r = c
                    .move_leader(MoveLeaderRequest { group, node })
                    .await
                    .map_err(|s| anyhow::anyhow!("group {group} to node {node}: {}", s.message()))?
                    .into_inner();
                if r.moved {
                    outln!("group {group} is led by node {node}")?;
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    bail!(
                        "group {group} is still led by node {} after {timeout_secs} s; node {node} stays its preferred leader",
                        r.leader
                    );
                }
                eprintln!(
                    "group {group}: led by node {}, handing over to node {node}",
                    r.leader
                );
            }
        }
    }
}
