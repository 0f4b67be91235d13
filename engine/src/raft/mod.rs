//! One openraft group per shard, plus the meta group (0).
//!
//! # Layout
//! - `type_config`: the openraft type configuration.
//! - `command`: what a log entry carries ([`Command`]).
//! - `group_state`: the replicated state of the meta group and of a shard
//!   group, their deterministic apply, and their stored layout.
//! - `state_machine`: openraft's state machine over `group_state`, with snapshots.
//! - `log_store`: Raft log and vote in the node's redb store.
//! - `network`: transport between replicas.
//! - `snapshot_pacing`: when a group snapshots (by log bytes, not a fixed count).
//! - `durable_snapshot`: how far the stored snapshot reaches; the log is purged only that far.
//! - `group`: starting a group and writing to it.
mod audit_trail;
mod command;
mod durable_snapshot;
mod group;
mod group_state;
mod log_store;
mod network;
pub(crate) mod runtime;
mod snapshot_pacing;
mod state_machine;
mod type_config;

pub use audit_trail::TENANT_PURGED;
pub use command::{ArchiveAck, Command, CommandResponse, MetaOp, MovedTenant, SignOut, StampedOp};
pub use group::{Group, GroupConfig, GroupHandle};
pub use group_state::{
    Claim, Claims, GroupState, MetaState, ORPHAN_CLAIM_AFTER_MS, ReplicatedState, ShardState,
    Unarchived,
};
pub(crate) use network::caused_by;
pub use network::{GroupNetwork, MAX_MESSAGE_BYTES, Peers, TransportService};
pub(crate) use state_machine::stored_snapshot;
pub use type_config::{NodeId, TypeConfig};

/// A fresh log store and state machine of `group` over `store`, wired as
/// `Group::open` wires them, for openraft's storage suite
/// (`tests/openraft_suite.rs`). The purge gate starts open for every index:
/// the suite purges logs without storing a snapshot first, which a running
/// group never does (see `durable_snapshot`, whose own tests cover the gate).
#[cfg(feature = "testing")]
pub fn storage_for_tests(
    group: u64,
    store: crate::storage::Store,
) -> Result<(log_store::LogStore, state_machine::StateMachine), crate::storage::StorageError> {
    let pacing = snapshot_pacing::SnapshotPacing::new(0, 0);
    let durable = durable_snapshot::DurableSnapshot::new();
    // `stored` records the index after the one given: every index is covered.
    durable.stored(Some(u64::MAX - 1));
    let sm =
        state_machine::StateMachine::open(group, store.clone(), pacing.clone(), durable.clone())?;
    Ok((log_store::LogStore::new(group, store, pacing, durable), sm))
}
