//! The default archive: a redb file of its own in the data dir
//! (`archive.redb`), apart from the Raft store so archive writes never
//! queue behind log appends.
use super::records::granularity_code;
use super::{
    Archive, ArchiveError, DedicatedSchema, SCHEMA_VERSION, SNAPSHOTS_KEPT, SnapshotRecord,
    UsageBucket,
};
use crate::audit::AuditEvent;
use crate::clock::SharedClock;
use crate::model::TenantId;
use crate::usage_history::Granularity;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const BACKEND: &str = "embedded";

const META: TableDefinition<&str, u32> = TableDefinition::new("archive_meta");
/// (tenant, quota, granularity, start) -> amount
const USAGE: TableDefinition<(u128, &str, u8, i64), u64> = TableDefinition::new("usage_bucket");
/// (tenant, seq) -> event (postcard)
const AUDIT: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("audit_event");
/// (group, last index) -> snapshot (postcard)
const SNAPSHOTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("shard_snapshot");
/// (group, last index) -> when the snapshot was taken, since version 2:
/// snapshots are ordered by it, without reading their (large) values.
const SNAPSHOT_TAKEN: TableDefinition<(u64, u64), i64> =
    TableDefinition::new("shard_snapshot_taken");
/// group -> last synced log index
const SYNC: TableDefinition<u64, u64> = TableDefinition::new("sync_position");
/// tenant -> its dedicated schema (postcard), since version 2
const DEDICATED: TableDefinition<u128, &[u8]> = TableDefinition::new("dedicated_schema");

/// Where dedicated schemas' files go, under the archive's directory.
const DEDICATED_DIR: &str = "dedicated";

/// Cache for the archive file: it is written in batches and read by
/// reports, so a small cache does.
const CACHE_BYTES: usize = 16 << 20;
/// A dedicated schema's file holds one tenant.
const DEDICATED_CACHE_BYTES: usize = 2 << 20;

/// A stored snapshot's leading fields, read without decoding its data
/// (migrating version 1, which did not keep `SNAPSHOT_TAKEN`).
#[derive(serde::Deserialize)]
struct SnapshotHeader {
    _group: u64,
    _last_index: u64,
    _last_term: u64,
    taken_at_ms: i64,
}

/// A group's snapshot indexes, newest first: by when they were taken, not
/// by log index, as a cluster restored from the archive starts a fresh log.
fn newest_first(
    taken: &impl ReadableTable<(u64, u64), i64>,
    group: u64,
) -> Result<Vec<u64>, ArchiveError> {
    let mut order = Vec::new();
    for row in taken.range((group, 0)..=(group, u64::MAX)).map_err(io)? {
        let (k, v) = row.map_err(io)?;
        order.push((v.value(), k.value().1));
    }
    order.sort_unstable_by(|a, b| b.cmp(a));
    Ok(order.into_iter().map(|(_, index)| index).collect())
}

fn snapshot_header(bytes: &[u8]) -> Result<SnapshotHeader, ArchiveError> {
    postcard::take_from_bytes::<SnapshotHeader>(bytes)
        .map(|(h, _)| h)
        .map_err(corrupt("snapshot"))
}

pub struct EmbeddedArchive {
    db: Arc<Database>,
    dir: PathBuf,
    clock: SharedClock,
    /// Cleared to take the archive out of service (an operator draining
    /// the disk, or a fault test); calls then fail as a down backend's do.
    /// Shared with the dedicated schemas: one disk, one switch.
    available: Arc<AtomicBool>,
    /// Set when this is a tenant's dedicated schema.
    dedicated_to: Option<TenantId>,
    /// Dedicated schemas opened so far (a redb file opens once per process).
    dedicated: tokio::sync::Mutex<HashMap<TenantId, Arc<EmbeddedArchive>>>,
}

fn io(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Backend {
        backend: BACKEND,
        message: e.to_string(),
    }
}

fn corrupt(what: &'static str) -> impl Fn(postcard::Error) -> ArchiveError {
    move |e| ArchiveError::Corrupt {
        what,
        message: e.to_string(),
    }
}

