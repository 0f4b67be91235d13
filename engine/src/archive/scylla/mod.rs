//! The ScyllaDB archive, through the `scylla` driver: token-aware load
//! balancing (the driver's default policy, set explicitly), prepared
//! statements marked idempotent so the driver may retry them on another
//! replica, LOCAL_QUORUM, server-side TTLs for raw usage buckets, paged
//! reads. The schema is created and migrated by quotad (`migrate`), one
//! numbered step at a time, recorded in `schema_migrations`.
//!
//! No lightweight transactions: keyspaces with tablets (the default for
//! new keyspaces in recent ScyllaDB) do not support them. The sync
//! position is written with the log index as its write timestamp, so the
//! highest index wins whatever order the writes land in.
//!
//! An ENTERPRISE tenant's dedicated schema is a keyspace of its own,
//! `<keyspace>_<tenant id in base32>`, with the same tables, replication
//! and migrations, registered in the deployment keyspace's
//! `dedicated_schema` table; it shares the deployment's session.
//!
//! Snapshots can be far larger than a cell should be, so they are written
//! as chunks first and a header row last: a header names a complete
//! snapshot.
mod config;
mod errors;
mod schema;

use config::valid_name;
pub use config::{ScyllaConfig, dedicated_keyspace};
use errors::{BACKEND, exec_err, other};
use schema::{Statements, migrations};

use super::{
    Archive, ArchiveError, DedicatedSchema, SCHEMA_VERSION, SNAPSHOTS_KEPT, SnapshotRecord,
    UsageBucket,
};
use crate::audit::AuditEvent;
use crate::clock::SharedClock;
use crate::model::TenantId;
use crate::usage_history::Granularity;
use futures::TryStreamExt;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::Consistency;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Snapshot chunk size: well under the cell sizes ScyllaDB handles
/// comfortably.
const CHUNK_BYTES: usize = 1 << 20;

pub struct ScyllaArchive {
    /// Shared with the tenants' dedicated schemas: one connection pool.
    session: Arc<Session>,
    config: ScyllaConfig,
    clock: SharedClock,
    statements: tokio::sync::OnceCell<Statements>,
    /// Set when this is a tenant's dedicated schema.
    dedicated_to: Option<TenantId>,
    /// Dedicated schemas migrated and prepared so far.
    dedicated: tokio::sync::Mutex<HashMap<TenantId, Arc<ScyllaArchive>>>,
}

impl ScyllaArchive {
    /// Connect to the cluster. The schema is made by [`Archive::migrate`].
    pub async fn connect(
        config: ScyllaConfig,
        clock: SharedClock,
    ) -> Result<Arc<Self>, ArchiveError> {
        config.validate()?;
        let profile = ExecutionProfile::builder()
            .load_balancing_policy(DefaultPolicy::builder().token_aware(true).build())
            .consistency(Consistency::LocalQuorum)
            .request_timeout(Some(config.request_timeout))
            .build();
        let session = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .connection_timeout(config.connect_timeout)
            .default_execution_profile_handle(profile.into_handle())
            .build()
            .await
            .map_err(|e| ArchiveError::Unavailable {
                backend: BACKEND,
                message: format!("cannot connect to {}: {e}", config.nodes.join(", ")),
            })?;
        Ok(Arc::new(ScyllaArchive {
            session: Arc::new(session),
            config,
            clock,
            statements: tokio::sync::OnceCell::new(),
            dedicated_to: None,
            dedicated: Default::default(),
        }))
    }

    async fn ddl(&self, cql: &str) -> Result<(), ArchiveError> {
        self.session
            .query_unpaged(cql, &[])
            .await
            .map(|_| ())
            .map_err(exec_err)
    }

    async fn statements(&self) -> Result<&Statements, ArchiveError> {
        self.statements
            .get_or_try_init(|| Statements::prepare(&self.session, &self.config.keyspace))
            .await
    }

    async fn applied_versions(&self) -> Result<Vec<u32>, ArchiveError> {
        let ks = &self.config.keyspace;
        let rows = self
            .session
            .query_unpaged(format!("SELECT version FROM {ks}.schema_migrations"), &[])
            .await
            .map_err(exec_err)?
            .into_rows_result()
            .map_err(other)?;
        let mut versions = Vec::new();
        for row in rows.rows::<(i32,)>().map_err(other)? {
            versions.push(row.map_err(other)?.0 as u32);
        }
        versions.sort_unstable();
        Ok(versions)
    }

