//! The cluster: membership and placement (recorded in the meta group),
//! routing requests to group leaders, and the loops that carry placement
//! out.
//!
//! ```text
//!  meta leader:  membership ──plan()──> Place{group, replicas, leader}
//!  group leader: placement ≠ voters ──> add learner ─> catch up ─> change membership
//!                                  └──> Report{group, voters, leader, term}
//!  any node:     request ──route──> local shard actor | Forward to the leader
//! ```
//!
//! # Layout
//! - [`membership`] (in `model`): nodes, placement, pins as the meta group
//!   records them; plain data that `raft` commands carry.
//! - [`placement`]: the pure planning function.
//! - [`Router`]: the node's groups and peers, opened together.
//! - `routing`: serve locally or forward to the group's leader.
//! - [`forward`]: the forwarded request and reply types.
//! - [`principal`]: the caller a forwarded call carries, checked again on
//!   the leader.
//! - `dedicate`: moving an ENTERPRISE tenant to a group of its own.
//! - `driver`: the per-node loops (plan, reconcile, hand over, report).
//! - [`service`]: the `Cluster` gRPC service.
mod dedicate;
mod driver;
pub mod forward;
mod join;
pub mod principal;
pub use crate::model::membership;
pub mod placement;
mod router;
mod routing;
pub mod service;

pub use driver::spawn_loops;
pub use forward::{ForwardReply, ForwardRequest};
pub use join::join;
pub use membership::{GroupPlacement, Membership, MembershipOp, MembershipReply, NodeInfo};
pub use placement::{META_GROUP, plan};
pub use router::{Advertise, Router, RouterConfig};
pub use routing::{IsolationLevel, PlacementView, ReplicaRole, ReplicaView};
pub use service::ClusterService;
