use super::StorageError;
use super::first_failure::FirstFailure;
use super::log_appender::{LogAppender, Rows};
use super::tables::{LOGS, NODE, RAFT_META, SNAPSHOTS};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// The node's embedded database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    appender: Arc<LogAppender>,
    failure: FirstFailure,
    /// The data dir, for messages that tell an operator where to look.
    dir: Arc<Path>,
}

/// redb's page cache (read cache and write buffer together). Its default,
/// 1 GiB, fills with pages written once: log entries are read back only by
/// a lagging replica or a restart, snapshots at start and when sent. A node
/// with a million tenants then held about as much cache as state. 64 MiB
/// keeps every recently written page a replication read wants.
const CACHE_BYTES: usize = 64 << 20;

/// Databases open in this process, by path. redb refuses a second open of
/// the same file in one process; an engine restarted in-process (tests, an
/// embedding application) may meet background tasks of its previous
/// incarnation still holding the handle for a moment, so it shares it.
static OPEN: Mutex<Vec<(PathBuf, Weak<Database>)>> = Mutex::new(Vec::new());

fn open_shared(path: &Path) -> Result<Arc<Database>, StorageError> {
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    open.retain(|(_, w)| w.strong_count() > 0);
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if let Some(db) = open
        .iter()
        .find(|(p, _)| *p == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(db);
    }
    // The last holder in this process may still be closing the file; another
    // process holding it (a second node on the same data dir) keeps it.
    let mut attempts = 0;
    let db = loop {
        match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
            Ok(db) => break Arc::new(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(source) => {
                return Err(StorageError::Open {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    };
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    open.push((key, Arc::downgrade(&db)));
    Ok(db)
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let private = |source| StorageError::DataDir {
            path: dir.display().to_string(),
            source,
        };
        // Before anything is read from it, and again once the database file
        // exists (redb creates it with the process's umask). Only what was
        // there before is worth a word.
        let existed = dir.exists();
        for p in super::private_file::make_private(dir).map_err(private)? {
            if existed {
                tracing::warn!(path = %p.display(), "was readable by others: made private to quotad's user");
            }
        }
        let path = dir.join("quotad.redb");
        let db = open_shared(&path)?;
        super::private_file::make_private(dir).map_err(private)?;
        let failure = FirstFailure::default();
        let store = Store {
            appender: Arc::new(LogAppender::start(db.clone(), failure.clone())),
            failure,
            db,
            dir: dir.into(),
        };
        // Create every table once so readers never meet a missing table.
        let tx = store.db.begin_write()?;
        tx.open_table(LOGS)?;
        tx.open_table(RAFT_META)?;
        tx.open_table(SNAPSHOTS)?;
        tx.open_table(NODE)?;
        tx.commit()?;
        Ok(store)
    }

    /// The data dir the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The shard count is fixed when a data dir is first used: tenants hash
    /// to shards by it, so changing it would move tenants away from their
    /// state.
    pub fn shard_count(&self, configured: u64) -> Result<u64, StorageError> {
        let tx = self.db.begin_write()?;
        let stored = {
            let mut t = tx.open_table(NODE)?;
            let stored = t.get("shard_count")?.map(|v| v.value());
            match stored {
                Some(s) => s,
                None => {
                    t.insert("shard_count", configured)?;
                    configured
                }
            }
        };
        tx.commit()?;
        if stored != configured {
            return Err(StorageError::ShardCountMismatch { stored, configured });
        }
        Ok(stored)
    }

    /// The shard count as stored (a joined node's is its cluster's).
    pub fn shard_count_stored(&self) -> Result<u64, StorageError> {
        self.node_value("shard_count")?
            .ok_or(StorageError::MissingShardCount)
    }

    /// This node's id in its cluster, once it has one.
    pub fn node_id(&self) -> Result<Option<u64>, StorageError> {
        self.node_value("node_id")
    }

    /// Whether this node joined a cluster (rather than founding one): its
    /// shard count is then the cluster's, not its own configuration's.
    pub fn joined(&self) -> Result<bool, StorageError> {
        Ok(self.node_value("joined")? == Some(1))
    }

    /// Record the node's id (and whether it joined) and, for a joining
    /// node, the cluster's shard count, in one transaction.
    pub fn set_identity(
        &self,
        node_id: u64,
        joined_with_shards: Option<u64>,
    ) -> Result<(), StorageError> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(NODE)?;
            t.insert("node_id", node_id)?;
            if let Some(shards) = joined_with_shards {
                t.insert("joined", 1)?;
                t.insert("shard_count", shards)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn node_value(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let tx = self.db.begin_read()?;
        let t = match tx.open_table(NODE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(t.get(key)?.map(|v| v.value()))
    }

    /// Durably append encoded entries to `group`'s Raft log, in one commit
    /// with whatever other groups are appending (see `log_appender`).
    pub(crate) async fn append_log(
        &self,
        group: u64,
        rows: Rows,
        ops: u64,
    ) -> Result<(), StorageError> {
        self.appender.append(group, rows, ops).await
    }

    /// The log writer's commits (fsyncs), entries and operations so far.
    pub fn log_commits(&self) -> super::log_appender::LogCommits {
        self.appender.counts()
    }

    /// Write `f` in one transaction; `durable` waits for fsync.
    pub(crate) fn write<T>(
        &self,
        durable: bool,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.failure.check((|| {
            let mut tx = self.db.begin_write()?;
            if !durable {
                tx.set_durability(Durability::None)
                    .map_err(|e| StorageError::Io(e.into()))?;
            }
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })())
    }

    pub(crate) fn read_meta(
        &self,
        group: u64,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(RAFT_META)?;
        Ok(t.get((group, name))?.map(|v| v.value().to_vec()))
    }

    /// The group's latest stored snapshot (encoded), if one was taken.
    pub fn read_snapshot(&self, group: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SNAPSHOTS)?;
        Ok(t.get(group)?.map(|v| v.value().to_vec()))
    }

    pub(crate) fn last_log(&self, group: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(LOGS)?;
        let last = t.range((group, 0)..=(group, u64::MAX))?.next_back();
        match last {
            Some(row) => Ok(Some(row?.1.value().to_vec())),
            None => Ok(None),
        }
    }

    /// Total encoded size of `group`'s log as stored.
    pub(crate) fn log_bytes(&self, group: u64) -> Result<u64, StorageError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(LOGS)?;
        let mut total = 0;
        for row in t.range((group, 0)..=(group, u64::MAX))? {
            total += row?.1.value().len() as u64;
        }
        Ok(total)
    }

    pub(crate) fn read_logs(
        &self,
        group: u64,
        from: u64,
        to_inclusive: u64,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        self.read_logs_within(group, from, to_inclusive, usize::MAX)
    }

    /// The entries from `from` on, in order, as long as they add up to at
    /// most `max_bytes` as stored; the first one whatever its size.
    pub(crate) fn read_logs_within(
        &self,
        group: u64,
        from: u64,
        to_inclusive: u64,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(LOGS)?;
        let mut out = Vec::new();
        let mut total = 0usize;
        for row in t.range((group, from)..=(group, to_inclusive))? {
            let row = row?;
            let value = row.1.value();
            total = total.saturating_add(value.len());
            if total > max_bytes && !out.is_empty() {
                break;
            }
            out.push(value.to_vec());
        }
        Ok(out)
    }
}
