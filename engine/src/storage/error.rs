/// Storage failures. `is_transient` tells a caller whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "cannot open the data store at {path} (is another quotad using this data dir?): {source}"
    )]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("cannot create the data dir {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read or write the cluster key {path}: {source}")]
    ClusterKey {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("data store I/O failed: {0}")]
    Io(#[from] redb::Error),
    /// One commit of the log writer failed; every group with entries in it
    /// gets the same cause (a full disk, a failed fsync). redb refuses every
    /// later operation on the database after a failed write, so the groups
    /// stop for good in this process: a restart reopens the store from what
    /// reached the disk.
    #[error("appending to the raft log failed: {0}")]
    LogAppend(#[source] std::sync::Arc<StorageError>),
    /// redb refuses every operation after a failed write; this names the
    /// one that failed first (see `first_failure`).
    #[error("the data store refuses writes since one failed: {first}")]
    AfterFailure { first: String },
    #[error("the raft log writer has stopped")]
    LogWriterStopped,
    #[error("stored {what} is corrupt: {source}")]
    Corrupt {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },
    #[error("the data dir records joining a cluster but not its shard count")]
    MissingShardCount,
    #[error("data dir was created with {stored} shards, but {configured} are configured")]
    ShardCountMismatch { stored: u64, configured: u64 },
}

impl StorageError {
    /// I/O errors may pass (a full disk freed, a busy device); corruption
    /// and configuration mismatches will not.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Io(_) => true,
            StorageError::LogAppend(cause) => cause.is_transient(),
            _ => false,
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Io(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