impl EmbeddedArchive {
    /// Open (or create) `dir/archive.redb`.
    pub fn open(dir: &Path, clock: SharedClock) -> Result<Arc<Self>, ArchiveError> {
        let available = Arc::new(AtomicBool::new(true));
        let path = dir.join("archive.redb");
        Self::open_file(dir, &path, CACHE_BYTES, clock, None, available)
    }

    fn open_file(
        dir: &Path,
        path: &Path,
        cache_bytes: usize,
        clock: SharedClock,
        dedicated_to: Option<TenantId>,
        available: Arc<AtomicBool>,
    ) -> Result<Arc<Self>, ArchiveError> {
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent).map_err(|e| ArchiveError::Config {
            field: "data_dir",
            message: format!("cannot create {}: {e}", parent.display()),
        })?;
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| ArchiveError::Config {
                field: "data_dir",
                message: format!("cannot open {}: {e}", path.display()),
            })?;
        // Tenant data, as private as the data dir it usually lives in (the
        // file only: its directory may be one the operator shares).
        crate::storage::private_file::tighten(path, &mut Vec::new()).map_err(|e| {
            ArchiveError::Config {
                field: "data_dir",
                message: format!("cannot make {} private: {e}", path.display()),
            }
        })?;
        Ok(Arc::new(EmbeddedArchive {
            db: Arc::new(db),
            dir: dir.to_path_buf(),
            clock,
            available,
            dedicated_to,
            dedicated: Default::default(),
        }))
    }

    /// A dedicated schema's file, relative to the archive's directory.
    fn dedicated_file(tenant: TenantId) -> String {
        format!("{DEDICATED_DIR}/{}.redb", tenant.simple())
    }

    /// Take the archive out of service (`false`) or back (`true`).
    pub fn set_available(&self, available: bool) {
        self.available.store(available, Ordering::SeqCst);
    }

    /// Run `f` on the blocking pool, if the archive is in service.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, ArchiveError> + Send + 'static,
    ) -> Result<T, ArchiveError> {
        if !self.available.load(Ordering::SeqCst) {
            return Err(ArchiveError::Unavailable {
                backend: BACKEND,
                message: "taken out of service".into(),
            });
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(io)?
    }
}

