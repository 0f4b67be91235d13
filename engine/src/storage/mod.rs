//! Local storage: one embedded redb database per node, in the data dir. It
//! holds every group's Raft log, vote and snapshots, and node metadata.
//!
//! redb over fjall: the Raft log is append-then-read-back-rarely and each
//! group commit must be durable before it is acknowledged, which makes the
//! write path one fsync'd transaction per batch either way; redb gives that
//! with a stable file format, ACID transactions and a single file, without
//! an LSM's background compaction competing for the node's two cores.
mod error;
mod first_failure;
mod log_appender;
pub mod private_file;
mod store;
pub(crate) mod tables;

pub use error::StorageError;
pub use log_appender::LogCommits;
pub use store::Store;
pub use tables::TableKey;
