//! The replicated state of a group, and how it is stored. The meta group
//! holds the cluster's membership and the names tenants hold
//! ([`MetaState`]); a shard group holds tenants ([`ShardState`]). Both are
//! stored in one layout (`layout`), that of the single state they were
//! before they were split.
mod claims;
mod layout;
mod meta;
mod shard;

pub use claims::{Claim, Claims, ORPHAN_CLAIM_AFTER_MS};
pub use layout::GroupState;
pub use meta::MetaState;
pub use shard::{ShardState, Unarchived};

use super::command::{Command, CommandResponse};
use serde::{Serialize, de::DeserializeOwned};

/// The state a kind of group replicates: which commands it takes and how
/// it applies them. A snapshot of it is its encoding (`crate::format`).
pub trait ReplicatedState: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// Whether `cmd` is a command of this kind of group.
    fn accepts(cmd: &Command) -> bool;
    /// Apply a committed command. Deterministic: uses only the command and
    /// the state.
    fn apply(&mut self, cmd: &Command) -> CommandResponse;
    /// Rebuild what a snapshot does not hold, once one is decoded.
    fn loaded(&mut self) {}
}

/// A command handed to the other kind of group: a bug (every meta write
/// goes through the meta group, every tenant write to its shard), and
/// refused before it is logged (`Group::write`). Should one be logged all
/// the same, applying it changes nothing, with an answer that says so.
pub(crate) fn misrouted(group: &str, cmd: &Command) -> CommandResponse {
    tracing::error!(
        group,
        "a command of the other kind of group; it changes nothing"
    );
    match cmd {
        Command::Batch(ops) => CommandResponse::Batch(vec![None; ops.len()]),
        Command::MoveOut { .. } => CommandResponse::TenantNotHere,
        _ => CommandResponse::Applied,
    }
}

#[cfg(test)]
mod tests;