#[async_trait::async_trait]
impl Archive for EmbeddedArchive {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn migrate(&self) -> Result<u32, ArchiveError> {
        self.run(|db| {
            let tx = db.begin_write().map_err(io)?;
            let version = {
                let mut meta = tx.open_table(META).map_err(io)?;
                let found = meta
                    .get("schema_version")
                    .map_err(io)?
                    .map_or(0, |v| v.value());
                if found > SCHEMA_VERSION {
                    return Err(ArchiveError::SchemaTooNew {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                // Version 1: the tables below. Later versions add steps
                // here, each moving the data from version n to n + 1.
                tx.open_table(USAGE).map_err(io)?;
                tx.open_table(AUDIT).map_err(io)?;
                tx.open_table(SNAPSHOTS).map_err(io)?;
                tx.open_table(SYNC).map_err(io)?;
                // Version 2: the registry of dedicated schemas, and when
                // each snapshot was taken.
                tx.open_table(DEDICATED).map_err(io)?;
                let mut taken = tx.open_table(SNAPSHOT_TAKEN).map_err(io)?;
                if found < 2 {
                    let snapshots = tx.open_table(SNAPSHOTS).map_err(io)?;
                    for row in snapshots.iter().map_err(io)? {
                        let (k, v) = row.map_err(io)?;
                        let h = snapshot_header(v.value())?;
                        taken.insert(k.value(), h.taken_at_ms).map_err(io)?;
                    }
                }
                meta.insert("schema_version", SCHEMA_VERSION).map_err(io)?;
                SCHEMA_VERSION
            };
            tx.commit().map_err(io)?;
            Ok(version)
        })
        .await
    }

    async fn put_usage(&self, buckets: &[UsageBucket]) -> Result<(), ArchiveError> {
        let buckets = buckets.to_vec();
        let now = self.clock.now_ms();
        self.run(move |db| {
            let tx = db.begin_write().map_err(io)?;
            {
                let mut t = tx.open_table(USAGE).map_err(io)?;
                for b in buckets.iter().filter(|b| b.expires_at_ms() > now) {
                    let key = (
                        b.tenant.as_u128(),
                        b.quota.as_str(),
                        granularity_code(b.granularity),
                        b.start_ms,
                    );
                    t.insert(key, b.amount).map_err(io)?;
                }
            }
            tx.commit().map_err(io)
        })
        .await
    }

    async fn usage(
        &self,
        tenant: TenantId,
        quota: &str,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageBucket>, ArchiveError> {
        let quota = quota.to_string();
        let now = self.clock.now_ms();
        self.run(move |db| {
            let tx = db.begin_read().map_err(io)?;
            let t = tx.open_table(USAGE).map_err(io)?;
            let g = granularity_code(granularity);
            let id = tenant.as_u128();
            let mut out = Vec::new();
            if from_ms >= to_ms {
                return Ok(out);
            }
            let range = t
                .range((id, quota.as_str(), g, from_ms)..(id, quota.as_str(), g, to_ms))
                .map_err(io)?;
            for row in range {
                let (k, v) = row.map_err(io)?;
                let bucket = UsageBucket {
                    tenant,
                    quota: quota.clone(),
                    granularity,
                    start_ms: k.value().3,
                    amount: v.value(),
                };
                if bucket.expires_at_ms() > now {
                    out.push(bucket);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_audit(&self, tenant: TenantId, events: &[AuditEvent]) -> Result<(), ArchiveError> {
        let rows = events
            .iter()
            .map(|e| {
                postcard::to_allocvec(e)
                    .map(|bytes| (e.seq, bytes))
                    .map_err(corrupt("audit event"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.run(move |db| {
            let tx = db.begin_write().map_err(io)?;
            {
                let mut t = tx.open_table(AUDIT).map_err(io)?;
                for (seq, bytes) in &rows {
                    t.insert((tenant.as_u128(), *seq), bytes.as_slice())
                        .map_err(io)?;
                }
            }
            tx.commit().map_err(io)
        })
        .await
    }

    async fn audit(
        &self,
        tenant: TenantId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, ArchiveError> {
        self.run(move |db| {
            let tx = db.begin_read().map_err(io)?;
            let t = tx.open_table(AUDIT).map_err(io)?;
            let id = tenant.as_u128();
            let mut out = Vec::new();
            let from = after_seq.saturating_add(1);
            for row in t
                .range((id, from)..=(id, u64::MAX))
                .map_err(io)?
                .take(limit)
            {
                let (_, v) = row.map_err(io)?;
                out.push(postcard::from_bytes(v.value()).map_err(corrupt("audit event"))?);
            }
            Ok(out)
        })
        .await
    }

    async fn put_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), ArchiveError> {
        let bytes = postcard::to_allocvec(snapshot).map_err(corrupt("snapshot"))?;
        let (group, index, taken_at_ms) =
            (snapshot.group, snapshot.last_index, snapshot.taken_at_ms);
        self.run(move |db| {
            let tx = db.begin_write().map_err(io)?;
            {
                let mut t = tx.open_table(SNAPSHOTS).map_err(io)?;
                t.insert((group, index), bytes.as_slice()).map_err(io)?;
                let mut taken = tx.open_table(SNAPSHOT_TAKEN).map_err(io)?;
                taken.insert((group, index), taken_at_ms).map_err(io)?;
                for index in newest_first(&taken, group)?
                    .into_iter()
                    .skip(SNAPSHOTS_KEPT)
                {
                    t.remove((group, index)).map_err(io)?;
                    taken.remove((group, index)).map_err(io)?;
                }
            }
            tx.commit().map_err(io)
        })
        .await
    }

    async fn snapshot_groups(&self) -> Result<Vec<u64>, ArchiveError> {
        self.run(|db| {
            let tx = db.begin_read().map_err(io)?;
            let t = tx.open_table(SNAPSHOTS).map_err(io)?;
            let mut groups: Vec<u64> = Vec::new();
            for row in t.iter().map_err(io)? {
                let group = row.map_err(io)?.0.value().0;
                if groups.last() != Some(&group) {
                    groups.push(group);
                }
            }
            Ok(groups)
        })
        .await
    }

    async fn snapshots(&self, group: u64) -> Result<Vec<SnapshotRecord>, ArchiveError> {
        self.run(move |db| {
            let tx = db.begin_read().map_err(io)?;
            let t = tx.open_table(SNAPSHOTS).map_err(io)?;
            let taken = tx.open_table(SNAPSHOT_TAKEN).map_err(io)?;
            let mut out = Vec::new();
            for index in newest_first(&taken, group)?
                .into_iter()
                .take(SNAPSHOTS_KEPT)
            {
                if let Some(v) = t.get((group, index)).map_err(io)? {
                    out.push(postcard::from_bytes(v.value()).map_err(corrupt("snapshot"))?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn synced_to(&self, group: u64) -> Result<Option<u64>, ArchiveError> {
        self.run(move |db| {
            let tx = db.begin_read().map_err(io)?;
            let t = tx.open_table(SYNC).map_err(io)?;
            Ok(t.get(group).map_err(io)?.map(|v| v.value()))
        })
        .await
    }

    async fn set_synced_to(&self, group: u64, index: u64) -> Result<(), ArchiveError> {
        self.run(move |db| {
            let tx = db.begin_write().map_err(io)?;
            {
                let mut t = tx.open_table(SYNC).map_err(io)?;
                let current = t.get(group).map_err(io)?.map(|v| v.value());
                if current.is_none_or(|c| c < index) {
                    t.insert(group, index).map_err(io)?;
                }
            }
            tx.commit().map_err(io)
        })
        .await
    }

    async fn dedicated(&self, tenant: TenantId) -> Result<Arc<dyn Archive>, ArchiveError> {
        super::no_nested_schemas(self.dedicated_to)?;
        let mut open = self.dedicated.lock().await;
        if let Some(a) = open.get(&tenant) {
            return Ok(a.clone());
        }
        // Where the registry says, if registered (the file is the tenant's
        // whatever later builds would name it).
        let registered = self
            .run(move |db| {
                let tx = db.begin_read().map_err(io)?;
                let t = tx.open_table(DEDICATED).map_err(io)?;
                match t.get(tenant.as_u128()).map_err(io)? {
                    Some(v) => Ok(Some(
                        postcard::from_bytes::<DedicatedSchema>(v.value())
                            .map_err(corrupt("dedicated schema"))?
                            .name,
                    )),
                    None => Ok(None),
                }
            })
            .await?;
        let name = registered.unwrap_or_else(|| Self::dedicated_file(tenant));
        if Path::new(&name).is_absolute() || name.split('/').any(|part| part == "..") {
            return Err(ArchiveError::Corrupt {
                what: "dedicated schema",
                message: format!("{tenant}: {name:?} is not a file under the archive's directory"),
            });
        }
        let (dir, clock, available) =
            (self.dir.clone(), self.clock.clone(), self.available.clone());
        let path = dir.join(&name);
        let schema = tokio::task::spawn_blocking(move || {
            Self::open_file(
                &dir,
                &path,
                DEDICATED_CACHE_BYTES,
                clock,
                Some(tenant),
                available,
            )
        })
        .await
        .map_err(io)??;
        schema.migrate().await?;
        let record = DedicatedSchema {
            tenant,
            name,
            created_at_ms: self.clock.now_ms(),
        };
        self.run(move |db| {
            let tx = db.begin_write().map_err(io)?;
            {
                let mut t = tx.open_table(DEDICATED).map_err(io)?;
                // Registered once: the first creation time stays.
                if t.get(tenant.as_u128()).map_err(io)?.is_none() {
                    let bytes =
                        postcard::to_allocvec(&record).map_err(corrupt("dedicated schema"))?;
                    t.insert(tenant.as_u128(), bytes.as_slice()).map_err(io)?;
                }
            }
            tx.commit().map_err(io)
        })
        .await?;
        open.insert(tenant, schema.clone());
        Ok(schema)
    }

    async fn dedicated_schemas(&self) -> Result<Vec<DedicatedSchema>, ArchiveError> {
        if self.dedicated_to.is_some() {
            return Ok(Vec::new());
        }
        self.run(|db| {
            let tx = db.begin_read().map_err(io)?;
            let t = tx.open_table(DEDICATED).map_err(io)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(io)? {
                let (_, v) = row.map_err(io)?;
                out.push(postcard::from_bytes(v.value()).map_err(corrupt("dedicated schema"))?);
            }
            Ok(out)
        })
        .await
    }

    async fn purge_tenant(&self, tenant: TenantId, _quotas: &[String]) -> Result<(), ArchiveError> {
        // Keys lead with the tenant, so every quota's buckets are one
        // range here; the names are for backends partitioned by quota.
        self.run(move |db| {
            let id = tenant.as_u128();
            let tx = db.begin_write().map_err(io)?;
            {
                let mut usage = tx.open_table(USAGE).map_err(io)?;
                let mut keys: Vec<(String, u8, i64)> = Vec::new();
                for row in usage.range((id, "", 0, i64::MIN)..).map_err(io)? {
                    let (k, _) = row.map_err(io)?;
                    let (t, quota, g, start) = k.value();
                    if t != id {
                        break;
                    }
                    keys.push((quota.to_string(), g, start));
                }
                for (quota, g, start) in &keys {
                    usage.remove((id, quota.as_str(), *g, *start)).map_err(io)?;
                }
                let mut audit = tx.open_table(AUDIT).map_err(io)?;
                let seqs: Vec<u64> = audit
                    .range((id, 0)..=(id, u64::MAX))
                    .map_err(io)?
                    .map(|r| r.map(|(k, _)| k.value().1))
                    .collect::<Result<_, _>>()
                    .map_err(io)?;
                for seq in seqs {
                    audit.remove((id, seq)).map_err(io)?;
                }
            }
            tx.commit().map_err(io)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 archive (before dedicated schemas) is migrated in place
    /// and keeps its data.
    #[tokio::test]
    async fn version_1_is_migrated_to_the_current_schema() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join("archive.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut meta = tx.open_table(META).unwrap();
                meta.insert("schema_version", 1).unwrap();
                let mut sync = tx.open_table(SYNC).unwrap();
                sync.insert(4, 40).unwrap();
                tx.open_table(USAGE).unwrap();
                tx.open_table(AUDIT).unwrap();
                let mut snapshots = tx.open_table(SNAPSHOTS).unwrap();
                for (index, taken_at_ms) in [(9, 2_000), (5, 1_000)] {
                    let record = SnapshotRecord {
                        group: 4,
                        last_index: index,
                        last_term: 1,
                        taken_at_ms,
                        data: vec![7; 100],
                    };
                    let bytes = postcard::to_allocvec(&record).unwrap();
                    snapshots.insert((4, index), bytes.as_slice()).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        let archive = EmbeddedArchive::open(dir.path(), clock).unwrap();
        assert_eq!(archive.migrate().await.unwrap(), SCHEMA_VERSION);
        assert_eq!(archive.synced_to(4).await.unwrap(), Some(40));
        assert!(archive.dedicated_schemas().await.unwrap().is_empty());
        // Their taking times were read back from the stored snapshots.
        let kept: Vec<(u64, i64)> = archive
            .snapshots(4)
            .await
            .unwrap()
            .iter()
            .map(|s| (s.last_index, s.taken_at_ms))
            .collect();
        assert_eq!(kept, [(9, 2_000), (5, 1_000)]);
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join("archive.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", SCHEMA_VERSION + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        let archive = EmbeddedArchive::open(dir.path(), clock).unwrap();
        assert!(matches!(
            archive.migrate().await,
            Err(ArchiveError::SchemaTooNew { found, .. }) if found == SCHEMA_VERSION + 1
        ));
    }
}
