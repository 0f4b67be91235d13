//! The archive: where usage history, audit events and shard snapshots are
//! kept beyond the Raft log, for reporting, billing and restore.
//!
//! ```text
//!  state machine ──(periodic sync, batched)──> Archive ──> embedded (data dir)
//!                                                     └──> scylla (ScyllaDB)
//! ```
//!
//! Every write is an idempotent upsert keyed by what it describes: a usage
//! bucket carries its total (not a delta), an audit event its sequence
//! number, a snapshot its group and log index. A sync that is retried, or
//! that resends after an outage, therefore never doubles anything; one that
//! stopped half-way leaves the archive behind, never wrong.
//!
//! Both backends pass the same suite (`contract`, compiled for tests only).
//!
//! ENTERPRISE tenants in a dedicated group also get a schema of their own
//! ("dedicated schema"): a keyspace (scylla) or a file (embedded) holding
//! only their usage, audit and group snapshots. It is another [`Archive`]
//! ([`Archive::dedicated`]), registered in the deployment's schema so a
//! restore finds it; the sync writes a dedicated group to its tenant's
//! schema, then purges what the shared schema held of that tenant.
#[cfg(any(test, feature = "testing"))]
pub mod contract;
mod embedded;
mod error;
mod handle;
pub(crate) mod records;
pub mod restore;
mod scylla;
pub mod sync;
mod syncer;

pub use embedded::EmbeddedArchive;
pub use error::ArchiveError;
pub use handle::ArchiveHandle;
pub use records::{DedicatedSchema, SnapshotRecord, UsageBucket};
pub use scylla::{ScyllaArchive, ScyllaConfig};
pub use syncer::{SyncTarget, Syncer};

use crate::audit::AuditEvent;
use crate::model::TenantId;
use crate::usage_history::Granularity;

/// Which archive a node syncs to.
#[derive(Clone, Default)]
pub enum ArchiveChoice {
    /// `archive.redb` in the data dir.
    #[default]
    Embedded,
    /// `archive.redb` in another directory (other storage than the data
    /// dir, so the archive outlives it).
    EmbeddedAt(std::path::PathBuf),
    Scylla(ScyllaConfig),
    /// One the caller opened (an embedding application, tests).
    Opened(std::sync::Arc<dyn Archive>),
}

impl std::fmt::Debug for ArchiveChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveChoice::Embedded => f.write_str("Embedded"),
            ArchiveChoice::EmbeddedAt(d) => f.debug_tuple("EmbeddedAt").field(d).finish(),
            ArchiveChoice::Scylla(c) => f.debug_tuple("Scylla").field(c).finish(),
            ArchiveChoice::Opened(a) => write!(f, "Opened({})", a.name()),
        }
    }
}

/// A dedicated schema is asked for one of its own: refused.
fn no_nested_schemas(owner: Option<TenantId>) -> Result<(), ArchiveError> {
    match owner {
        Some(owner) => Err(ArchiveError::Config {
            field: "tenant",
            message: format!("{owner}'s dedicated schema has no dedicated schemas of its own"),
        }),
        None => Ok(()),
    }
}

/// The newest schema this build writes and reads. Each backend migrates an
/// older schema up to it step by step and refuses a newer one.
pub const SCHEMA_VERSION: u32 = 2;

/// Snapshots kept per group: the newest few, so a restore can fall back to
/// an older one if the newest is unreadable.
pub const SNAPSHOTS_KEPT: usize = 3;

#[async_trait::async_trait]
pub trait Archive: Send + Sync + 'static {
    /// Which backend (for logs and metrics).
    fn name(&self) -> &'static str;

    /// Create the schema, or migrate it to [`SCHEMA_VERSION`]. Idempotent.
    /// Returns the version now in place.
    async fn migrate(&self) -> Result<u32, ArchiveError>;

    /// Upsert buckets: each one's amount replaces what was stored for its
    /// (tenant, quota, granularity, start).
    async fn put_usage(&self, buckets: &[UsageBucket]) -> Result<(), ArchiveError>;

    /// A tenant's buckets of `quota` at `granularity` starting in
    /// `[from_ms, to_ms)`, oldest first (only stored buckets, no zeros).
    async fn usage(
        &self,
        tenant: TenantId,
        quota: &str,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageBucket>, ArchiveError>;

    /// Upsert a tenant's audit events by sequence number. Events are
    /// stored as given, hashes included, so the chain read back verifies
    /// exactly as it did in the state machine.
    async fn put_audit(&self, tenant: TenantId, events: &[AuditEvent]) -> Result<(), ArchiveError>;

    /// A tenant's events with `seq > after_seq`, in order, at most `limit`.
    async fn audit(
        &self,
        tenant: TenantId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, ArchiveError>;

    /// Store a group's snapshot, keeping the newest [`SNAPSHOTS_KEPT`].
    /// Newest means taken last (`taken_at_ms`, then log index): a cluster
    /// restored from the archive numbers its logs afresh, so its snapshots
    /// may have lower indexes than the ones it was restored from.
    async fn put_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), ArchiveError>;

    /// Groups with at least one snapshot.
    async fn snapshot_groups(&self) -> Result<Vec<u64>, ArchiveError>;

    /// The group's newest snapshots, newest first (as above).
    async fn snapshots(&self, group: u64) -> Result<Vec<SnapshotRecord>, ArchiveError>;

    /// How far a group's state has been synced: the log index of the last
    /// applied entry whose effects are all in the archive.
    async fn synced_to(&self, group: u64) -> Result<Option<u64>, ArchiveError>;

    /// Record sync progress; never moves backwards.
    async fn set_synced_to(&self, group: u64, index: u64) -> Result<(), ArchiveError>;

    /// The tenant's own schema, an archive like this one holding only what
    /// its dedicated group syncs. Created and migrated on first call, then
    /// registered here (so it is listed by [`Archive::dedicated_schemas`]
    /// only once usable); later calls return the same schema. Asked of a
    /// dedicated schema itself, it is a configuration error.
    async fn dedicated(
        &self,
        tenant: TenantId,
    ) -> Result<std::sync::Arc<dyn Archive>, ArchiveError>;

    /// Tenants with a schema of their own, in tenant order.
    async fn dedicated_schemas(&self) -> Result<Vec<DedicatedSchema>, ArchiveError>;

    /// Delete the tenant's usage buckets (of the quotas named) and audit
    /// events from this schema: once its dedicated schema holds them, the
    /// shared one keeps no copy. Idempotent.
    async fn purge_tenant(&self, tenant: TenantId, quotas: &[String]) -> Result<(), ArchiveError>;
}
