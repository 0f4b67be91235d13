//! The cluster as this node sees it (operators): nodes, groups with their
//! leaders and replicas, replication lag where this node leads, and what
//! this node's replicas have not archived yet.
use super::guard::{Ctx, Refused};
use super::layout::{self, Section};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use std::collections::HashMap;

fn ids(list: &[u64]) -> String {
    list.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn page(ctx: Ctx) -> Response {
    if !ctx.is_operator() {
        return Refused::new(
            StatusCode::FORBIDDEN,
            "Only a platform operator may see the cluster.",
        )
        .into_response();
    }
    let engine = &ctx.state.app.engine;
    let status = engine.router().cluster_status();
    let backlog: HashMap<u64, _> = engine
        .archive_backlog()
        .into_iter()
        .map(|b| (b.group, b))
        .collect();
    let me = status.node_id;
    let body = html! {
        h1 { "Cluster" }
        p { "As node " strong { (me) } " sees it. Replication lag is known for the groups this node leads; archive backlog for the groups it holds a replica of. Another node's view is on its own console." }
        section aria-labelledby="nodes-h" {
            h2 #nodes-h { "Nodes" }
            div.table-wrap tabindex="0" role="region" aria-label="Table (scrolls sideways on a narrow screen)" {
                table.nodes {
                    thead { tr { th scope="col" { "Node" } th scope="col" { "State" } th scope="col" { "Replicas" } th scope="col" { "Leads" } th scope="col" { "gRPC" } th scope="col" { "REST / console" } th scope="col" { "Peer" } } }
                    tbody {
                        @for n in &status.nodes {
                            tr data-node=(n.id) {
                                th scope="row" { (n.id) @if n.id == me { " (this node)" } }
                                td { (n.state) }
                                td { (n.replicas) }
                                td { (n.leaders) }
                                td { code { (n.grpc_addr) } }
                                td { code { (n.http_addr) } }
                                td { code { (n.peer_addr) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="groups-h" {
            h2 #groups-h { "Groups" }
            div.table-wrap tabindex="0" role="region" aria-label="Table (scrolls sideways on a narrow screen)" {
                table.groups {
                    thead { tr { th scope="col" { "Group" } th scope="col" { "Leader" } th scope="col" { "Term" } th scope="col" { "Voters" } th scope="col" { "Learners" } th scope="col" { "Log / applied" } th scope="col" { "Lag (entries)" } th scope="col" { "Archive backlog" } th scope="col" { "Dedicated to" } } }
                    tbody {
                        @for g in &status.groups {
                            tr data-group=(g.group) {
                                th scope="row" { (g.group) @if g.group == 0 { " (meta)" } }
                                td { @if g.leader == 0 { "none" } @else { (g.leader) } }
                                td { (g.term) }
                                td { (ids(&g.voters)) }
                                td { (ids(&g.learners)) }
                                td { (g.last_log_index) " / " (g.applied_index) }
                                td {
                                    @if g.lag.is_empty() { "—" } @else {
                                        @let lag = {
                                            let mut v: Vec<_> = g.lag.iter().collect();
                                            v.sort();
                                            v
                                        };
                                        @for (i, (node, behind)) in lag.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            "node " (node) ": " (behind)
                                        }
                                    }
                                }
                                td {
                                    @match backlog.get(&g.group) {
                                        Some(b) if b.pending == 0 => "nothing pending",
                                        Some(b) => { (b.pending) @if b.pending == 1 { " tenant" } @else { " tenants" } ", oldest " (format!("{:.1}", b.lag_ms as f64 / 1000.0)) " s" },
                                        None => "—",
                                    }
                                }
                                td { @if g.dedicated_tenant.is_empty() { "" } @else { a href=(format!("/console/tenants/{}", g.dedicated_tenant)) { code { (g.dedicated_tenant.get(..8).unwrap_or("")) } } } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&ctx, "Cluster", None, Section::Cluster, body).into_response()
}