    async fn snapshot_data(
        &self,
        group: u64,
        index: u64,
        chunks: i32,
    ) -> Result<Vec<u8>, ArchiveError> {
        let st = self.statements().await?;
        let mut rows = self
            .session
            .execute_iter(st.chunks.clone(), (group as i64, index as i64))
            .await
            .map_err(other)?
            .rows_stream::<(i32, Vec<u8>)>()
            .map_err(other)?;
        let mut parts = BTreeMap::new();
        while let Some((chunk, data)) = rows.try_next().await.map_err(other)? {
            parts.insert(chunk, data);
        }
        if parts.len() != chunks as usize || parts.keys().copied().ne(0..chunks) {
            return Err(ArchiveError::Corrupt {
                what: "snapshot",
                message: format!(
                    "group {group} snapshot at {index}: {} of {chunks} chunks present",
                    parts.len()
                ),
            });
        }
        Ok(parts.into_values().flatten().collect())
    }
}

#[async_trait::async_trait]
impl Archive for ScyllaArchive {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn migrate(&self) -> Result<u32, ArchiveError> {
        let ks = &self.config.keyspace;
        let replication: Vec<String> = self
            .config
            .replication
            .iter()
            .map(|(dc, rf)| format!("'{dc}': {rf}"))
            .collect();
        self.ddl(&format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'NetworkTopologyStrategy', {}}}",
            replication.join(", ")
        ))
        .await?;
        self.ddl(&format!(
            "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (version int PRIMARY KEY, applied_at_ms bigint)"
        ))
        .await?;
        let applied = self.applied_versions().await?;
        if let Some(&found) = applied.last()
            && found > SCHEMA_VERSION
        {
            return Err(ArchiveError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (version, steps) in migrations(ks) {
            if applied.contains(&version) {
                continue;
            }
            // Each statement is IF NOT EXISTS: a step that died half-way
            // is simply run again.
            for cql in steps {
                self.ddl(&cql).await?;
            }
            self.session
                .query_unpaged(
                    format!(
                        "INSERT INTO {ks}.schema_migrations (version, applied_at_ms) VALUES (?, ?)"
                    ),
                    (version as i32, self.clock.now_ms()),
                )
                .await
                .map_err(exec_err)?;
            tracing::info!(keyspace = %ks, version, "archive schema migrated");
        }
        self.statements().await?;
        Ok(SCHEMA_VERSION)
    }

    async fn put_usage(&self, buckets: &[UsageBucket]) -> Result<(), ArchiveError> {
        let st = self.statements().await?;
        let now = self.clock.now_ms();
        for b in buckets {
            // The bucket lives until its retention ends, counted from its
            // start, however late it is written.
            let ttl_secs = (b.expires_at_ms() - now) / 1000;
            if ttl_secs <= 0 {
                continue;
            }
            self.session
                .execute_unpaged(
                    &st.put_usage,
                    (
                        b.tenant,
                        b.quota.as_str(),
                        super::records::granularity_code(b.granularity) as i8,
                        b.start_ms,
                        b.amount as i64,
                        ttl_secs.min(i32::MAX as i64) as i32,
                    ),
                )
                .await
                .map_err(exec_err)?;
        }
        Ok(())
    }

    async fn usage(
        &self,
        tenant: TenantId,
        quota: &str,
        granularity: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageBucket>, ArchiveError> {
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let st = self.statements().await?;
        let g = super::records::granularity_code(granularity) as i8;
        let mut rows = self
            .session
            .execute_iter(st.usage.clone(), (tenant, quota, g, from_ms, to_ms))
            .await
            .map_err(other)?
            .rows_stream::<(i64, i64)>()
            .map_err(other)?;
        let mut out = Vec::new();
        while let Some((start_ms, amount)) = rows.try_next().await.map_err(other)? {
            out.push(UsageBucket {
                tenant,
                quota: quota.to_string(),
                granularity,
                start_ms,
                amount: amount as u64,
            });
        }
        Ok(out)
    }

    async fn put_audit(&self, tenant: TenantId, events: &[AuditEvent]) -> Result<(), ArchiveError> {
        let st = self.statements().await?;
        for e in events {
            self.session
                .execute_unpaged(
                    &st.put_audit,
                    (
                        tenant,
                        e.seq as i64,
                        e.at_ms,
                        e.actor.as_str(),
                        e.request_id.as_str(),
                        e.action.as_str(),
                        e.target.as_str(),
                        e.before.as_str(),
                        e.after.as_str(),
                        e.prev_hash.as_str(),
                        e.hash.as_str(),
                    ),
                )
                .await
                .map_err(exec_err)?;
        }
        Ok(())
    }

    async fn audit(
        &self,
        tenant: TenantId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, ArchiveError> {
        let st = self.statements().await?;
        type Row = (
            i64,
            i64,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
        );
        let limit = limit.min(i32::MAX as usize) as i32;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut rows = self
            .session
            .execute_iter(st.audit.clone(), (tenant, after_seq as i64, limit))
            .await
            .map_err(other)?
            .rows_stream::<Row>()
            .map_err(other)?;
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await.map_err(other)? {
            out.push(AuditEvent {
                seq: r.0 as u64,
                at_ms: r.1,
                actor: r.2,
                request_id: r.3,
                action: r.4,
                target: r.5,
                before: r.6,
                after: r.7,
                prev_hash: r.8,
                hash: r.9,
            });
        }
        Ok(out)
    }

    async fn put_snapshot(&self, s: &SnapshotRecord) -> Result<(), ArchiveError> {
        let st = self.statements().await?;
        let (group, index) = (s.group as i64, s.last_index as i64);
        let chunks: Vec<&[u8]> = if s.data.is_empty() {
            vec![&[]]
        } else {
            s.data.chunks(CHUNK_BYTES).collect()
        };
        // The same group and index may come again (a retry, or a restored
        // cluster numbering its log afresh): the old one goes first.
        self.delete_snapshot(group, index).await?;
        for (i, chunk) in chunks.iter().enumerate() {
            self.session
                .execute_unpaged(&st.put_chunk, (group, index, i as i32, *chunk))
                .await
                .map_err(exec_err)?;
        }
        self.session
            .execute_unpaged(
                &st.put_header,
                (
                    group,
                    index,
                    s.last_term as i64,
                    s.taken_at_ms,
                    chunks.len() as i32,
                ),
            )
            .await
            .map_err(exec_err)?;
        // Newest first (see `headers`): everything past the kept ones goes.
        let headers = self.headers(s.group).await?;
        for (old, _, _, _) in headers.into_iter().skip(SNAPSHOTS_KEPT) {
            self.delete_snapshot(group, old).await?;
        }
        Ok(())
    }

    async fn snapshot_groups(&self) -> Result<Vec<u64>, ArchiveError> {
        let ks = &self.config.keyspace;
        let mut rows = self
            .session
            .query_iter(format!("SELECT DISTINCT grp FROM {ks}.shard_snapshot"), &[])
            .await
            .map_err(other)?
            .rows_stream::<(i64,)>()
            .map_err(other)?;
        let mut groups = Vec::new();
        while let Some((g,)) = rows.try_next().await.map_err(other)? {
            groups.push(g as u64);
        }
        groups.sort_unstable();
        Ok(groups)
    }

    async fn snapshots(&self, group: u64) -> Result<Vec<SnapshotRecord>, ArchiveError> {
        let mut out = Vec::new();
        for (index, term, taken_at_ms, chunks) in
            self.headers(group).await?.into_iter().take(SNAPSHOTS_KEPT)
        {
            out.push(SnapshotRecord {
                group,
                last_index: index as u64,
                last_term: term as u64,
                taken_at_ms,
                data: self.snapshot_data(group, index as u64, chunks).await?,
            });
        }
        Ok(out)
    }

    async fn synced_to(&self, group: u64) -> Result<Option<u64>, ArchiveError> {
        let st = self.statements().await?;
        let rows = self
            .session
            .execute_unpaged(&st.synced_to, (group as i64,))
            .await
            .map_err(exec_err)?
            .into_rows_result()
            .map_err(other)?;
        let row = rows.maybe_first_row::<(i64,)>().map_err(other)?;
        Ok(row.map(|(i,)| i as u64))
    }

    async fn set_synced_to(&self, group: u64, index: u64) -> Result<(), ArchiveError> {
        let st = self.statements().await?;
        let (g, i) = (group as i64, index as i64);
        // Last write wins by timestamp: with the index as the timestamp,
        // an old leader writing a lower index after a new one wrote a
        // higher one cannot move the position back.
        self.session
            .execute_unpaged(&st.put_sync, (g, i, i))
            .await
            .map_err(exec_err)?;
        Ok(())
    }

    async fn dedicated(&self, tenant: TenantId) -> Result<Arc<dyn Archive>, ArchiveError> {
        super::no_nested_schemas(self.dedicated_to)?;
        let mut open = self.dedicated.lock().await;
        if let Some(a) = open.get(&tenant) {
            return Ok(a.clone());
        }
        // Where the registry says, if registered (a restore into a
        // deployment keyspace of another name still finds it).
        let st = self.statements().await?;
        let rows = self
            .session
            .execute_unpaged(&st.dedicated_name, (tenant,))
            .await
            .map_err(exec_err)?
            .into_rows_result()
            .map_err(other)?;
        let registered = rows.maybe_first_row::<(String,)>().map_err(other)?;
        let new = registered.is_none();
        let mut config = self.config.clone();
        config.keyspace = match registered {
            Some((name,)) if valid_name(&name) => name,
            Some((name,)) => {
                return Err(ArchiveError::Corrupt {
                    what: "dedicated schema",
                    message: format!("{tenant}: {name:?} is not a keyspace name"),
                });
            }
            None => dedicated_keyspace(&self.config.keyspace, tenant),
        };
        let schema = Arc::new(ScyllaArchive {
            session: self.session.clone(),
            config,
            clock: self.clock.clone(),
            statements: tokio::sync::OnceCell::new(),
            dedicated_to: Some(tenant),
            dedicated: Default::default(),
        });
        schema.migrate().await?;
        // Registered once, after its tables exist. Two nodes registering
        // at once write the same name; the later time stays.
        if new {
            self.session
                .execute_unpaged(
                    &st.register_dedicated,
                    (tenant, schema.config.keyspace.as_str(), self.clock.now_ms()),
                )
                .await
                .map_err(exec_err)?;
        }
        tracing::info!(%tenant, keyspace = %schema.config.keyspace, "dedicated archive schema ready");
        open.insert(tenant, schema.clone());
        Ok(schema)
    }

    async fn dedicated_schemas(&self) -> Result<Vec<DedicatedSchema>, ArchiveError> {
        if self.dedicated_to.is_some() {
            return Ok(Vec::new());
        }
        let ks = &self.config.keyspace;
        let mut rows = self
            .session
            .query_iter(
                format!("SELECT tenant, keyspace_name, created_at_ms FROM {ks}.dedicated_schema"),
                &[],
            )
            .await
            .map_err(other)?
            .rows_stream::<(TenantId, String, i64)>()
            .map_err(other)?;
        let mut out = Vec::new();
        while let Some((tenant, name, created_at_ms)) = rows.try_next().await.map_err(other)? {
            out.push(DedicatedSchema {
                tenant,
                name,
                created_at_ms,
            });
        }
        out.sort_by_key(|s| s.tenant);
        Ok(out)
    }

    async fn purge_tenant(&self, tenant: TenantId, quotas: &[String]) -> Result<(), ArchiveError> {
        let st = self.statements().await?;
        // Whole partitions: one tombstone each, not one per bucket.
        for quota in quotas {
            for g in [Granularity::Hour, Granularity::Day] {
                let code = super::records::granularity_code(g) as i8;
                self.session
                    .execute_unpaged(&st.purge_usage, (tenant, quota.as_str(), code))
                    .await
                    .map_err(exec_err)?;
            }
        }
        self.session
            .execute_unpaged(&st.purge_audit, (tenant,))
            .await
            .map_err(exec_err)?;
        Ok(())
    }
}

impl ScyllaArchive {
    /// Header first, so no reader takes a snapshot whose chunks are going.
    async fn delete_snapshot(&self, group: i64, index: i64) -> Result<(), ArchiveError> {
        let st = self.statements().await?;
        self.session
            .execute_unpaged(&st.delete_header, (group, index))
            .await
            .map_err(exec_err)?;
        self.session
            .execute_unpaged(&st.delete_chunks, (group, index))
            .await
            .map_err(exec_err)?;
        Ok(())
    }

    /// A group's snapshot headers, newest first.
    async fn headers(&self, group: u64) -> Result<Vec<(i64, i64, i64, i32)>, ArchiveError> {
        let st = self.statements().await?;
        let mut rows = self
            .session
            .execute_iter(st.headers.clone(), (group as i64,))
            .await
            .map_err(other)?
            .rows_stream::<(i64, i64, i64, i32)>()
            .map_err(other)?;
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await.map_err(other)? {
            out.push(r);
        }
        // Newest first by when they were taken, not by log index: a
        // cluster restored from the archive starts a fresh log.
        out.sort_unstable_by_key(|h| std::cmp::Reverse((h.2, h.0)));
        Ok(out)
    }
}
