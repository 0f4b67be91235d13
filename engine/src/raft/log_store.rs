//! The Raft log and vote of one group, in the node's redb store. Appends are
//! durable (fsync'd) before openraft is told they are flushed; that is what
//! makes an acknowledged strict increment survive `kill -9`.
// openraft's `StorageError` is large; its trait signatures fix the type.
#![allow(clippy::result_large_err)]
use super::durable_snapshot::{DurableSnapshot, PURGE_WAIT};
use super::snapshot_pacing::SnapshotPacing;
use super::type_config::{NodeId, TypeConfig};
use crate::storage::tables::{LOGS, RAFT_META};
use crate::storage::{StorageError as StoreError, Store};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, RaftLogReader, StorageError, StorageIOError, Vote};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

type RaftStorageError = StorageError<NodeId>;

/// Most bytes of entries (as stored) handed to replication for one
/// AppendEntries; at least one entry, whatever its size. openraft asks for
/// up to `max_payload_entries` (300) entries, which at up to 1 MiB a
/// group-commit entry is far more than a follower decodes in one message
/// (see `network`): a follower far behind then catches up in requests of
/// this size instead of being sent the same oversized one forever.
pub(crate) const REPLICATION_READ_BYTES: usize = 2 << 20;

#[derive(Clone)]
pub struct LogStore {
    group: u64,
    store: Store,
    pacing: Arc<SnapshotPacing>,
    durable: Arc<DurableSnapshot>,
}

impl LogStore {
    pub fn new(
        group: u64,
        store: Store,
        pacing: Arc<SnapshotPacing>,
        durable: Arc<DurableSnapshot>,
    ) -> Self {
        LogStore {
            group,
            store,
            pacing,
            durable,
        }
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.store.read_meta(self.group, name)? {
            Some(bytes) => {
                crate::format::decode(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Corrupt {
                        what: "raft metadata",
                        source,
                    })
            }
            None => Ok(None),
        }
    }

    async fn put_meta<T: serde::Serialize>(
        &self,
        name: &'static str,
        value: &T,
        durable: bool,
    ) -> Result<(), StoreError> {
        let bytes = crate::format::encode(value).map_err(|source| StoreError::Corrupt {
            what: "raft metadata",
            source,
        })?;
        let (store, group) = (self.store.clone(), self.group);
        blocking(move || {
            store.write(durable, |tx| {
                tx.open_table(RAFT_META)?
                    .insert((group, name), bytes.as_slice())?;
                Ok(())
            })
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StoreError::Io(redb::Error::Corrupted(format!(
            "storage task failed: {e}"
        ))))
    })
}

fn decode_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, StoreError> {
    crate::format::decode(bytes).map_err(|source| StoreError::Corrupt {
        what: "raft log entry",
        source,
    })
}

fn read_err(e: StoreError) -> RaftStorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_err(e: StoreError) -> RaftStorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, RaftStorageError> {
        let from = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(0) => return Ok(Vec::new()),
            Bound::Excluded(i) => i - 1,
            Bound::Unbounded => u64::MAX,
        };
        if from > to {
            return Ok(Vec::new());
        }
        let rows = self
            .store
            .read_logs(self.group, from, to)
            .map_err(read_err)?;
        rows.iter()
            .map(|b| decode_entry(b).map_err(read_err))
            .collect()
    }

    /// What replication sends next: `[start, end)`, cut after
    /// [`REPLICATION_READ_BYTES`].
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, RaftStorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let rows = self
            .store
            .read_logs_within(self.group, start, end - 1, REPLICATION_READ_BYTES)
            .map_err(read_err)?;
        rows.iter()
            .map(|b| decode_entry(b).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let last_purged: Option<LogId<NodeId>> = self.meta("last_purged").map_err(read_err)?;
        let last = match self.store.last_log(self.group).map_err(read_err)? {
            Some(bytes) => Some(decode_entry(&bytes).map_err(read_err)?.log_id),
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), RaftStorageError> {
        self.put_meta("vote", vote, true)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, RaftStorageError> {
        self.meta("vote")
            .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    /// Not fsync'd on its own: losing it only means a restarted node waits
    /// for its leader to re-commit before applying, never a lost entry.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), RaftStorageError> {
        self.put_meta("committed", &committed, false)
            .await
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, RaftStorageError> {
        Ok(self
            .meta::<Option<LogId<NodeId>>>("committed")
            .map_err(read_err)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut rows = Vec::new();
        let mut bytes_total = 0;
        let mut ops = 0;
        for e in entries {
            ops += match &e.payload {
                openraft::EntryPayload::Normal(crate::raft::command::Command::Batch(b)) => {
                    b.len() as u64
                }
                openraft::EntryPayload::Normal(_) => 1,
                _ => 0,
            };
            let bytes = crate::format::encode(&e).map_err(|source| {
                write_err(StoreError::Corrupt {
                    what: "raft log entry",
                    source,
                })
            })?;
            bytes_total += bytes.len() as u64;
            rows.push((e.log_id.index, bytes));
        }
        self.pacing.appended(bytes_total);
        let result = self.store.append_log(self.group, rows, ops).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), RaftStorageError> {
        let (store, group) = (self.store.clone(), self.group);
        blocking(move || {
            store.write(true, |tx| {
                let mut t = tx.open_table(LOGS)?;
                t.retain_in((group, log_id.index)..=(group, u64::MAX), |_, _| false)?;
                Ok(())
            })
        })
        .await
        .map_err(write_err)
    }

    /// Deletes entries only once a stored snapshot holds them: openraft
    /// asks a follower to purge before its snapshot install is stored (see
    /// `durable_snapshot`).
    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), RaftStorageError> {
        self.durable
            .covering(log_id.index, PURGE_WAIT)
            .await
            .map_err(|e| RaftStorageError::from(StorageIOError::write_logs(AnyError::error(e))))?;
        let bytes = crate::format::encode(&log_id).map_err(|source| {
            write_err(StoreError::Corrupt {
                what: "raft metadata",
                source,
            })
        })?;
        let (store, group) = (self.store.clone(), self.group);
        blocking(move || {
            store.write(true, |tx| {
                tx.open_table(RAFT_META)?
                    .insert((group, "last_purged"), bytes.as_slice())?;
                let mut t = tx.open_table(LOGS)?;
                t.retain_in((group, 0)..=(group, log_id.index), |_, _| false)?;
                Ok(())
            })
        })
        .await
        .map_err(write_err)
    }
}
