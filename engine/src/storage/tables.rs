//! The tables of the node's redb database. Every reader and writer of the
//! store names them from here.
use redb::TableDefinition;

/// (group id, log index)
pub type TableKey = (u64, u64);

pub(crate) const LOGS: TableDefinition<TableKey, &[u8]> = TableDefinition::new("raft_log");
/// (group id, name) -> value: vote, committed, last purged log id.
pub(crate) const RAFT_META: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("raft_meta");
/// group id -> latest snapshot (meta + data).
pub(crate) const SNAPSHOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_snapshot");
/// Node metadata: its id, whether it joined a cluster, the shard count.
pub(crate) const NODE: TableDefinition<&str, u64> = TableDefinition::new("node");
