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
    #[error("data store I/O failed: {0}")]
    Io(#[from] redb::Error),
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
        matches!(self, StorageError::Io(_))
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
